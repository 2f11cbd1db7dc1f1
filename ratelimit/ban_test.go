package ratelimit

import (
	"errors"
	"net/netip"
	"testing"
	"time"
)

// t0 is the fixed start of time for every test.
var t0 = time.Date(2025, 11, 25, 12, 0, 0, 0, time.UTC)

func at(d time.Duration) time.Time { return t0.Add(d) }

func mustBanList(t testing.TB, o BanOptions) *BanList {
	t.Helper()
	b, err := NewBanList(o)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func mustTarget(t testing.TB, s string) Target {
	t.Helper()
	tg, err := ParseTarget(s)
	if err != nil {
		t.Fatal(err)
	}
	return tg
}

func TestBanCheck(t *testing.T) {
	b := mustBanList(t, BanOptions{})
	for _, s := range []string{"client:evil", "user:mallory", "ip:198.51.100.7", "ip:203.0.113.0/24", "ip:203.0.0.0/16", "ip:2001:db8::/32", "ip:2001:db8:1::/48"} {
		if err := b.Add(t0, Ban{Target: mustTarget(t, s), Reason: s}); err != nil {
			t.Fatal(err)
		}
	}
	if err := b.Add(t0, Ban{Target: mustTarget(t, "client:brief"), Until: at(time.Minute)}); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		now            time.Duration
		id, user, addr string
		want           string // matching target, "" for none
	}{
		{0, "evil", "", "", "client:evil"},
		{0, "good", "mallory", "", "user:mallory"},
		{0, "evil", "mallory", "198.51.100.7", "client:evil"}, // client ID is checked first
		{0, "good", "alice", "198.51.100.7", "ip:198.51.100.7"},
		{0, "good", "alice", "::ffff:198.51.100.7", "ip:198.51.100.7"},
		{0, "good", "alice", "198.51.100.8", ""},
		{0, "", "", "203.0.113.200", "ip:203.0.113.0/24"}, // longest prefix first
		{0, "", "", "203.0.114.1", "ip:203.0.0.0/16"},
		{0, "", "", "2001:db8:1::5", "ip:2001:db8:1::/48"},
		{0, "", "", "2001:db8:2::5", "ip:2001:db8::/32"},
		{0, "", "", "2001:db9::5", ""},
		{0, "", "", "fe80::1%eth0", ""},
		{0, "Evil", "", "", ""}, // exact match, case-sensitive like MQTT
		{0, "", "", "", ""},
		{0, "brief", "", "", "client:brief"},
		{59 * time.Second, "brief", "", "", "client:brief"},
		{time.Minute, "brief", "", "", ""}, // Until is exclusive
	}
	for _, tc := range tests {
		var ip netip.Addr
		if tc.addr != "" {
			ip = netip.MustParseAddr(tc.addr)
		}
		ban, ok := b.Check(at(tc.now), tc.id, tc.user, ip)
		got := ""
		if ok {
			got = ban.Target.String()
		}
		if got != tc.want {
			t.Errorf("Check(+%v, %q, %q, %q) = %q, want %q", tc.now, tc.id, tc.user, tc.addr, got, tc.want)
		}
	}
}

func TestBanBackoff(t *testing.T) {
	b := mustBanList(t, BanOptions{}) // 5m doubling to 1h, forgive one strike per quiet hour
	tg := ClientIDTarget("flappy")
	// Each offence comes right after the previous ban ends.
	now := t0
	for i, want := range []time.Duration{5 * time.Minute, 10 * time.Minute, 20 * time.Minute, 40 * time.Minute, time.Hour, time.Hour} {
		ban, err := b.Strike(now, tg, "flapping")
		if err != nil {
			t.Fatal(err)
		}
		if got := ban.Until.Sub(now); got != want || ban.Strikes != i+1 {
			t.Fatalf("strike %d: %v with %d strikes, want %v with %d", i+1, got, ban.Strikes, want, i+1)
		}
		now = ban.Until
	}
	// Six strikes; three quiet hours after the last ban forgive three.
	ban, _ := b.Strike(now.Add(3*time.Hour), tg, "flapping")
	if ban.Strikes != 4 || ban.Until.Sub(ban.Since) != 40*time.Minute {
		t.Fatalf("after 3 quiet hours: %d strikes, %v", ban.Strikes, ban.Until.Sub(ban.Since))
	}
	// Forgive clears the history.
	b.Forgive(tg)
	ban, _ = b.Strike(ban.Until.Add(time.Second), tg, "flapping")
	if ban.Strikes != 1 || ban.Until.Sub(ban.Since) != 5*time.Minute {
		t.Fatalf("after Forgive: %d strikes, %v", ban.Strikes, ban.Until.Sub(ban.Since))
	}
}

