package mqttwaf

import (
	"bytes"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"hash/maphash"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"

	"github.com/mqttwaf/mqttwaf/redact"
)

// RedactionPolicy holds what all redaction rule sets share.
type RedactionPolicy struct {
	// PseudonymKeyFile holds the key of every pseudonym operator (at least
	// 16 bytes; trailing newlines are ignored), relative to the policy file.
	// The same key gives the same pseudonym for a value across messages and
	// restarts; a new key unlinks them all. Keep it out of the policy file.
	PseudonymKeyFile string `yaml:"pseudonym_key_file" json:"pseudonym_key_file"`
	// PseudonymKeyEnv names an environment variable holding the key instead.
	PseudonymKeyEnv string `yaml:"pseudonym_key_env" json:"pseudonym_key_env"`
}

// RedactPolicy is a payload entry's redaction rule set (see the redact
// package for every operator and detector).
type RedactPolicy struct {
	Rules     []redact.Rule     `yaml:"rules" json:"rules"`
	Detectors []redact.Detector `yaml:"detectors" json:"detectors"`
	// MaxDepth bounds nesting (default 128); MaxOutput bounds the redacted
	// document (default 8 times the input plus 64KiB).
	MaxDepth  int      `yaml:"max_depth" json:"max_depth"`
	MaxOutput ByteSize `yaml:"max_output" json:"max_output"`
	// ExactPaths matches rule paths key by key as written, not the way
	// case-insensitive back ends read keys (see redact.Options.ExactPaths).
	ExactPaths bool `yaml:"exact_paths" json:"exact_paths"`
	// KeepProperties lists the MQTT 5 properties redacted views deliver
	// as published; every other one is removed from them.
	KeepProperties KeepProperties `yaml:"keep_properties" json:"keep_properties"`
}

func (r RedactPolicy) enabled() bool { return len(r.Rules)+len(r.Detectors) > 0 }

func (r RedactPolicy) options(key redact.Secret) redact.Options {
	return redact.Options{Rules: r.Rules, Detectors: r.Detectors, PseudonymKey: key,
		MaxDepth: r.MaxDepth, MaxOutput: int(r.MaxOutput), ExactPaths: r.ExactPaths}
}

func (r RedactPolicy) usesPseudonym() bool {
	for _, x := range r.Rules {
		if x.Op == redact.OpPseudonym {
			return true
		}
	}
	for _, x := range r.Detectors {
		if x.Op == redact.OpPseudonym {
			return true
		}
	}
	return false
}

// placeholderKey lets Validate check rule sets that use pseudonyms without
// reading the key, which only compiling does.
const placeholderKey = redact.Secret("validation-placeholder-key-0123456789")

// pseudonymKey reads the key the policy points to, or returns "" if it
// points to none.
func (p *Policy) pseudonymKey() (redact.Secret, error) {
	r := p.Redaction
	switch {
	case r.PseudonymKeyFile != "":
		path := r.PseudonymKeyFile
		if !filepath.IsAbs(path) && p.baseDir != "" {
			path = filepath.Join(p.baseDir, path)
		}
		b, err := os.ReadFile(path)
		if err != nil {
			return "", fmt.Errorf("redaction.pseudonym_key_file: %w", err)
		}
		return redact.Secret(strings.TrimRight(string(b), "\r\n")), nil
	case r.PseudonymKeyEnv != "":
		k, ok := os.LookupEnv(r.PseudonymKeyEnv)
		if !ok {
			return "", fmt.Errorf("redaction.pseudonym_key_env: the environment variable %s is not set", r.PseudonymKeyEnv)
		}
		return redact.Secret(k), nil
	}
	return "", nil
}

