package mqttwaf

import (
	"bytes"
	"errors"
	"fmt"
	"path/filepath"
	"reflect"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/mqttwaf/mqttwaf/mqttwaf/schema"
	"github.com/mqttwaf/mqttwaf/normalize"
	"github.com/mqttwaf/mqttwaf/redact"
)

// PayloadPolicy is what messages on some topics must look like. The first
// entry of Policy.Payloads whose topics cover a message's topic applies to
// it; later entries are not consulted (put specific filters first).
type PayloadPolicy struct {
	// Topics are the topic filters (templates allowed) the entry applies to.
	Topics []string `yaml:"topics" json:"topics"`
	// Format is any (default: bytes, unchecked), text (valid UTF-8, no NUL)
	// or json (checked and normalised as JSON says).
	Format string `yaml:"format" json:"format"`
	// MaxSize bounds the payload (default 128KiB, AWS IoT's limit; 0x97).
	MaxSize ByteSize `yaml:"max_size" json:"max_size"`
	// ContentTypes, if set, is the allow-list for the MQTT 5 content type:
	// a message with payload format indicator 1, or with a content type,
	// must carry one of these.
	ContentTypes []string `yaml:"content_types" json:"content_types"`
	// JSON configures the JSON firewall for format json.
	JSON JSONPolicy `yaml:"json" json:"json"`
	// Schema is a JSON Schema file (drafts 2020-12 and 07, $ref across
	// local files; relative to the policy file) the payload must satisfy
	// (format json only). SchemaDraft is the draft of schemas without
	// $schema (default 2020-12).
	Schema      string `yaml:"schema" json:"schema"`
	SchemaDraft string `yaml:"schema_draft" json:"schema_draft"`
	// Fields are fast checks on gjson paths (required, type, min/max,
	// length, pattern, enum), evaluated before the schema without decoding
	// the document: prefer them on hot topics. A path matches keys the way
	// case-insensitive back ends read them (DATA.LAT also checks "lat" and
	// the objects of an array at DATA) unless ExactFieldPaths.
	Fields []schema.FieldRule `yaml:"fields" json:"fields"`
	// ExactFieldPaths matches the paths of Fields key by key, case and
	// Unicode form as written, and not through arrays: only for back ends
	// that read keys exactly.
	ExactFieldPaths bool `yaml:"exact_field_paths" json:"exact_field_paths"`
	// Plausibility checks each message against its device's (client ID's)
	// own history: timestamps, speed between positions, replays.
	Plausibility schema.PlausibilityOptions `yaml:"plausibility" json:"plausibility"`
	// Redact hides personal data (format json only), on the normalised
	// payload, so escapes cannot hide a value from it.
	Redact RedactPolicy `yaml:"redact" json:"redact"`

	// only is the one protection that reads the entry, when it belongs to
	// one hook of a hand-built stack (see compose); at is then its place.
	only Protection
	at   string
}

// path is where messages place the entry: "payloads[i]" in a policy file,
// "hooks.Schema payloads[i]" in a hand-built stack.
func (p *PayloadPolicy) path(i int) string {
	if p.at != "" {
		return p.at
	}
	return fmt.Sprintf("payloads[%d]", i)
}

func (p *PayloadPolicy) schemaOptions(baseDir string) schema.Options {
	file := p.Schema
	if file != "" && !filepath.IsAbs(file) && baseDir != "" {
		file = filepath.Join(baseDir, file)
	}
	return schema.Options{Schema: file, Draft: p.SchemaDraft, Fields: p.Fields, ExactPaths: p.ExactFieldPaths}
}

func (p *PayloadPolicy) validates() bool { return p.Schema != "" || len(p.Fields) > 0 }

func (p *PayloadPolicy) plausible() bool {
	return p.Plausibility != (schema.PlausibilityOptions{})
}

