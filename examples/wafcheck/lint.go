package main

// wafcheck lint POLICY: findings about a policy that loads but may not do
// what its author thinks. ParsePolicy already refuses what is wrong; lint
// reports what is legal and risky (wide grants, anonymous access from the
// network, detection-only), what protects less than it seems (topics no
// payload entry checks, redaction paths no payload contains) and values
// that mean something else than they read (0 meaning the default).

import (
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"maps"
	"net/netip"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strconv"
	"strings"

	"go.yaml.in/yaml/v3"

	"github.com/mqttwaf/mqttwaf/mqttwaf"
	"github.com/mqttwaf/mqttwaf/redact"
)

const lintUsage = "usage: wafcheck lint [-sample [TOPIC=]FILE]... [-format human|json] POLICY"

// Severities, worst first. The exit status is 2 with an error, 1 with
// warnings only, 0 otherwise (info findings never fail CI).
const (
	sevError   = "error"
	sevWarning = "warning"
	sevInfo    = "info"
)

// finding is one lint result: where in the policy, what is wrong, what to do.
type finding struct {
	Severity string `json:"severity"`
	Check    string `json:"check"` // stable name, for filtering in CI
	Path     string `json:"path"`  // policy path, e.g. roles.ops.subscribe[0]
	Line     int    `json:"line,omitempty"`
	Message  string `json:"message"`
	Fix      string `json:"fix"`
}

// lintReport is the -format json output.
type lintReport struct {
	Policy   string    `json:"policy"`
	Findings []finding `json:"findings"`
	Errors   int       `json:"errors"`
	Warnings int       `json:"warnings"`
	Infos    int       `json:"infos"`
}

// sample is one -sample payload; topic, if given, picks the payload entry
// it belongs to (the first whose topics cover it, as at run time).
type sample struct {
	topic string
	data  []byte
}

type sampleFlags []string

func (s *sampleFlags) String() string     { return strings.Join(*s, ",") }
func (s *sampleFlags) Set(v string) error { *s = append(*s, v); return nil }

func runLint(args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("wafcheck lint", flag.ContinueOnError)
	fs.SetOutput(stderr)
	var samples sampleFlags
	fs.Var(&samples, "sample", "a JSON payload as devices publish it, FILE or TOPIC=FILE (repeatable): redaction rule paths must be in one;\n"+
		"with TOPIC it is checked against the payload entry that applies to TOPIC only, without it against every entry")
	format := fs.String("format", "human", "output: human (one line per finding) or json")
	if err := fs.Parse(args); err != nil {
		return 2
	}
	if fs.NArg() != 1 || (*format != "human" && *format != "json") {
		fmt.Fprintln(stderr, lintUsage)
		return 2
	}
	policyPath := fs.Arg(0)
	var docs []sample
	for _, arg := range samples {
		var sm sample
		file := arg
		if t, f, ok := strings.Cut(arg, "="); ok && t != "" {
			if _, err := os.Stat(arg); err != nil { // a file name with '=' in it stays one
				sm.topic, file = t, f
			}
		}
		b, err := readLimited(file)
		if err == nil && !json.Valid(b) {
			err = errors.New("not a JSON document; -sample takes the payload a device publishes")
		}
		if err != nil {
			fmt.Fprintf(stderr, "wafcheck lint: -sample %s: %v\n", arg, err)
			return 2
		}
		sm.data = b
		docs = append(docs, sm)
	}
	findings, err := lintFile(policyPath, docs)
	if err != nil {
		fmt.Fprintln(stderr, "wafcheck lint:", err)
		return 2
	}
	rep := lintReport{Policy: policyPath, Findings: findings}
	for _, f := range findings {
		switch f.Severity {
		case sevError:
			rep.Errors++
		case sevWarning:
			rep.Warnings++
		default:
			rep.Infos++
		}
	}
	if *format == "json" {
		if rep.Findings == nil {
			rep.Findings = []finding{}
		}
		enc := json.NewEncoder(stdout)
		enc.SetIndent("", "  ")
		if err := enc.Encode(rep); err != nil {
			fmt.Fprintln(stderr, "wafcheck lint:", err)
			return 2
		}
	} else {
		for _, f := range findings {
			loc := policyPath
			if f.Line > 0 {
				loc += ":" + strconv.Itoa(f.Line)
			}
			fmt.Fprintf(stdout, "%s: %s: %s: %s\n    fix: %s\n", loc, f.Severity, f.Path, f.Message, f.Fix)
		}
		fmt.Fprintf(stdout, "%s: %d errors, %d warnings, %d info\n", policyPath, rep.Errors, rep.Warnings, rep.Infos)
	}
	switch {
	case rep.Errors > 0:
		return 2
	case rep.Warnings > 0:
		return 1
	}
	return 0
}