// KeepProperties lists the MQTT 5 properties of a message that a redacted
// view delivers as published. Redaction rules and detectors read the
// payload only, and the properties a publisher fills freely (user
// properties, response topic, correlation data, content type) can carry
// the same personal data, so a redacted view removes them all except those
// listed here. The zero value keeps none of them, except the provenance
// property (provenance.user_property: the WAF writes it, it names the
// publisher's identity) and a content type the entry's content_types
// allow-list admits (one of the operator's own strings). List only
// properties that never carry personal data: a kept property is delivered
// as published, not redacted. Message expiry, payload format indicator
// and subscription identifiers are always delivered.
type KeepProperties struct {
	// User names the user properties delivered as published (exact,
	// case-sensitive names).
	User []string `yaml:"user" json:"user"`
	// ContentType keeps every content type, ResponseTopic the response
	// topic and CorrelationData the correlation data.
	ContentType     bool `yaml:"content_type" json:"content_type"`
	ResponseTopic   bool `yaml:"response_topic" json:"response_topic"`
	CorrelationData bool `yaml:"correlation_data" json:"correlation_data"`
}

func (k *KeepProperties) set() bool {
	return len(k.User) > 0 || k.ContentType || k.ResponseTopic || k.CorrelationData
}

func (k *KeepProperties) validate(fe *fieldErrors, at string) {
	for i, name := range k.User {
		switch {
		case name == "" || len(name) > maxPropertyName || hasControl(name):
			fe.add(fmt.Sprintf("%s.user[%d]", at, i), "must be a user property name of 1 to %d printable characters", maxPropertyName)
		case name == viewMarker:
			fe.add(fmt.Sprintf("%s.user[%d]", at, i), "%q is reserved for the WAF's own use and never delivered", viewMarker)
		}
	}
}

// maxPropertyName bounds a listed user property name (MQTT allows 65535
// bytes; limits.user_properties usually allows far fewer).
const maxPropertyName = 1024

// viewMarker names the user property that marks a stored message as
// already being its redacted view: without a raw role, redaction replaces
// the message at publish (so the raw data is neither retained nor queued),
// and the marker, the first user property, carries the token of the rules
// that made it. A delivery whose marker matches the rules in force sends
// the stored payload as it is; any other (rules changed by a reload, a
// message stored raw, a forged marker) is redacted again, because
// redacting twice is safe but a second pseudonym no longer joins the first.
// The token is keyed with a secret of the WAF (Options.ViewKey, kept with
// the stored messages by a broker that persists them), so no client can make
// one, and the marker is removed from every delivery.
const viewMarker = "mqttwaf:view"

// minViewKey is the shortest Options.ViewKey accepted, in bytes.
const minViewKey = 32

// viewKeyOr returns k, or a new random key when k is empty.
func viewKeyOr(k []byte) []byte {
	if len(k) > 0 {
		return bytes.Clone(k)
	}
	k = make([]byte, minViewKey)
	_, _ = rand.Read(k) // never fails (crypto/rand crashes the program instead)
	return k
}

// viewToken identifies the redacted view that r (and key, if r uses a
// pseudonym) makes, under secret: equal rule sets give equal tokens, so a
// reload that leaves an entry's redaction as it was keeps its stored views
// valid, and so does a restart with the same Options.ViewKey.
func viewToken(secret []byte, r RedactPolicy, key redact.Secret) string {
	mac := hmac.New(sha256.New, secret)
	doc, err := json.Marshal(redact.Options{Rules: r.Rules, Detectors: r.Detectors, MaxDepth: r.MaxDepth,
		MaxOutput: int(r.MaxOutput), ExactPaths: r.ExactPaths})
	if err != nil {
		doc = []byte(rand.Text()) // a token nothing matches: every delivery redacts
	}
	mac.Write(doc)
	if r.usesPseudonym() {
		mac.Write([]byte{0})
		mac.Write([]byte(key))
	}
	return base64.RawURLEncoding.EncodeToString(mac.Sum(nil)[:18])
}

// keepProps is a compiled KeepProperties.
type keepProps struct {
	user            []string
	provenance      string   // provenance.user_property, or ""
	contentTypes    []string // the entry's content_types
	contentType     bool
	responseTopic   bool
	correlationData bool
}

