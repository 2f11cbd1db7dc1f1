package mqttwaf

import (
	"errors"
	"fmt"
	"slices"
)

// Protection names one of the WAF's protections: a group of rules that a
// broker can run alone or stacked with others (the hooks package has one
// mochi hook type per protection). A policy file runs every protection, in
// the order of Protections; a hand-built stack (NewStack) runs the ones it
// lists, in its own order.
type Protection string

// The protections, in the order a policy runs them.
const (
	// ProtectHardening: connection caps, keepalive and session-expiry
	// clamps, limits on client IDs, topics and properties, session
	// takeover, Last Wills. Policy sections: broker, connections,
	// listeners, limits, sessions, wills, responses.
	ProtectHardening Protection = "hardening"
	// ProtectAntiFlood: bans, CONNECT rates, flapping, budgets of new
	// client IDs and new topics. Sections: rates.connect, rates.flapping,
	// rates.new_client_ids, rates.new_topics.
	ProtectAntiFlood Protection = "antiflood"
	// ProtectRateLimit: publish, subscribe and retained-store rates, and
	// their escalation. Sections: rates.publish, rates.subscribe,
	// rates.retained, rates.escalation.
	ProtectRateLimit Protection = "ratelimit"
	// ProtectIdentity: lockouts, authentication, client-ID binding, the
	// ACL. Sections: identity, roles.
	ProtectIdentity Protection = "identity"
	// ProtectNormalize: payload size, format and content type, JSON
	// checked and normalised. Section: payloads (format, max_size,
	// content_types, json).
	ProtectNormalize Protection = "normalize"
	// ProtectSchema: field rules, JSON Schema, plausibility. Section:
	// payloads (fields, schema, plausibility).
	ProtectSchema Protection = "schema"
	// ProtectRedact: redaction and per-subscriber views. Sections:
	// payloads (redact), redaction.
	ProtectRedact Protection = "redact"
	// ProtectProvenance stamps the publisher's identity. Section:
	// provenance.
	ProtectProvenance Protection = "provenance"
)

// Protections lists every protection in the order a policy runs them.
func Protections() []Protection {
	return []Protection{ProtectHardening, ProtectAntiFlood, ProtectRateLimit, ProtectIdentity,
		ProtectNormalize, ProtectSchema, ProtectRedact, ProtectProvenance}
}

// A Layer is one protection of a hand-built stack and its settings: the
// protection reads its own sections of Policy (see Protection) and ignores
// the rest. Mode, events and addresses are shared by the whole stack: set
// them in any one layer (two layers that set them differently are refused).
type Layer struct {
	Protection Protection
	// Name is how errors name the layer (the hook type, such as
	// "hooks.Schema"); the protection's name if empty.
	Name string
	// Policy holds the settings; nil means defaults.
	Policy *Policy
}

// stackRule is an ordering the stack must respect: before must come earlier
// than after whenever both are present, and when requires is set, after
// needs before in the stack at all.
type stackRule struct {
	before, after Protection
	requires      bool
	why           string
}

var stackRules = []stackRule{
	{ProtectNormalize, ProtectSchema, true, "a payload must be checked as JSON and normalised before its schema is checked (duplicate keys, escapes and case variants would otherwise reach the schema unseen)"},
	{ProtectNormalize, ProtectRedact, true, "redaction works on the normalised payload (escapes could otherwise hide a value from it)"},
	{ProtectSchema, ProtectRedact, false, "a payload is redacted after it is validated, so the contract is checked on what the publisher sent"},
	{ProtectIdentity, ProtectNormalize, false, "the ACL decides before the payload is read, so a refused publisher learns nothing of the payload contract"},
	{ProtectIdentity, ProtectSchema, false, "the ACL decides before the payload is read, so a refused publisher learns nothing of the payload contract"},
	{ProtectIdentity, ProtectRedact, false, "the ACL decides before the payload is read"},
	{ProtectNormalize, ProtectProvenance, false, "the provenance stamp is the last change to a message"},
	{ProtectSchema, ProtectProvenance, false, "the provenance stamp is the last change to a message"},
	{ProtectRedact, ProtectProvenance, false, "the provenance stamp is the last change to a message"},
}

func (l Layer) name() string {
	if l.Name != "" {
		return l.Name
	}
	return string(l.Protection)
}

// checkStack refuses a stack that cannot be safe: an unknown or repeated
// protection, or an order that would check a payload before it is
// normalised, redact it before it is validated, and so on (stackRules).
func checkStack(layers []Layer) error {
	at := map[Protection]int{}
	for i, l := range layers {
		if !slices.Contains(Protections(), l.Protection) {
			return fmt.Errorf("mqttwaf: unknown protection %q", l.Protection)
		}
		if j, dup := at[l.Protection]; dup {
			return fmt.Errorf("mqttwaf: %s is in the stack twice (positions %d and %d): add each protection once", l.name(), j+1, i+1)
		}
		at[l.Protection] = i
	}
	var errs []error
	for _, r := range stackRules {
		a, hasA := at[r.before]
		b, hasB := at[r.after]
		switch {
		case hasB && !hasA && r.requires:
			errs = append(errs, fmt.Errorf("mqttwaf: %s needs %s earlier in the stack: %s; add it before %s",
				layers[b].name(), nameOf(r.before), r.why, layers[b].name()))
		case hasA && hasB && a > b:
			errs = append(errs, fmt.Errorf("mqttwaf: %s must come before %s: %s; add %s first",
				layers[a].name(), layers[b].name(), r.why, layers[a].name()))
		}
	}
	return errors.Join(errs...)
}

