package mqttwaf

import (
	"testing"
	"time"
)

// TestPolicyInfo: the hash names the policy (same document, same hash; a
// change, another hash), the load time moves with a reload, and reloads
// are counted ok and failed; a failed reload keeps hash and load time.
func TestPolicyInfo(t *testing.T) {
	tw := newTestWAF(t, "mode: enforce\n")
	first := tw.PolicyInfo()
	if len(first.SHA256) != 64 || !first.LoadedAt.Equal(tw.clock.Now()) || first.ReloadsOK+first.ReloadsFailed != 0 {
		t.Fatalf("at start: %+v", first)
	}
	same := newTestWAF(t, "mode: enforce\n")
	if same.PolicyInfo().SHA256 != first.SHA256 {
		t.Fatal("the same policy hashes differently in two WAFs")
	}
	tw.clock.Add(time.Minute)
	p, _ := ParsePolicy([]byte(testIdentity+"mode: detection_only\n"), "p.yaml")
	if err := tw.Reload(p); err != nil {
		t.Fatal(err)
	}
	second := tw.PolicyInfo()
	if second.SHA256 == first.SHA256 || !second.LoadedAt.Equal(tw.clock.Now()) || second.ReloadsOK != 1 {
		t.Fatalf("after a reload: %+v (before %+v)", second, first)
	}
	tw.clock.Add(time.Minute)
	if err := tw.Reload(&Policy{Mode: "sometimes"}); err == nil {
		t.Fatal("an invalid policy reloaded")
	}
	if got := tw.PolicyInfo(); got.SHA256 != second.SHA256 || !got.LoadedAt.Equal(second.LoadedAt) || got.ReloadsFailed != 1 || got.ReloadsOK != 1 {
		t.Fatalf("after a failed reload: %+v", got)
	}
}

// TestOperatorEvents: an operator's action is an event and a counter even
// with events.level warn; unauthenticated requests are events too,
// throttled.
func TestOperatorEvents(t *testing.T) {
	tw := newTestWAF(t, "events: {level: warn, max_per_second: 1}\n")
	tw.Operator(OperatorAction{Rule: "admin.ban_add", Action: Ban, Reason: "operator", RemoteAddr: "127.0.0.1:5000",
		ClientID: "dev1", Detail: "client ID dev1 banned for 1h", Authenticated: true})
	tw.Operator(OperatorAction{Rule: "admin.ban_lift", Action: Allow, Reason: "operator", RemoteAddr: "127.0.0.1:5000", ClientID: "dev1", Authenticated: true})
	for range 50 {
		tw.Operator(OperatorAction{Rule: "admin.auth", Action: Reject, Reason: "unauthenticated", RemoteAddr: "127.0.0.1:5001"})
	}
	evs := tw.events.take()
	if len(evs) < 3 || len(evs) > 2+10 { // the limiter's burst is 10 x max_per_second
		t.Fatalf("%d events: %+v", len(evs), evs)
	}
	e := evs[0]
	if e.Stage != StageAdmin || e.Rule != "admin.ban_add" || e.Action != Ban || e.ClientID != "dev1" ||
		e.RemoteIP != "127.0.0.1" || e.RemotePort != 5000 || e.Listener != "admin" || e.Code != CodeBanned {
		t.Fatalf("ban event %+v", e)
	}
	if evs[1].Rule != "admin.ban_lift" || evs[1].Action != Allow || evs[2].Rule != "admin.auth" {
		t.Fatalf("events %+v", evs[1:3])
	}
	var refused uint64
	for _, c := range tw.Counters() {
		if c.Rule == "admin.auth" {
			refused = c.N
		}
	}
	if refused != 50 {
		t.Fatalf("admin.auth counted %d, want 50", refused)
	}
}