func compileKeep(k KeepProperties, provenance string, contentTypes []string) keepProps {
	return keepProps{user: slices.Clone(k.User), provenance: provenance, contentTypes: slices.Clone(contentTypes),
		contentType: k.ContentType, responseTopic: k.ResponseTopic, correlationData: k.CorrelationData}
}

func (k *keepProps) keepsUser(name string) bool {
	return name != viewMarker && (name != "" && name == k.provenance || slices.Contains(k.user, name))
}

func (k *keepProps) keepsContentType(ct string) bool {
	return k.contentType || slices.Contains(k.contentTypes, ct)
}

// filter turns pr into its redacted view: it replaces fields and the user
// property slice, never writing into them (they may be shared with the
// broker's stored copy), and reports whether it removed anything.
func (k *keepProps) filter(pr *Properties) bool {
	removed := false
	if pr.ContentType != "" && !k.keepsContentType(pr.ContentType) {
		pr.ContentType, removed = "", true
	}
	if pr.ResponseTopic != "" && !k.responseTopic {
		pr.ResponseTopic, removed = "", true
	}
	if pr.CorrelationData != nil && !k.correlationData {
		pr.CorrelationData, removed = nil, true
	}
	user := keepUser(pr.User, k.keepsUser)
	removed = removed || len(user) != len(pr.User)
	pr.User = user
	return removed
}

// removed yields each property the redacted view of pr removes, by kind
// and, for a user property, name (never values), until yield returns
// false.
func (k *keepProps) removed(pr *Properties, yield func(kind, name string) bool) {
	for _, u := range pr.User {
		if !k.keepsUser(u.Key) && !yield("user_property ", u.Key) {
			return
		}
	}
	if pr.ContentType != "" && !k.keepsContentType(pr.ContentType) && !yield("content_type", "") {
		return
	}
	if pr.ResponseTopic != "" && !k.responseTopic && !yield("response_topic", "") {
		return
	}
	if pr.CorrelationData != nil && !k.correlationData {
		yield("correlation_data", "")
	}
}

// removes reports whether the redacted view of pr removes any property.
func (k *keepProps) removes(pr *Properties) bool {
	found := false
	k.removed(pr, func(string, string) bool { found = true; return false })
	return found
}

// describe says what the redacted view of pr removes, for an event: how
// many properties, and their names (never their values); "" if none.
func (k *keepProps) describe(pr *Properties) string {
	var names []string
	k.removed(pr, func(kind, name string) bool { names = append(names, kind+name); return true })
	if len(names) == 0 {
		return ""
	}
	n := len(names)
	const show = 8
	if n > show {
		names = append(names[:show], "and "+strconv.Itoa(n-show)+" more")
	}
	return "properties_removed=" + strconv.Itoa(n) + " (" + strings.Join(names, ", ") + ")"
}

// keepUser returns the user properties of in that keep accepts: in itself
// when it accepts all, a suffix of in when only leading ones go (the
// marker is the first), else a new slice. It never writes into in.
func keepUser(in []UserProperty, keep func(string) bool) []UserProperty {
	drop, lead := 0, 0
	for i, u := range in {
		if !keep(u.Key) {
			drop++
			if lead == i {
				lead++
			}
		}
	}
	switch {
	case drop == 0:
		return in
	case drop == len(in):
		return nil
	case drop == lead:
		return in[drop:]
	}
	out := make([]UserProperty, 0, len(in)-drop)
	for _, u := range in {
		if keep(u.Key) {
			out = append(out, u)
		}
	}
	return out
}

// unmark returns in without view markers, and the marker's value when in
// carries exactly one, first, as the payload rule puts it ("" otherwise:
// then no marker is trusted).
func unmark(in []UserProperty) ([]UserProperty, string) {
	n := 0
	for _, u := range in {
		if u.Key == viewMarker {
			n++
		}
	}
	switch {
	case n == 0:
		return in, ""
	case n == 1 && in[0].Key == viewMarker:
		return in[1:], in[0].Value
	}
	return keepUser(in, func(k string) bool { return k != viewMarker }), ""
}