// nameOf is the hook type of a protection, for messages about a missing one.
func nameOf(p Protection) string {
	names := map[Protection]string{ProtectHardening: "hooks.Hardening", ProtectAntiFlood: "hooks.AntiFlood",
		ProtectRateLimit: "hooks.RateLimit", ProtectIdentity: "hooks.Identity", ProtectNormalize: "hooks.Normalize",
		ProtectSchema: "hooks.Schema", ProtectRedact: "hooks.Redact", ProtectProvenance: "hooks.Provenance"}
	return names[p]
}

// policyLayers is the stack a policy file describes: every protection, in
// the order of Protections, each reading its sections of p.
func policyLayers(p *Policy) []Layer {
	var ls []Layer
	for _, pr := range Protections() {
		ls = append(ls, Layer{Protection: pr, Policy: p})
	}
	return ls
}

// compose builds the one policy a stack runs: each layer contributes the
// sections its protection owns. A policy's own layers give back the
// policy itself, so a policy file and the same protections stacked by hand
// run the same compiled rules.
func compose(layers []Layer) (*Policy, error) {
	out := &Policy{}
	var errs []error
	// Payload layers that share one policy (a policy file) share its
	// entries; a layer with a policy of its own has entries of its own.
	payloadUsers := map[*Policy]int{}
	for _, l := range layers {
		if isPayload(l.Protection) {
			payloadUsers[l.Policy]++
		}
	}
	payloadsAdded := map[*Policy]bool{}
	var setBy [4]string // mode, events, addresses, state
	shared := func(i int, name string, set bool, apply func()) {
		if !set {
			return
		}
		if setBy[i] != "" && setBy[i] != name {
			errs = append(errs, fmt.Errorf("mqttwaf: %s and %s both set the stack's %s: set it on one hook only",
				setBy[i], name, [...]string{"mode", "events", "addresses", "state"}[i]))
			return
		}
		setBy[i] = name
		apply()
	}
	for _, l := range layers {
		p := l.Policy
		if p == nil {
			p = &Policy{}
		}
		name := l.name()
		if out.baseDir == "" {
			out.baseDir = p.baseDir
		}
		shared(0, name, p.Mode != "" && p.Mode != out.Mode, func() { out.Mode = p.Mode })
		shared(1, name, p.Events != (EventsPolicy{}) && p.Events != out.Events, func() { out.Events = p.Events })
		shared(2, name, p.Addresses != (AddressesPolicy{}) && p.Addresses != out.Addresses, func() { out.Addresses = p.Addresses })
		shared(3, name, !p.State.equal(StatePolicy{}) && !p.State.equal(out.State), func() { out.State = p.State })
		q := p.clone()
		switch l.Protection {
		case ProtectHardening:
			out.Broker, out.Connections, out.Listeners = q.Broker, q.Connections, q.Listeners
			out.Limits, out.Sessions, out.Wills, out.Responses = q.Limits, q.Sessions, q.Wills, q.Responses
		case ProtectAntiFlood:
			r := &out.Rates
			r.Connect, r.Flapping, r.NewClientIDs, r.NewTopics = q.Rates.Connect, q.Rates.Flapping, q.Rates.NewClientIDs, q.Rates.NewTopics
			r.Off = r.Off || q.Rates.Off
			errs = append(errs, mergeMaxKeys(r, q.Rates.MaxKeys, name))
		case ProtectRateLimit:
			r := &out.Rates
			r.Publish, r.Subscribe, r.Retained, r.Escalation = q.Rates.Publish, q.Rates.Subscribe, q.Rates.Retained, q.Rates.Escalation
			r.Off = r.Off || q.Rates.Off
			errs = append(errs, mergeMaxKeys(r, q.Rates.MaxKeys, name))
		case ProtectIdentity:
			out.Identity, out.Roles = q.Identity, q.Roles
		case ProtectNormalize, ProtectSchema, ProtectRedact:
			if l.Protection == ProtectRedact {
				out.Redaction = q.Redaction
			}
			if payloadsAdded[l.Policy] && l.Policy != nil {
				break
			}
			payloadsAdded[l.Policy] = true
			own := l.Policy == nil || payloadUsers[l.Policy] == 1
			out.Payloads = mergePayloads(out.Payloads, q.Payloads, l.Protection, name, own)
		case ProtectProvenance:
			out.Provenance = q.Provenance
		}
	}
	if err := errors.Join(errs...); err != nil {
		return nil, err
	}
	return out, nil
}

func mergeMaxKeys(r *RatesPolicy, n int, name string) error {
	if n != 0 && r.MaxKeys != 0 && r.MaxKeys != n {
		return fmt.Errorf("mqttwaf: %s sets rates max_keys %d and another hook %d: set it on one hook only", name, n, r.MaxKeys)
	}
	if n != 0 {
		r.MaxKeys = n
	}
	return nil
}

func isPayload(p Protection) bool {
	return p == ProtectNormalize || p == ProtectSchema || p == ProtectRedact
}

// mergePayloads adds a layer's payload entries to the composed list. The
// entries of a policy file are shared by the three payload protections
// (each reads its own fields of an entry); a hook with entries of its own
// (own) has them marked with the one protection that reads them, and
// named by the hook in messages ("hooks.Schema payloads[0]").
func mergePayloads(out, in []PayloadPolicy, pr Protection, name string, own bool) []PayloadPolicy {
	for i, pp := range in {
		if own {
			pp.only, pp.at = pr, fmt.Sprintf("%s payloads[%d]", name, i)
			if pr != ProtectNormalize && pp.Format == "" {
				pp.Format = "json" // schema and redaction entries read JSON
			}
		}
		out = append(out, pp)
	}
	return out
}
