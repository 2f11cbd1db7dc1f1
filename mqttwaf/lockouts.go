package mqttwaf

import (
	"time"

	"github.com/mqttwaf/mqttwaf/ratelimit"
)

// lockouts stops password guessing: failed authentications are counted per
// remote IP and per user name over a sliding window, and crossing the limit
// locks that IP or user name out of password authentication for a time that
// doubles with every repeat (CONNACK 0x8A, an event each time). Both tables
// are bounded (ratelimit.Counter and ratelimit.BanList evict). Certificate
// and anonymous clients are not affected.
//
// The lockouts live in the WAF's state, so a reload keeps them; the window,
// limit and durations are those of the policy the WAF started with.
type lockouts struct {
	failures    *ratelimit.Counter
	bans        *ratelimit.BanList
	perUsername bool
	now         func() time.Time
}

func newLockouts(p LockoutPolicy, now func() time.Time) (*lockouts, error) {
	failures, err := ratelimit.NewCounter(ratelimit.CounterOptions{
		Window: p.Window.D(), Limit: p.MaxFailures, MaxKeys: p.MaxEntries,
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
	return &lockouts{failures: failures, bans: bans, perUsername: p.PerUsername != "off", now: now}, nil
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
	return Verdict{Action: Reject, Reason: "authentication_locked_out", Code: CodeBanned,
		Detail: "locked out: " + b.Target.String() + " until " + b.Until.UTC().Format(time.RFC3339),
		Value:  int64(b.Strikes)}, true
}

// failed counts a failed authentication and locks out what crossed the limit.
func (l *lockouts) failed(c *Client) {
	now := l.now()
	if c.RemoteIP.IsValid() && !l.failures.AllowN(now, "ip:"+c.RemoteIP.String(), 1) {
		_, _ = l.bans.Strike(now, ratelimit.IPTarget(c.RemoteIP), "authentication_failures")
	}
	if l.perUsername && c.Username != "" && len(c.Username) <= ratelimit.MaxTargetValue &&
		!l.failures.AllowN(now, "user:"+c.Username, 1) {
		_, _ = l.bans.Strike(now, ratelimit.UsernameTarget(c.Username), "authentication_failures")
	}
}
