package mqttwaf

import (
	"fmt"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/mqttwaf/mqttwaf/ratelimit"

	"golang.org/x/crypto/bcrypt"
)

// TestAddressingNetwork: how addresses are grouped into keys.
func TestAddressingNetwork(t *testing.T) {
	a := newAddressing(AddressesPolicy{IPv6Prefix: 64, IPv4Prefix: 32})
	for _, tc := range []struct{ ip, key string }{
		{"192.0.2.7", "192.0.2.7"},
		{"::ffff:192.0.2.7", "192.0.2.7"}, // one host, one key
		{"2001:db8:1:2:aaaa::1", "2001:db8:1:2::/64"},
		{"2001:db8:1:2:ffff:ffff:ffff:ffff", "2001:db8:1:2::/64"},
		{"2001:db8:1:3::1", "2001:db8:1:3::/64"},
		{"fe80::1%eth0", "fe80::/64"},
		{"", ""},
	} {
		var ip netip.Addr
		if tc.ip != "" {
			ip = netip.MustParseAddr(tc.ip)
		}
		if got := a.key(ip); got != tc.key {
			t.Errorf("key(%s) = %q, want %q", tc.ip, got, tc.key)
		}
	}
	b := newAddressing(AddressesPolicy{IPv6Prefix: 128, IPv4Prefix: 24})
	if got := b.key(netip.MustParseAddr("192.0.2.7")); got != "192.0.2.0/24" {
		t.Errorf("/24: %q", got)
	}
	if got := b.key(netip.MustParseAddr("2001:db8::1")); got != "2001:db8::1" {
		t.Errorf("/128: %q", got)
	}
}

// TestIPv6NetworkIsOneAddress: a host that rotates through its /64 is
// still one address for the socket cap, the publish rate per IP, the
// new-client-ID budget per IP and flapping bans.
func TestIPv6NetworkIsOneAddress(t *testing.T) {
	tw := newRatesWAF(t, "connections: {max_connections_per_ip: 2}\n", map[string]string{
		"publish":        `{per_ip: {messages: 2/s, bytes: 1MiB/s}, per_connection: {messages: 1000/s, bytes: 1GiB/s}, per_username: {messages: 1000/s, bytes: 1GiB/s}}`,
		"new_client_ids": `{global: 1000/min, per_ip: 2/min, per_username: 1000/min}`,
	})
	// Sockets: two from the /64, the third refused, another /64 admitted.
	for i, addr := range []string{"[2001:db8:0:1::1]:1000", "[2001:db8:0:1::2]:1000"} {
		if v := tw.Open("tcp", addr); v.Blocked() {
			t.Fatalf("socket %d refused: %+v", i, v)
		}
	}
	if v := tw.Open("tcp", "[2001:db8:0:1:ffff::9]:1000"); !v.Blocked() || v.Reason != "max_connections_per_ip" {
		t.Fatalf("third socket from the /64: %+v", v)
	}
	if v := tw.Open("tcp", "[2001:db8:0:2::1]:1000"); v.Blocked() {
		t.Fatalf("another /64: %+v", v)
	}
	tw.Close("[2001:db8:0:1::2]:1000")
	if v := tw.Open("tcp", "[2001:db8:0:1::3]:1000"); v.Blocked() {
		t.Fatalf("after a close: %+v", v)
	}

	// Publish rate per IP: shared across the /64.
	a := tw.mustDial(t, "a", "", "2001:db8:0:1::1")
	b := tw.mustDial(t, "b", "", "2001:db8:0:1::2")
	c := tw.mustDial(t, "c", "", "2001:db8:0:2::1")
	check(t, "a", tw.pub(a, "t", 1), allowed)
	check(t, "b", tw.pub(b, "t", 1), allowed)
	check(t, "a again: the /64 spent its 2/s", tw.pub(a, "t", 1), msgRate("ip_message_rate"))
	check(t, "another /64", tw.pub(c, "t", 1), allowed)

	// New client IDs per IP: a third new ID from the /64 (after a and b) is
	// over budget.
	_, v := tw.dial("d", "", "2001:db8:0:1::4")
	check(t, "third new client ID from the /64", v, want{Reject, "rates.new_client_ids", "new_client_id_budget", CodeQuotaExceeded})
	_, v = tw.dial("e", "", "2001:db8:0:3::1")
	check(t, "new client ID from another /64", v, allowed)
}