// lintFile loads the policy the way the broker does (an error here is the
// load error, exit 2) and lints it.
func lintFile(path string, samples []sample) ([]finding, error) {
	p, err := mqttwaf.ReadPolicyFile(path)
	if err != nil {
		return nil, err
	}
	if _, err := mqttwaf.New(p, mqttwaf.Options{Sink: mqttwaf.SinkFunc(func(mqttwaf.Event) {}), LocalState: true}); err != nil {
		return nil, err
	}
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	var doc yaml.Node
	if err := yaml.Unmarshal(data, &doc); err != nil {
		return nil, err // ReadPolicyFile parsed it; this cannot happen
	}
	root := &doc
	if root.Kind == yaml.DocumentNode && len(root.Content) == 1 {
		root = root.Content[0]
	}
	l := &linter{p: p, d: p.WithDefaults(), root: root, dir: filepath.Dir(path), samples: samples}
	for _, s := range samples {
		if s.topic != "" && l.entryFor(s.topic) < 0 {
			return nil, fmt.Errorf("-sample %s=...: no payloads entry applies to topic %q; give a topic one of the entries' topics covers", s.topic, s.topic)
		}
	}
	l.mode()
	l.grants()
	l.anonymous()
	l.uncovered()
	l.redaction()
	l.zeroDefaults()
	return l.out, nil
}

// linter holds the policy as written (p), as completed by defaults (d) and
// as a YAML tree (root, for line numbers and for what was written at all).
type linter struct {
	p, d    *mqttwaf.Policy
	root    *yaml.Node
	dir     string
	samples []sample
	out     []finding
}

// add records a finding at a policy path given as segments: strings are
// mapping keys, ints sequence indexes.
func (l *linter) add(sev, check, msg, fix string, segs ...any) {
	l.out = append(l.out, finding{Severity: sev, Check: check, Path: segPath(segs), Line: lineOf(l.root, segs), Message: msg, Fix: fix})
}

func segPath(segs []any) string {
	var b strings.Builder
	for _, s := range segs {
		switch s := s.(type) {
		case int:
			fmt.Fprintf(&b, "[%d]", s)
		default:
			if b.Len() > 0 {
				b.WriteByte('.')
			}
			fmt.Fprint(&b, s)
		}
	}
	return b.String()
}

func child(n *yaml.Node, seg any) *yaml.Node {
	switch s := seg.(type) {
	case string:
		if n.Kind == yaml.MappingNode {
			for i := 0; i+1 < len(n.Content); i += 2 {
				if n.Content[i].Value == s {
					return n.Content[i+1]
				}
			}
		}
	case int:
		if n.Kind == yaml.SequenceNode && s < len(n.Content) {
			return n.Content[s]
		}
	}
	return nil
}

// lineOf is the line of the deepest node of segs that the document has:
// the key's own line when it is written, its section's otherwise.
func lineOf(root *yaml.Node, segs []any) int {
	n, line := root, 0
	for _, s := range segs {
		if n.Kind == yaml.MappingNode {
			if k, ok := s.(string); ok {
				for i := 0; i+1 < len(n.Content); i += 2 {
					if n.Content[i].Value == k {
						line = n.Content[i].Line
						break
					}
				}
			}
		}
		if n = child(n, s); n == nil {
			return line
		}
		line = n.Line
	}
	return line
}

