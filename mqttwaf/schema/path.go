package schema

import (
	"errors"
	"strconv"
	"strings"
)

// This file parses rule paths: the subset of gjson path syntax that names
// places in the document (keys, array indexes, '#' for every element).
// Wildcards, queries, modifiers, multipaths and pipes select computed values,
// which have no single JSON pointer to report, so they are refused.

// path is a compiled rule path.
type path struct {
	text  string   // the gjson path as written, for gjson.Get when !each
	raw   []string // components with gjson escapes kept ("#" for every element)
	keys  []string // components unescaped
	each  bool     // some component is '#'
	fixed string   // JSON pointer when !each
}

func parsePath(p string, allowEach bool) (path, error) {
	if p == "" {
		return path{}, errors.New("must not be empty")
	}
	out := path{text: p}
	var lit, raw strings.Builder
	escaped := false
	flush := func() error {
		r := raw.String()
		switch {
		case r == "":
			return errors.New(`empty component (".." or a leading/trailing '.')`)
		case r == "#":
			if !allowEach {
				return errors.New("'#' (every element) is not allowed here: the path must name one value")
			}
			out.each = true
		case r[0] == '#':
			return errors.New("gjson queries and counts (#...) are not supported")
		case r[0] == '@':
			return errors.New("gjson modifiers (@...) are not supported")
		case r[0] == '[' || r[0] == '{':
			return errors.New("gjson multipaths are not supported")
		case r[0] == '!':
			return errors.New("gjson literals (!...) are not supported")
		}
		out.raw = append(out.raw, r)
		out.keys = append(out.keys, lit.String())
		lit.Reset()
		raw.Reset()
		return nil
	}
	for i := 0; i < len(p); i++ {
		c := p[i]
		if escaped {
			lit.WriteByte(c)
			raw.WriteByte(c)
			escaped = false
			continue
		}
		switch c {
		case '\\':
			escaped = true
			raw.WriteByte(c)
			continue
		case '.':
			if err := flush(); err != nil {
				return path{}, err
			}
			continue
		case '*', '?':
			return path{}, errors.New("gjson wildcards (* and ?) are not supported; name the key, or use '#' for every array element")
		case '|':
			return path{}, errors.New("gjson pipes (|) are not supported")
		}
		lit.WriteByte(c)
		raw.WriteByte(c)
	}
	if escaped {
		return path{}, errors.New("ends with a lone backslash")
	}
	if err := flush(); err != nil {
		return path{}, err
	}
	if !out.each {
		out.fixed = out.pointer(len(out.keys), nil)
	}
	return out, nil
}

// pointer builds the JSON pointer (RFC 6901) of the first at components,
// with the '#' components replaced by the array indexes in idx, in order.
func (p *path) pointer(at int, idx []int) string {
	if !p.each && at == len(p.keys) && p.fixed != "" {
		return p.fixed
	}
	var b strings.Builder
	for i, k := range p.keys[:at] {
		b.WriteByte('/')
		if p.raw[i] == "#" {
			if len(idx) > 0 {
				b.WriteString(strconv.Itoa(idx[0]))
				idx = idx[1:]
			}
			continue
		}
		for i := 0; i < len(k); i++ {
			switch k[i] {
			case '~':
				b.WriteString("~0")
			case '/':
				b.WriteString("~1")
			default:
				b.WriteByte(k[i])
			}
		}
	}
	return b.String()
}
