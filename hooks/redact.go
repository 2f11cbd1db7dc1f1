package hooks

import (
	"github.com/mqttwaf/mqttwaf/mqttwaf"
)

// Redact is the redaction protection as a mochi hook: personal data (GPS
// positions, phone numbers, names, number plates) in JSON payloads is
// masked, generalised, pseudonymised or removed on the normalised payload,
// and each subscriber receives the view its role allows (roles with view:
// raw get the payload as published). Events payload.redact.
//
//	server.AddHook(new(hooks.Redact), &hooks.RedactOptions{
//		Payloads: []mqttwaf.PayloadPolicy{{Topics: []string{"fleet/+/telemetry"},
//			Redact: mqttwaf.RedactPolicy{Detectors: []string{"phone"}}}},
//	})
//
// It must come after Normalize, and after Schema when both are stacked.
type Redact struct{ member }

// RedactOptions configures Redact. Each entry's topics and redact settings
// apply; the first entry covering a topic decides. Redaction holds what the
// entries share (the pseudonym key). The zero value redacts nothing.
type RedactOptions struct {
	Shared    `yaml:",inline" json:",inline"`
	Payloads  []mqttwaf.PayloadPolicy `yaml:"payloads" json:"payloads"`
	Redaction mqttwaf.RedactionPolicy `yaml:"redaction" json:"redaction"`
}

func (h *Redact) init() *member {
	h.prot, h.name = mqttwaf.ProtectRedact, "hooks.Redact"
	return &h.member
}

// ID implements mqtt.Hook.
func (h *Redact) ID() string { return "mqttwaf.redact" }

// Init implements mqtt.Hook; config is *RedactOptions or nil.
func (h *Redact) Init(config any) error {
	h.init()
	o, ok := optionsOf[RedactOptions](config)
	if !ok {
		return invalid(h.name, "*hooks.RedactOptions", config)
	}
	p := o.Shared.policy()
	p.Payloads, p.Redaction = o.Payloads, o.Redaction
	return h.join(config, p, &o.Shared, nil, nil)
}
