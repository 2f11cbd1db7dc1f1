package mqttwaf

import (
	"errors"
	"reflect"
	"regexp"
	"strings"

	"github.com/mqttwaf/mqttwaf/mqttwaf/schema"
)

// The leaf packages (schema, normalize) name their options' fields the Go
// way ("PlausibilityOptions.MaxSpeedKmh", "Fields[2].Type"): they are Go
// libraries first. A policy user knows the YAML keys. addOption reports a
// leaf's option error under the policy's own path, with every Go field
// name of the options type in the message replaced by its key, so an
// operator reads payloads[0].plausibility.max_speed_kmh, never a Go name.

// addOption adds err, an error from a leaf package's constructor for
// options of type t, under the policy path at.
func (fe *fieldErrors) addOption(at string, t reflect.Type, err error) {
	var oe *schema.OptionError
	if !errors.As(err, &oe) {
		// "normalize: BigNumbers: must be ...": the package, the field, the problem.
		msg := err.Error()
		if _, rest, ok := strings.Cut(msg, ": "); ok {
			if field, problem, ok := strings.Cut(rest, ": "); ok && goName.MatchString(field) {
				if p := optionPath(t, field); p != "" && p != field {
					fe.add(at+"."+p, "%s", optionWords(t, problem))
					return
				}
			}
		}
		fe.add(at, "%s", optionWords(t, msg))
		return
	}
	if p := optionPath(t, oe.Field); p != "" {
		at += "." + p
	}
	fe.add(at, "%s", optionWords(t, oe.Problem))
}

// optionPath turns a Go option path into YAML keys by t's tags:
// "PlausibilityOptions.MaxSpeedKmh" -> "max_speed_kmh", "Options.Fields[2].Type"
// -> "fields[2].type". A leading type name is dropped.
func optionPath(t reflect.Type, goPath string) string {
	var out []string
	cur := t
	for i, part := range strings.Split(goPath, ".") {
		name, index, _ := strings.Cut(part, "[")
		if index != "" {
			index = "[" + index
		}
		f, ok := cur.FieldByName(name)
		if !ok {
			if i == 0 {
				continue // the options type's own name
			}
			out = append(out, part)
			continue
		}
		out = append(out, tagName(f)+index)
		ft := f.Type
		for ft.Kind() == reflect.Slice || ft.Kind() == reflect.Pointer {
			ft = ft.Elem()
		}
		if ft.Kind() == reflect.Struct {
			cur = ft
		}
	}
	return strings.Join(out, ".")
}

var goName = regexp.MustCompile(`\b[A-Z][A-Za-z0-9]*\b`)

// optionWords replaces the Go field names of t (and of the structs its
// fields hold) in msg with their YAML keys.
func optionWords(t reflect.Type, msg string) string {
	keys := map[string]string{}
	var walk func(reflect.Type)
	walk = func(t reflect.Type) {
		for t.Kind() == reflect.Slice || t.Kind() == reflect.Pointer {
			t = t.Elem()
		}
		if t.Kind() != reflect.Struct {
			return
		}
		for i := range t.NumField() {
			f := t.Field(i)
			if tag := tagName(f); tag != "" && tag != "-" {
				keys[f.Name] = tag
				walk(f.Type)
			}
		}
	}
	walk(t)
	return goName.ReplaceAllStringFunc(msg, func(w string) string {
		if k, ok := keys[w]; ok {
			return k
		}
		return w
	})
}