func (l *linter) mode() {
	if l.d.Mode == mqttwaf.DetectionOnly {
		l.add(sevWarning, "detection_only",
			"nothing is blocked, rewritten or redacted: every decision is only recorded as an event",
			"remove mode (enforce is the default) once the events show no false positives", "mode")
	}
}

// allWild says whether a topic filter has no literal level before a
// wildcard that covers everything ('#', '+/#', '+/+/#'): it reaches every
// topic, other devices' and other applications' included.
func allWild(filter string) bool {
	for _, lvl := range strings.Split(filter, "/") {
		switch lvl {
		case "#":
			return true
		case "+":
		default:
			return false
		}
	}
	return false
}

func (l *linter) grants() {
	anonRole := ""
	if l.d.Identity.Anonymous.Allow != "never" {
		anonRole = l.d.Identity.Anonymous.Role
	}
	for _, name := range slices.Sorted(maps.Keys(l.d.Roles)) {
		r := l.d.Roles[name]
		for _, g := range []struct {
			field string
			list  []string
			sev   string
			what  string
		}{
			{"publish", r.Publish, sevError, "may publish to every topic: commands to other devices, other devices' telemetry and status"},
			{"retain", r.Retain, sevError, "may retain a message on every topic, which every later subscriber receives"},
			{"subscribe", r.Subscribe, sevWarning, "may read every topic of every device and application"},
		} {
			for i, t := range g.list {
				if !allWild(t) {
					continue
				}
				sev, what := g.sev, g.what
				if g.field == "subscribe" && r.View == "raw" {
					sev, what = sevError, what+", unredacted (view: raw)"
				}
				l.add(sev, "wide_grant", fmt.Sprintf("%q %s", t, what),
					"grant the topics the role needs, starting with a literal level (fleet/{username}/telemetry, fleet/+/status)",
					"roles", name, g.field, i)
			}
		}
		if r.BroadWildcards {
			l.add(sevWarning, "broad_wildcards",
				"members may subscribe to '#' and '+/#' filters within their grants, so one subscription receives everything the grants cover",
				"remove broad_wildcards unless this is the operator's own back end; lower min_literal_levels instead if only shallower filters are needed",
				"roles", name, "broad_wildcards")
		}
		if r.Sys {
			sev, msg := sevInfo, "members may read $SYS: client counts, broker version and load"
			if name == anonRole {
				sev, msg = sevWarning, "anonymous clients (identity.anonymous.role) may read $SYS: client counts, broker version and load"
			}
			l.add(sev, "sys", msg, "keep sys: true for monitoring roles only", "roles", name, "sys")
		}
	}
}

func isLoopback(pfx netip.Prefix) bool {
	return pfx.Addr().Unmap().IsLoopback() && pfx.Masked().Addr().Unmap().IsLoopback()
}

func (l *linter) anonymous() {
	a := l.d.Identity.Anonymous
	if a.Allow == "never" {
		return
	}
	beyond := false
	switch a.Allow {
	case "anywhere":
		beyond = true
		l.add(sevError, "anonymous", "clients without credentials may connect from any address",
			"set identity.anonymous.allow: never (or loopback, or networks with the CIDRs that need it)",
			"identity", "anonymous", "allow")
	case "networks":
		for i, n := range a.Networks {
			pfx, err := netip.ParsePrefix(n)
			if err != nil || isLoopback(pfx) {
				continue
			}
			beyond = true
			sev, msg := sevWarning, fmt.Sprintf("clients without credentials may connect from %s", n)
			if pfx.Bits() == 0 {
				sev, msg = sevError, fmt.Sprintf("%s is every address: clients without credentials may connect from anywhere", n)
			}
			l.add(sev, "anonymous", msg,
				"give devices on this network credentials (identity.credentials_file) and remove it, or narrow it to the hosts that need anonymous access",
				"identity", "anonymous", "networks", i)
		}
	}
	r, ok := l.d.Roles[a.Role]
	if !ok || len(r.Publish) == 0 {
		return
	}
	sev, where := sevInfo, "from this machine (loopback)"
	if beyond {
		sev, where = sevWarning, "from the network"
	}
	l.add(sev, "anonymous_publish",
		fmt.Sprintf("anonymous clients %s get role %q, which may publish to %s", where, a.Role, strings.Join(r.Publish, ", ")),
		"give anonymous clients a role without publish grants, or set identity.anonymous.allow: never",
		"identity", "anonymous", "role")
}

