package hooks

import (
	"errors"
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
)

// TestAddHookConfigs covers every way of adding the Identity hook (the
// server's auth/ACL provider) with server.AddHook: each either installs a
// complete WAF or is refused, with mochi's ErrInvalidConfigType for a wrong
// config.
func TestAddHookConfigs(t *testing.T) {
	quiet := func() *mqtt.Server {
		return mqtt.New(&mqtt.Options{Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	}
	other := quiet()
	for _, tc := range []struct {
		name    string
		config  func(*mqtt.Server) any
		before  mqtt.Hook // added before the WAF
		wantErr string    // "" = installed
		invalid bool      // errors.Is(err, mqtt.ErrInvalidConfigType)
	}{
		{name: "complete", config: func(s *mqtt.Server) any { return &IdentityOptions{Server: s} }},
		{name: "nil config", config: func(*mqtt.Server) any { return nil }, wantErr: "hooks.IdentityOptions", invalid: true},
		{name: "wrong type", config: func(*mqtt.Server) any { return IdentityOptions{} }, wantErr: "hooks.IdentityOptions", invalid: true},
		{name: "wraps a hook that decides nothing", config: func(s *mqtt.Server) any { return &IdentityOptions{Server: s, Wrap: new(mqtt.HookBase)} }, wantErr: "decides neither", invalid: true},
		// Without the server the hook could neither see an allow-all hook
		// beside it nor guard sessions: refused, not silently weaker.
		{name: "no server", config: func(*mqtt.Server) any { return &IdentityOptions{} }, wantErr: "Options.Server is nil", invalid: true},
		{name: "next to AllowHook", before: new(auth.AllowHook), config: func(s *mqtt.Server) any { return &IdentityOptions{Server: s} }, wantErr: "allow-all-auth"},
		{name: "next to a ledger", before: new(auth.Hook), config: func(s *mqtt.Server) any { return &IdentityOptions{Server: s} }, wantErr: "auth-ledger"},
		// A non-auth hook beside the WAF is fine.
		{name: "next to a non-auth hook", before: new(mqtt.HookBase), config: func(s *mqtt.Server) any { return &IdentityOptions{Server: s} }},
		// The server option must be the server the hook is added to.
		{name: "server is another server", before: new(auth.AllowHook), config: func(*mqtt.Server) any { return &IdentityOptions{Server: other} }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s := quiet()
			if tc.before != nil {
				var cfg any
				if _, ok := tc.before.(*auth.Hook); ok {
					cfg = &auth.Options{}
				}
				if err := s.AddHook(tc.before, cfg); err != nil {
					t.Fatal(err)
				}
			}
			err := s.AddHook(new(Identity), tc.config(s))
			if tc.wantErr == "" {
				if err != nil {
					t.Fatalf("AddHook: %v", err)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
				t.Fatalf("AddHook = %v, want an error containing %q", err, tc.wantErr)
			}
			if tc.invalid != errors.Is(err, mqtt.ErrInvalidConfigType) {
				t.Fatalf("errors.Is(%v, ErrInvalidConfigType) = %v, want %v", err, !tc.invalid, tc.invalid)
			}
		})
	}
}

// TestAddHookAppliesBrokerLimits: the Hardening hook added with AddHook,
// not Install, still replaces mochi's unlimited defaults with the policy's.
func TestAddHookAppliesBrokerLimits(t *testing.T) {
	s := mqtt.New(&mqtt.Options{Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	if s.Options.Capabilities.MaximumPacketSize != 0 {
		t.Fatalf("mochi's default maximum packet size is %d, expected unlimited (0)", s.Options.Capabilities.MaximumPacketSize)
	}
	h := new(Hardening)
	if err := s.AddHook(h, &HardeningOptions{Server: s, Shared: Shared{Sink: newRecorder()}}); err != nil {
		t.Fatal(err)
	}
	w := h.WAF()
	if got, want := s.Options.Capabilities.MaximumPacketSize, uint32(w.Broker().MaxPacketSize); got != want || got == 0 {
		t.Fatalf("MaximumPacketSize = %d, want the policy's %d", got, want)
	}
}

// TestAllowHookAddedWhileServingDeliversNothing: an allow-all hook added to
// a running server would override every read and write decision of the WAF
// (mochi OR-s ACL hooks). The WAF notices at the next packet, refuses
// everything, records why and shuts the server down: the topic the policy
// denies is never delivered.
func TestAllowHookAddedWhileServingDeliversNothing(t *testing.T) {
	b := startBroker(t, `identity: {anonymous: {allow: anywhere, role: guest}}
roles:
  guest: {publish: ["guest/#"], subscribe: ["guest/#"], deny: ["guest/secret/#"]}
`, brokerOpts{})
	sub := mustV5(t, b.addr, "sub", "")
	sub.subscribe(t, 1, "guest/#")
	pub := mustV5(t, b.addr, "pub", "")
	if _, err := pub.publish(t, "guest/open", 1, []byte("hello")); err != nil {
		t.Fatal(err)
	}
	if m := expectMsg(t, sub.msgs, 5*time.Second); m.Topic != "guest/open" {
		t.Fatalf("got %q", m.Topic)
	}
	// The WAF alone: the denied topic is not delivered.
	_, _ = pub.publish(t, "guest/secret/plans", 1, []byte("before"))
	expectNoMsg(t, sub.msgs, 300*time.Millisecond)

	if err := b.server.AddHook(new(auth.AllowHook), nil); err != nil {
		t.Fatal(err)
	}
	_, _ = pub.publish(t, "guest/secret/plans", 1, []byte("after"))
	_, _ = pub.publish(t, "guest/open", 1, []byte("after"))
	expectNoMsg(t, sub.msgs, 500*time.Millisecond)
	e := b.events.wait(t, "hooks.install", "foreign_auth_hook", 5*time.Second)
	if !strings.Contains(e.Detail, "allow-all-auth") {
		t.Fatalf("event detail %q does not name the hook", e.Detail)
	}
	// Connected clients are dropped, new ones refused.
	select {
	case <-sub.Done():
	case <-time.After(5 * time.Second):
		t.Fatal("subscriber still connected next to an allow-all hook")
	}
	if c, err := dialV5(t, b.addr, &paho.Connect{ClientID: "late", CleanStart: true}); err == nil {
		t.Fatalf("client connected next to an allow-all hook: %+v", c.connack)
	} else if c.connack == nil || c.connack.ReasonCode != 0x88 {
		t.Fatalf("CONNACK %+v (%v), want 0x88 server unavailable", c.connack, err)
	}
}

// TestAllowHookAddedBeforeServeRefusesClients: added after the WAF but
// before Serve, the allow-all hook is seen when the server starts, and no
// client gets a session.
func TestAllowHookAddedBeforeServeRefusesClients(t *testing.T) {
	rec := newRecorder()
	w, err := mqttwaf.New(nil, mqttwaf.Options{Sink: rec})
	if err != nil {
		t.Fatal(err)
	}
	server := mqtt.New(HardenedOptions(nil))
	server.Log = slog.New(slog.NewTextHandler(io.Discard, nil))
	if err := Install(server, w); err != nil {
		t.Fatal(err)
	}
	if err := server.AddHook(new(auth.AllowHook), nil); err != nil {
		t.Fatal(err)
	}
	l, err := NewListener(w, listeners.Config{ID: "tcp", Address: "127.0.0.1:0"})
	if err != nil {
		t.Fatal(err)
	}
	if err := server.AddListener(l); err != nil {
		t.Fatal(err)
	}
	if err := server.Serve(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = server.Close() })
	rec.wait(t, "hooks.install", "foreign_auth_hook", 5*time.Second)
	if c, err := dialV5(t, l.Address(), &paho.Connect{ClientID: "late", CleanStart: true}); err == nil {
		t.Fatalf("client connected next to an allow-all hook: %+v", c.connack)
	} else if c.connack == nil || c.connack.ReasonCode != 0x88 {
		t.Fatalf("CONNACK %+v (%v), want 0x88 server unavailable", c.connack, err)
	}
	// 3.1.1 clients are told "server unavailable" too.
	if _, code, err := dialV3(t, l.Address(), "late3", "", nil); err == nil || code != 0x03 {
		t.Fatalf("3.1.1 client next to an allow-all hook: code %d, %v", code, err)
	}
}
