package hooks

import (
	"errors"
	"fmt"
	"io"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/eclipse/paho.golang/paho"
	mqtt "github.com/mochi-mqtt/server/v2"
	"github.com/mochi-mqtt/server/v2/hooks/auth"
	"github.com/mochi-mqtt/server/v2/listeners"

	"github.com/mqttwaf/mqttwaf/mqttwaf"
	"github.com/mqttwaf/mqttwaf/mqttwaf/schema"
	"github.com/mqttwaf/mqttwaf/redact"
)

// stacked is one hook and its options, for tests that build stacks.
type stacked struct {
	hook mqtt.Hook
	opts any
}

// startStack serves a stock mochi server with the given hooks added in
// order, and a listener made from the stack's WAF.
func startStack(t testing.TB, add func(s *mqtt.Server, sink mqttwaf.Sink) []stacked) *testBroker {
	t.Helper()
	b := &testBroker{events: newRecorder()}
	b.server = mqtt.New(&mqtt.Options{Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	var last mqtt.Hook
	for _, h := range add(b.server, b.events) {
		if err := b.server.AddHook(h.hook, h.opts); err != nil {
			t.Fatalf("AddHook(%T): %v", h.hook, err)
		}
		last = h.hook
	}
	b.waf = last.(interface{ WAF() *mqttwaf.WAF }).WAF()
	l, err := NewListener(b.waf, listeners.Config{ID: "tcp", Type: TypeTCP, Address: "127.0.0.1:0"})
	if err != nil {
		t.Fatal(err)
	}
	if err := b.server.AddListener(l); err != nil {
		t.Fatal(err)
	}
	b.addr = l.Address()
	if err := b.server.Serve(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(b.close)
	return b
}

var telemetryTopics = []string{"guest/+/telemetry"}

// fullStack is every protection, stacked by hand in the policy's order.
func fullStack(s *mqtt.Server, sink mqttwaf.Sink) []stacked {
	return []stacked{
		{new(Hardening), &HardeningOptions{Server: s, Shared: Shared{Sink: sink},
			Limits: mqttwaf.LimitsPolicy{ClientID: mqttwaf.ClientIDLimits{MaxLength: 16}}}},
		{new(AntiFlood), &AntiFloodOptions{Connect: mqttwaf.ConnectRates{PerIP: mqttwaf.Rate{N: 10, Per: time.Minute}}}},
		{new(RateLimit), &RateLimitOptions{Publish: mqttwaf.PublishRates{PerConnection: mqttwaf.MessageRate{
			Messages: mqttwaf.Rate{N: 5, Per: time.Second}}}}},
		{new(Identity), &IdentityOptions{Server: s, Roles: map[string]mqttwaf.RolePolicy{"guest": {
			Publish: []string{"guest/{clientid}/#"}, Subscribe: []string{"guest/#"}, Deny: []string{"guest/+/secret/#"}}}}},
		{new(Normalize), &NormalizeOptions{Payloads: []mqttwaf.PayloadPolicy{{Topics: telemetryTopics, Format: "json"}}}},
		{new(Schema), &SchemaOptions{Payloads: []mqttwaf.PayloadPolicy{{Topics: telemetryTopics,
			Fields: []schema.FieldRule{{Path: "lat", Type: "number", Required: true}}}}}},
		{new(Redact), &RedactOptions{Payloads: []mqttwaf.PayloadPolicy{{Topics: telemetryTopics,
			Redact: mqttwaf.RedactPolicy{Rules: []redact.Rule{{Path: "phone", Action: redact.Action{Op: redact.OpMask, KeepLast: 2}}}}}}}},
		{new(Provenance), &ProvenanceOptions{UserProperty: "publisher"}},
	}
}

// TestStackedHooksEndToEnd runs all eight protections stacked by hand with
// paho and mosquitto clients: each refuses what it should, and a message
// that passes all of them arrives normalised and redacted, with both
// rewrites recorded.
func TestStackedHooksEndToEnd(t *testing.T) {
	b := startStack(t, fullStack)
	sub := mustV5(t, b.addr, "ops", "")
	sub.subscribe(t, 1, "guest/#")
	wait := mosquittoSub(t, b.addr, "-V", "5", "-i", "mosq-sub", "-t", "guest/#", "-C", "1", "-W", "10")
	b.waitSubscribers(t, "guest/#", 2)

	pub := mustV5(t, b.addr, "dev1", "")
	resp, err := pub.publish(t, "guest/dev1/telemetry", 1, []byte(`{ "lat" : 52.5, "phone": "+4915112345678" }`))
	if err != nil || resp.ReasonCode != 0 {
		t.Fatalf("good message refused: %v %+v", err, resp)
	}
	const want = `{"lat":52.5,"phone":"************78"}`
	if m := expectMsg(t, sub.msgs, 5*time.Second); string(m.Payload) != want {
		t.Fatalf("paho subscriber got %s, want %s", m.Payload, want)
	}
	out, err := wait()
	if err != nil || strings.TrimSpace(out) != want {
		t.Fatalf("mosquitto_sub got %q (%v), want %s", out, err, want)
	}
	b.events.wait(t, "payload.json", "json_normalized", time.Second)
	b.events.wait(t, "payload.redact", "redacted", time.Second)

	// Each protection refuses what it should, with its own rule id.
	for _, tc := range []struct {
		name, topic, payload string
		code                 byte
		rule, reason         string
	}{
		{"identity", "guest/dev2/telemetry", `{"lat":1}`, 0x87, "acl", "publish_not_permitted"},
		{"identity deny", "guest/dev1/secret/x", `{"lat":1}`, 0x87, "acl", "publish_denied"},
		{"normalize", "guest/dev1/telemetry", `{"lat":1,}`, 0x99, "payload.json", "trailing_comma"},
		{"schema", "guest/dev1/telemetry", `{"lat":"north"}`, 0x99, "payload.schema", "type"},
	} {
		resp, err := pub.publish(t, tc.topic, 1, []byte(tc.payload))
		if err == nil || resp == nil || resp.ReasonCode != tc.code {
			t.Errorf("%s: %v %+v, want 0x%02x", tc.name, err, resp, tc.code)
		}
		b.events.wait(t, tc.rule, tc.reason, time.Second)
	}
	expectNoMsg(t, sub.msgs, 200*time.Millisecond)

	// RateLimit: a burst over 5/s per connection (QoS 1 waits for each
	// PUBACK, far faster than 5/s on loopback).
	burst := mustV5(t, b.addr, "dev3", "")
	refused := 0
	for i := range 20 {
		resp, err := burst.publish(t, "guest/dev3/status", 1, fmt.Appendf(nil, "%d", i))
		if resp != nil && resp.ReasonCode == 0x97 { // 0x96 is not a PUBACK code: the nearest is quota exceeded
			refused++
		} else if err != nil {
			t.Fatalf("publish %d: %v", i, err)
		}
	}
	if refused == 0 {
		t.Fatal("20 publishes at once, none refused by a 5/s rate")
	}
	b.events.wait(t, "rates.publish", "", time.Second)

	// Hardening: a client ID over limits.client_id.max_length.
	if c, err := dialV5(t, b.addr, &paho.Connect{ClientID: "a-client-id-far-too-long", CleanStart: true}); err == nil || c.connack == nil || c.connack.ReasonCode != 0x85 {
		t.Fatalf("long client ID: %v, want CONNACK 0x85", err)
	}

	// AntiFlood: connects from one address over 10/min (five used above).
	flooded := false
	for i := range 10 {
		c, err := dialV5(t, b.addr, &paho.Connect{ClientID: fmt.Sprintf("f%d", i), CleanStart: true})
		if err != nil && c != nil && c.connack != nil && c.connack.ReasonCode == 0x9F {
			flooded = true
			break
		}
	}
	if !flooded {
		t.Fatal("15 connects from one address in a minute, none refused by a 10/min connect rate")
	}
	b.events.wait(t, "rates.connect", "", time.Second)
}

// TestIdentityWrapsExistingAuth: an application keeps its own auth hook (a
// mochi ledger) and puts the WAF's identity on top of it. The two are
// ANDed: the ledger still decides passwords and its own ACL, and a topic the
// WAF's roles deny stays denied although the ledger allows it.
func TestIdentityWrapsExistingAuth(t *testing.T) {
	ledger := &auth.Options{Ledger: &auth.Ledger{
		Auth: auth.AuthRules{{Username: "alice", Password: "pw-a", Allow: true}, {Username: "bob", Password: "pw-b", Allow: true}},
		ACL: auth.ACLRules{
			{Username: "alice", Filters: auth.Filters{"#": auth.ReadWrite}},
			{Username: "bob", Filters: auth.Filters{"fleet/bob/#": auth.ReadWrite, "fleet/#": auth.Deny}},
		},
	}}
	b := startStack(t, func(s *mqtt.Server, sink mqttwaf.Sink) []stacked {
		return []stacked{{new(Identity), &IdentityOptions{Server: s, Wrap: new(auth.Hook), WrapConfig: ledger, Shared: Shared{Sink: sink},
			Identity: mqttwaf.IdentityPolicy{ExternalRole: "device"},
			Roles: map[string]mqttwaf.RolePolicy{"device": {Publish: []string{"fleet/#"}, Subscribe: []string{"fleet/#"},
				Deny: []string{"fleet/secret/#"}}}}}}
	})
	// The ledger decides passwords.
	if c, err := dialV5(t, b.addr, &paho.Connect{ClientID: "alice", Username: "alice", UsernameFlag: true,
		Password: []byte("wrong"), PasswordFlag: true, CleanStart: true}); err == nil || c.connack == nil || c.connack.ReasonCode != 0x86 {
		t.Fatalf("wrong password: %v, want CONNACK 0x86", err)
	}
	alice := mustV5Pass(t, b.addr, "alice", "alice", "pw-a")
	if resp, err := alice.publish(t, "fleet/alice/x", 1, []byte("ok")); err != nil || resp.ReasonCode != 0 {
		t.Fatalf("allowed by both: %v %+v", err, resp)
	}
	// The ledger allows alice everything; the WAF's role denies fleet/secret.
	if resp, err := alice.publish(t, "fleet/secret/plans", 1, []byte("x")); err == nil || resp == nil || resp.ReasonCode != 0x87 {
		t.Fatalf("publish to a topic the WAF denies: %v %+v, want 0x87", err, resp)
	}
	b.events.wait(t, "acl", "publish_denied", time.Second)
	if sa := alice.subscribe(t, 1, "fleet/secret/#"); sa.Reasons[0] != 0x87 {
		t.Fatalf("subscribe to a filter the WAF denies: SUBACK 0x%02x, want 0x87", sa.Reasons[0])
	}
	// The WAF allows bob fleet/#; the ledger only fleet/bob/#.
	bob := mustV5Pass(t, b.addr, "bob", "bob", "pw-b")
	if resp, err := bob.publish(t, "fleet/alice/x", 1, []byte("x")); err == nil && resp != nil && resp.ReasonCode < 0x80 {
		t.Fatalf("publish the ledger denies: %+v, want a refusal", resp)
	}
	// mosquitto_pub, as alice, to the denied topic: never delivered.
	sub := mustV5Pass(t, b.addr, "alice-sub", "alice", "pw-a")
	sub.subscribe(t, 1, "fleet/#")
	if out, err := mosquittoPub(t, b.addr, "-V", "5", "-i", "alice-m", "-u", "alice", "-P", "pw-a", "-q", "1", "-t", "fleet/secret/x", "-m", "leak"); err == nil {
		t.Logf("mosquitto_pub: %s", out) // QoS 1 refused with 0x87: mosquitto_pub may report it
	}
	expectNoMsg(t, sub.msgs, 300*time.Millisecond)
}

// TestUnsafeStacksRefused: every stack that cannot be safe is refused when
// the offending hook is added, saying why and what to do, and the hooks
// added before it keep working as a stack.
func TestUnsafeStacksRefused(t *testing.T) {
	json := &NormalizeOptions{Payloads: []mqttwaf.PayloadPolicy{{Topics: []string{"t/#"}, Format: "json"}}}
	fields := &SchemaOptions{Payloads: []mqttwaf.PayloadPolicy{{Topics: []string{"t/#"}, Fields: []schema.FieldRule{{Path: "a", Required: true}}}}}
	mask := &RedactOptions{Payloads: []mqttwaf.PayloadPolicy{{Topics: []string{"t/#"}, Redact: mqttwaf.RedactPolicy{
		Rules: []redact.Rule{{Path: "a", Action: redact.Action{Op: redact.OpMask}}}}}}}
	for _, tc := range []struct {
		name    string
		hooks   func(s *mqtt.Server) []stacked // the last one is refused
		wantErr string
	}{
		{"schema before normalize", func(*mqtt.Server) []stacked {
			return []stacked{{new(Schema), fields}}
		}, "hooks.Schema needs hooks.Normalize earlier"},
		{"redact without normalize", func(*mqtt.Server) []stacked {
			return []stacked{{new(Redact), mask}}
		}, "hooks.Redact needs hooks.Normalize earlier"},
		{"redact before schema", func(*mqtt.Server) []stacked {
			return []stacked{{new(Normalize), json}, {new(Redact), mask}, {new(Schema), fields}}
		}, "hooks.Schema must come before hooks.Redact"},
		{"normalize after identity's payload checks", func(s *mqtt.Server) []stacked {
			return []stacked{{new(Normalize), json}, {new(Identity), &IdentityOptions{Server: s}}}
		}, "hooks.Identity must come before hooks.Normalize"},
		{"provenance before redact", func(*mqtt.Server) []stacked {
			return []stacked{{new(Normalize), json}, {new(Provenance), &ProvenanceOptions{UserProperty: "by"}}, {new(Redact), mask}}
		}, "hooks.Redact must come before hooks.Provenance"},
		{"one protection twice", func(*mqtt.Server) []stacked {
			return []stacked{{new(RateLimit), nil}, {new(RateLimit), nil}}
		}, "hooks.RateLimit is in the stack twice"},
		{"identity beside an allow-all hook", func(s *mqtt.Server) []stacked {
			return []stacked{{new(auth.AllowHook), nil}, {new(RateLimit), nil}, {new(Identity), &IdentityOptions{Server: s}}}
		}, "allow-all-auth"},
		{"two different modes", func(*mqtt.Server) []stacked {
			return []stacked{{new(RateLimit), &RateLimitOptions{Shared: Shared{Mode: mqttwaf.DetectionOnly}}},
				{new(AntiFlood), &AntiFloodOptions{Shared: Shared{Mode: mqttwaf.Enforce}}}}
		}, "both set the stack's mode"},
		{"hardening without a server", func(*mqtt.Server) []stacked {
			return []stacked{{new(Hardening), nil}}
		}, "HardeningOptions.Server is nil"},
		{"a bad setting", func(*mqtt.Server) []stacked {
			return []stacked{{new(Normalize), &NormalizeOptions{Payloads: []mqttwaf.PayloadPolicy{{Topics: []string{"t/#"}, Format: "xml"}}}}}
		}, `hooks.Normalize payloads[0].format: unknown value "xml"`},
		{"hook after the WAF was handed out", func(*mqtt.Server) []stacked {
			r := new(RateLimit)
			return []stacked{{r, nil}, {&sealer{h: r}, nil}, {new(AntiFlood), nil}}
		}, "after the stack's WAF was handed out"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s := mqtt.New(&mqtt.Options{Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
			hs := tc.hooks(s)
			for i, h := range hs {
				err := s.AddHook(h.hook, h.opts)
				if i < len(hs)-1 {
					if err != nil {
						t.Fatalf("AddHook(%T): %v", h.hook, err)
					}
					continue
				}
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("AddHook(%T) = %v, want an error containing %q", h.hook, err, tc.wantErr)
				}
			}
		})
	}

	t.Run("hand-added hook beside an installed policy", func(t *testing.T) {
		s := mqtt.New(&mqtt.Options{Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
		w, err := mqttwaf.New(nil, mqttwaf.Options{Sink: newRecorder()})
		if err != nil {
			t.Fatal(err)
		}
		if err := Install(s, w); err != nil {
			t.Fatal(err)
		}
		if err := s.AddHook(new(RateLimit), nil); err == nil || !strings.Contains(err.Error(), "installed from a policy") {
			t.Fatalf("AddHook after Install = %v", err)
		}
	})
	t.Run("wrong options type", func(t *testing.T) {
		for _, h := range []mqtt.Hook{new(Hardening), new(AntiFlood), new(RateLimit), new(Identity), new(Normalize), new(Schema), new(Redact), new(Provenance)} {
			s := mqtt.New(&mqtt.Options{Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
			if err := s.AddHook(h, struct{}{}); !errors.Is(err, mqtt.ErrInvalidConfigType) {
				t.Errorf("AddHook(%T, struct{}{}) = %v, want ErrInvalidConfigType", h, err)
			}
		}
	})
}

// sealer asks the stack for its WAF when it is added, as NewListener does.
type sealer struct {
	mqtt.HookBase
	h interface{ WAF() *mqttwaf.WAF }
}

func (s *sealer) ID() string { return "sealer" }
func (s *sealer) Init(any) error {
	s.h.WAF()
	return nil
}
