package hooks

import (
	"github.com/mqttwaf/mqttwaf/mqttwaf"
)

// Normalize is the JSON-normalisation protection as a mochi hook: for each
// topic entry, the payload's size, content type and format, and for format
// json a strict parse (duplicate and case-variant keys, bad escapes, deep
// nesting, huge numbers refused) and a canonical re-encoding, so every hook
// after it and every subscriber sees one spelling of each document. Events
// payload.size, payload.format, payload.json.
//
//	server.AddHook(new(hooks.Normalize), &hooks.NormalizeOptions{
//		Payloads: []mqttwaf.PayloadPolicy{{Topics: []string{"fleet/+/telemetry"}, Format: "json"}},
//	})
//
// Schema and Redact need it earlier in the stack: their topics must be
// covered by an entry of format json here.
type Normalize struct{ member }

// NormalizeOptions configures Normalize. Each entry's topics, format,
// max_size, content_types and json settings apply (the first entry whose
// topics cover a message's topic decides); the zero value checks only the
// MQTT 5 payload format indicator.
type NormalizeOptions struct {
	Shared   `yaml:",inline" json:",inline"`
	Payloads []mqttwaf.PayloadPolicy `yaml:"payloads" json:"payloads"`
}

func (h *Normalize) init() *member {
	h.prot, h.name = mqttwaf.ProtectNormalize, "hooks.Normalize"
	return &h.member
}

// ID implements mqtt.Hook.
func (h *Normalize) ID() string { return "mqttwaf.normalize" }

// Init implements mqtt.Hook; config is *NormalizeOptions or nil.
func (h *Normalize) Init(config any) error {
	h.init()
	o, ok := optionsOf[NormalizeOptions](config)
	if !ok {
		return invalid(h.name, "*hooks.NormalizeOptions", config)
	}
	p := o.Shared.policy()
	p.Payloads = o.Payloads
	return h.join(config, p, &o.Shared, nil, nil)
}
