package hooks

import (
	"fmt"

	mqtt "github.com/mochi-mqtt/server/v2"

	"github.com/mqttwaf/mqttwaf/mqttwaf"
)

// Hardening is the broker-hardening protection as a mochi hook: it sets
// the broker's capabilities to safe limits (packet size, connections,
// topic aliases, session and message expiry, queues, in-flight), clamps
// keepalives and session expiry, bounds client IDs, topics and properties,
// guards persistent sessions against takeover by another identity, and
// holds Last Wills to the publish rules. Events connections.*, limits.*,
// sessions.takeover, wills.
//
//	server.AddHook(new(hooks.Hardening), &hooks.HardeningOptions{Server: server})
//
// Add it before Serve: it applies Broker to the server's capabilities.
type Hardening struct{ member }

// HardeningOptions configures Hardening; apart from Server, the zero value
// is the secure default (see mqttwaf.Policy's sections of the same names).
type HardeningOptions struct {
	Shared `yaml:",inline" json:",inline"`
	// Server is the broker the hook is added to (required unless another
	// hook of the stack names it): the takeover guard looks up who owns a
	// client ID's existing session there.
	Server      *mqtt.Server                        `yaml:"-" json:"-"`
	Broker      mqttwaf.BrokerPolicy                `yaml:"broker" json:"broker"`
	Connections mqttwaf.ConnectionPolicy            `yaml:"connections" json:"connections"`
	Listeners   map[string]mqttwaf.ConnectionPolicy `yaml:"listeners" json:"listeners"`
	Limits      mqttwaf.LimitsPolicy                `yaml:"limits" json:"limits"`
	Sessions    mqttwaf.SessionsPolicy              `yaml:"sessions" json:"sessions"`
	Wills       mqttwaf.WillsPolicy                 `yaml:"wills" json:"wills"`
	Responses   mqttwaf.ResponsesPolicy             `yaml:"responses" json:"responses"`
}

func (h *Hardening) init() *member {
	h.prot, h.name = mqttwaf.ProtectHardening, "hooks.Hardening"
	return &h.member
}

// ID implements mqtt.Hook.
func (h *Hardening) ID() string { return "mqttwaf.hardening" }

// Init implements mqtt.Hook; config is *HardeningOptions (nil works when
// another hook of the stack set Server).
func (h *Hardening) Init(config any) error {
	h.init()
	o, ok := optionsOf[HardeningOptions](config)
	if !ok {
		return invalid(h.name, "*hooks.HardeningOptions", config)
	}
	p := o.Shared.policy()
	p.Broker, p.Connections, p.Listeners, p.Limits = o.Broker, o.Connections, o.Listeners, o.Limits
	p.Sessions, p.Wills, p.Responses = o.Sessions, o.Wills, o.Responses
	needServer := func(st *stack) error {
		if st.server == nil {
			return fmt.Errorf("%w: hooks.HardeningOptions.Server is nil: set it to the server the hook is added to (the takeover guard must see its sessions)", mqtt.ErrInvalidConfigType)
		}
		return nil
	}
	if err := h.join(config, p, &o.Shared, o.Server, needServer); err != nil {
		return err
	}
	if _, installed := config.(*installConfig); !installed && h.caps != nil {
		applyCapabilities(h.caps, h.st.waf.Policy())
	}
	return nil
}
