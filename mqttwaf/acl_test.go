package mqttwaf

import "testing"

// newACLWAF builds a WAF whose identity and roles are exactly identityYAML
// (testIdentity's own roles would grant everything), with rates off so no
// rate rule decides in place of the ACL.
func newACLWAF(t *testing.T, identityYAML string) *WAF {
	t.Helper()
	p, err := ParsePolicy([]byte(identityYAML+"rates: {off: true}\n"), "acl.yaml")
	if err != nil {
		t.Fatalf("ParsePolicy: %v", err)
	}
	w, err := New(p, Options{Sink: &eventLog{}, Now: newFakeClock().Now})
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	return w
}

// checkACL compares a verdict with the ACL decision a table row expects: ""
// allows; otherwise the acl rule refuses with 0x87 and that reason.
func checkACL(t *testing.T, what string, v Verdict, reason string) {
	t.Helper()
	if reason == "" {
		if v.Action != Allow {
			t.Errorf("%s: refused by %s (%s), want allowed", what, v.Rule, v.Reason)
		}
		return
	}
	if v.Action != Reject || v.Rule != "acl" || v.Reason != reason || v.Code != CodeNotAuthorized {
		t.Errorf("%s = {%s %s %q %#x}, want {reject acl %q 0x87}", what, v.Action, v.Rule, v.Reason, byte(v.Code), reason)
	}
}

// denyPolicy gives certificate clients (testClient with a user name) the
// role dev, whose grants all overlap its deny list, and anonymous clients
// the role guest, with the same grants and no deny list: what dev is
// refused, guest is allowed, so each refusal below is the deny list's.
const denyPolicy = `identity:
  anonymous: {allow: anywhere, role: guest}
  certificate: {identity: cn, role: dev}
roles:
  dev:
    deny:                             # listed first: order must not matter
      - "fleet/secret/#"              # a subtree of a grant
      - "fleet/+/keys"                # a wildcard level inside a grant
      - "ops/{username}/admin/#"      # templates: per identity
      - "own/{clientid}/priv"
      - "same/#"                      # exactly a grant
    publish: ["fleet/#", "ops/{username}/#", "own/{clientid}/#", "same/#"]
    subscribe: ["fleet/#", "ops/{username}/#", "own/{clientid}/#", "same/#"]
    retain: ["fleet/#", "same/#"]
    broad_wildcards: true
  guest:
    publish: ["fleet/#", "ops/+/#", "own/+/#", "same/#"]
    subscribe: ["fleet/#", "ops/+/#", "own/+/#", "same/#"]
    retain: ["fleet/#", "same/#"]
    broad_wildcards: true
`

// The clients the deny table runs as: alice and bob share the role dev, so
// {username} and {clientid} in its deny list pick out each one's own topics.
var (
	aclAlice = func() *Client { return testClient("c-alice", "alice") }
	aclBob   = func() *Client { return testClient("c-bob", "bob") }
	aclGuest = func() *Client { return testClient("c-guest", "") }
)

func TestACLDenyPublish(t *testing.T) {
	w := newACLWAF(t, denyPolicy)
	for _, tc := range []struct {
		client func() *Client
		topic  string
		retain bool
		reason string // "" = allowed
	}{
		{aclAlice, "fleet/d1/telemetry", false, ""},
		{aclAlice, "fleet/d1/telemetry", true, ""},
		{aclAlice, "fleet/secret", false, "publish_denied"}, // '#' covers its parent level
		{aclAlice, "fleet/secret/x", false, "publish_denied"},
		{aclAlice, "fleet/secret/x/y", false, "publish_denied"},
		{aclAlice, "fleet/secret/x", true, "publish_denied"}, // deny beats the retain grant too
		{aclAlice, "fleet/secretx/y", false, ""},
		{aclAlice, "fleet/d1/keys", false, "publish_denied"},
		{aclAlice, "fleet/d1/keys/x", false, ""}, // '+' is one level: fleet/+/keys stops there
		{aclAlice, "fleet/keys", false, ""},
		{aclAlice, "same/x", false, "publish_denied"}, // deny and grant identical: deny wins
		{aclAlice, "same", true, "publish_denied"},
		// {username}: alice's admin subtree is denied to alice, bob's to bob.
		{aclAlice, "ops/alice/status", false, ""},
		{aclAlice, "ops/alice/admin", false, "publish_denied"},
		{aclAlice, "ops/alice/admin/reset", false, "publish_denied"},
		{aclAlice, "ops/bob/admin/reset", false, "publish_not_permitted"}, // no grant: not a deny
		{aclBob, "ops/bob/admin/reset", false, "publish_denied"},
		{aclBob, "ops/bob/status", false, ""},
		// {clientid}.
		{aclAlice, "own/c-alice/priv", false, "publish_denied"},
		{aclAlice, "own/c-alice/pub", false, ""},
		{aclAlice, "own/c-alice/priv/x", false, ""},
		{aclBob, "own/c-bob/priv", false, "publish_denied"},
		{aclBob, "own/c-alice/priv", false, "publish_not_permitted"},
		// The deny list is dev's: guest has the same grants and none of it.
		{aclGuest, "fleet/secret/x", true, ""},
		{aclGuest, "fleet/d1/keys", false, ""},
		{aclGuest, "ops/alice/admin/reset", false, ""},
		{aclGuest, "own/c-alice/priv", false, ""},
		{aclGuest, "same/x", false, ""},
	} {
		c := tc.client()
		what := "publish " + tc.topic + " by " + c.ID
		if tc.retain {
			what += " (retained)"
		}
		v, _ := w.Publish(c, &Message{Topic: tc.topic, QoS: 1, Retain: tc.retain, Payload: []byte("x")})
		checkACL(t, what, v, tc.reason)
	}
}