// JSONPolicy configures the normalize engine for one payload entry.
type JSONPolicy struct {
	// Profile is i-json (default: RFC 7493, valid UTF-8 only, no lone
	// surrogates, no duplicate keys) or rfc8259.
	Profile string `yaml:"profile" json:"profile"`
	// ExactKeys compares keys byte for byte when looking for duplicates.
	// By default keys equal after Unicode case folding and NFKC are
	// duplicates too ("lat", "LAT", "ＬＡＴ"): back ends that match keys
	// case-insensitively (encoding/json, many others) would read the one a
	// check did not. Set it only if every consumer matches keys exactly.
	ExactKeys bool `yaml:"exact_keys" json:"exact_keys"`
	// Output is compact (default: insignificant whitespace removed,
	// unnecessary escapes decoded), validate (forward the bytes as
	// received) or jcs (RFC 8785: also sorted keys, ECMAScript numbers).
	Output string `yaml:"output" json:"output"`
	// BigNumbers is reject (default: integers beyond 2^53 and floats that
	// overflow binary64) or keep.
	BigNumbers string `yaml:"big_numbers" json:"big_numbers"`
	// Limits (defaults in parentheses).
	MaxDepth        int      `yaml:"max_depth" json:"max_depth"`                 // nesting (32)
	MaxMembers      int      `yaml:"max_members" json:"max_members"`             // per object (1000)
	MaxElements     int      `yaml:"max_elements" json:"max_elements"`           // per array (10000)
	MaxStringBytes  ByteSize `yaml:"max_string_bytes" json:"max_string_bytes"`   // per string (64KiB)
	MaxNumberDigits int      `yaml:"max_number_digits" json:"max_number_digits"` // per number (100)
}

func (p *PayloadPolicy) applyDefaults() {
	setDefault(&p.Format, "any")
	setDefault(&p.MaxSize, 128<<10)
	j := &p.JSON
	setDefault(&j.Profile, string(normalize.ProfileIJSON))
	setDefault(&j.Output, string(normalize.OutputCompact))
	setDefault(&j.BigNumbers, string(normalize.NumbersReject))
	setDefault(&j.MaxDepth, normalize.DefaultMaxDepth)
	setDefault(&j.MaxMembers, normalize.DefaultMaxMembers)
	setDefault(&j.MaxElements, normalize.DefaultMaxElements)
	setDefault(&j.MaxStringBytes, normalize.DefaultMaxStringBytes)
	setDefault(&j.MaxNumberDigits, normalize.DefaultMaxNumberDigits)
}

func (p *PayloadPolicy) normalizeOptions() normalize.Options {
	j := p.JSON
	return normalize.Options{
		Profile: normalize.Profile(j.Profile), ExactKeys: j.ExactKeys, Output: normalize.Output(j.Output),
		BigNumbers: normalize.NumberPolicy(j.BigNumbers), MaxBytes: int(p.MaxSize), MaxDepth: j.MaxDepth,
		MaxMembers: j.MaxMembers, MaxElements: j.MaxElements, MaxStringBytes: int(j.MaxStringBytes),
		MaxNumberDigits: j.MaxNumberDigits,
	}
}

