package mqttwaf

import (
	"fmt"
	"strings"
	"testing"
)

// templateSeeds is the seed list shared by the table test, the benchmark
// and the fuzz target: a template, the client it is evaluated for, a topic
// or filter, and whether the template covers it.
var templateSeeds = []struct {
	tmpl, id, user, cn, f string
	covers                bool
}{
	// Plain MQTT matching for topic names.
	{"fleet/+/telemetry", "", "", "", "fleet/dev1/telemetry", true},
	{"fleet/+/telemetry", "", "", "", "fleet/dev1/cmd", false},
	{"fleet/#", "", "", "", "fleet", true}, // '#' matches the parent level
	{"fleet/#", "", "", "", "fleet/a/b/c", true},
	{"fleet/#", "", "", "", "fleetx/a", false},
	{"a/b", "", "", "", "a", false},
	{"a", "", "", "", "a/b", false},
	{"+", "", "", "", "", true}, // one empty level
	{"a//b", "", "", "", "a//b", true},
	// '$' topics are not matched by leading wildcards.
	{"#", "", "", "", "$SYS/broker/uptime", false},
	{"+/broker/uptime", "", "", "", "$SYS/broker/uptime", false},
	{"$SYS/#", "", "", "", "$SYS/broker/uptime", true},
	// Containment for filters.
	{"fleet/+/telemetry", "", "", "", "fleet/+/telemetry", true},
	{"fleet/+/telemetry", "", "", "", "fleet/#", false},
	{"fleet/#", "", "", "", "fleet/+/x", true},
	{"fleet/#", "", "", "", "fleet/#", true},
	{"fleet/dev1/#", "", "", "", "fleet/+/x", false},
	{"#", "", "", "", "#", true},
	{"+/x", "", "", "", "+/x", true},
	// Variables.
	{"fleet/{username}/#", "c1", "dev1", "", "fleet/dev1/telemetry", true},
	{"fleet/{username}/#", "c1", "dev1", "", "fleet/dev2/telemetry", false},
	{"fleet/{username}/#", "c1", "dev1", "", "fleet/+/telemetry", false},
	{"dev/{clientid}/state", "c1", "dev1", "", "dev/c1/state", true},
	{"dev/x-{clientid}-y/state", "c1", "", "", "dev/x-c1-y/state", true},
	{"dev/x-{clientid}-y/state", "c1", "", "", "dev/x-c2-y/state", false},
	{"certs/{cn}", "", "", "dev3", "certs/dev3", true},
	{"certs/{cn}", "", "", "", "certs/", false}, // no certificate: {cn} matches nothing
	// Template injection: hostile values never widen a grant.
	{"fleet/{username}/#", "c", "+", "", "fleet/+/telemetry", false},
	{"fleet/{username}/#", "c", "#", "", "fleet/#", false},
	{"fleet/{username}/cmd", "c", "a/b", "", "fleet/a/b/cmd", false},
	{"fleet/{username}/#", "c", "x/#", "", "fleet/x/#", false},
	{"fleet/{clientid}/#", "$SYS", "", "", "fleet/$SYS/x", false},
	{"fleet/{clientid}/#", "a\x00b", "", "", "fleet/a\x00b/x", false},
	{"fleet/{username}/#", "c", "", "", "fleet//x", false}, // empty value
}

func seedClient(id, user, cn string) *Client {
	c := &Client{ID: id, Username: user}
	if cn != "" {
		c.TLS = &TLSInfo{Verified: true, CommonName: cn}
	}
	return c
}

func TestTemplateCovers(t *testing.T) {
	for _, tc := range templateSeeds {
		tmpl, err := CompileTemplate(tc.tmpl)
		if err != nil {
			t.Fatalf("%q: %v", tc.tmpl, err)
		}
		if got := tmpl.Covers(tc.f, seedClient(tc.id, tc.user, tc.cn)); got != tc.covers {
			t.Errorf("%q (id=%q user=%q cn=%q) covers %q = %v, want %v", tc.tmpl, tc.id, tc.user, tc.cn, tc.f, got, tc.covers)
		}
	}
}

func TestCompileTemplateErrors(t *testing.T) {
	for _, bad := range []string{"", "a/#/b", "a+/b", "a/b#", "x/{user}/y", "x/{clientid", "x/}"} {
		if _, err := CompileTemplate(bad); err == nil {
			t.Errorf("%q compiled", bad)
		}
	}
}

