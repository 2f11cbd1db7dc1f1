package mqttwaf

import (
	"fmt"
	"hash/maphash"
	"os"
	"path/filepath"
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

// views redacts payloads per subscriber. A payload entry with redaction
// forwards the redacted payload, stored and delivered, unless some role has
// view: raw. Then the broker keeps the raw (normalised) payload, and each
// delivery to a subscriber whose role is not raw gets the redacted one. The
// redaction of a message is done once, at publish, and cached by the
// message's content; a delivery that misses the cache (a retained message
// much later, an evicted entry) redacts again.
type views struct {
	rawRoles map[string]bool
	id       *identity
	payloads *payloads

	seed  maphash.Seed
	mu    sync.Mutex
	cache map[viewKey][]byte
	order []viewKey // insertion order, for eviction
	bytes int
}

// viewKey identifies a message by two independent 64-bit hashes of its
// topic and payload (with process-random seeds, so nobody can make two
// messages collide on purpose), plus its length.
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

var seed2 = maphash.MakeSeed()

// compileViews returns the views of p, or nil when no role has a raw view
// or nothing is redacted (then redaction rewrites messages at publish).
func compileViews(p *Policy, id *identity, pl *payloads) *views {
	raw := map[string]bool{}
	for name, r := range p.Roles {
		if r.View == "raw" {
			raw[name] = true
		}
	}
	redacts := false
	for _, e := range pl.entries {
		redacts = redacts || e.redactor != nil
	}
	if len(raw) == 0 || !redacts {
		return nil
	}
	return &views{rawRoles: raw, id: id, payloads: pl, seed: maphash.MakeSeed(), cache: map[viewKey][]byte{}}
}

func (v *views) key(topic string, payload []byte) viewKey {
	var h maphash.Hash
	h.SetSeed(v.seed)
	h.WriteString(topic)
	h.WriteByte(0)
	h.Write(payload)
	k := viewKey{h1: h.Sum64(), n: len(payload)}
	h.SetSeed(seed2)
	h.WriteString(topic)
	h.WriteByte(0)
	h.Write(payload)
	k.h2 = h.Sum64()
	return k
}

func (v *views) put(k viewKey, out []byte) {
	v.mu.Lock()
	defer v.mu.Unlock()
	if _, ok := v.cache[k]; ok {
		return
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

// View returns the payload subscriber c receives for a message on topic
// whose stored payload is payload: the same bytes (changed false) unless the
// topic's payload entry redacts and c's role does not have view: raw. The
// returned slice is shared and must not be modified. It allocates nothing
// on a cache hit, and nothing when no redaction applies. In DetectionOnly it
// never changes anything.
func (w *WAF) View(c *Client, topic string, payload []byte) (out []byte, changed bool) {
	e := w.engine.Load()
	v := e.views
	if v == nil || !e.enforce {
		return payload, false
	}
	if c != nil && v.rawRoles[v.id.roleOf(c)] || len(payload) == 0 {
		return payload, false // raw view; or no data (an empty retained message deletes)
	}
	pe := v.payloads.entryFor(topic, nil)
	if pe == nil || pe.redactor == nil {
		return payload, false
	}
	k := v.key(topic, payload)
	if out, ok := v.get(k); ok {
		return out, true
	}
	red, report, err := pe.redactor.Apply(nil, payload)
	verdict := Verdict{Action: Rewrite, Rule: "redact", Reason: "redacted", Value: int64(report.Changed), Detail: reportDetail(report)}
	if err != nil {
		verdict.Action, verdict.Reason, verdict.Detail = Drop, "redaction_failed", err.Error()
		red = nil // the subscriber gets an empty payload, never the raw one
	}
	e.record(StageDeliver, nil, &verdict, subject{client: c, topic: topic, size: len(payload)})
	if err == nil {
		v.put(k, red)
	}
	return red, true
}

// HasViews reports whether the running policy redacts per subscriber, so
// an adapter knows whether deliveries need View at all.
func (w *WAF) HasViews() bool { return w.engine.Load().views != nil }

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