func (p *PayloadPolicy) validate(fe *fieldErrors, at string, maxPacket ByteSize) {
	if len(p.Topics) == 0 {
		fe.add(at+".topics", "list the topic filters this entry applies to")
	}
	for i, t := range p.Topics {
		if _, err := CompileTemplate(t); err != nil {
			fe.add(fmt.Sprintf("%s.topics[%d]", at, i), "%v", err)
		} else if strings.Contains(t, "{") {
			// Deliveries must find the entry from the topic alone.
			fe.add(fmt.Sprintf("%s.topics[%d]", at, i), "payload entries take plain topic filters, without {variables}")
		}
	}
	if (p.validates() || p.plausible()) && p.Format != "json" {
		fe.add(at, "schema, fields and plausibility check JSON: set format: json")
	}
	if len(p.Fields) > 0 {
		// The fields alone: the schema file is read when the policy is compiled.
		if _, err := schema.New(schema.Options{Fields: p.Fields, Draft: p.SchemaDraft}); err != nil {
			fe.addOption(at, reflect.TypeFor[schema.Options](), err)
		}
	} else if p.ExactFieldPaths {
		fe.add(at+".exact_field_paths", "applies to the paths of fields, and there are none: remove it or add fields")
	}
	if p.plausible() {
		if _, err := schema.NewPlausibility(p.Plausibility); err != nil {
			fe.addOption(at+".plausibility", reflect.TypeFor[schema.PlausibilityOptions](), err)
		}
	}
	if p.Redact.enabled() {
		if p.Format != "json" {
			fe.add(at+".redact", "redaction works on JSON: set format: json")
		}
		if _, err := redact.New(p.Redact.options(placeholderKey)); err != nil {
			var ce *redact.ConfigError
			if errors.As(err, &ce) {
				fe.add(at+".redact."+ce.Field, "%s", ce.Msg) // rules and detectors are the policy's, index for index
			} else {
				fe.add(at+".redact", "%v", err)
			}
		}
	}
	if p.Redact.ExactPaths && len(p.Redact.Rules) == 0 {
		fe.add(at+".redact.exact_paths", "applies to the paths of redact.rules, and there are none: remove it or add rules")
	}
	if p.Redact.KeepProperties.set() && !p.Redact.enabled() {
		fe.add(at+".redact.keep_properties", "applies to redacted views, and this entry redacts nothing: add redact.rules or redact.detectors, or remove it")
	}
	p.Redact.KeepProperties.validate(fe, at+".redact.keep_properties")
	fe.oneOf(at+".format", p.Format, "any", "text", "json")
	fe.intRange(at+".max_size", int64(p.MaxSize), 1, int64(maxPacket))
	for i, ct := range p.ContentTypes {
		if ct == "" || hasControl(ct) {
			fe.add(fmt.Sprintf("%s.content_types[%d]", at, i), "must be a MIME type such as application/json")
		}
	}
	if _, err := normalize.New(p.normalizeOptions()); err != nil {
		fe.addOption(at+".json", reflect.TypeFor[normalize.Options](), err)
	}
}

// payloadEntry is a compiled PayloadPolicy.
type payloadEntry struct {
	only     Protection // the one protection that reads the entry, or "" for every one
	at       string     // the entry's place, for messages ("payloads[2]")
	topics   []*Template
	format   string
	maxSize  int
	types    []string
	json     *normalize.Normalizer
	validate bool // JSON output validate: no rewrite
	// strict: what json accepts without a number exponent is what the
	// schema decoder would accept (see jsonStrict); trusts: schema skips
	// its decoder for such a payload.
	strict, trusts bool
	schema         *schema.Validator
	history        *schema.Plausibility
	redactor       *redact.Redactor
	// keep and token describe the entry's redacted view: the properties it
	// keeps, and the marker of a payload stored as this view (see views).
	keep  keepProps
	token string
}

// payloads checks, normalises and redacts payloads: the first entry
// covering the topic decides; messages on other topics only have their MQTT
// 5 payload format indicator honoured (1 = must be valid UTF-8).
type payloads struct {
	now     func() time.Time
	entries []*payloadEntry
	views   *views // set whenever an entry redacts (compileViews)
}

