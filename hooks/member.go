package hooks

import (
	"errors"
	"fmt"
	"log/slog"
	"runtime"
	"slices"
	"sync"
	"weak"

	mqtt "github.com/mochi-mqtt/server/v2"
	"github.com/mochi-mqtt/server/v2/packets"
	"github.com/mochi-mqtt/server/v2/system"

	"github.com/mqttwaf/mqttwaf/mqttwaf"
)

// Shared are the settings every hook of a stack shares. Set each on any one
// hook of the stack (every hook's options embed Shared); two hooks that set
// one differently are refused. The zero value is the secure default:
// enforce, events as JSON lines on stderr, no custom rules.
type Shared struct {
	// Mode is enforce (default) or detection_only, for the whole stack.
	Mode mqttwaf.Mode `yaml:"mode" json:"mode"`
	// Events configures where the stack's events go.
	Events mqttwaf.EventsPolicy `yaml:"events" json:"events"`
	// Addresses says what counts as one address for per-address limits.
	Addresses mqttwaf.AddressesPolicy `yaml:"addresses" json:"addresses"`
	// Sink, if set, receives the stack's events instead of events.log.
	Sink mqttwaf.Sink `yaml:"-" json:"-"`
	// Rules are custom rules, run after every protection of the stack.
	Rules []mqttwaf.Rule `yaml:"-" json:"-"`
}

func (s *Shared) policy() *mqttwaf.Policy {
	return &mqttwaf.Policy{Mode: s.Mode, Events: s.Events, Addresses: s.Addresses}
}

// stackBuild is what the hooks of a hand-built stack said besides their
// protections' settings.
type stackBuild struct {
	sink    mqttwaf.Sink
	sinkBy  string
	rules   []mqttwaf.Rule
	rulesBy string
}

// member is what every mqttwaf hook is: one protection of its server's
// stack. The stack is found through the capabilities mochi hands each hook
// it adds (one per server), so a hook added with nil options needs nothing
// else to join the others.
type member struct {
	mqtt.HookBase
	prot mqttwaf.Protection
	name string // the hook type, for messages
	st   *stack
	caps *mqtt.Capabilities
	last bool // the last hook of the stack: it also runs the custom rules
}

// installConfig is how Install adds the hooks of a policy-built stack.
type installConfig struct{ st *stack }

// SetOpts implements mqtt.Hook; mochi calls it before Init with the
// server's capabilities, which identify the server.
func (m *member) SetOpts(l *slog.Logger, o *mqtt.HookOptions) {
	m.HookBase.SetOpts(l, o)
	if o != nil {
		m.caps = o.Capabilities
	}
}

// ID implements mqtt.Hook.
func (m *member) ID() string { return "mqttwaf." + string(m.prot) }

// WAF returns the firewall the stack runs, for hooks.NewListener and for
// operators (counters, bans, reload). Call it after every mqttwaf hook is
// added: from then on the stack takes no more hooks.
func (m *member) WAF() *mqttwaf.WAF {
	if m.st == nil {
		return nil
	}
	m.st.mu.Lock()
	defer m.st.mu.Unlock()
	m.st.sealed = true
	return m.st.waf
}

func (m *member) isMember() *member { return m }

// leader reports whether m answers the stack's once-per-packet callbacks.
func (m *member) leader() bool { return m.st != nil && len(m.st.members) > 0 && m.st.members[0] == m }

// Provides implements mqtt.Hook.
func (m *member) Provides(b byte) bool {
	switch b {
	case mqtt.OnPublish:
		// A stack Install built has nothing between its hooks (it adds them
		// in one go), so its leader runs every layer's publish rules in one
		// call, as the hooks would one after the other, and the others
		// are not called (mochi asks Provides at every publish).
		return m.st != nil && (!m.st.fixed || m.leader())
	case mqtt.OnConnectAuthenticate, mqtt.OnACLCheck:
		return m.st != nil && m.st.identity == m
	case mqtt.OnStarted, mqtt.OnConnect, mqtt.OnSessionEstablish, mqtt.OnSessionEstablished, mqtt.OnDisconnect, mqtt.OnPacketRead,
		mqtt.OnPacketEncode, mqtt.OnSubscribe, mqtt.OnWill, mqtt.OnPublishDropped, mqtt.OnClientExpired,
		mqtt.OnRetainMessage, mqtt.OnRetainedExpired, mqtt.OnSubscribed, mqtt.OnQosPublish, mqtt.OnQosDropped,
		mqtt.OnPacketIDExhausted, mqtt.OnSysInfoTick:
		return m.leader()
	}
	return false
}

// The callbacks forward to the stack; Provides says which ones mochi calls.