// views makes the redacted view of messages for subscribers without a raw
// view. It exists whenever a payload entry redacts, whatever the roles, so
// that what a subscriber receives never depends on how the message was
// stored: with a raw role the broker stores messages raw and each delivery
// to another role is redacted (cached by content, made once at publish);
// without one, redaction replaces the message at publish and marks it
// (viewMarker), and deliveries still check it is the view of the rules in
// force. Retained messages and messages queued for offline sessions are
// viewed under the policy in force when they are delivered, so a reload
// can neither hand stored raw bytes to a redacted view nor redact twice.
type views struct {
	rawRoles map[string]bool
	anyRaw   bool // stored raw: some role has view: raw
	id       *identity
	payloads *payloads

	seeds [4]maphash.Seed // see key
	mu    sync.Mutex
	cache map[viewKey][]byte // nil value: the payload is its own view
	order []viewKey          // insertion order, for eviction
	bytes int
}

// viewKey identifies a message by two independent 64-bit hashes of its
// topic and payload (with random seeds, so nobody can make two messages
// collide on purpose), plus its length.
type viewKey struct {
	h1, h2 uint64
	n      int
}

// View-cache bounds: a cached redaction is only worth keeping while its
// message is being delivered.
const (
	maxViewEntries = 4096
	maxViewBytes   = 32 << 20
)

// compileViews returns the views of p, or nil when no payload entry
// redacts.
func compileViews(p *Policy, id *identity, pl *payloads) *views {
	redacts := false
	for _, e := range pl.entries {
		redacts = redacts || e.redactor != nil
	}
	if !redacts {
		return nil
	}
	raw := map[string]bool{}
	for name, r := range p.Roles {
		if r.View == "raw" {
			raw[name] = true
		}
	}
	vw := &views{rawRoles: raw, anyRaw: len(raw) > 0, id: id, payloads: pl, cache: map[viewKey][]byte{}}
	for i := range vw.seeds {
		vw.seeds[i] = maphash.MakeSeed()
	}
	return vw
}

// key is computed at publish and again at every delivery, so it hashes
// each part in one call (a maphash.Hash streams the payload through a
// small buffer, several times slower), under a seed of its own per part
// and per half: the halves are independent, and a topic and a payload
// that swap places do not collide.
func (v *views) key(topic string, payload []byte) viewKey {
	return viewKey{
		h1: maphash.String(v.seeds[0], topic) ^ maphash.Bytes(v.seeds[1], payload),
		h2: maphash.String(v.seeds[2], topic) ^ maphash.Bytes(v.seeds[3], payload),
		n:  len(payload),
	}
}

// put caches the view out of a payload (nil: the payload is its own
// view); a copy of out if it is the caller's scratch, made only if the
// view was not cached yet.
func (v *views) put(k viewKey, out []byte, scratch bool) {
	v.mu.Lock()
	defer v.mu.Unlock()
	if _, ok := v.cache[k]; ok {
		return
	}
	if scratch && out != nil {
		out = append([]byte(nil), out...)
	}
	for len(v.order) > 0 && (len(v.order) >= maxViewEntries || v.bytes+len(out) > maxViewBytes) {
		old := v.order[0]
		v.order = v.order[1:]
		v.bytes -= len(v.cache[old])
		delete(v.cache, old)
	}
	v.cache[k] = out
	v.order = append(v.order, k)
	v.bytes += len(out)
}

func (v *views) get(k viewKey) ([]byte, bool) {
	v.mu.Lock()
	defer v.mu.Unlock()
	out, ok := v.cache[k]
	return out, ok
}