func compilePayloads(p *Policy, now func() time.Time, viewKey []byte) (*payloads, error) {
	r := &payloads{now: now}
	if p.Provenance.UserProperty == viewMarker {
		return nil, fmt.Errorf("provenance.user_property: %q is reserved for the WAF's own use: choose another name", viewMarker)
	}
	var key redact.Secret
	for _, pp := range p.Payloads {
		if pp.Redact.usesPseudonym() {
			k, err := p.pseudonymKey()
			if err != nil {
				return nil, err
			}
			if k == "" {
				return nil, errors.New("a pseudonym operator needs a key: set redaction.pseudonym_key_file or redaction.pseudonym_key_env")
			}
			key = k
			break
		}
	}
	for i := range p.Payloads {
		pp := &p.Payloads[i]
		e := &payloadEntry{only: pp.only, at: pp.path(i), format: pp.Format, maxSize: int(pp.MaxSize), types: pp.ContentTypes,
			validate: pp.JSON.Output == string(normalize.OutputValidate)}
		for _, t := range pp.Topics {
			ct, _ := CompileTemplate(t) // validated
			e.topics = append(e.topics, ct)
		}
		if e.format == "json" {
			n, err := normalize.New(pp.normalizeOptions())
			if err != nil {
				return nil, fmt.Errorf("payloads[%d].json: %w", i, err)
			}
			e.json = n
			// I-JSON refuses invalid UTF-8, lone surrogates and duplicate
			// keys, as the schema decoder does; its depth and digit limits
			// must be within the decoder's (a number without exponent has
			// at most two characters besides its digits); JCS rewrites
			// numbers, so its output is not covered.
			b, j := schema.DefaultBounds(), pp.JSON
			e.strict = j.Profile == string(normalize.ProfileIJSON) && j.Output != string(normalize.OutputJCS) &&
				j.MaxDepth <= b.MaxDepth && j.MaxNumberDigits+2 <= b.MaxNumberLen
		}
		if pp.validates() {
			v, err := schema.New(pp.schemaOptions(p.baseDir))
			if err != nil {
				return nil, fmt.Errorf("payloads[%d]: %w", i, err)
			}
			e.schema = v
			e.trusts = v.Bounds() == schema.DefaultBounds()
		}
		if pp.plausible() {
			h, err := schema.NewPlausibility(pp.Plausibility)
			if err != nil {
				return nil, fmt.Errorf("payloads[%d].plausibility: %w", i, err)
			}
			e.history = h
		}
		if pp.Redact.enabled() {
			rd, err := redact.New(pp.Redact.options(key))
			if err != nil {
				return nil, fmt.Errorf("payloads[%d].redact: %w", i, err)
			}
			e.redactor = rd
			e.keep = compileKeep(pp.Redact.KeepProperties, p.Provenance.UserProperty, pp.ContentTypes)
			e.token = viewToken(viewKey, pp.Redact, key)
		}
		r.entries = append(r.entries, e)
	}
	return r, nil
}

// entryFor returns the first entry covering topic that pr reads, or nil.
func (r *payloads) entryFor(topic string, c *Client, pr Protection) *payloadEntry {
	for _, e := range r.entries {
		if e.only != "" && e.only != pr {
			continue
		}
		for _, t := range e.topics {
			if t.Covers(topic, c) {
				return e
			}
		}
	}
	return nil
}

// deletesRetained reports whether m is a retained PUBLISH with an empty
// payload, which deletes the topic's retained message (MQTT 3.3.1.3). It
// carries no data to check, and refusing it would keep a retained message,
// personal data perhaps, that its publisher wants gone.
func deletesRetained(m *Message) bool { return m.Retain && len(m.Payload) == 0 }

// payloadFormat is the normalize protection: the payload format indicator,
// size, content type and format of a message, its JSON checked and
// normalised. Its verdicts name what they checked: payload.format,
// payload.size, payload.json.
type payloadFormat struct{ *payloads }

func (*payloadFormat) ID() string { return "payload.json" }