func TestACLDenySubscribe(t *testing.T) {
	w := newACLWAF(t, denyPolicy)
	for _, tc := range []struct {
		client func() *Client
		filter string
		reason string // "" = allowed
	}{
		// A filter the deny list covers entirely is refused at SUBSCRIBE.
		{aclAlice, "fleet/secret/#", "subscribe_denied"},
		{aclAlice, "fleet/secret/+", "subscribe_denied"},
		{aclAlice, "fleet/secret", "subscribe_denied"},
		{aclAlice, "fleet/secret/a/b", "subscribe_denied"},
		{aclAlice, "fleet/+/keys", "subscribe_denied"},
		{aclAlice, "fleet/d1/keys", "subscribe_denied"},
		{aclAlice, "same/#", "subscribe_denied"},
		{aclAlice, "same/+", "subscribe_denied"},
		{aclAlice, "$share/g/fleet/secret/#", "subscribe_denied"}, // a shared subscription is its filter
		// A filter that only overlaps the deny list is granted: the denied
		// topics are withheld at delivery (TestACLDenyDeliver).
		{aclAlice, "fleet/#", ""},
		{aclAlice, "fleet/+/+", ""},
		{aclAlice, "fleet/+/telemetry", ""},
		// Templates.
		{aclAlice, "ops/alice/#", ""},
		{aclAlice, "ops/alice/admin/#", "subscribe_denied"},
		{aclAlice, "ops/alice/admin", "subscribe_denied"},
		{aclAlice, "ops/bob/admin/#", "subscribe_not_permitted"},
		{aclBob, "ops/bob/admin/#", "subscribe_denied"},
		{aclBob, "ops/bob/#", ""},
		{aclAlice, "own/c-alice/priv", "subscribe_denied"},
		{aclAlice, "own/c-alice/+", ""},
		{aclBob, "own/c-bob/priv", "subscribe_denied"},
		{aclBob, "own/c-alice/priv", "subscribe_not_permitted"},
		// Not dev's deny list: guest may.
		{aclGuest, "fleet/secret/#", ""},
		{aclGuest, "fleet/+/keys", ""},
		{aclGuest, "ops/alice/admin/#", ""},
		{aclGuest, "same/#", ""},
	} {
		c := tc.client()
		v := w.Subscribe(c, &Subscription{Filter: tc.filter, QoS: 1, Count: 1})
		checkACL(t, "subscribe "+tc.filter+" by "+c.ID, v, tc.reason)
	}
}

func TestACLDenyDeliver(t *testing.T) {
	w := newACLWAF(t, denyPolicy)
	for _, tc := range []struct {
		client func() *Client
		topic  string
		reason string // "" = delivered
	}{
		{aclAlice, "fleet/d1/telemetry", ""},
		{aclAlice, "fleet/secret", "read_denied"},
		{aclAlice, "fleet/secret/x", "read_denied"},
		{aclAlice, "fleet/d1/keys", "read_denied"},
		{aclAlice, "fleet/d1/keys/x", ""},
		{aclAlice, "same/x", "read_denied"},
		{aclAlice, "ops/alice/admin/reset", "read_denied"},
		{aclAlice, "ops/alice/status", ""},
		{aclAlice, "ops/bob/admin/reset", "read_not_permitted"},
		{aclBob, "ops/bob/admin/reset", "read_denied"},
		{aclAlice, "own/c-alice/priv", "read_denied"},
		{aclBob, "own/c-bob/priv", "read_denied"},
		{aclBob, "own/c-bob/pub", ""},
		{aclGuest, "fleet/secret/x", ""},
		{aclGuest, "fleet/d1/keys", ""},
		{aclGuest, "ops/alice/admin/reset", ""},
		{aclGuest, "same/x", ""},
	} {
		c := tc.client()
		checkACL(t, "deliver "+tc.topic+" to "+c.ID, w.Deliver(c, tc.topic), tc.reason)
	}
}