// TestBanNoteStrikes: strikes noted from another node's ban count as this
// list's own: the next Strike bans as a repeat, forgiveness runs from the
// noted ban's end, and noting never lowers a history.
func TestBanNoteStrikes(t *testing.T) {
	const m = time.Minute
	tests := []struct {
		name        string
		local       []time.Duration // local strikes before, at these offsets
		strikes     int             // noted
		until       time.Duration   // noted ban's end; -1 for zero (permanent)
		target      string
		wantChanged bool
		strikeAt    time.Duration // the next local offence
		wantStrikes int
		wantBan     time.Duration
	}{
		{"first ban elsewhere", nil, 1, 5 * m, "client:flappy", true, 6 * m, 2, 10 * m},
		{"forgiven from the noted end", nil, 3, 0, "client:flappy", true, time.Hour + time.Second, 3, 20 * m},
		{"fully forgiven", nil, 1, 0, "client:flappy", true, 2 * time.Hour, 1, 5 * m},
		{"more than local", []time.Duration{0}, 4, 10 * m, "user:mallory", true, 11 * m, 5, time.Hour},
		{"fewer than local: kept", []time.Duration{0, 5 * m}, 1, 5 * m, "client:flappy", false, 16 * m, 3, 20 * m},
		{"later end delays forgiveness", []time.Duration{0}, 1, 90 * m, "client:flappy", true, 2 * time.Hour, 2, 10 * m},
		{"operator ban: no strikes", nil, 0, 5 * m, "client:flappy", false, 6 * m, 1, 5 * m},
		{"permanent ban", nil, 2, -1, "client:flappy", false, 6 * m, 1, 5 * m},
		{"invalid target", nil, 2, 5 * m, "", false, 6 * m, 1, 5 * m},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			b := mustBanList(t, BanOptions{}) // 5m doubling to 1h, one strike forgiven per quiet hour
			tg := ClientIDTarget("flappy")
			if tc.target != "" {
				tg = mustTarget(t, tc.target)
			}
			for _, off := range tc.local {
				if _, err := b.Strike(at(off), tg, "flapping"); err != nil {
					t.Fatal(err)
				}
			}
			var until time.Time
			if tc.until >= 0 {
				until = at(tc.until)
			}
			noted := tg
			if tc.target == "" {
				noted = Target{}
			}
			if got := b.NoteStrikes(noted, tc.strikes, until); got != tc.wantChanged {
				t.Fatalf("NoteStrikes = %v, want %v", got, tc.wantChanged)
			}
			if b.NoteStrikes(noted, tc.strikes, until) {
				t.Fatal("noting the same ban again changed the history")
			}
			ban, err := b.Strike(at(tc.strikeAt), tg, "flapping")
			if err != nil {
				t.Fatal(err)
			}
			if ban.Strikes != tc.wantStrikes || ban.Until.Sub(ban.Since) != tc.wantBan {
				t.Fatalf("next strike: %d strikes, %v; want %d, %v", ban.Strikes, ban.Until.Sub(ban.Since), tc.wantStrikes, tc.wantBan)
			}
		})
	}
}

func TestBanStrikeKeepsLongerBan(t *testing.T) {
	b := mustBanList(t, BanOptions{})
	tg := UsernameTarget("mallory")
	if err := b.Add(t0, Ban{Target: tg, Reason: "operator"}); err != nil { // permanent
		t.Fatal(err)
	}
	ban, err := b.Strike(t0, tg, "flapping")
	if err != nil || !ban.Until.IsZero() {
		t.Fatalf("strike shortened a permanent ban: %+v, %v", ban, err)
	}
	if _, ok := b.Check(at(48*time.Hour), "", "mallory", netip.Addr{}); !ok {
		t.Fatal("permanent ban lost")
	}
}

func TestBanCapacity(t *testing.T) {
	b := mustBanList(t, BanOptions{MaxBans: 3})
	add := func(s string, until time.Duration) error {
		ban := Ban{Target: mustTarget(t, s)}
		if until > 0 {
			ban.Until = at(until)
		}
		return b.Add(t0, ban)
	}
	for _, c := range []struct {
		s     string
		until time.Duration
	}{{"client:a", 10 * time.Minute}, {"client:b", 20 * time.Minute}, {"client:perm", 0}} {
		if err := add(c.s, c.until); err != nil {
			t.Fatal(err)
		}
	}
	// Full: a ban ending before every held one is refused...
	if err := add("client:c", 5*time.Minute); !errors.Is(err, ErrFull) {
		t.Fatalf("short ban into full list: %v, want ErrFull", err)
	}
	// ...a longer one evicts the one ending soonest ("a").
	if err := add("client:d", 30*time.Minute); err != nil {
		t.Fatal(err)
	}
	if got := listTargets(t, b, t0); got != "client:b client:d client:perm" {
		t.Fatalf("held %q", got)
	}
	// Expired bans go first: at +25m "b" has expired, so "e" fits without
	// touching "d".
	if err := b.Add(at(25*time.Minute), Ban{Target: mustTarget(t, "client:e"), Until: at(26 * time.Minute)}); err != nil {
		t.Fatal(err)
	}
	if got := listTargets(t, b, at(25*time.Minute)); got != "client:d client:e client:perm" {
		t.Fatalf("held %q", got)
	}
	if b.Len() != 3 {
		t.Fatalf("Len = %d", b.Len())
	}
}

