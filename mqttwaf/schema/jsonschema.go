package schema

import (
	"errors"
	"fmt"
	"math/big"
	"regexp"
	"slices"
	"sort"
	"strconv"
	"strings"

	"github.com/mqttwaf/mqttwaf/mqttwaf/schema/internal/jsonschema"
	"github.com/santhosh-tekuri/jsonschema/v6/kind"
)

// This file compiles JSON Schemas with santhosh-tekuri/jsonschema and turns
// its error trees into one ValidationError.

// maxRegexp bounds patterns compiled by the "regex" format, which compiles
// a payload string as a regular expression for every message: RE2 compiles
// in linear time, but a long pattern still costs memory per message.
const maxRegexp = 4096

func compileSchema(o Options) (*jsonschema.Schema, error) {
	c := jsonschema.NewCompiler()
	switch o.Draft {
	case "", "2020-12", "draft-2020-12":
		c.DefaultDraft(jsonschema.Draft2020)
	case "2019-09", "draft-2019-09":
		c.DefaultDraft(jsonschema.Draft2019)
	case "7", "07", "draft-07", "draft7":
		c.DefaultDraft(jsonschema.Draft7)
	default:
		return nil, optErr("Options.Draft", `must be "2020-12", "2019-09" or "7", got %q`, o.Draft)
	}
	c.UseLoader(localLoader{})
	// Formats are assertions in every draft (in 2020-12 they are only
	// annotations by default): a contract that says "date-time" should hold.
	// Every format the library knows is checked offline in linear time.
	// Content assertions (contentEncoding, contentMediaType) stay off: they
	// decode base64 and nested JSON per message.
	c.AssertFormat()
	c.UseRegexpEngine(func(s string) (jsonschema.Regexp, error) {
		if len(s) > maxRegexp {
			return nil, fmt.Errorf("regular expression longer than %d bytes", maxRegexp)
		}
		return regexp.Compile(s)
	})
	// Resources in sorted order, so that which error is reported does not
	// depend on map iteration.
	locs := make([]string, 0, len(o.Resources))
	for loc := range o.Resources {
		locs = append(locs, loc)
	}
	sort.Strings(locs)
	for _, loc := range locs {
		field := "Options.Resources[" + strconv.Quote(loc) + "]"
		doc, err := decodeSchemaDoc([]byte(o.Resources[loc]))
		if err != nil {
			return nil, optErr(field, "%v", err)
		}
		if err := c.AddResource(loc, doc); err != nil {
			return nil, optErr(field, "%v", err)
		}
	}
	sch, err := c.Compile(o.Schema)
	if err != nil {
		oe := &OptionError{Field: "Options.Schema", Problem: fmt.Sprintf("compiling %s: %v", o.Schema, err)}
		// The library's errors do not unwrap; find our loader's cause.
		var le *jsonschema.LoadURLError
		if errors.As(err, &le) && errors.Is(le.Err, ErrRemoteRef) {
			oe.Err = ErrRemoteRef
		}
		return nil, oe
	}
	return sch, nil
}

// convertError picks one cause from the library's error tree: the leaf with
// the smallest instance location (then keyword), so that the report does
// not depend on map iteration inside the library. An anyOf or oneOf that
// failed is reported as itself: naming one of its branches would mislead.
func convertError(err error) error {
	var ve *jsonschema.ValidationError
	if !errors.As(err, &ve) {
		return verr("", "schema", "validation failed")
	}
	var best *ValidationError
	var walk func(e *jsonschema.ValidationError)
	walk = func(e *jsonschema.ValidationError) {
		switch e.ErrorKind.(type) {
		case *kind.AnyOf, *kind.OneOf:
		default:
			if len(e.Causes) > 0 {
				for _, c := range e.Causes {
					walk(c)
				}
				return
			}
		}
		cand := leafError(e)
		if best == nil || cand.Path < best.Path || (cand.Path == best.Path && cand.Keyword < best.Keyword) {
			best = cand
		}
	}
	walk(ve)
	return best
}

