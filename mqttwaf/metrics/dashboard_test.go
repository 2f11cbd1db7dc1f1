package metrics_test

import (
	"encoding/json"
	"os"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/mqttwaf/mqttwaf/mqttwaf"
	"github.com/mqttwaf/mqttwaf/mqttwaf/metrics"
)

// dashboard is the Grafana dashboard shipped in the repository.
const dashboard = "../../docs/grafana/mqttwaf.json"

var (
	promStrings   = regexp.MustCompile(`"(?:[^"\\]|\\.)*"|'(?:[^'\\]|\\.)*'|` + "`[^`]*`")
	promVariables = regexp.MustCompile(`\$\{[^}]*\}|\$[A-Za-z_][A-Za-z0-9_]*`)
	promMatchers  = regexp.MustCompile(`\{[^}]*\}`)
	promRanges    = regexp.MustCompile(`\[[^\]]*\]`)
	promLabelList = regexp.MustCompile(`\b(?:by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)`)
	promNumbers   = regexp.MustCompile(`\b[0-9][0-9A-Za-z_.]*`) // 5m, 1e3, 0.5
	promIdent     = regexp.MustCompile(`[A-Za-z_:][A-Za-z0-9_:]*(\s*\()?`)
	promKeywords  = []string{"and", "or", "unless", "bool", "offset", "by", "without", "on", "ignoring", "group_left", "group_right", "inf", "nan"}
)

// metricNames returns the metric names a PromQL expression reads: what is
// left once strings, Grafana variables, label matchers, ranges, label
// lists and numbers and durations are removed, and function calls and keywords are skipped.
func metricNames(expr string) []string {
	s := promStrings.ReplaceAllString(expr, `""`)
	s = promVariables.ReplaceAllString(s, "1m")
	s = promMatchers.ReplaceAllString(s, "")
	s = promRanges.ReplaceAllString(s, "")
	s = promLabelList.ReplaceAllString(s, "")
	s = promNumbers.ReplaceAllString(s, "")
	var names []string
	for _, m := range promIdent.FindAllStringSubmatch(s, -1) {
		if m[1] != "" || slices.Contains(promKeywords, strings.ToLower(m[0])) {
			continue // a function or aggregation, or a keyword
		}
		names = append(names, m[0])
	}
	return names
}

func TestMetricNames(t *testing.T) {
	for _, tc := range []struct {
		expr string
		want []string
	}{
		{"mqttwaf_connections_open", []string{"mqttwaf_connections_open"}},
		{`sum by (rule, reason) (rate(mqttwaf_decisions_total{enforced="true", action=~"reject|ban"}[$__rate_interval]))`, []string{"mqttwaf_decisions_total"}},
		{`time() - mqttwaf_policy_loaded_timestamp_seconds offset 5m`, []string{"mqttwaf_policy_loaded_timestamp_seconds"}},
		{`rate(mqttwaf_nope_total{rule=~"admin\\..*"}[5m]) / on (instance) group_left up`, []string{"mqttwaf_nope_total", "up"}},
		{`a_total{x="{y}"} and b`, []string{"a_total", "b"}},
	} {
		if got := metricNames(tc.expr); !slices.Equal(got, tc.want) {
			t.Errorf("%s: %v, want %v", tc.expr, got, tc.want)
		}
	}
}

// exported returns the names of the metrics a real registry gathers from
// the collector, after a decision, a dropped delivery, a ban and a
// lockout, so every family has series.
func exported(t *testing.T) map[string]bool {
	t.Helper()
	w, err := mqttwaf.New(nil, mqttwaf.Options{Sink: mqttwaf.SinkFunc(func(mqttwaf.Event) {})})
	if err != nil {
		t.Fatal(err)
	}
	w.Record(mqttwaf.StageBroker, nil, "", "", "", 0, mqttwaf.Verdict{Action: mqttwaf.Drop, Rule: metrics.DeliveryDroppedRule, Reason: "subscriber_queue_full"})
	reg := prometheus.NewRegistry()
	reg.MustRegister(metrics.New(w, metrics.Options{Broker: func() metrics.BrokerInfo { return metrics.BrokerInfo{Started: time.Now()} }}))
	fams, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	names := map[string]bool{}
	for _, f := range fams {
		names[f.GetName()] = true
	}
	return names
}

// TestDashboardQueriesExportedMetrics: every PromQL expression of the
// Grafana dashboard reads at least one metric, and only metrics the
// collector exports.
func TestDashboardQueriesExportedMetrics(t *testing.T) {
	b, err := os.ReadFile(dashboard)
	if err != nil {
		t.Fatal(err)
	}
	var doc any
	if err := json.Unmarshal(b, &doc); err != nil {
		t.Fatalf("%s: %v", dashboard, err)
	}
	names := exported(t)
	var exprs []string
	var walk func(v any)
	walk = func(v any) {
		switch v := v.(type) {
		case map[string]any:
			for k, x := range v {
				if s, ok := x.(string); ok && k == "expr" {
					exprs = append(exprs, s)
				}
				walk(x)
			}
		case []any:
			for _, x := range v {
				walk(x)
			}
		}
	}
	walk(doc)
	if len(exprs) < 10 {
		t.Fatalf("only %d expressions found in %s", len(exprs), dashboard)
	}
	used := map[string]bool{}
	for _, e := range exprs {
		ms := metricNames(e)
		if len(ms) == 0 {
			t.Errorf("%q reads no metric", e)
		}
		for _, m := range ms {
			used[m] = true
			if !names[m] {
				t.Errorf("%q reads %s, which the collector does not export", e, m)
			}
		}
	}
	// The dashboard shows every series the collector exports.
	for n := range names {
		if !used[n] && !strings.HasPrefix(n, "mqttwaf_broker_start") && n != "mqttwaf_broker_clients_maximum" &&
			!strings.HasPrefix(n, "mqttwaf_broker_packets_") {
			t.Errorf("%s is exported but not on the dashboard", n)
		}
	}
}