func (m *member) OnStarted() { m.st.OnStarted() }
func (m *member) OnConnect(cl *mqtt.Client, pk packets.Packet) error {
	return m.st.OnConnect(cl, pk)
}
func (m *member) OnConnectAuthenticate(cl *mqtt.Client, pk packets.Packet) bool {
	return m.st.OnConnectAuthenticate(cl, pk)
}
func (m *member) OnACLCheck(cl *mqtt.Client, topic string, write bool) bool {
	return m.st.OnACLCheck(cl, topic, write)
}
func (m *member) OnSessionEstablish(cl *mqtt.Client, pk packets.Packet) {
	m.st.OnSessionEstablish(cl, pk)
}
func (m *member) OnSessionEstablished(cl *mqtt.Client, pk packets.Packet) {
	m.st.OnSessionEstablished(cl, pk)
}
func (m *member) OnDisconnect(cl *mqtt.Client, err error, expire bool) {
	m.st.OnDisconnect(cl, err, expire)
}
func (m *member) OnPacketRead(cl *mqtt.Client, pk packets.Packet) (packets.Packet, error) {
	return m.st.OnPacketRead(cl, pk)
}
func (m *member) OnPacketEncode(cl *mqtt.Client, pk packets.Packet) packets.Packet {
	return m.st.OnPacketEncode(cl, pk)
}
func (m *member) OnSubscribe(cl *mqtt.Client, pk packets.Packet) packets.Packet {
	return m.st.OnSubscribe(cl, pk)
}
func (m *member) OnPublish(cl *mqtt.Client, pk packets.Packet) (packets.Packet, error) {
	return m.st.publish(m, cl, pk)
}
func (m *member) OnWill(cl *mqtt.Client, will mqtt.Will) (mqtt.Will, error) {
	return m.st.OnWill(cl, will)
}
func (m *member) OnPublishDropped(cl *mqtt.Client, pk packets.Packet) {
	m.st.OnPublishDropped(cl, pk)
}
func (m *member) OnClientExpired(cl *mqtt.Client) { m.st.OnClientExpired(cl) }
func (m *member) OnRetainMessage(cl *mqtt.Client, pk packets.Packet, r int64) {
	m.st.OnRetainMessage(cl, pk, r)
}
func (m *member) OnRetainedExpired(topic string) { m.st.OnRetainedExpired(topic) }
func (m *member) OnSubscribed(cl *mqtt.Client, pk packets.Packet, codes []byte) {
	m.st.OnSubscribed(cl, pk, codes)
}
func (m *member) OnQosPublish(cl *mqtt.Client, pk packets.Packet, sent int64, resends int) {
	m.st.OnQosPublish(cl, pk, sent, resends)
}
func (m *member) OnQosDropped(cl *mqtt.Client, pk packets.Packet) { m.st.OnQosDropped(cl, pk) }
func (m *member) OnPacketIDExhausted(cl *mqtt.Client, pk packets.Packet) {
	m.st.OnPacketIDExhausted(cl, pk)
}
func (m *member) OnSysInfoTick(info *system.Info) { m.st.OnSysInfoTick(info) }

// stacks maps each server (by its capabilities, weakly: a server that is
// gone takes its entry with it) to the stack of its mqttwaf hooks.
var stacks sync.Map // weak.Pointer[mqtt.Capabilities] -> *stack

func stackFor(caps *mqtt.Capabilities, create bool) *stack {
	k := weak.Make(caps)
	if v, ok := stacks.Load(k); ok {
		return v.(*stack)
	}
	if !create {
		return nil
	}
	v, loaded := stacks.LoadOrStore(k, &stack{})
	if !loaded {
		runtime.AddCleanup(caps, func(k weak.Pointer[mqtt.Capabilities]) { stacks.Delete(k) }, k)
	}
	return v.(*stack)
}

// join adds m, with its protection's settings, to its server's stack and
// rebuilds the stack's WAF; nothing changes if the stack would be unsafe.
// config is the hook's Init argument: its typed options, or Install's.
func (m *member) join(config any, p *mqttwaf.Policy, sh *Shared, server *mqtt.Server, check func(*stack) error) error {
	if ic, ok := config.(*installConfig); ok {
		return m.joinInstalled(ic.st)
	}
	if m.caps == nil {
		return fmt.Errorf("hooks: add %s with server.AddHook: the hook finds the rest of its stack through the server", m.name)
	}
	st := stackFor(m.caps, true)
	st.mu.Lock()
	defer st.mu.Unlock()
	switch {
	case st.fixed:
		return fmt.Errorf("hooks: %s cannot be added: this server's protections were installed from a policy (hooks.Install); configure %s in the policy instead", m.name, m.prot)
	case st.started.Load():
		return fmt.Errorf("hooks: %s added after Serve: add every mqttwaf hook before the server starts", m.name)
	case st.sealed:
		return fmt.Errorf("hooks: %s added after the stack's WAF was handed out (WAF(), NewListener): add every mqttwaf hook first", m.name)
	}
	b := st.build
	if sh.Sink != nil {
		if b.sink != nil && b.sink != sh.Sink {
			return fmt.Errorf("hooks: %s and %s both set Shared.Sink: set it on one hook only", b.sinkBy, m.name)
		}
		b.sink, b.sinkBy = sh.Sink, m.name
	}
	if len(sh.Rules) > 0 {
		if b.rules != nil {
			return fmt.Errorf("hooks: %s and %s both set Shared.Rules: set them on one hook only", b.rulesBy, m.name)
		}
		b.rules, b.rulesBy = sh.Rules, m.name
	}
	layers := append(slices.Clip(st.layers), mqttwaf.Layer{Protection: m.prot, Name: m.name, Policy: p})
	w, err := mqttwaf.NewStack(layers, mqttwaf.Options{Sink: b.sink, Rules: b.rules})
	if err != nil {
		return err
	}
	prevServer, prevHooks, prevIdentity, prevWrap := st.server, st.hooks, st.identity, st.wrap
	if err := st.bind(server); err != nil {
		return err
	}
	m.st = st
	if check != nil {
		if err := check(st); err != nil {
			st.server, st.hooks, st.identity, st.wrap = prevServer, prevHooks, prevIdentity, prevWrap
			m.st = nil
			return err
		}
	}
	st.build, st.layers, st.waf = b, layers, w
	for _, o := range st.members {
		o.last = false
	}
	st.members = append(st.members, m)
	m.last = true
	st.sessions.max = w.Broker().MaxConnections
	return nil
}

