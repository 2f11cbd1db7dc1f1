package mqttwaf

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"net/netip"
	"time"
)

// What operators need from the core: which policy runs (PolicyInfo), and
// their own actions recorded like every other decision (Operator).

// StageAdmin is the stage of an operator's action through an admin
// interface (a ban added or lifted, a reload), or of a refused admin
// request.
const StageAdmin Stage = "admin"

// PolicyInfo says which policy runs and how reloads went.
type PolicyInfo struct {
	// SHA256 is the hex SHA-256 of the running policy in canonical form
	// (JSON, every default filled in): two brokers with the same hash run
	// the same policy document. Files the policy names (credentials,
	// schemas, keys) are not part of it.
	SHA256 string `json:"sha256"`
	// LoadedAt is when the running policy was compiled (start or reload).
	LoadedAt time.Time `json:"loaded_at"`
	// ReloadsOK and ReloadsFailed count Reload calls since the WAF started.
	ReloadsOK     uint64 `json:"reloads_ok"`
	ReloadsFailed uint64 `json:"reloads_failed"`
}

// policyInfo is the part of PolicyInfo fixed when a policy is compiled.
type policyInfo struct {
	sha256   string
	loadedAt time.Time
}

func newPolicyInfo(p *Policy, now time.Time) policyInfo {
	// A Policy is plain data (maps are sorted by encoding/json), so its
	// JSON is a canonical form; it cannot fail to marshal.
	b, _ := json.Marshal(p)
	sum := sha256.Sum256(b)
	return policyInfo{sha256: hex.EncodeToString(sum[:]), loadedAt: now}
}

// PolicyInfo returns the running policy's hash and load time and the
// reload counts.
func (w *WAF) PolicyInfo() PolicyInfo {
	e := w.engine.Load()
	return PolicyInfo{SHA256: e.info.sha256, LoadedAt: e.info.loadedAt,
		ReloadsOK: w.st.reloadsOK.Load(), ReloadsFailed: w.st.reloadsFailed.Load()}
}

// OperatorAction is one action of an operator through an admin interface,
// or one refused admin request, for Operator.
type OperatorAction struct {
	// Rule names the action, e.g. admin.ban_add, admin.ban_lift,
	// admin.lockout_lift, admin.reload, admin.auth. Use a fixed set: rule
	// ids are counter labels.
	Rule string
	// Action is Allow for an action carried out, Reject for a refused
	// request (Ban for a ban added).
	Action Action
	// Reason is a fixed word: ok, failed, unauthenticated...
	Reason string
	// RemoteAddr is the operator's address (ip:port).
	RemoteAddr string
	// ClientID and Username name the target of the action, if it is one.
	ClientID, Username string
	// Detail says what was done, in operator terms (target, duration,
	// error).
	Detail string
	// Authenticated is true when the operator proved who they are: their
	// actions and refusals are always emitted. Requests from anyone else go
	// through the event rate limit.
	Authenticated bool
}

// Operator records an operator's action as an event and a counter, like
// every decision of the WAF. The mode does not apply. What an
// authenticated operator does is always emitted, whatever events.level and
// events.max_per_second say (it is rare, and an audit trail with gaps is
// none); unauthenticated requests go through the event rate limit, as any
// refusal does, so a flood of them cannot flood the log.
func (w *WAF) Operator(a OperatorAction) {
	e := w.engine.Load()
	v := Verdict{Action: a.Action, Rule: a.Rule, Reason: a.Reason, Detail: a.Detail}
	if a.Action == Ban {
		v.Code = CodeBanned
	}
	c := &Client{ID: a.ClientID, Username: a.Username, Listener: "admin", RemoteAddr: a.RemoteAddr, RemoteIP: ParseRemoteIP(a.RemoteAddr)}
	s := subject{client: c}
	if !a.Authenticated {
		e.emit(StageAdmin, &v, s, true)
		return
	}
	e.st.counters.add(v.Rule, v.Action, v.Reason, true)
	if e.out.sink == nil {
		return
	}
	ev := Event{Time: e.now(), Stage: StageAdmin, Rule: v.Rule, Action: v.Action, Enforced: true,
		Reason: v.Reason, Code: codeOf(&v), Listener: c.Listener, ClientID: c.ID, Username: c.Username, Detail: v.Detail}
	if c.RemoteIP.IsValid() {
		ev.RemoteIP = c.RemoteIP.String()
		if ap, err := netip.ParseAddrPort(a.RemoteAddr); err == nil {
			ev.RemotePort = int(ap.Port())
		}
	}
	e.out.sink.Emit(ev)
}