// leafError describes one failed keyword without payload values.
func leafError(e *jsonschema.ValidationError) *ValidationError {
	ptr := pointerOf(e.InstanceLocation)
	switch k := e.ErrorKind.(type) {
	case *kind.Type:
		return verr(ptr, "type", "must be of type "+strings.Join(k.Want, " or "))
	case *kind.Required:
		// Point at the missing member, as field rules do.
		m := slices.Min(k.Missing)
		return verr(pointerOf(append(slices.Clip(e.InstanceLocation), m)), "required", "missing")
	case *kind.Enum:
		return verr(ptr, "enum", "must be one of the "+strconv.Itoa(len(k.Want))+" allowed values")
	case *kind.Const:
		return verr(ptr, "const", "must equal the constant of the schema")
	case *kind.Format:
		return verr(ptr, "format", "must be a valid "+k.Want)
	case *kind.Pattern:
		return verr(ptr, "pattern", "must match "+quoteCut(k.Want))
	case *kind.MinLength:
		return verr(ptr, "minLength", "must be at least "+strconv.Itoa(k.Want)+" characters long")
	case *kind.MaxLength:
		return verr(ptr, "maxLength", "must be at most "+strconv.Itoa(k.Want)+" characters long")
	case *kind.Minimum:
		return verr(ptr, "minimum", "must be >= "+ratString(k.Want))
	case *kind.Maximum:
		return verr(ptr, "maximum", "must be <= "+ratString(k.Want))
	case *kind.ExclusiveMinimum:
		return verr(ptr, "exclusiveMinimum", "must be > "+ratString(k.Want))
	case *kind.ExclusiveMaximum:
		return verr(ptr, "exclusiveMaximum", "must be < "+ratString(k.Want))
	case *kind.MultipleOf:
		return verr(ptr, "multipleOf", "must be a multiple of "+ratString(k.Want))
	case *kind.MinItems:
		return verr(ptr, "minItems", "must have at least "+strconv.Itoa(k.Want)+" items")
	case *kind.MaxItems:
		return verr(ptr, "maxItems", "must have at most "+strconv.Itoa(k.Want)+" items")
	case *kind.MinProperties:
		return verr(ptr, "minProperties", "must have at least "+strconv.Itoa(k.Want)+" properties")
	case *kind.MaxProperties:
		return verr(ptr, "maxProperties", "must have at most "+strconv.Itoa(k.Want)+" properties")
	case *kind.AdditionalProperties:
		return verr(ptr, "additionalProperties", strconv.Itoa(len(k.Properties))+" properties not allowed by the schema")
	case *kind.PropertyNames:
		return verr(ptr, "propertyNames", "a property name is not allowed by the schema")
	case *kind.UniqueItems:
		return verr(ptr, "uniqueItems", "items must be unique")
	case *kind.Contains, *kind.MinContains, *kind.MaxContains:
		return verr(ptr, e.ErrorKind.KeywordPath()[0], "too few or too many items match the contains schema")
	case *kind.AdditionalItems:
		return verr(ptr, "additionalItems", strconv.Itoa(k.Count)+" items not allowed by the schema")
	case *kind.DependentRequired:
		return verr(ptr, "dependentRequired", "missing properties required with "+quoteCut(k.Prop))
	case *kind.Dependency:
		return verr(ptr, "dependencies", "missing properties required with "+quoteCut(k.Prop))
	case *kind.FalseSchema:
		return verr(ptr, "false", "not allowed by the schema")
	case *kind.Not:
		return verr(ptr, "not", "matches a schema it must not match")
	case *kind.AnyOf:
		return verr(ptr, "anyOf", "matches none of the alternatives")
	case *kind.OneOf:
		if len(k.Subschemas) == 0 {
			return verr(ptr, "oneOf", "matches none of the alternatives")
		}
		return verr(ptr, "oneOf", "matches more than one alternative")
	case *kind.RefCycle:
		return verr(ptr, "$ref", "reference cycle in the schema")
	}
	kw := "schema"
	if p := e.ErrorKind.KeywordPath(); len(p) > 0 {
		kw = p[0]
	}
	return verr(ptr, kw, "failed")
}

var pointerEscaper = strings.NewReplacer("~", "~0", "/", "~1")

func pointerOf(tokens []string) string {
	var b strings.Builder
	for _, t := range tokens {
		b.WriteByte('/')
		b.WriteString(pointerEscaper.Replace(t))
	}
	return b.String()
}

func ratString(r *big.Rat) string {
	f, _ := r.Float64()
	return strconv.FormatFloat(f, 'g', -1, 64)
}
