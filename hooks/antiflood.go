package hooks

import (
	"github.com/mqttwaf/mqttwaf/mqttwaf"
)

// AntiFlood is the anti-flood protection as a mochi hook: the ban list,
// CONNECT rates per address, network and listener, flapping bans, and
// budgets of new client IDs and new topics (so an attacker cannot invent
// millions of client IDs or topics that each publish once). Events bans,
// rates.connect, rates.flapping, rates.new_client_ids, rates.new_topics.
//
//	server.AddHook(new(hooks.AntiFlood), nil) // defaults
//
// CONNECT checks run once per CONNECT in a fixed order whatever the hook
// order (bans and connect rates before any password is hashed, flapping and
// novelty budgets after authentication, keyed by the authenticated
// identity); its publish check (new topics) runs at its place in the stack.
type AntiFlood struct{ member }

// AntiFloodOptions configures AntiFlood; the zero value is the secure
// default (see mqttwaf.RatesPolicy).
type AntiFloodOptions struct {
	Shared       `yaml:",inline" json:",inline"`
	Connect      mqttwaf.ConnectRates   `yaml:"connect" json:"connect"`
	Flapping     mqttwaf.FlappingPolicy `yaml:"flapping" json:"flapping"`
	NewClientIDs mqttwaf.NoveltyBudget  `yaml:"new_client_ids" json:"new_client_ids"`
	NewTopics    mqttwaf.TopicBudget    `yaml:"new_topics" json:"new_topics"`
	// MaxKeys bounds every per-key table (default 20000).
	MaxKeys int `yaml:"max_keys" json:"max_keys"`
}

func (h *AntiFlood) init() *member {
	h.prot, h.name = mqttwaf.ProtectAntiFlood, "hooks.AntiFlood"
	return &h.member
}

// ID implements mqtt.Hook.
func (h *AntiFlood) ID() string { return "mqttwaf.antiflood" }

// Init implements mqtt.Hook; config is *AntiFloodOptions or nil.
func (h *AntiFlood) Init(config any) error {
	h.init()
	o, ok := optionsOf[AntiFloodOptions](config)
	if !ok {
		return invalid(h.name, "*hooks.AntiFloodOptions", config)
	}
	p := o.Shared.policy()
	p.Rates.Connect, p.Rates.Flapping, p.Rates.NewClientIDs, p.Rates.NewTopics = o.Connect, o.Flapping, o.NewClientIDs, o.NewTopics
	p.Rates.MaxKeys = o.MaxKeys
	return h.join(config, p, &o.Shared, nil, nil)
}