// TestIPv6FlappingBansTheNetwork: a ban keyed by address covers the whole
// network the address belongs to.
func TestIPv6FlappingBansTheNetwork(t *testing.T) {
	tw := newRatesWAF(t, "", map[string]string{"flapping": `{connects: 1000/min, per_ip: 3/min}`})
	for i := range 3 {
		_ = tw.mustDial(t, "dev"+string(rune('a'+i)), "", "2001:db8:7::"+string(rune('1'+i)))
	}
	_, v := tw.dial("devx", "", "2001:db8:7::99")
	check(t, "flapping per IP", v, want{Ban, "rates.flapping", "flapping", CodeBanned})
	_, v = tw.dial("devy", "", "2001:db8:7:0:1234::1")
	check(t, "same /64, new address", v, want{Reject, "bans", "banned", CodeBanned})
	if _, v = tw.dial("devz", "", "2001:db8:8::1"); v.Blocked() {
		t.Fatalf("another /64 banned too: %+v", v)
	}
	found := false
	for _, b := range tw.bans(t) {
		found = found || b.Target.String() == "ip:2001:db8:7::/64"
	}
	if !found {
		t.Fatalf("bans %+v, want ip:2001:db8:7::/64", tw.bans(t))
	}
}

// TestReloadCannotRegroupAddresses: the grouping is fixed for the WAF's
// lifetime; a reload that changes it is refused and changes nothing.
func TestReloadCannotRegroupAddresses(t *testing.T) {
	tw := newTestWAF(t, "addresses: {ipv6_prefix: 56}\n")
	p, err := ParsePolicy([]byte(testIdentity+"addresses: {ipv6_prefix: 64}\n"), "reload.yaml")
	if err != nil {
		t.Fatal(err)
	}
	if err := tw.Reload(p); err == nil || !strings.Contains(err.Error(), "restart") {
		t.Fatalf("Reload with another prefix: %v", err)
	}
	if got := tw.Policy().Addresses.IPv6Prefix; got != 56 {
		t.Fatalf("running ipv6_prefix %d after a refused reload", got)
	}
	p, _ = ParsePolicy([]byte(testIdentity+"addresses: {ipv6_prefix: 56}\nmode: detection_only\n"), "reload.yaml")
	if err := tw.Reload(p); err != nil {
		t.Fatalf("Reload with the same prefix: %v", err)
	}
}

// writeCreds writes a credentials file (bcrypt at the minimum cost) into
// a temporary directory and returns the policy lines that use it.
// lockoutPolicy is a policy of password users (creds, from writeCreds)
// with the given identity.lockout section, and connect rates, flapping and
// novelty budgets out of the way of tests that log in again and again.
func lockoutPolicy(creds, lockout string) string {
	return `identity:
  credentials_file: ` + creds + `
  anonymous: {allow: never}
  lockout: ` + lockout + `
roles:
  all: {publish: ["#"]}
rates: {flapping: {off: true}, new_client_ids: {global: 100000/min, per_ip: 100000/min, per_username: 100000/min}, connect: {per_ip: 100000/s, per_network: 100000/s}}
`
}