// covers says whether every topic the grant template g matches is matched
// by the payload filter f. Template placeholders ({username}...) are one
// level that only the same placeholder, '+' or '#' covers.
func covers(f, g string) bool {
	fl, gl := strings.Split(f, "/"), strings.Split(g, "/")
	for i, x := range fl {
		if x == "#" {
			return true
		}
		if i >= len(gl) {
			return false
		}
		y := gl[i]
		switch {
		case y == "#":
			return false
		case x == "+":
			continue
		case x != y:
			return false
		}
	}
	return len(fl) == len(gl)
}

func (l *linter) uncovered() {
	if len(l.d.Payloads) == 0 {
		return // no payload contract at all is a choice, not a gap
	}
	for _, name := range slices.Sorted(maps.Keys(l.d.Roles)) {
		for i, g := range l.d.Roles[name].Publish {
			covered := false
			for _, pp := range l.d.Payloads {
				for _, f := range pp.Topics {
					covered = covered || covers(f, g)
				}
			}
			if !covered {
				l.add(sevWarning, "uncovered_topic",
					fmt.Sprintf("no payload entry covers all of %q: any bytes published there pass unchecked and unredacted", g),
					"add a payloads entry whose topics cover it (format: text at least), or narrow the grant",
					"roles", name, "publish", i)
			}
		}
	}
}

// redaction reports rule paths that no sample payload has (given -sample),
// or else that no field rule or schema property of the entry declares: a
// path with a typo is accepted and redacts nothing.
func (l *linter) redaction() {
	for i, pp := range l.d.Payloads {
		rules := pp.Redact.Rules
		if len(rules) == 0 {
			continue
		}
		docs, against := l.samplesFor(i), "-sample payload"
		if len(docs) == 0 {
			doc, note := l.declared(pp)
			if doc == nil {
				l.add(sevInfo, "redact_unchecked", "the redaction paths of this entry were not checked: "+note,
					"run wafcheck lint -sample PAYLOAD.json with a message as devices send it",
					"payloads", i, "redact", "rules")
				continue
			}
			docs, against = [][]byte{doc}, note
		}
		for j, ru := range rules {
			paths := ru.Paths
			if ru.Path != "" {
				paths = []string{ru.Path}
			}
			for k, path := range paths {
				if pathIn(path, pp.Redact.ExactPaths, docs) {
					continue
				}
				segs := []any{"payloads", i, "redact", "rules", j, "path"}
				if ru.Path == "" {
					segs = []any{"payloads", i, "redact", "rules", j, "paths", k}
				}
				l.add(sevWarning, "redact_path",
					fmt.Sprintf("%q is in no %s: if it is a typo, this rule redacts nothing", path, against),
					"write the path as the payload has it (keys are matched case-insensitively unless exact_paths), or remove the rule",
					segs...)
			}
		}
	}
}

// samplesFor returns the -sample payloads of payload entry i: those
// without a topic, and those whose topic entry i is the first to cover.
func (l *linter) samplesFor(i int) [][]byte {
	var docs [][]byte
	for _, s := range l.samples {
		if s.topic == "" || l.entryFor(s.topic) == i {
			docs = append(docs, s.data)
		}
	}
	return docs
}

func (l *linter) entryFor(topic string) int {
	for i, pp := range l.d.Payloads {
		for _, f := range pp.Topics {
			if covers(f, topic) {
				return i
			}
		}
	}
	return -1
}

