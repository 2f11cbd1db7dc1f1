package ratelimit

import (
	"encoding/json"
	"net/netip"
	"strings"
	"testing"
	"time"
)

func TestBanSnapshotRoundTrip(t *testing.T) {
	src := mustBanList(t, BanOptions{})
	for _, b := range []Ban{
		{Target: mustTarget(t, "client:evil"), Reason: "operator", Until: at(time.Hour)},
		{Target: mustTarget(t, "user:mallory"), Reason: "flapping"}, // permanent
		{Target: mustTarget(t, "ip:203.0.113.0/24"), Reason: "operator", Until: at(10 * time.Minute)},
		{Target: mustTarget(t, "ip:2001:db8::7"), Reason: "operator", Until: at(2 * time.Minute)},
		{Target: mustTarget(t, "client:brief"), Until: at(30 * time.Second)},
	} {
		if err := src.Add(t0, b); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := src.Strike(t0, mustTarget(t, "client:flapper"), "flapping"); err != nil { // 5m, strike 1
		t.Fatal(err)
	}
	data, err := SaveBans(src, at(time.Second))
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name           string
		restoreAt      time.Duration
		restored, skip int
		banned         []string // targets that must still be banned right after the restore
		free           []string // targets that must not be
	}{
		{"at once", time.Second, 6, 0,
			[]string{"client:evil", "user:mallory", "ip:203.0.113.9", "ip:2001:db8::7", "client:brief", "client:flapper"}, nil},
		{"after 3 minutes", 3 * time.Minute, 4, 2,
			[]string{"client:evil", "user:mallory", "ip:203.0.113.9", "client:flapper"}, []string{"ip:2001:db8::7", "client:brief"}},
		{"after 2 hours", 2 * time.Hour, 1, 5,
			[]string{"user:mallory"}, []string{"client:evil", "ip:203.0.113.9", "client:flapper"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			now := at(tc.restoreAt)
			dst := mustBanList(t, BanOptions{})
			n, skipped, err := RestoreBans(dst, now, data)
			if err != nil || n != tc.restored || skipped != tc.skip {
				t.Fatalf("RestoreBans = %d, %d, %v; want %d, %d", n, skipped, err, tc.restored, tc.skip)
			}
			for _, s := range tc.banned {
				if _, ok := checkTarget(dst, now, mustTarget(t, s)); !ok {
					t.Errorf("%s not banned after restore", s)
				}
			}
			for _, s := range tc.free {
				if b, ok := checkTarget(dst, now, mustTarget(t, s)); ok {
					t.Errorf("%s banned after restore: %+v", s, b)
				}
			}
			// Every restored ban keeps its end, reason and start: the remaining
			// duration, not a fresh one.
			want, _ := src.List(now)
			got, _ := dst.List(now)
			if len(got) != len(want) {
				t.Fatalf("restored %d active bans, source has %d", len(got), len(want))
			}
			for i := range got {
				g, w := got[i], want[i]
				if g.Target != w.Target || !g.Until.Equal(w.Until) || !g.Since.Equal(w.Since) || g.Reason != w.Reason || g.Strikes != w.Strikes {
					t.Errorf("restored %+v, saved %+v", g, w)
				}
			}
		})
	}
}

// checkTarget asks the store about one target the way CONNECT would.
func checkTarget(s BanStore, now time.Time, tg Target) (Ban, bool) {
	switch tg.Kind {
	case KindClientID:
		return s.Check(now, tg.Value, "", netip.Addr{})
	case KindUsername:
		return s.Check(now, "", tg.Value, netip.Addr{})
	}
	return s.Check(now, "", "", tg.Prefix.Addr())
}

func TestBanSnapshotRefusesDamage(t *testing.T) {
	good := func(entries string) string {
		return `{"version":1,"bans":[` + entries + `]}`
	}
	tests := []struct {
		name, data, want string
	}{
		{"not json", "{", "ban snapshot"},
		{"other version", `{"version":2,"bans":[]}`, "version 2"},
		{"bad target", good(`{"target":"host:x","since":"2025-11-25T12:00:00Z"}`), "entry 0"},
		{"bad reason", good(`{"target":"client:x","reason":"` + strings.Repeat("r", MaxReason+1) + `","since":"2025-11-25T12:00:00Z"}`), "entry 0 (client:x)"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, _, err := RestoreBans(mustBanList(t, BanOptions{}), t0, []byte(tc.data))
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("err = %v, want one containing %q", err, tc.want)
			}
		})
	}
	if n, s, err := RestoreBans(mustBanList(t, BanOptions{}), t0, nil); n != 0 || s != 0 || err != nil {
		t.Fatalf("empty data: %d, %d, %v", n, s, err)
	}
}

// A store smaller than the snapshot keeps the bans that end last.
func TestBanSnapshotIntoFullStore(t *testing.T) {
	src := mustBanList(t, BanOptions{})
	for i, s := range []string{"client:a", "client:b", "client:c"} {
		if err := src.Add(t0, Ban{Target: mustTarget(t, s), Until: at(time.Duration(i+1) * time.Hour)}); err != nil {
			t.Fatal(err)
		}
	}
	data, err := SaveBans(src, t0)
	if err != nil {
		t.Fatal(err)
	}
	var doc banSnapshot
	if err := json.Unmarshal(data, &doc); err != nil || len(doc.Bans) != 3 {
		t.Fatalf("snapshot %s: %v", data, err)
	}
	dst := mustBanList(t, BanOptions{MaxBans: 2})
	n, skipped, err := RestoreBans(dst, t0, data)
	if err != nil || n+skipped != 3 {
		t.Fatalf("RestoreBans = %d, %d, %v", n, skipped, err)
	}
	if _, ok := checkTarget(dst, t0, mustTarget(t, "client:c")); !ok {
		t.Fatal("the ban that ends last was not kept")
	}
	if dst.Len() != 2 {
		t.Fatalf("store holds %d bans, cap 2", dst.Len())
	}
}
