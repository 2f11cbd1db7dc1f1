package metrics_test

import (
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	dto "github.com/prometheus/client_model/go"

	"github.com/mqttwaf/mqttwaf/mqttwaf"
	"github.com/mqttwaf/mqttwaf/mqttwaf/metrics"
	"github.com/mqttwaf/mqttwaf/ratelimit"
)

// value finds the sample of name whose labels include want, in a Gather.
func value(t *testing.T, fams []*dto.MetricFamily, name string, want map[string]string) (float64, bool) {
	t.Helper()
	for _, f := range fams {
		if f.GetName() != name {
			continue
		}
	metric:
		for _, m := range f.GetMetric() {
			got := map[string]string{}
			for _, l := range m.GetLabel() {
				got[l.GetName()] = l.GetValue()
			}
			for k, v := range want {
				if got[k] != v {
					continue metric
				}
			}
			switch {
			case m.Counter != nil:
				return m.Counter.GetValue(), true
			case m.Gauge != nil:
				return m.Gauge.GetValue(), true
			}
		}
	}
	return 0, false
}

// TestCollector: decisions, drops, connections, bans, lockouts and the
// policy's identity show up with their values, in a user's own registry;
// the series pass Prometheus' lint (names, units, _total).
func TestCollector(t *testing.T) {
	p, err := mqttwaf.ParsePolicy([]byte("mode: enforce\nlimits: {topic: {max_levels: 3}}\n"), "p.yaml")
	if err != nil {
		t.Fatal(err)
	}
	w, err := mqttwaf.New(p, mqttwaf.Options{Sink: mqttwaf.SinkFunc(func(mqttwaf.Event) {})})
	if err != nil {
		t.Fatal(err)
	}
	started := time.Unix(1700000000, 0)
	c := metrics.New(w, metrics.Options{Broker: func() metrics.BrokerInfo {
		return metrics.BrokerInfo{Started: started, ClientsConnected: 3, MessagesReceived: 42, BytesSent: 1000}
	}})
	reg := prometheus.NewPedanticRegistry()
	reg.MustRegister(c)

	// Decisions: a refused publish (too many levels), twice; a dropped
	// delivery reported by the adapter; a socket open; a ban; a lockout.
	cl := &mqttwaf.Client{ID: "dev1", Listener: "tcp", RemoteIP: netip.MustParseAddr("127.0.0.1"), Auth: mqttwaf.AuthAnonymous, Role: "guest"}
	for range 2 {
		if v, _ := w.Publish(cl, &mqttwaf.Message{Topic: "guest/dev1/a/b/c"}); !v.Blocked() {
			t.Fatalf("publish to 5 levels: %+v", v)
		}
	}
	w.Record(mqttwaf.StageBroker, cl, "", "", "", 0, mqttwaf.Verdict{Action: mqttwaf.Drop, Rule: metrics.DeliveryDroppedRule, Reason: "subscriber_queue_full"})
	if v := w.Open("tcp", "127.0.0.1:5000"); v.Blocked() {
		t.Fatal(v)
	}
	now := time.Now()
	if err := w.Bans().Add(now, ratelimit.Ban{Target: ratelimit.ClientIDTarget("bad"), Reason: "operator", Until: now.Add(time.Hour)}); err != nil {
		t.Fatal(err)
	}
	if err := w.Lockouts().Add(now, ratelimit.Ban{Target: ratelimit.UsernameTarget("dev2"), Until: now.Add(time.Hour)}); err != nil {
		t.Fatal(err)
	}
	if err := w.Reload(&mqttwaf.Policy{Mode: "sometimes"}); err == nil {
		t.Fatal("invalid policy reloaded")
	}

	fams, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	pi := w.PolicyInfo()
	for _, tc := range []struct {
		name   string
		labels map[string]string
		want   float64
	}{
		{"mqttwaf_decisions_total", map[string]string{"rule": "limits.topic", "action": "reject", "reason": "topic_too_many_levels", "enforced": "true"}, 2},
		{"mqttwaf_decisions_total", map[string]string{"rule": metrics.DeliveryDroppedRule, "reason": "subscriber_queue_full"}, 1},
		{"mqttwaf_deliveries_dropped_total", map[string]string{"reason": "subscriber_queue_full"}, 1},
		{"mqttwaf_connections_open", nil, 1},
		{"mqttwaf_connection_addresses_open", nil, 1},
		{"mqttwaf_bans_active", map[string]string{"kind": "client"}, 1},
		{"mqttwaf_bans_active", map[string]string{"kind": "ip"}, 0},
		{"mqttwaf_lockouts_active", map[string]string{"kind": "user"}, 1},
		{"mqttwaf_policy_reloads_total", map[string]string{"result": "ok"}, 0},
		{"mqttwaf_policy_reloads_total", map[string]string{"result": "failed"}, 1},
		{"mqttwaf_policy_info", map[string]string{"sha256": pi.SHA256, "mode": "enforce"}, 1},
		{"mqttwaf_policy_loaded_timestamp_seconds", nil, float64(pi.LoadedAt.UnixNano()) / 1e9},
		{"mqttwaf_broker_start_time_seconds", nil, 1700000000},
		{"mqttwaf_broker_clients_connected", nil, 3},
		{"mqttwaf_broker_messages_received_total", nil, 42},
		{"mqttwaf_broker_sent_bytes_total", nil, 1000},
	} {
		got, ok := value(t, fams, tc.name, tc.labels)
		if !ok || got != tc.want {
			t.Errorf("%s%v = %v (found %v), want %v", tc.name, tc.labels, got, ok, tc.want)
		}
	}
	problems, err := testutil.CollectAndLint(c)
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range problems {
		t.Errorf("lint: %s: %s", p.Metric, p.Text)
	}
	// No label carries what a client chose: the client ID banned, the
	// user name locked out and the topic refused appear nowhere.
	for _, f := range fams {
		for _, m := range f.GetMetric() {
			for _, l := range m.GetLabel() {
				if v := l.GetValue(); v == "bad" || v == "dev2" || v == "dev1" || strings.Contains(v, "guest/") {
					t.Errorf("%s has a client-controlled label %s=%q", f.GetName(), l.GetName(), v)
				}
			}
		}
	}
}

// TestCollectorWithoutBroker: with no Broker function, no broker series.
func TestCollectorWithoutBroker(t *testing.T) {
	w, err := mqttwaf.New(nil, mqttwaf.Options{Sink: mqttwaf.SinkFunc(func(mqttwaf.Event) {})})
	if err != nil {
		t.Fatal(err)
	}
	reg := prometheus.NewPedanticRegistry()
	reg.MustRegister(metrics.New(w, metrics.Options{}))
	fams, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range fams {
		if strings.HasPrefix(f.GetName(), "mqttwaf_broker_") {
			t.Errorf("%s exported without a broker", f.GetName())
		}
	}
	if _, ok := value(t, fams, "mqttwaf_policy_info", nil); !ok {
		t.Error("no mqttwaf_policy_info")
	}
}