// grantSeeds: a subscribe grant, a filter, and whether the grant covers
// the filter. A grant covers a filter only if every topic the filter can
// match is inside the grant: a '+' grant level is one level, never the
// any-depth '#' of a filter.
var grantSeeds = []struct {
	grant, filter string
	covers        bool
}{
	{"a/+", "a/x", true},
	{"a/+", "a/+", true},
	{"a/+", "a/#", false}, // a/# reaches a/x/y
	{"a/+", "a/+/b", false},
	{"a/+", "a/+/#", false},
	{"a/+", "a/x/y", false},
	{"a/+", "a", false},
	{"a/+", "#", false},
	{"a/+", "+", false},
	{"a/+", "+/+", false},
	{"a/+", "+/#", false},
	{"+", "x", true},
	{"+", "+", true},
	{"+", "#", false},
	{"+", "x/y", false},
	{"+/+", "a/x", true},
	{"+/+", "+/+", true},
	{"+/+", "a/#", false},
	{"+/+", "+/#", false},
	{"+/+", "#", false},
	{"a/+/c", "a/+/c", true},
	{"a/+/c", "a/+/#", false},
	{"a/+/#", "a/x/#", true},
	{"a/+/#", "a/+", true}, // '#' also matches its parent: a/+/# matches a/x
	{"a/+/#", "a/#", false},
	{"a/#", "a/#", true},
	{"a/#", "a/+/b", true},
	{"a/#", "#", false},
	{"#", "#", true},
	{"{username}/+", "alice/x", true},
	{"{username}/+", "alice/#", false},
	{"{username}/+", "bob/x", false},
	{"x-{clientid}/+", "x-c-alice/#", false},
	{"x-{clientid}/+", "x-c-alice/+", true},
}

func TestACLGrantWildcards(t *testing.T) {
	for _, tc := range grantSeeds {
		w := newACLWAF(t, `identity: {certificate: {identity: cn, role: r}, anonymous: {allow: never}}
roles: {r: {subscribe: ["`+tc.grant+`"], broad_wildcards: true}}
`)
		c := testClient("c-alice", "alice")
		want := "subscribe_not_permitted"
		if tc.covers {
			want = ""
		}
		checkACL(t, "grant "+tc.grant+", subscribe "+tc.filter, w.Subscribe(c, &Subscription{Filter: tc.filter, QoS: 1, Count: 1}), want)
		// The ACL uses Template.Covers; check it on its own too, so a
		// failure says which layer broke.
		tmpl, err := CompileTemplate(tc.grant)
		if err != nil {
			t.Fatal(err)
		}
		if got := tmpl.Covers(tc.filter, c); got != tc.covers {
			t.Errorf("Template(%q).Covers(%q) = %v, want %v", tc.grant, tc.filter, got, tc.covers)
		}
	}
}

// A deny template ending in '+' must not swallow a '#' filter either: deny
// a/+ refuses a/x and a/+, while a/# is granted (its other topics are
// allowed) and the denied ones are withheld at delivery.
func TestACLDenyWildcards(t *testing.T) {
	w := newACLWAF(t, `identity: {certificate: {identity: cn, role: r}, anonymous: {allow: never}}
roles: {r: {subscribe: ["a/#"], deny: ["a/+"], broad_wildcards: true}}
`)
	c := testClient("c-alice", "alice")
	for _, tc := range []struct{ filter, reason string }{
		{"a/x", "subscribe_denied"},
		{"a/+", "subscribe_denied"},
		{"a/#", ""},
		{"a/+/b", ""},
		{"a/x/y", ""},
	} {
		checkACL(t, "subscribe "+tc.filter, w.Subscribe(c, &Subscription{Filter: tc.filter, QoS: 1, Count: 1}), tc.reason)
	}
	checkACL(t, "deliver a/x", w.Deliver(c, "a/x"), "read_denied")
	checkACL(t, "deliver a/x/y", w.Deliver(c, "a/x/y"), "")
}
