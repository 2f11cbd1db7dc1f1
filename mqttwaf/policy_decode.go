package mqttwaf

import (
	"bytes"
	_ "embed"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"time"

	"go.yaml.in/yaml/v3"
)

// DefaultPolicyYAML is the embedded default policy: every setting with its
// default value and a comment saying why. It is what examples/hardened-broker
// runs without -policy and prints with -print-default-policy.
//
//go:embed default-policy.yaml
var DefaultPolicyYAML []byte

// maxPolicyBytes bounds a policy document; a policy is configuration, not data.
const maxPolicyBytes = 4 << 20

// ReadPolicyFile reads and validates a policy from a YAML or JSON file.
func ReadPolicyFile(path string) (*Policy, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	data, err := io.ReadAll(io.LimitReader(f, maxPolicyBytes+1))
	if err != nil {
		return nil, err
	}
	p, err := ParsePolicy(data, path)
	if err != nil {
		return nil, err
	}
	p.baseDir = filepath.Dir(path)
	return p, nil
}

// ParsePolicy decodes a policy from YAML or JSON (JSON is YAML) and
// validates it. Decoding is strict: an unknown key is an error naming the
// key, its line and the keys that are allowed there; a value of the wrong
// type or form names its line and field. name labels errors (a file name).
// The returned policy is as written; defaults apply when it is compiled.
func ParsePolicy(data []byte, name string) (*Policy, error) {
	if name == "" {
		name = "policy"
	}
	if len(data) > maxPolicyBytes {
		return nil, fmt.Errorf("%s: policy larger than %s", name, ByteSize(maxPolicyBytes))
	}
	dec := yaml.NewDecoder(bytes.NewReader(data))
	var doc yaml.Node
	if err := dec.Decode(&doc); err != nil {
		if errors.Is(err, io.EOF) { // an empty document is the default policy
			return &Policy{}, nil
		}
		return nil, fmt.Errorf("%s: %w", name, err)
	}
	var extra yaml.Node
	if err := dec.Decode(&extra); !errors.Is(err, io.EOF) {
		if err != nil {
			return nil, fmt.Errorf("%s: after the first document: %w", name, err)
		}
		return nil, fmt.Errorf("%s:%d: a policy is one document; remove the second one", name, extra.Line)
	}
	p := &Policy{}
	root := &doc
	if root.Kind == yaml.DocumentNode && len(root.Content) == 1 {
		root = root.Content[0]
	}
	if root.Kind == yaml.ScalarNode && root.Tag == "!!null" {
		return p, nil
	}
	if err := decodeStrict(root, reflect.ValueOf(p).Elem(), name, ""); err != nil {
		return nil, err
	}
	if err := p.Validate(); err != nil {
		lines := map[string]int{}
		nodeLines(root, "", lines)
		return nil, fmt.Errorf("%s: invalid policy:\n%w", name, withLines(err, name, lines))
	}
	return p, nil
}

// nodeLines records the line of every key and list item under n by its
// policy path, as decodeStrict names them.
func nodeLines(n *yaml.Node, path string, lines map[string]int) {
	switch n.Kind {
	case yaml.MappingNode:
		for i := 0; i+1 < len(n.Content); i += 2 {
			p := join(path, n.Content[i].Value)
			lines[p] = n.Content[i].Line
			nodeLines(n.Content[i+1], p, lines)
		}
	case yaml.SequenceNode:
		for i, item := range n.Content {
			p := fmt.Sprintf("%s[%d]", path, i)
			lines[p] = item.Line
			nodeLines(item, p, lines)
		}
	}
}

// withLines prefixes each "path: problem" line of a validation error with
// file:line, the line of the path's key or, for a value the policy does
// not write (a default that does not fit), of its nearest written parent.
func withLines(err error, file string, lines map[string]int) error {
	var b strings.Builder
	for i, l := range strings.Split(err.Error(), "\n") {
		if i > 0 {
			b.WriteByte('\n')
		}
		path, _, ok := strings.Cut(l, ": ")
		for ok && path != "" {
			if n, found := lines[path]; found {
				fmt.Fprintf(&b, "%s:%d: ", file, n)
				break
			}
			if j := strings.LastIndexAny(path, ".["); j > 0 {
				path = path[:j]
			} else {
				path = ""
			}
		}
		b.WriteString(l)
	}
	return &linedError{text: b.String(), err: err}
}