// ViewMessage returns what subscriber c receives of m, a message as the
// broker holds it (live, retained, or queued for a persistent session):
// m's own fields (changed false), or c's view of them. A subscriber whose
// role has view: raw gets the message as stored; any other gets, on topics
// whose payload entry redacts, the payload redacted by the entry's rules
// and only the properties the entry keeps (KeepProperties). Whatever the
// policy, the WAF's view marker is removed. The view follows the policy in
// force now, not the one the message was published under.
//
// It never writes into m or its slices; the returned slices may be shared
// with m or with the view cache and must not be modified. A view that
// cannot be made delivers an empty payload (and a redaction_failed
// event), never the stored one. It allocates nothing when the view was
// cached or stored, beyond a new user property slice when properties other
// than leading ones are removed. In DetectionOnly only the marker is
// removed.
func (w *WAF) ViewMessage(c *Client, m *Message) (out Message, changed bool) {
	e := w.engine.Load()
	out = *m
	user, marker := unmark(m.Props.User)
	out.Props.User = user
	changed = len(user) != len(m.Props.User)
	v := e.views
	if v == nil || !e.enforce || c != nil && v.rawRoles[v.id.roleOf(c)] {
		return out, changed
	}
	pe := v.payloads.entryFor(m.Topic, nil, ProtectRedact)
	if pe == nil || pe.redactor == nil {
		return out, changed
	}
	stored := out.Props // before filtering, for the event
	if pe.keep.filter(&out.Props) {
		changed = true
	}
	if len(m.Payload) == 0 || marker == pe.token {
		return out, changed // no data (an empty retained message deletes); or stored as this view
	}
	k := v.key(m.Topic, m.Payload)
	if red, ok := v.get(k); ok {
		if red != nil {
			out.Payload, changed = red, true
		}
		return out, changed
	}
	red, report, err := pe.redactor.Apply(nil, m.Payload)
	props := pe.keep.describe(&stored)
	verdict := Verdict{Action: Rewrite, Rule: "redact", Reason: "redacted", Value: int64(report.Changed + report.Nulled),
		Detail: joinDetails(reportDetail(report), props)}
	switch {
	case err != nil:
		verdict.Action, verdict.Reason, verdict.Value = Drop, "redaction_failed", 0
		verdict.Detail = joinDetails(err.Error(), props)
		out.Payload, changed = nil, true // the subscriber gets an empty payload, never the stored one
	case bytes.Equal(red, m.Payload):
		v.put(k, nil, false)
	default:
		v.put(k, red, false)
		out.Payload, changed = red, true
	}
	if changed {
		// A copy of the topic: m stays the caller's (its slices may live on its stack).
		e.record(StageDeliver, nil, &verdict, subject{client: c, topic: strings.Clone(m.Topic), size: len(m.Payload)})
	}
	return out, changed
}

// View returns the payload subscriber c receives of a message on topic
// stored with payload (and no properties): ViewMessage for the payload
// alone. The returned slice is shared and must not be modified.
func (w *WAF) View(c *Client, topic string, payload []byte) (out []byte, changed bool) {
	m := Message{Topic: topic, Payload: payload}
	view, changed := w.ViewMessage(c, &m)
	return view.Payload, changed
}

// HasViews reports whether subscribers of the running policy may receive
// payloads other than the stored ones: some payload entry redacts and some
// role has view: raw, so the broker stores messages raw and redacts per
// delivery. Without a raw role, redaction rewrites the stored message
// itself. Either way every delivery must go through ViewMessage.
func (w *WAF) HasViews() bool {
	v := w.engine.Load().views
	return v != nil && v.anyRaw
}

// joinDetails joins two event details with "; ", skipping empty ones.
func joinDetails(a, b string) string {
	switch {
	case a == "":
		return b
	case b == "":
		return a
	}
	return a + "; " + b
}

// reportDetail lists the rules and detectors that fired and how often.
// Never values.
func reportDetail(r redact.Report) string {
	var b strings.Builder
	for id, n := range r.All() {
		if b.Len() > 0 {
			b.WriteString(", ")
		}
		b.WriteString(id)
		b.WriteByte('=')
		b.WriteString(strconv.Itoa(n))
	}
	return b.String()
}
