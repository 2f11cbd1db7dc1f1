package metrics_test

import (
	"fmt"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/mqttwaf/mqttwaf/mqttwaf"
	"github.com/mqttwaf/mqttwaf/mqttwaf/metrics"
	"github.com/mqttwaf/mqttwaf/ratelimit"
	"github.com/mqttwaf/mqttwaf/ratelimit/redisstate/redistest"
)

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

	pi := w.PolicyInfo()
	want := fmt.Sprintf(`
# HELP mqttwaf_decisions_total Decisions other than a plain allow, by rule, action, reason and whether they were enforced (false in detection_only).
# TYPE mqttwaf_decisions_total counter
mqttwaf_decisions_total{action="drop",enforced="true",reason="subscriber_queue_full",rule="broker.delivery_dropped"} 1
mqttwaf_decisions_total{action="reject",enforced="true",reason="topic_too_many_levels",rule="limits.topic"} 2
# HELP mqttwaf_deliveries_dropped_total Deliveries to subscribers the broker dropped, by reason (also counted in mqttwaf_decisions_total, rule broker.delivery_dropped).
# TYPE mqttwaf_deliveries_dropped_total counter
mqttwaf_deliveries_dropped_total{reason="subscriber_queue_full"} 1
# HELP mqttwaf_connections_open Sockets open (accepted by the WAF and not yet closed).
# TYPE mqttwaf_connections_open gauge
mqttwaf_connections_open 1
# HELP mqttwaf_connection_addresses_open Distinct remote addresses (see the addresses section) with an open socket.
# TYPE mqttwaf_connection_addresses_open gauge
mqttwaf_connection_addresses_open 1
# HELP mqttwaf_bans_active Bans in force, by what they name: client, user or ip.
# TYPE mqttwaf_bans_active gauge
mqttwaf_bans_active{kind="client"} 1
mqttwaf_bans_active{kind="ip"} 0
mqttwaf_bans_active{kind="user"} 0
# HELP mqttwaf_lockouts_active Password lockouts in force (identity.lockout), by what they name: user or ip.
# TYPE mqttwaf_lockouts_active gauge
mqttwaf_lockouts_active{kind="ip"} 0
mqttwaf_lockouts_active{kind="user"} 1
# HELP mqttwaf_policy_reloads_total Policy reloads, by result: ok or failed (the running policy stays in force).
# TYPE mqttwaf_policy_reloads_total counter
mqttwaf_policy_reloads_total{result="failed"} 1
mqttwaf_policy_reloads_total{result="ok"} 0
# HELP mqttwaf_policy_info The running policy: always 1, its SHA-256 (canonical form) and mode as labels.
# TYPE mqttwaf_policy_info gauge
mqttwaf_policy_info{mode="enforce",sha256="%s"} 1
# HELP mqttwaf_policy_loaded_timestamp_seconds When the running policy was loaded, in Unix seconds.
# TYPE mqttwaf_policy_loaded_timestamp_seconds gauge
mqttwaf_policy_loaded_timestamp_seconds %g
# HELP mqttwaf_broker_start_time_seconds When the broker started, in Unix seconds.
# TYPE mqttwaf_broker_start_time_seconds gauge
mqttwaf_broker_start_time_seconds 1.7e+09
# HELP mqttwaf_broker_clients_connected Clients connected.
# TYPE mqttwaf_broker_clients_connected gauge
mqttwaf_broker_clients_connected 3
# HELP mqttwaf_broker_messages_received_total PUBLISH packets received.
# TYPE mqttwaf_broker_messages_received_total counter
mqttwaf_broker_messages_received_total 42
# HELP mqttwaf_broker_sent_bytes_total Bytes sent to clients.
# TYPE mqttwaf_broker_sent_bytes_total counter
mqttwaf_broker_sent_bytes_total 1000
`, pi.SHA256, float64(pi.LoadedAt.UnixNano())/1e9)
	if err := testutil.GatherAndCompare(reg, strings.NewReader(want),
		"mqttwaf_decisions_total", "mqttwaf_deliveries_dropped_total", "mqttwaf_connections_open",
		"mqttwaf_connection_addresses_open", "mqttwaf_bans_active", "mqttwaf_lockouts_active",
		"mqttwaf_policy_reloads_total", "mqttwaf_policy_info", "mqttwaf_policy_loaded_timestamp_seconds",
		"mqttwaf_broker_start_time_seconds", "mqttwaf_broker_clients_connected",
		"mqttwaf_broker_messages_received_total", "mqttwaf_broker_sent_bytes_total"); err != nil {
		t.Error(err)
	}
	problems, err := testutil.CollectAndLint(c)
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range problems {
		t.Errorf("lint: %s: %s", p.Metric, p.Text)
	}
	fams, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
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
	if n, err := testutil.GatherAndCount(reg, "mqttwaf_policy_info"); err != nil || n != 1 {
		t.Errorf("mqttwaf_policy_info: %d series, %v", n, err)
	}
}

// TestCollectorStateBackend: with the state in a real redis-server the
// backend is up and its last exchange recent; when Redis stops, up drops
// to 0 and the last exchange stays where it was.
func TestCollectorStateBackend(t *testing.T) {
	srv := redistest.Start(t)
	p, err := mqttwaf.ParsePolicy([]byte(fmt.Sprintf("state: {backend: redis, redis: {address: %q, timeout: 2s}}", srv.Addr())), "p.yaml")
	if err != nil {
		t.Fatal(err)
	}
	w, err := mqttwaf.New(p, mqttwaf.Options{Sink: mqttwaf.SinkFunc(func(mqttwaf.Event) {})})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = w.Stop() })
	reg := prometheus.NewPedanticRegistry()
	reg.MustRegister(metrics.New(w, metrics.Options{}))
	gauge := func(name string) (float64, bool) {
		fams, err := reg.Gather()
		if err != nil {
			t.Fatal(err)
		}
		for _, f := range fams {
			if f.GetName() == name {
				return f.GetMetric()[0].GetGauge().GetValue(), true
			}
		}
		return 0, false
	}
	wait := func(what string, cond func() bool) {
		t.Helper()
		for deadline := time.Now().Add(5 * time.Second); !cond(); time.Sleep(10 * time.Millisecond) {
			if time.Now().After(deadline) {
				t.Fatal(what)
			}
		}
	}
	wait("mqttwaf_state_backend_up never 1", func() bool { v, _ := gauge("mqttwaf_state_backend_up"); return v == 1 })
	wait("no recent mqttwaf_state_last_sync_timestamp_seconds", func() bool {
		v, ok := gauge("mqttwaf_state_last_sync_timestamp_seconds")
		return ok && time.Since(time.Unix(0, int64(v*1e9))) < time.Second
	})
	srv.Stop()
	wait("mqttwaf_state_backend_up still 1 with Redis stopped", func() bool { v, _ := gauge("mqttwaf_state_backend_up"); return v == 0 })
	before, _ := gauge("mqttwaf_state_last_sync_timestamp_seconds")
	time.Sleep(300 * time.Millisecond) // three sync intervals without Redis
	if after, _ := gauge("mqttwaf_state_last_sync_timestamp_seconds"); after != before {
		t.Fatalf("last sync moved from %v to %v with Redis stopped", before, after)
	}
}
