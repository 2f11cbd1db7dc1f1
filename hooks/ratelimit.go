package hooks

import (
	"github.com/mqttwaf/mqttwaf/mqttwaf"
)

// RateLimit is the rate-limit protection as a mochi hook: publish rates
// (messages and bytes, per connection, per identity, per address, per topic),
// subscribe rates and subscription counts, and retained-store budgets, with
// escalation from refusal to disconnect to ban. Events rates.publish,
// rates.subscribe, rates.retained say 0x96 (message rate too high); a
// refused QoS>0 PUBLISH is acknowledged with 0x97 (quota exceeded), the
// nearest code MQTT 5 allows in a PUBACK, and escalation disconnects with
// 0x96.
//
//	server.AddHook(new(hooks.RateLimit), &hooks.RateLimitOptions{...}) // nil: defaults
//
// The zero value is ready to be added; it is safe for concurrent use once
// added.
type RateLimit struct{ member }

// RateLimitOptions configures RateLimit; the zero value is the secure
// default (100 msg/s and 512 KiB/s per connection, see mqttwaf.RatesPolicy).
type RateLimitOptions struct {
	Shared     `yaml:",inline" json:",inline"`
	Publish    mqttwaf.PublishRates     `yaml:"publish" json:"publish"`
	Subscribe  mqttwaf.SubscribeRates   `yaml:"subscribe" json:"subscribe"`
	Retained   mqttwaf.RetainedBudget   `yaml:"retained" json:"retained"`
	Escalation mqttwaf.EscalationPolicy `yaml:"escalation" json:"escalation"`
	// MaxKeys bounds every per-key rate table (default 20000).
	MaxKeys int `yaml:"max_keys" json:"max_keys"`
}

func (h *RateLimit) init() *member {
	h.prot, h.name = mqttwaf.ProtectRateLimit, "hooks.RateLimit"
	return &h.member
}

// ID implements mqtt.Hook.
func (h *RateLimit) ID() string { return "mqttwaf.ratelimit" }

// Init implements mqtt.Hook; config is *RateLimitOptions or nil.
func (h *RateLimit) Init(config any) error {
	h.init()
	o, ok := optionsOf[RateLimitOptions](config)
	if !ok {
		return invalid(h.name, "*hooks.RateLimitOptions", config)
	}
	p := o.Shared.policy()
	p.Rates.Publish, p.Rates.Subscribe, p.Rates.Retained, p.Rates.Escalation = o.Publish, o.Subscribe, o.Retained, o.Escalation
	p.Rates.MaxKeys = o.MaxKeys
	return h.join(config, p, &o.Shared, nil, nil)
}
