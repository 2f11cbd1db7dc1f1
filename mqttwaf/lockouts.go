package mqttwaf

import (
	"net/netip"
	"time"

	"github.com/mqttwaf/mqttwaf/ratelimit"
	"github.com/mqttwaf/mqttwaf/ratelimit/redisstate"
)

// lockouts stops password guessing: failed authentications are counted per
// user name and per remote address (network, see AddressesPolicy) over a
// sliding window, and crossing the limit locks that user name or address
// out of password authentication for a time that doubles with every repeat
// (CONNACK 0x8A, an event each time). The address limit is much higher than
// the user-name one: one device with a wrong password must not lock every
// other device behind the same NAT out. Every table is bounded
// (ratelimit.Counter and ratelimit.BanList evict). Certificate and
// anonymous clients are not affected.
//
// The lockouts live in the WAF's state, so a reload keeps them; the window,
// limit and durations are those of the policy the WAF started with.
type lockouts struct {
	userFailures *ratelimit.Counter
	addrFailures *ratelimit.Counter
	bans         banStore
	perUsername  bool
	addrs        addressing
	now          func() time.Time
	// shared counts failures across nodes (state.backend redis); nil
	// otherwise. window and the limits are the counters' own.
	shared                     *redisstate.Backend
	window                     time.Duration
	maxFailures, maxPerAddress int
}

func newLockouts(p LockoutPolicy, addrs addressing, now func() time.Time) (*lockouts, error) {
	userFailures, err := ratelimit.NewCounter(ratelimit.CounterOptions{
		Window: p.Window.D(), Limit: p.MaxFailures, MaxKeys: p.MaxEntries,
	})
	if err != nil {
		return nil, err
	}
	addrFailures, err := ratelimit.NewCounter(ratelimit.CounterOptions{
		Window: p.Window.D(), Limit: p.MaxFailuresPerAddress, MaxKeys: p.MaxEntries,
	})
	if err != nil {
		return nil, err
	}
	bans, err := ratelimit.NewBanList(ratelimit.BanOptions{
		Duration: p.Duration.D(), MaxDuration: p.MaxDuration.D(), MaxBans: p.MaxEntries, MaxOffenders: p.MaxEntries,
	})
	if err != nil {
		return nil, err
	}
	return &lockouts{userFailures: userFailures, addrFailures: addrFailures, bans: bans,
		perUsername: p.PerUsername != "off", addrs: addrs, now: now,
		window: p.Window.D(), maxFailures: p.MaxFailures, maxPerAddress: p.MaxFailuresPerAddress}, nil
}

// check returns a Ban verdict if c's IP or user name is locked out.
func (l *lockouts) check(c *Client) (Verdict, bool) {
	user := ""
	if l.perUsername {
		user = c.Username
	}
	b, banned := l.bans.Check(l.now(), "", user, c.RemoteIP)
	if !banned {
		return Verdict{}, false
	}
	// A Reject with the banned code, not a Ban: the lockout list is its own
	// ban list, and this is not a new offence to put on the general one.
	what := "the user name " + b.Target.Value
	if b.Target.Kind == ratelimit.KindIP {
		what = "the address " + b.Target.Prefix.String()
	}
	return Verdict{Action: Reject, Reason: "authentication_locked_out", Code: CodeBanned,
		Detail: "too many failed authentications: " + what + " is locked out of password login until " +
			b.Until.UTC().Format(time.RFC3339) + " (identity.lockout)",
		Value: int64(b.Strikes)}, true
}

// failed counts a failed authentication and locks out what crossed the limit.
//
// With per_username on, one user name adds at most max_failures to its
// address's count within the window: beyond that, the user name's own
// lockout answers its failures, and counting them against the address too
// would let one device with a wrong password (a typo, a stale credential,
// a retry loop) lock out every other identity behind the same address
// (issue 15). The address lockout is then what it is for: a guesser trying
// many user names from one address (max_failures_per_address / max_failures
// of them at least). With per_username off nothing else stops a guesser on
// one name, so every failure counts against the address.
//
// known says the user name is in the credentials file: only those are
// counted per user name in the shared state (state.backend redis), so a
// guesser inventing user names cannot grow Redis; an unknown user name has
// nothing to protect, and its failures still count per address there and
// per user name on this node.
func (l *lockouts) failed(c *Client, known bool) {
	now := l.now()
	toAddress := true
	// With a shared state every failure is counted on both sides: the
	// local count decides alone while Redis does not answer, and the
	// shared one sees failures spread over several nodes. (Both are
	// evaluated: a local count over the limit must not skip the shared
	// count, which the other nodes rely on.)
	if l.perUsername && c.Username != "" && len(c.Username) <= ratelimit.MaxTargetValue {
		overLocal := !l.userFailures.AllowN(now, c.Username, 1)
		if overShared := known && l.sharedFailure(now, "fail:user", c.Username, l.maxFailures); overLocal || overShared {
			toAddress = false
			_, _ = l.bans.Strike(now, ratelimit.UsernameTarget(c.Username), "authentication_failures")
		}
	}
	if n := l.addrs.network(c.RemoteIP); toAddress && n.IsValid() {
		k := l.addrs.key(c.RemoteIP)
		overLocal := !l.addrFailures.AllowN(now, k, 1)
		if overShared := l.sharedFailure(now, "fail:addr", k, l.maxPerAddress); overLocal || overShared {
			_, _ = l.bans.Strike(now, ratelimit.PrefixTarget(n), "authentication_failures")
		}
	}
}

// lockoutCheck refuses a password CONNECT from a locked-out user name or
// address before anything else is spent on it: right after the ban list,
// before the connect rates (a locked-out guesser must not use up the
// address's or the listener's CONNECT budget) and long before the password
// hash. Certificate and anonymous CONNECTs are not affected.
type lockoutCheck struct {
	l  *lockouts
	id *identity
}

func (*lockoutCheck) ID() string { return "identity.lockout" }

func (r *lockoutCheck) CheckConnect(c *Connect) Verdict {
	cl := c.Client
	if cl.Auth != AuthNone || !c.UsernameSet && len(c.Password) == 0 {
		return Verdict{}
	}
	if r.id.byCertificate(cl) {
		return Verdict{}
	}
	v, _ := r.l.check(cl)
	return v
}

// Lockouts is the password-lockout list (identity.lockout): the user names
// and address networks locked out of password login, as a BanStore that
// operators list, add to and lift at run time. It lives in the WAF's state
// like Bans. Lifting a lockout also forgives its target: its strikes and its
// failure count, so its next wrong password does not lock it out again at
// once. Locking out a client ID has no effect (lockouts are per user name
// and address).
func (w *WAF) Lockouts() ratelimit.BanStore { return operatorLockouts{w.st.lockouts} }

// operatorLockouts is the lockout list as operators see it.
type operatorLockouts struct{ l *lockouts }

func (o operatorLockouts) Check(now time.Time, clientID, username string, ip netip.Addr) (ratelimit.Ban, bool) {
	return o.l.bans.Check(now, clientID, username, ip)
}

func (o operatorLockouts) Strike(now time.Time, t ratelimit.Target, reason string) (ratelimit.Ban, error) {
	return o.l.bans.Strike(now, t, reason)
}

func (o operatorLockouts) Add(now time.Time, b ratelimit.Ban) error { return o.l.bans.Add(now, b) }

func (o operatorLockouts) List(now time.Time) ([]ratelimit.Ban, error) { return o.l.bans.List(now) }

func (o operatorLockouts) Remove(t ratelimit.Target) (bool, error) {
	ok, err := o.l.bans.Remove(t)
	o.l.forgive(t)
	return ok, err
}
