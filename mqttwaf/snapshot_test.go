package mqttwaf

import (
	"testing"
	"time"

	"github.com/mqttwaf/mqttwaf/ratelimit"
)

// TestBansAndLockoutsSnapshot saves a WAF's bans and lockouts as a broker
// with a data directory does at shutdown, and restores them into a new WAF
// (the restarted broker) after different down times: what has not ended
// still refuses, with the end it had; what ended while the broker was down
// is gone.
func TestBansAndLockoutsSnapshot(t *testing.T) {
	creds := writeCreds(t, "dev1", "dev2")
	doc := lockoutPolicy(creds, "{max_failures: 2, max_failures_per_address: 100, window: 5m, duration: 1m}")
	const ip = "192.0.2.7"
	before := newPolicyWAF(t, doc)
	for range 3 {
		before.login("dev1", "guess", ip)
	}
	now := before.clock.Now()
	if err := before.Bans().Add(now, ratelimit.Ban{Target: ratelimit.UsernameTarget("dev2"), Reason: "operator", Until: now.Add(time.Hour)}); err != nil {
		t.Fatal(err)
	}
	bans, err := ratelimit.SaveBans(before.Bans(), now)
	if err != nil {
		t.Fatal(err)
	}
	lockouts, err := ratelimit.SaveBans(before.Lockouts(), now)
	if err != nil {
		t.Fatal(err)
	}
	locked := want{Reject, "identity.lockout", "authentication_locked_out", CodeBanned}
	banned := want{Reject, "bans", "banned", CodeBanned}
	tests := []struct {
		name       string
		down       time.Duration
		dev1, dev2 want
	}{
		{"down 10s", 10 * time.Second, locked, banned},
		{"down 2m", 2 * time.Minute, allowed, banned}, // the 1m lockout ended
		{"down 2h", 2 * time.Hour, allowed, allowed},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			after := newPolicyWAF(t, doc)
			after.clock.Add(tc.down)
			at := after.clock.Now()
			if _, _, err := ratelimit.RestoreBans(after.Bans(), at, bans); err != nil {
				t.Fatal(err)
			}
			if _, _, err := ratelimit.RestoreBans(after.Lockouts(), at, lockouts); err != nil {
				t.Fatal(err)
			}
			check(t, "dev1", after.login("dev1", "dev1-pass", ip), tc.dev1)
			check(t, "dev2", after.login("dev2", "dev2-pass", ip), tc.dev2)
		})
	}
}
