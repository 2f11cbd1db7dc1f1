package hooks

import (
	"github.com/mqttwaf/mqttwaf/mqttwaf"
)

// Schema is the payload-contract protection as a mochi hook: field rules
// on gjson paths, a JSON Schema, and plausibility against each device's own
// history, checked on the normalised payload. A message that breaks its
// contract is refused with 0x99 (payload format invalid); events
// payload.schema, payload.plausibility.
//
//	server.AddHook(new(hooks.Normalize), normalizeOptions) // first
//	server.AddHook(new(hooks.Schema), &hooks.SchemaOptions{
//		Payloads: []mqttwaf.PayloadPolicy{{Topics: []string{"fleet/+/telemetry"}, Schema: "telemetry.json"}},
//	})
//
// It must come after Normalize (the stack is refused otherwise), and a
// message on one of its topics that Normalize did not check as JSON is
// refused (payload_not_normalized).
type Schema struct{ member }

// SchemaOptions configures Schema. Each entry's topics, fields, schema,
// schema_draft, exact_field_paths and plausibility apply; the first entry
// covering a topic decides. The zero value checks nothing.
type SchemaOptions struct {
	Shared   `yaml:",inline" json:",inline"`
	Payloads []mqttwaf.PayloadPolicy `yaml:"payloads" json:"payloads"`
}

func (h *Schema) init() *member {
	h.prot, h.name = mqttwaf.ProtectSchema, "hooks.Schema"
	return &h.member
}

// ID implements mqtt.Hook.
func (h *Schema) ID() string { return "mqttwaf.schema" }

// Init implements mqtt.Hook; config is *SchemaOptions or nil.
func (h *Schema) Init(config any) error {
	h.init()
	o, ok := optionsOf[SchemaOptions](config)
	if !ok {
		return invalid(h.name, "*hooks.SchemaOptions", config)
	}
	p := o.Shared.policy()
	p.Payloads = o.Payloads
	return h.join(config, p, &o.Shared, nil, nil)
}