// linedError is a validation error with file:line prefixes; errors.Is and
// errors.As still see the original.
type linedError struct {
	text string
	err  error
}

func (e *linedError) Error() string { return e.text }
func (e *linedError) Unwrap() error { return e.err }

// decodeStrict decodes node into v, refusing keys that v's type does not
// have. Errors carry file:line and the dotted field path.
func decodeStrict(n *yaml.Node, v reflect.Value, file, path string) error {
	where := func() string {
		if path == "" {
			return fmt.Sprintf("%s:%d", file, n.Line)
		}
		return fmt.Sprintf("%s:%d: %s", file, n.Line, path)
	}
	if n.Kind == yaml.AliasNode {
		return fmt.Errorf("%s: YAML aliases are not allowed in a policy; write the value out", where())
	}
	if n.Kind == yaml.ScalarNode && n.Tag == "!!null" {
		return nil // "key:" with no value keeps the default
	}
	if v.Kind() == reflect.Interface { // free-form values (a redaction's replacement constant)
		if err := n.Decode(v.Addr().Interface()); err != nil {
			return fmt.Errorf("%s: %v", where(), err)
		}
		return nil
	}
	if v.Type() == reflect.TypeFor[time.Duration]() { // engines' options: "5m", like Duration
		if n.Kind != yaml.ScalarNode {
			return fmt.Errorf("%s: expected a duration such as 5m", where())
		}
		d, err := ParseDuration(n.Value)
		if err != nil {
			return fmt.Errorf("%s: %v", where(), err)
		}
		v.SetInt(int64(d))
		return nil
	}
	_, isText := v.Addr().Interface().(interface{ UnmarshalText([]byte) error })
	if isText || v.Kind() != reflect.Struct && v.Kind() != reflect.Map && v.Kind() != reflect.Slice {
		if n.Kind != yaml.ScalarNode {
			return fmt.Errorf("%s: expected a single value, found a %s", where(), kindName(n.Kind))
		}
		switch kind := v.Kind(); {
		case isText:
		case kind >= reflect.Int && kind <= reflect.Uint64:
			if n.Tag != "!!int" { // yaml.v3 would truncate 1.5 to 1
				return fmt.Errorf("%s: %q is not a whole number", where(), n.Value)
			}
		}
		if err := n.Decode(v.Addr().Interface()); err != nil {
			var te *yaml.TypeError
			if errors.As(err, &te) && len(te.Errors) > 0 {
				// "line 3: cannot unmarshal !!str `ten` into int": keep the reason, we print the line.
				msg := te.Errors[0]
				if i := strings.Index(msg, ": "); i >= 0 && strings.HasPrefix(msg, "line ") {
					msg = msg[i+2:]
				}
				return fmt.Errorf("%s: %s", where(), msg)
			}
			return fmt.Errorf("%s: %v", where(), err)
		}
		return nil
	}
	switch v.Kind() {
	case reflect.Struct:
		if n.Kind != yaml.MappingNode {
			return fmt.Errorf("%s: expected a mapping of keys (%s), found a %s", where(), strings.Join(yamlKeys(v.Type()), ", "), kindName(n.Kind))
		}
		if err := checkKeys(n, file, path); err != nil {
			return err
		}
		for i := 0; i+1 < len(n.Content); i += 2 {
			k, val := n.Content[i], n.Content[i+1]
			f, ok := fieldByTag(v, k.Value)
			if !ok {
				return fmt.Errorf("%s:%d: unknown key %q in %s; known keys: %s", file, k.Line, k.Value, orTop(path), strings.Join(yamlKeys(v.Type()), ", "))
			}
			if err := decodeStrict(val, f, file, join(path, k.Value)); err != nil {
				return err
			}
		}
	case reflect.Map:
		if n.Kind != yaml.MappingNode {
			return fmt.Errorf("%s: expected a mapping, found a %s", where(), kindName(n.Kind))
		}
		if len(n.Content) == 0 {
			return nil // "{}" is the same as no mapping
		}
		if err := checkKeys(n, file, path); err != nil {
			return err
		}
		if v.IsNil() {
			v.Set(reflect.MakeMap(v.Type()))
		}
		for i := 0; i+1 < len(n.Content); i += 2 {
			k, val := n.Content[i], n.Content[i+1]
			elem := reflect.New(v.Type().Elem()).Elem()
			if err := decodeStrict(val, elem, file, join(path, k.Value)); err != nil {
				return err
			}
			v.SetMapIndex(reflect.ValueOf(k.Value).Convert(v.Type().Key()), elem)
		}
	case reflect.Slice:
		if n.Kind != yaml.SequenceNode {
			return fmt.Errorf("%s: expected a list, found a %s", where(), kindName(n.Kind))
		}
		if len(n.Content) == 0 {
			return nil // "[]" is the same as no list
		}
		s := reflect.MakeSlice(v.Type(), len(n.Content), len(n.Content))
		for i, item := range n.Content {
			if err := decodeStrict(item, s.Index(i), file, fmt.Sprintf("%s[%d]", path, i)); err != nil {
				return err
			}
		}
		v.Set(s)
	}
	return nil
}