func writeCreds(t *testing.T, users ...string) string {
	t.Helper()
	var b strings.Builder
	for _, u := range users {
		h, err := bcrypt.GenerateFromPassword([]byte(u+"-pass"), bcrypt.MinCost)
		if err != nil {
			t.Fatal(err)
		}
		b.WriteString(u + ":all:" + string(h) + "\n")
	}
	path := filepath.Join(t.TempDir(), "test.creds")
	if err := os.WriteFile(path, []byte(b.String()), 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

// TestLockoutThresholds: a user name is locked out after
// identity.lockout.max_failures, an address only after
// max_failures_per_address, so one device with a wrong password does not
// lock out its neighbours behind the same NAT; an IPv6 guesser rotating
// through its /64 is one address.
func TestLockoutThresholds(t *testing.T) {
	creds := writeCreds(t, "dev1", "dev2", "dev3")
	tw := newPolicyWAF(t, lockoutPolicy(creds, "{max_failures: 3, max_failures_per_address: 7, window: 5m, duration: 1m}"))
	login := tw.login
	bad := want{Reject, "identity.authenticate", "bad_credentials", CodeBadUsernameOrPassword}
	locked := want{Reject, "identity.lockout", "authentication_locked_out", CodeBanned}
	const nat = "2001:db8:5::1"
	for range 4 { // three failures tolerated, the fourth locks dev1 out
		check(t, "dev1 guess", login("dev1", "guess", nat), bad)
	}
	check(t, "dev1, right password, locked out", login("dev1", "dev1-pass", nat), locked)
	check(t, "dev2 behind the same NAT", login("dev2", "dev2-pass", nat), allowed)
	// dev2 and dev3 mistype from the same /64 (other addresses in it): as
	// for user names, max_failures_per_address are tolerated and the next
	// one locks the address out.
	check(t, "dev2 typo", login("dev2", "x", "2001:db8:5::2"), bad)
	check(t, "dev3 typo", login("dev3", "x", "2001:db8:5::3"), bad)
	check(t, "dev3 typo", login("dev3", "x", "2001:db8:5::4"), bad)
	check(t, "dev3 typo", login("dev3", "x", "2001:db8:5::5"), bad)
	// dev1's fourth guess did not count against the address (its user
	// name's lockout answered it): 3+1+3 = 7 so far, the next one locks.
	check(t, "dev2 typo", login("dev2", "x", "2001:db8:5::6"), bad) // 8 failures from the /64
	check(t, "dev3 from the locked /64", login("dev3", "dev3-pass", "2001:db8:5::99"), locked)
	check(t, "dev3 from elsewhere", login("dev3", "dev3-pass", "2001:db8:6::1"), allowed)
	evs := tw.events.take()
	var detail string
	for _, e := range evs {
		if e.Reason == "authentication_locked_out" {
			detail = e.Detail
		}
	}
	if !strings.Contains(detail, "the address 2001:db8:5::/64 is locked out") {
		t.Fatalf("lockout event detail %q does not say what is locked out", detail)
	}
}

// TestLockoutsLift: operators see a lockout in WAF.Lockouts and lifting it
// lets the user in at once, with its failure count forgiven (one more typo
// does not lock it out again).
func TestLockoutsLift(t *testing.T) {
	creds := writeCreds(t, "dev1")
	tw := newPolicyWAF(t, lockoutPolicy(creds, "{max_failures: 2, max_failures_per_address: 100, window: 5m, duration: 1m}"))
	bad := want{Reject, "identity.authenticate", "bad_credentials", CodeBadUsernameOrPassword}
	locked := want{Reject, "identity.lockout", "authentication_locked_out", CodeBanned}
	const ip = "192.0.2.7"
	for range 3 {
		check(t, "dev1 guess", tw.login("dev1", "guess", ip), bad)
	}
	check(t, "dev1 locked out", tw.login("dev1", "dev1-pass", ip), locked)
	list, err := tw.Lockouts().List(tw.clock.Now())
	if err != nil || len(list) != 1 || list[0].Target != ratelimit.UsernameTarget("dev1") {
		t.Fatalf("Lockouts().List = %v, %v; want the user name dev1", list, err)
	}
	if ok, err := tw.Lockouts().Remove(ratelimit.UsernameTarget("dev1")); !ok || err != nil {
		t.Fatalf("Remove = %v, %v; want true", ok, err)
	}
	check(t, "one more typo after the lift", tw.login("dev1", "guess", ip), bad)
	check(t, "dev1 after the lift", tw.login("dev1", "dev1-pass", ip), allowed)
	if list, _ := tw.Lockouts().List(tw.clock.Now()); len(list) != 0 {
		t.Fatalf("after the lift Lockouts().List = %v, want none", list)
	}
}

// TestLockoutOneIdentityCannotLockItsAddress is the bug of issue 15: one
// device's mistyped passwords (fleet.yaml: dev1) locked every other user
// at the same address (backend) out. However long one user name keeps
// failing, it adds at most max_failures to its address's count; a guesser
// spraying many user names still locks the address out. With per_username
// off nothing else stops a guesser on one name, so there every failure
// counts against the address. The address threshold here is just above
// the user name's, so a single failure too many counted against the
// address would show.
func TestLockoutOneIdentityCannotLockItsAddress(t *testing.T) {
	creds := writeCreds(t, "dev1", "backend")
	bad := want{Reject, "identity.authenticate", "bad_credentials", CodeBadUsernameOrPassword}
	locked := want{Reject, "identity.lockout", "authentication_locked_out", CodeBanned}
	const ip = "192.0.2.7"
	for _, tc := range []struct {
		name, perUsername string
		guess             func(i int) string // the user name of the i-th wrong password
		backendLocked     bool               // backend, at the same address, is locked out at times
	}{
		{"one device retrying for an hour", "on", func(int) string { return "dev1" }, false},
		{"a guesser spraying user names", "on", func(i int) string { return fmt.Sprintf("user%d", i) }, true},
		{"one name, per_username off", "off", func(int) string { return "dev1" }, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			tw := newPolicyWAF(t, `identity:
  credentials_file: `+creds+`
  anonymous: {allow: never}
  lockout: {max_failures: 5, max_failures_per_address: 6, window: 5m, duration: 1m, per_username: `+tc.perUsername+`}
roles:
  all: {publish: ["#"]}
rates: {flapping: {off: true}, new_client_ids: {global: 100000/min, per_ip: 100000/min, per_username: 100000/min}, connect: {per_ip: 100000/s, per_network: 100000/s}}
`)
			// A wrong password every 5 s for an hour: 720 tries; backend
			// logs in from the same address every minute.
			backendLocked := false
			for i := range 720 {
				v := tw.login(tc.guess(i), "wrong", ip)
				if got := gotOf(v); got != bad && got != locked {
					t.Fatalf("try %d: %+v", i, v)
				}
				tw.clock.Add(5 * time.Second)
				if i%12 == 11 {
					v := tw.login("backend", "backend-pass", ip)
					if got := gotOf(v); got != allowed && got != locked {
						t.Fatalf("backend after try %d: %+v", i, v)
					}
					backendLocked = backendLocked || gotOf(v) == locked
				}
			}
			if backendLocked != tc.backendLocked {
				t.Fatalf("backend locked out at some point: %v, want %v", backendLocked, tc.backendLocked)
			}
		})
	}
}