func (r *payloadFormat) CheckPublish(p *Publish) Verdict {
	m := p.Message
	if deletesRetained(m) {
		return Verdict{}
	}
	if m.Props.PayloadFormatSet && m.Props.PayloadFormat == 1 && !validText(m.Payload) {
		return Deny("payload.format", "payload_not_utf8", CodePayloadFormatInvalid) // the publisher said it was text
	}
	e := r.entryFor(m.Topic, p.Client, ProtectNormalize)
	if e == nil {
		return Verdict{}
	}
	if len(m.Payload) > e.maxSize {
		return OverLimit("payload.size", "payload_too_large", CodeQuotaExceeded, int64(len(m.Payload)), int64(e.maxSize))
	}
	if len(e.types) > 0 && (m.Props.ContentType != "" || m.Props.PayloadFormatSet && m.Props.PayloadFormat == 1) {
		ok := false
		for _, t := range e.types {
			ok = ok || t == m.Props.ContentType
		}
		if !ok {
			return Deny("payload.format", "content_type_not_allowed", CodePayloadFormatInvalid)
		}
	}
	switch e.format {
	case "text":
		if !validText(m.Payload) {
			return Deny("payload.format", "payload_not_utf8", CodePayloadFormatInvalid)
		}
	case "json":
		p.json = jsonFailed
		out, facts, err := e.json.AppendFacts(p.Scratch(), m.Payload)
		if err != nil {
			v := Deny("payload.json", string(normalize.ReasonOf(err)), CodePayloadFormatInvalid)
			if ne, ok := err.(*normalize.Error); ok {
				v.Detail = "at byte " + strconv.Itoa(ne.Offset)
			}
			if v.Reason == "" {
				v.Reason = "invalid_json"
			}
			return v
		}
		p.json = jsonChecked
		if e.strict && !facts.Exponent {
			p.json = jsonStrict
		}
		if e.validate || bytes.Equal(out, m.Payload) {
			p.Recycle(out) // already canonical: forward the bytes as received
			return Verdict{}
		}
		p.SetPayload(out)
		return Verdict{Action: Rewrite, Reason: "json_normalized", Value: int64(len(out))}
	}
	return Verdict{}
}

// jsonState is what the normalize protection found of a message's JSON.
type jsonState uint8

const (
	jsonUnchecked jsonState = iota // no normalize entry read it as JSON
	jsonChecked                    // valid, and normalised unless json.output is validate
	jsonFailed                     // refused (reported by payload.json)
	// jsonStrict is jsonChecked by an entry whose checks cover the schema
	// decoder's (payloadEntry.strict) on a payload without number exponents
	// (their size is the one thing I-JSON leaves unbounded), so the schema
	// protection does not decode it again.
	jsonStrict
)

// needsJSON is the verdict of a schema or redact entry on a message the
// normalize protection did not check as JSON: refused, because checking or
// redacting raw bytes could be fooled by escapes and duplicate keys. A
// message payload.json already refused (in detection-only mode) is
// passed over: its failure is reported once.
func needsJSON(rule string, p *Publish, e *payloadEntry) (Verdict, bool) {
	switch p.json {
	case jsonChecked, jsonStrict:
		return Verdict{}, true
	case jsonFailed:
		return Verdict{}, false
	}
	v := Deny(rule, "payload_not_normalized", CodePayloadFormatInvalid)
	v.Detail = e.at + " applies to this topic but no normalize entry with format json does: add the topic to hooks.Normalize (a payloads entry with format: json)"
	return v, false
}

// payloadSchema is the schema protection: field rules and the JSON Schema
// on the canonical bytes, then plausibility, last, so only a message that
// passed everything else enters the device's history.
type payloadSchema struct{ *payloads }

func (*payloadSchema) ID() string { return "payload.schema" }

func (r *payloadSchema) CheckPublish(p *Publish) Verdict {
	if deletesRetained(p.Message) {
		return Verdict{}
	}
	e := r.entryFor(p.Message.Topic, p.Client, ProtectSchema)
	if e == nil || e.schema == nil && e.history == nil {
		return Verdict{}
	}
	if v, ok := needsJSON("payload.schema", p, e); !ok {
		return v
	}
	if e.schema != nil {
		validate := e.schema.Validate
		if p.json == jsonStrict && e.trusts {
			validate = e.schema.ValidateChecked // checked as strictly already: one reading fewer
		}
		if err := validate(p.Message.Payload); err != nil {
			return contractVerdict("payload.schema", err)
		}
	}
	if e.history != nil && !p.Will {
		if err := e.history.Check(r.now(), p.Client.ID, p.Message.Payload); err != nil {
			return contractVerdict("payload.plausibility", err)
		}
	}
	return Verdict{}
}

// payloadRedact is the redact protection (see redact).
type payloadRedact struct{ *payloads }

func (*payloadRedact) ID() string { return "payload.redact" }