// pathIn says whether a redaction rule on path changes any of docs: the
// redact package itself decides, so wildcards, '#', case folding and
// exact_paths mean what they mean at run time.
func pathIn(path string, exact bool, docs [][]byte) bool {
	r, err := redact.New(redact.Options{Rules: []redact.Rule{{Path: path, Action: redact.Action{Op: redact.OpRemove}}}, ExactPaths: exact})
	if err != nil {
		return true // ParsePolicy accepted it; nothing to add here
	}
	for _, d := range docs {
		if _, rep, err := r.Apply(nil, d); err == nil && rep.Changed > 0 {
			return true
		}
	}
	return false
}

// declared builds a document with every path the entry's field rules and
// schema properties declare, or returns nil and why not.
func (l *linter) declared(pp mqttwaf.PayloadPolicy) ([]byte, string) {
	root := map[string]any{}
	var from []string
	for _, f := range pp.Fields {
		insert(root, splitPath(f.Path))
	}
	if len(pp.Fields) > 0 {
		from = append(from, "fields rule")
	}
	if pp.Schema != "" {
		file := pp.Schema
		if !filepath.IsAbs(file) {
			file = filepath.Join(l.dir, file)
		}
		var s any
		b, err := os.ReadFile(file)
		if err == nil {
			err = json.Unmarshal(b, &s)
		}
		if err != nil {
			return nil, fmt.Sprintf("the schema %s could not be read as JSON (%v)", pp.Schema, err)
		}
		schemaPaths(s, s, nil, 0, func(p []string) { insert(root, p) })
		from = append(from, "schema property")
	}
	if len(from) == 0 {
		return nil, "the entry has no fields rules or schema to check them against, and no -sample was given"
	}
	b, _ := json.Marshal(root)
	return b, strings.Join(from, " or ")
}

// splitPath splits a gjson path at unescaped dots, unescaping the rest.
func splitPath(p string) []string {
	var out []string
	var cur strings.Builder
	for i := 0; i < len(p); i++ {
		switch {
		case p[i] == '\\' && i+1 < len(p):
			i++
			cur.WriteByte(p[i])
		case p[i] == '.':
			out = append(out, cur.String())
			cur.Reset()
		default:
			cur.WriteByte(p[i])
		}
	}
	return append(out, cur.String())
}

// insert adds path to the synthetic document: '#' is an array of one
// element, anything else an object key; the leaf is a string.
func insert(m map[string]any, path []string) {
	if len(path) == 0 {
		return
	}
	if path[0] == "#" { // a top-level array cannot be expressed in a map; '#' under a key can
		return
	}
	key, rest := path[0], path[1:]
	if len(rest) == 0 {
		if _, ok := m[key]; !ok {
			m[key] = "x"
		}
		return
	}
	if rest[0] == "#" {
		arr, _ := m[key].([]any)
		if len(arr) == 0 {
			arr = []any{map[string]any{}}
		}
		if len(rest) == 1 {
			if _, ok := arr[0].(map[string]any); ok && len(arr[0].(map[string]any)) == 0 {
				arr[0] = "x"
			}
		} else if obj, ok := arr[0].(map[string]any); ok {
			insert(obj, rest[1:])
		}
		m[key] = arr
		return
	}
	sub, ok := m[key].(map[string]any)
	if !ok {
		sub = map[string]any{}
		m[key] = sub
	}
	insert(sub, rest)
}

// schemaPaths yields the property paths a JSON Schema declares: properties,
// items ('#'), the branches of allOf/anyOf/oneOf and local $refs. depth
// bounds recursive schemas.
func schemaPaths(root, s any, prefix []string, depth int, yield func([]string)) {
	m, ok := s.(map[string]any)
	if !ok || depth > 32 {
		return
	}
	if ref, ok := m["$ref"].(string); ok && strings.HasPrefix(ref, "#") {
		if t := resolvePointer(root, strings.TrimPrefix(ref, "#")); t != nil {
			schemaPaths(root, t, prefix, depth+1, yield)
		}
	}
	if props, ok := m["properties"].(map[string]any); ok {
		for _, k := range slices.Sorted(maps.Keys(props)) {
			p := append(slices.Clone(prefix), k)
			yield(p)
			schemaPaths(root, props[k], p, depth+1, yield)
		}
	}
	if items, ok := m["items"]; ok {
		schemaPaths(root, items, append(slices.Clone(prefix), "#"), depth+1, yield)
	}
	for _, kw := range []string{"allOf", "anyOf", "oneOf"} {
		if list, ok := m[kw].([]any); ok {
			for _, b := range list {
				schemaPaths(root, b, prefix, depth+1, yield)
			}
		}
	}
}