// checkKeys refuses alias keys, empty keys and keys that appear twice in
// one mapping: YAML parsers disagree on which duplicate wins, so a policy
// must not contain any.
func checkKeys(n *yaml.Node, file, path string) error {
	seen := make(map[string]int, len(n.Content)/2)
	for i := 0; i+1 < len(n.Content); i += 2 {
		k := n.Content[i]
		switch {
		case k.Kind != yaml.ScalarNode:
			return fmt.Errorf("%s:%d: keys in %s must be plain names, not aliases or structures", file, k.Line, orTop(path))
		case k.Value == "":
			return fmt.Errorf("%s:%d: empty key in %s", file, k.Line, orTop(path))
		}
		if line, dup := seen[k.Value]; dup {
			return fmt.Errorf("%s:%d: key %q in %s appears twice (first on line %d); keep one", file, k.Line, k.Value, orTop(path), line)
		}
		seen[k.Value] = k.Line
	}
	return nil
}

func join(path, key string) string {
	if path == "" {
		return key
	}
	return path + "." + key
}

func orTop(path string) string {
	if path == "" {
		return "the policy"
	}
	return path
}

func kindName(k yaml.Kind) string {
	switch k {
	case yaml.MappingNode:
		return "mapping"
	case yaml.SequenceNode:
		return "list"
	case yaml.ScalarNode:
		return "single value"
	}
	return "document"
}

// fieldByTag finds the struct field whose yaml tag is key, looking into
// fields tagged ",inline".
func fieldByTag(v reflect.Value, key string) (reflect.Value, bool) {
	t := v.Type()
	for i := 0; i < t.NumField(); i++ {
		f := t.Field(i)
		if isInline(f) {
			if fv, ok := fieldByTag(v.Field(i), key); ok {
				return fv, true
			}
			continue
		}
		if name := tagName(f); name != "" && name != "-" && name == key {
			return v.Field(i), true
		}
	}
	return reflect.Value{}, false
}

func yamlKeys(t reflect.Type) []string {
	var keys []string
	for i := 0; i < t.NumField(); i++ {
		f := t.Field(i)
		if isInline(f) {
			keys = append(keys, yamlKeys(f.Type)...)
		} else if k := tagName(f); k != "" && k != "-" {
			keys = append(keys, k)
		}
	}
	slices.Sort(keys)
	return keys
}

func isInline(f reflect.StructField) bool {
	_, opts, _ := strings.Cut(f.Tag.Get("yaml"), ",")
	return f.IsExported() && f.Type.Kind() == reflect.Struct && strings.Contains(opts, "inline")
}

func tagName(f reflect.StructField) string {
	if !f.IsExported() {
		return ""
	}
	name, _, _ := strings.Cut(f.Tag.Get("yaml"), ",")
	return name
}

// ReadPolicyFileOrDefault reads the policy at path, or the embedded default
// policy when path is empty: what an empty -policy flag means in the
// example binaries.
func ReadPolicyFileOrDefault(path string) (*Policy, error) {
	if path == "" {
		return ParsePolicy(DefaultPolicyYAML, "default-policy.yaml")
	}
	return ReadPolicyFile(path)
}