func (r *payloadRedact) CheckPublish(p *Publish) Verdict {
	if deletesRetained(p.Message) {
		return Verdict{}
	}
	e := r.entryFor(p.Message.Topic, p.Client, ProtectRedact)
	if e == nil || e.redactor == nil {
		return Verdict{}
	}
	if v, ok := needsJSON("payload.redact", p, e); !ok {
		return v
	}
	return r.redact(p, e)
}

// contractVerdict refuses a payload that broke its contract: the rule,
// the keyword as reason, and where, never the values (0x99).
func contractVerdict(rule string, err error) Verdict {
	v := Verdict{Action: Reject, Rule: rule, Reason: "invalid", Code: CodePayloadFormatInvalid}
	var ve *schema.ValidationError
	if errors.As(err, &ve) {
		v.Reason = ve.Keyword
		v.Detail = ve.Message
		if ve.Path != "" {
			v.Detail = "at " + ve.Path + ": " + ve.Message
		}
	}
	return v
}

// redact runs the entry's redaction on the (normalised) payload and makes
// the message's redacted view (see views). With a raw role anywhere the
// message keeps its raw payload and properties, and the view is cached for
// the deliveries to everyone else (WAF.ViewMessage). Without one the view
// replaces the message: the redacted payload, and the marker in place of
// the user properties the view removes, so the raw data is neither
// retained nor queued (the response topic, correlation data and content
// type are removed at delivery). A message that already carries the
// marker of these rules (a Last Will checked at CONNECT, checked again when
// it is sent) is not redacted twice.
func (r *payloads) redact(p *Publish, e *payloadEntry) Verdict {
	if _, marker := unmark(p.Message.Props.User); marker == e.token {
		return Verdict{}
	}
	vw := r.views
	in := p.Message.Payload
	out, report, err := e.redactor.Apply(p.Scratch(), in)
	if err != nil {
		p.Recycle(out)
		v := Deny("", "redaction_failed", CodePayloadFormatInvalid)
		v.Detail = err.Error()
		return v
	}
	n := report.Changed + report.Nulled
	// The event's detail is written only if the event is sent.
	p.redacted = redactNote{report: report, keep: &e.keep, props: p.Message.Props, raw: vw.anyRaw}
	v := Verdict{Action: Rewrite, Reason: "redacted", Value: int64(n), explain: &p.redacted}
	removes := e.keep.removes(&p.Message.Props)
	if vw.anyRaw {
		k := vw.key(p.Message.Topic, in)
		if n == 0 {
			vw.put(k, nil, false)
		} else {
			vw.put(k, out, true)
		}
		p.Recycle(out)
		if n == 0 && !removes {
			return Verdict{}
		}
		return v
	}
	if n > 0 {
		p.SetPayload(out)
	} else {
		p.Recycle(out)
	}
	p.SetUserProperties(e.marked(p.Message.Props.User))
	if n == 0 && !removes {
		return Verdict{}
	}
	return v
}

// redactNote is what a redaction at publish did, kept in the Publish
// until its event is sent: the values it changed, and the properties of
// the message it redacted, which the view removes.
type redactNote struct {
	report redact.Report
	keep   *keepProps
	props  Properties
	raw    bool // the message is stored raw, its view made for others
}

func (n *redactNote) detail() string {
	d := joinDetails(reportDetail(n.report), n.keep.describe(&n.props))
	if n.raw {
		d = joinDetail("for subscribers without a raw view", d)
	}
	return d
}

// marked returns the user properties of a message stored as e's redacted
// view: the marker first, then the properties the view keeps. It always
// returns a new slice.
func (e *payloadEntry) marked(in []UserProperty) []UserProperty {
	out := make([]UserProperty, 1, len(in)+1)
	out[0] = UserProperty{Key: viewMarker, Value: e.token}
	for _, u := range in {
		if e.keep.keepsUser(u.Key) {
			out = append(out, u)
		}
	}
	return out
}

// validText reports whether b is valid UTF-8 without NUL, as MQTT defines
// UTF-8 encoded character data.
func validText(b []byte) bool {
	return utf8.Valid(b) && bytes.IndexByte(b, 0) < 0
}