// joinInstalled adds m to a stack Install built from a policy.
func (m *member) joinInstalled(st *stack) error {
	m.st = st
	st.members = append(st.members, m)
	for _, o := range st.members {
		o.last = o == m
	}
	return nil
}

// Install adds to server one hook per protection, in the policy's order,
// all running w: the same hooks a developer can add one by one, so a policy
// file and a hand-built stack run the same code, and w.Reload swaps every
// hook's rules at once. Call it before Serve: it applies the policy's
// broker section to server.Options.Capabilities.
//
// mochi OR-s authentication and ACL hooks: the first hook that allows,
// allows. A WAF next to auth.AllowHook (or any other auth/ACL hook) would
// deny nothing, so Install refuses a server that already has one, naming
// it (wrap it instead: hooks.IdentityOptions.Wrap); if one is added later,
// the WAF closes every connection and refuses every client from then on (it
// does not close the server: mochi's Close panics when called twice).
func Install(server *mqtt.Server, w *mqttwaf.WAF) error {
	if server == nil || w == nil {
		return errors.New("hooks: Install needs a server and a WAF")
	}
	if server.Options == nil || server.Options.Capabilities == nil {
		return errors.New("hooks: Install needs a server made by mqtt.New")
	}
	st := stackFor(server.Options.Capabilities, true)
	st.mu.Lock()
	if len(st.members) > 0 || st.fixed {
		st.mu.Unlock()
		return errors.New("hooks: this server already has mqttwaf hooks: install a policy on a server without them, or stack hooks by hand, not both")
	}
	st.fixed, st.waf = true, w
	st.sessions.max = w.Broker().MaxConnections
	if err := st.bind(server); err != nil {
		st.mu.Unlock()
		return err
	}
	st.mu.Unlock()
	for _, pr := range w.Layers() {
		h, m := newHook(pr)
		if pr == mqttwaf.ProtectIdentity {
			if ids := foreignAuthHooks(server); len(ids) > 0 {
				return foreignHooksError(ids)
			}
			st.identity = m
			ownInflight(server.Options.Capabilities)
		}
		if err := server.AddHook(h, &installConfig{st: st}); err != nil {
			return err
		}
		if pr == mqttwaf.ProtectHardening {
			applyCapabilities(server.Options.Capabilities, w.Policy())
		}
	}
	return nil
}

// newHook returns a new hook of a protection's type, and its member.
func newHook(pr mqttwaf.Protection) (mqtt.Hook, *member) {
	switch pr {
	case mqttwaf.ProtectHardening:
		h := new(Hardening)
		return h, h.init()
	case mqttwaf.ProtectAntiFlood:
		h := new(AntiFlood)
		return h, h.init()
	case mqttwaf.ProtectRateLimit:
		h := new(RateLimit)
		return h, h.init()
	case mqttwaf.ProtectIdentity:
		h := new(Identity)
		return h, h.init()
	case mqttwaf.ProtectNormalize:
		h := new(Normalize)
		return h, h.init()
	case mqttwaf.ProtectSchema:
		h := new(Schema)
		return h, h.init()
	case mqttwaf.ProtectRedact:
		h := new(Redact)
		return h, h.init()
	default:
		h := new(Provenance)
		return h, h.init()
	}
}

// invalid is mochi's ErrInvalidConfigType for a hook given the wrong options.
func invalid(name, want string, got any) error {
	return fmt.Errorf("%w: %s needs %s (or nil for its defaults), got %T", mqtt.ErrInvalidConfigType, name, want, got)
}

// optionsOf reads a hook's Init argument: its typed options, nil for the
// defaults, or Install's config (returned as nil options).
func optionsOf[T any](config any) (o *T, ok bool) {
	switch c := config.(type) {
	case nil:
		return new(T), true
	case *T:
		if c == nil {
			return new(T), true
		}
		return c, true
	case *installConfig:
		return new(T), true
	}
	return nil, false
}
