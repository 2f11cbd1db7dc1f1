package hooks

import (
	"fmt"

	mqtt "github.com/mochi-mqtt/server/v2"

	"github.com/mqttwaf/mqttwaf/mqttwaf"
)

// Identity is the identity and ACL protection as a mochi hook: per-device
// credentials or certificate identities, lockouts against password
// guessing, client IDs bound to identities, and per-role topic permissions
// checked at publish, subscribe and every delivery. It is the server's
// authentication and ACL provider.
//
// mochi OR-s authentication and ACL hooks (the first that allows, allows),
// so Identity refuses a server that has another such hook: beside
// auth.AllowHook it would deny nothing. To keep your own authentication (a
// ledger, a database, JWT), wrap it: Identity asks it where it would check a
// password, and ANDs its ACL with the WAF's, never ORs.
//
//	// was: server.AddHook(new(auth.Hook), &auth.Options{Ledger: ledger})
//	server.AddHook(new(hooks.Identity), &hooks.IdentityOptions{Server: server,
//		Wrap: new(auth.Hook), WrapConfig: &auth.Options{Ledger: ledger}, Roles: roles})
type Identity struct{ member }

// IdentityOptions configures Identity. Server is required; the rest's zero
// value is the secure default (anonymous clients only from loopback, in a
// guest sandbox of their own client ID; see mqttwaf.IdentityPolicy).
type IdentityOptions struct {
	Shared `yaml:",inline" json:",inline"`
	// Server is the broker the hook is added to: Identity must see the
	// server's other hooks to refuse an OR-ed auth/ACL hook, now and if one
	// is added later.
	Server *mqtt.Server `yaml:"-" json:"-"`
	// Wrap is your existing authentication hook, given here instead of to
	// server.AddHook: its OnConnectAuthenticate replaces the credentials
	// file, and its OnACLCheck is ANDed with the roles; it receives no other
	// call. Identity initialises it with WrapConfig, as AddHook would.
	// Clients it admits get Identity.ExternalRole (default: guest when Roles
	// is empty).
	Wrap       mqtt.Hook                     `yaml:"-" json:"-"`
	WrapConfig any                           `yaml:"-" json:"-"`
	Identity   mqttwaf.IdentityPolicy        `yaml:"identity" json:"identity"`
	Roles      map[string]mqttwaf.RolePolicy `yaml:"roles" json:"roles"`
}

func (h *Identity) init() *member {
	h.prot, h.name = mqttwaf.ProtectIdentity, "hooks.Identity"
	return &h.member
}

// ID implements mqtt.Hook.
func (h *Identity) ID() string { return "mqttwaf.identity" }

// Init implements mqtt.Hook; config must be *IdentityOptions with Server
// set (mqtt.ErrInvalidConfigType otherwise).
func (h *Identity) Init(config any) error {
	h.init()
	if _, installed := config.(*installConfig); installed {
		return h.join(config, nil, nil, nil, nil)
	}
	o, ok := config.(*IdentityOptions)
	switch {
	case !ok || o == nil:
		return fmt.Errorf("%w: hooks.Identity needs &hooks.IdentityOptions{Server: server, ...}, got %T", mqtt.ErrInvalidConfigType, config)
	case o.Server == nil:
		return fmt.Errorf("%w: hooks.IdentityOptions.Server is nil: set it to the server the hook is added to (Identity must see the server's other auth hooks: mochi OR-s them)", mqtt.ErrInvalidConfigType)
	case o.Wrap != nil && !o.Wrap.Provides(mqtt.OnConnectAuthenticate) && !o.Wrap.Provides(mqtt.OnACLCheck):
		return fmt.Errorf("%w: hooks.IdentityOptions.Wrap (%s) decides neither authentication nor ACL: wrap your auth hook, or leave Wrap nil", mqtt.ErrInvalidConfigType, o.Wrap.ID())
	}
	if o.Wrap != nil {
		o.Wrap.SetOpts(h.Log, h.Opts)
		if err := o.Wrap.Init(o.WrapConfig); err != nil {
			return fmt.Errorf("hooks.IdentityOptions.Wrap (%s): %w", o.Wrap.ID(), err)
		}
	}
	p := o.Shared.policy()
	p.Identity, p.Roles = o.Identity, o.Roles
	if o.Wrap != nil && p.Identity.Anonymous.Allow == "" {
		p.Identity.Anonymous.Allow = "never" // the wrapped hook decides every client
	}
	if o.Wrap != nil && p.Identity.ExternalRole == "" {
		if len(p.Roles) > 0 {
			return fmt.Errorf("hooks.IdentityOptions.Identity.ExternalRole is empty: name the role (of Roles) the clients %s admits get", o.Wrap.ID())
		}
		p.Identity.ExternalRole = "guest"
	}
	return h.join(config, p, &o.Shared, o.Server, func(st *stack) error {
		if ids := foreignAuthHooks(st.server); len(ids) > 0 {
			return foreignHooksError(ids)
		}
		st.identity, st.wrap = &h.member, o.Wrap
		ownInflight(h.caps)
		return nil
	})
}