func listTargets(t *testing.T, b *BanList, now time.Time) string {
	t.Helper()
	bans, err := b.List(now)
	if err != nil {
		t.Fatal(err)
	}
	s := ""
	for i, ban := range bans {
		if i > 0 {
			s += " "
		}
		s += ban.Target.String()
	}
	return s
}

func TestBanRemoveAndList(t *testing.T) {
	b := mustBanList(t, BanOptions{})
	for _, s := range []string{"ip:10.0.0.0/8", "user:zed", "client:b", "client:a", "ip:2001:db8::/32", "ip:9.9.9.9"} {
		if err := b.Add(t0, Ban{Target: mustTarget(t, s)}); err != nil {
			t.Fatal(err)
		}
	}
	if got, want := listTargets(t, b, t0), "client:a client:b user:zed ip:9.9.9.9 ip:10.0.0.0/8 ip:2001:db8::/32"; got != want {
		t.Fatalf("List = %q, want %q", got, want)
	}
	if ok, _ := b.Remove(mustTarget(t, "ip:10.0.0.0/8")); !ok {
		t.Fatal("Remove found nothing")
	}
	if ok, _ := b.Remove(mustTarget(t, "ip:10.0.0.0/8")); ok {
		t.Fatal("second Remove found something")
	}
	if _, ok := b.Check(t0, "", "", netip.MustParseAddr("10.1.1.1")); ok {
		t.Fatal("removed network still banned")
	}
	if _, ok := b.Check(t0, "", "", netip.MustParseAddr("9.9.9.9")); !ok {
		t.Fatal("other IP ban lost")
	}
}

func TestBanValidation(t *testing.T) {
	b := mustBanList(t, BanOptions{})
	long := make([]byte, MaxReason+1)
	cases := []struct {
		name string
		err  error
	}{
		{"zero target", b.Add(t0, Ban{})},
		{"past until", b.Add(t0, Ban{Target: ClientIDTarget("x"), Until: t0})},
		{"long reason", b.Add(t0, Ban{Target: ClientIDTarget("x"), Reason: string(long)})},
		{"unmasked prefix", b.Add(t0, Ban{Target: Target{Kind: KindIP, Prefix: netip.MustParsePrefix("10.1.0.0/8")}})},
	}
	for _, c := range cases {
		var oe *OptionError
		if !errors.As(c.err, &oe) {
			t.Errorf("%s: %v, want *OptionError", c.name, c.err)
		}
	}
	if _, err := b.Strike(t0, Target{}, "x"); err == nil {
		t.Error("Strike accepted the zero target")
	}
	if b.Len() != 0 {
		t.Fatalf("invalid bans were stored: %d", b.Len())
	}
}

func TestBanOptionErrors(t *testing.T) {
	tests := []struct {
		o     BanOptions
		field string
	}{
		{BanOptions{Duration: time.Millisecond}, "BanOptions.Duration"},
		{BanOptions{Duration: time.Hour, MaxDuration: time.Minute}, "BanOptions.MaxDuration"},
		{BanOptions{Backoff: 0.5}, "BanOptions.Backoff"},
		{BanOptions{Forgive: -1}, "BanOptions.Forgive"},
		{BanOptions{MaxBans: -1}, "BanOptions.MaxBans"},
		{BanOptions{MaxOffenders: -1}, "BanOptions.MaxOffenders"},
	}
	for _, tc := range tests {
		_, err := NewBanList(tc.o)
		var oe *OptionError
		if !errors.As(err, &oe) || oe.Field != tc.field {
			t.Errorf("NewBanList(%+v) = %v, want error on %s", tc.o, err, tc.field)
		}
	}
}

func TestBanCheckAllocs(t *testing.T) {
	b := mustBanList(t, BanOptions{})
	ip := netip.MustParseAddr("2001:db8::1")
	if n := testing.AllocsPerRun(100, func() { b.Check(t0, "client", "user", ip) }); n != 0 {
		t.Fatalf("empty list: %v allocs", n)
	}
	for _, s := range []string{"client:x", "user:y", "ip:10.0.0.0/8", "ip:2001:db9::/32"} {
		if err := b.Add(t0, Ban{Target: mustTarget(t, s)}); err != nil {
			t.Fatal(err)
		}
	}
	if n := testing.AllocsPerRun(100, func() { b.Check(t0, "client", "user", ip) }); n != 0 {
		t.Fatalf("no match: %v allocs", n)
	}
	if n := testing.AllocsPerRun(100, func() { b.Check(t0, "x", "", ip) }); n != 0 {
		t.Fatalf("match: %v allocs", n)
	}
}
