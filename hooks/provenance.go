package hooks

import (
	"github.com/mqttwaf/mqttwaf/mqttwaf"
)

// Provenance is the provenance protection as a mochi hook: it stamps the
// publisher's identity into every accepted publish as an MQTT 5 user
// property (removing any property of that name the client sent), so
// subscribers can trust who published. It must be the last payload hook of
// the stack. Events provenance.
//
//	server.AddHook(new(hooks.Provenance), &hooks.ProvenanceOptions{UserProperty: "mqttwaf-publisher"})
type Provenance struct{ member }

// ProvenanceOptions configures Provenance. The zero value stamps nothing;
// set UserProperty to the property's name.
type ProvenanceOptions struct {
	Shared       `yaml:",inline" json:",inline"`
	UserProperty string `yaml:"user_property" json:"user_property"`
}

func (h *Provenance) init() *member {
	h.prot, h.name = mqttwaf.ProtectProvenance, "hooks.Provenance"
	return &h.member
}

// ID implements mqtt.Hook.
func (h *Provenance) ID() string { return "mqttwaf.provenance" }

// Init implements mqtt.Hook; config is *ProvenanceOptions or nil.
func (h *Provenance) Init(config any) error {
	h.init()
	o, ok := optionsOf[ProvenanceOptions](config)
	if !ok {
		return invalid(h.name, "*hooks.ProvenanceOptions", config)
	}
	p := o.Shared.policy()
	p.Provenance.UserProperty = o.UserProperty
	return h.join(config, p, &o.Shared, nil, nil)
}