// resolvePointer follows a JSON Pointer ("/$defs/pos") inside doc.
func resolvePointer(doc any, ptr string) any {
	if ptr == "" {
		return doc
	}
	for _, tok := range strings.Split(strings.TrimPrefix(ptr, "/"), "/") {
		tok = strings.ReplaceAll(strings.ReplaceAll(tok, "~1", "/"), "~0", "~")
		m, ok := doc.(map[string]any)
		if !ok {
			return nil
		}
		doc = m[tok]
	}
	return doc
}

// zeroDefaults reports settings written as zero (0, "", 0s) where the
// policy keeps zero as "unset": the value in force is the default, not the
// zero the author wrote (limits.topic.max_levels: 0 is 8 levels, not
// "unlimited"; min_literal_levels: 0 is 1).
func (l *linter) zeroDefaults() {
	var walk func(n *yaml.Node, segs []any)
	walk = func(n *yaml.Node, segs []any) {
		switch n.Kind {
		case yaml.MappingNode:
			for i := 0; i+1 < len(n.Content); i += 2 {
				walk(n.Content[i+1], append(slices.Clone(segs), n.Content[i].Value))
			}
		case yaml.SequenceNode:
			for i, c := range n.Content {
				walk(c, append(slices.Clone(segs), i))
			}
		case yaml.ScalarNode:
			raw, ok1 := fieldAt(reflect.ValueOf(l.p), segs)
			def, ok2 := fieldAt(reflect.ValueOf(l.d), segs)
			if !ok1 || !ok2 || !raw.IsZero() || def.IsZero() {
				return
			}
			v := fmt.Sprint(def.Interface())
			if raw.Kind() == reflect.String {
				v = strconv.Quote(v)
			}
			l.add(sevWarning, "zero_means_default",
				fmt.Sprintf("%s here means unset: the default %s applies, not %s", strconv.Quote(n.Value), v, strconv.Quote(n.Value)),
				fmt.Sprintf("write %s to say so, or the value you mean", v),
				segs...)
		}
	}
	walk(l.root, nil)
}

// fieldAt follows policy path segments through structs (by yaml tag,
// inline structs included), maps and slices.
func fieldAt(v reflect.Value, segs []any) (reflect.Value, bool) {
	for _, s := range segs {
		for v.Kind() == reflect.Pointer || v.Kind() == reflect.Interface {
			if v.IsNil() {
				return v, false
			}
			v = v.Elem()
		}
		switch v.Kind() {
		case reflect.Struct:
			k, ok := s.(string)
			if !ok {
				return v, false
			}
			if v, ok = structField(v, k); !ok {
				return v, false
			}
		case reflect.Map:
			k, ok := s.(string)
			if !ok || v.Type().Key().Kind() != reflect.String {
				return v, false
			}
			if v = v.MapIndex(reflect.ValueOf(k).Convert(v.Type().Key())); !v.IsValid() {
				return v, false
			}
		case reflect.Slice, reflect.Array:
			i, ok := s.(int)
			if !ok || i >= v.Len() {
				return v, false
			}
			v = v.Index(i)
		default:
			return v, false
		}
	}
	return v, v.IsValid()
}

func structField(v reflect.Value, key string) (reflect.Value, bool) {
	t := v.Type()
	for i := range t.NumField() {
		f := t.Field(i)
		if !f.IsExported() {
			continue
		}
		tag := f.Tag.Get("yaml")
		name, opts, _ := strings.Cut(tag, ",")
		if strings.Contains(opts, "inline") {
			if fv, ok := structField(v.Field(i), key); ok {
				return fv, true
			}
			continue
		}
		if name == key {
			return v.Field(i), true
		}
	}
	return v, false
}
