package mqttwaf

import (
	"fmt"
	"strings"
	"sync"

	"github.com/mqttwaf/mqttwaf/ratelimit"
)

// RuleTLS is the rule id of every TLS event: handshakes refused by
// connections.tls_handshakes_per_ip (tls_handshake_rate) and handshakes that
// failed (certificate_expired, certificate_unknown_ca, no_certificate,
// tls_handshake_failed...), which adapters report with Record. Its allow
// counter counts the handshakes admitted.
const RuleTLS = "connections.tls"

// CheckTLSHandshake decides whether a TLS handshake from remoteAddr
// ("ip:port") on listener may go on. Adapters call it once per handshake,
// as soon as the ClientHello has been read and before the server's key
// exchange (crypto/tls: Config.GetConfigForClient), so a refused handshake
// costs no signature. Each address (network, see addresses) may start
// connections.tls_handshakes_per_ip handshakes (listeners.<id> for a
// listener with its own section), with tls_handshake_burst at once.
//
// An address on the ban list is refused first (connections.tls, banned).
// An admitted handshake is counted (Counters: connections.tls, allow); a
// refusal is counted and recorded (connections.tls, tls_handshake_rate,
// 0x9F) and the handshake must be aborted. In DetectionOnly the refusal is
// recorded with Enforced false and the allow verdict is returned. Sockets
// without an IP address (unix sockets, tests) are not limited. The budgets
// are kept across reloads while their settings (and rates.max_keys) are
// unchanged. It is safe for concurrent use.
func (w *WAF) CheckTLSHandshake(listener, remoteAddr string) Verdict {
	e := w.engine.Load()
	ip := ParseRemoteIP(remoteAddr)
	if !ip.IsValid() {
		w.st.counters.add(RuleTLS, Allow, "", true)
		return Verdict{}
	}
	// A banned address is refused before the handshake costs anything: its
	// CONNECT would be refused anyway.
	if b, banned := w.st.bans.Check(e.now(), "", "", ip); banned {
		v := Verdict{Action: Disconnect, Rule: RuleTLS, Reason: "banned", Code: CodeBanned,
			Detail: b.Target.String() + " is banned: handshake aborted before the key exchange"}
		e.record(StageAccept, nil, &v, subject{listener: listener, ip: ip, addr: remoteAddr})
		if e.enforce {
			return v
		}
	}
	section, c := "connections", e.policy.Connections
	if lc, ok := e.policy.Listeners[listener]; ok {
		section, c = "listeners."+listener, lc
	}
	lim, err := w.st.handshakes.limiter(section, c, e.policy)
	if err == nil && lim.Allow(e.now(), w.st.addrs.key(ip)) {
		w.st.counters.add(RuleTLS, Allow, "", true)
		return Verdict{}
	}
	v := Verdict{Action: Disconnect, Rule: RuleTLS, Reason: "tls_handshake_rate", Code: CodeConnectionRateExceeded,
		Limit: c.TLSHandshakesPerIP.N}
	if err != nil { // cannot happen with a validated policy; fail closed
		v.Detail = fmt.Sprintf("%s.tls_handshakes_per_ip: %v", section, err)
	} else {
		v.Detail = fmt.Sprintf("more than %s.tls_handshakes_per_ip %s (burst %d) from this address: handshake aborted before the key exchange",
			section, c.TLSHandshakesPerIP, lim.Burst())
	}
	e.record(StageAccept, nil, &v, subject{listener: listener, ip: ip, addr: remoteAddr})
	if !e.enforce {
		return Verdict{}
	}
	return v
}

// handshakeLimits are the TLS handshake budgets: one limiter per
// connection section ("connections", shared by every listener without a
// section of its own, and "listeners.<id>"), keyed by remote network. A
// limiter lives as long as its section's settings do, across reloads.
//
// Bounded: one entry per section of the running policy (sections a reload
// removed are dropped when the table outgrows the policy), and each limiter
// holds at most rates.max_keys networks, least recently used evicted
// without refilling anything (see ratelimit.Limiter).
type handshakeLimits struct {
	mu sync.Mutex
	m  map[string]*handshakeLimiter
}

type handshakeLimiter struct {
	rate    Rate
	burst   int
	maxKeys int
	lim     *ratelimit.Limiter
}

// limiter returns the limiter of section c of policy p, creating it (or
// replacing one with other settings) if needed.
func (t *handshakeLimits) limiter(section string, c ConnectionPolicy, p *Policy) (*ratelimit.Limiter, error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if h, ok := t.m[section]; ok && h.rate == c.TLSHandshakesPerIP && h.burst == c.TLSHandshakeBurst && h.maxKeys == p.Rates.MaxKeys {
		return h.lim, nil
	}
	lim, err := ratelimit.NewLimiter(ratelimit.LimiterOptions{Rate: c.TLSHandshakesPerIP, Burst: c.TLSHandshakeBurst, MaxKeys: p.Rates.MaxKeys})
	if err != nil {
		return nil, err
	}
	if t.m == nil {
		t.m = make(map[string]*handshakeLimiter)
	}
	if len(t.m) > len(p.Listeners) {
		for s := range t.m {
			id, isListener := strings.CutPrefix(s, "listeners.")
			if _, ok := p.Listeners[id]; isListener && !ok {
				delete(t.m, s)
			}
		}
	}
	t.m[section] = &handshakeLimiter{rate: c.TLSHandshakesPerIP, burst: c.TLSHandshakeBurst, maxKeys: p.Rates.MaxKeys, lim: lim}
	return lim, nil
}