func TestBinding(t *testing.T) {
	for _, tc := range []struct {
		bind, id, user string
		ok             bool
	}{
		{"{username}", "dev1", "dev1", true},
		{"{username}", "dev1x", "dev1", false},
		{"{username}-*", "dev1-gps", "dev1", true},
		{"{username}-*", "dev1", "dev1", false},
		{"{username}*", "dev10", "dev1", true},
		{"{username}", "+", "+", false}, // unsafe values never match
	} {
		b, err := compileBinding(tc.bind)
		if err != nil {
			t.Fatal(err)
		}
		if got := b.match(tc.id, &Client{ID: tc.id, Username: tc.user}); got != tc.ok {
			t.Errorf("bind %q id %q user %q: %v, want %v", tc.bind, tc.id, tc.user, got, tc.ok)
		}
	}
	for _, bad := range []string{"{clientid}", "a*b*", "x/{username}", "{nope}"} {
		if _, err := compileBinding(bad); err == nil {
			t.Errorf("binding %q compiled", bad)
		}
	}
}

// FuzzTemplateCovers checks Covers against a reference implementation that
// substitutes the variables into a string and matches level by level.
func FuzzTemplateCovers(f *testing.F) {
	for _, s := range templateSeeds {
		f.Add(s.tmpl, s.id, s.user, s.f)
	}
	f.Fuzz(func(t *testing.T, tmpl, id, user, topic string) {
		ct, err := CompileTemplate(tmpl)
		if err != nil {
			return
		}
		c := &Client{ID: id, Username: user}
		got := ct.Covers(topic, c)
		if strings.ContainsAny(topic, "+#") {
			return // the reference only does topic names
		}
		want, ok := referenceMatch(tmpl, c, topic)
		if ok && got != want {
			t.Fatalf("%q covers %q (id=%q user=%q) = %v, reference says %v", tmpl, topic, id, user, got, want)
		}
	})
}

// referenceMatch substitutes variables (refusing unsafe values) and does
// textbook MQTT topic matching. ok is false when it cannot decide.
func referenceMatch(tmpl string, c *Client, topic string) (match, ok bool) {
	for _, v := range []struct{ name, val string }{{"{clientid}", c.ID}, {"{username}", c.Username}} {
		if strings.Contains(tmpl, v.name) {
			if !safeValue(v.val) {
				return false, true
			}
			tmpl = strings.ReplaceAll(tmpl, v.name, v.val)
		}
	}
	if strings.Contains(tmpl, "{") {
		return false, false
	}
	fl, tl := strings.Split(tmpl, "/"), strings.Split(topic, "/")
	if strings.HasPrefix(topic, "$") && (fl[0] == "+" || fl[0] == "#") {
		return false, true
	}
	for i, l := range fl {
		if l == "#" {
			return true, true
		}
		if i >= len(tl) || l != "+" && l != tl[i] {
			return false, true
		}
	}
	return len(fl) == len(tl), true
}

// BenchmarkACLAllow measures the allow path of the ACL with a 100-rule
// policy: a device publishing its own telemetry, and a delivery to the back
// end, after 99 grants that do not match. 0 allocs/op expected.
func BenchmarkACLAllow(b *testing.B) {
	var pub, sub []string
	for i := 0; i < 99; i++ {
		pub = append(pub, fmt.Sprintf("site%d/{username}/+/telemetry", i))
		sub = append(sub, fmt.Sprintf("site%d/+/+/telemetry", i))
	}
	pub = append(pub, "fleet/{username}/telemetry")
	sub = append(sub, "fleet/+/telemetry")
	p := &Policy{
		Identity: IdentityPolicy{Anonymous: AnonymousPolicy{Allow: "never"}, Certificate: CertificatePolicy{Identity: "cn", Role: "device"}},
		Roles:    map[string]RolePolicy{"device": {Publish: pub, Subscribe: sub}},
	}
	w, err := New(p, Options{Sink: SinkFunc(func(Event) {})})
	if err != nil {
		b.Fatal(err)
	}
	e := w.engine.Load()
	var a *acl
	for _, r := range e.rules {
		if x, ok := r.(*acl); ok {
			a = x
		}
	}
	if a == nil {
		b.Fatal("no acl rule")
	}
	c := &Client{ID: "dev1", Username: "dev1", Auth: AuthCertificate}
	msg := &Message{Topic: "fleet/dev1/telemetry", Payload: []byte("{}")}
	b.Run("publish", func(b *testing.B) {
		pb := &Publish{Client: c, Message: msg}
		b.ReportAllocs()
		for b.Loop() {
			if v := a.CheckPublish(pb); v.Blocked() {
				b.Fatal(v)
			}
		}
	})
	b.Run("deliver", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			if v := a.CheckDeliver(c, "fleet/dev1/telemetry"); v.Blocked() {
				b.Fatal(v)
			}
		}
	})
	b.Run("WAF.Deliver", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			if v := w.Deliver(c, "fleet/dev1/telemetry"); v.Blocked() {
				b.Fatal(v)
			}
		}
	})
}
