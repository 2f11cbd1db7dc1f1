package schema

import (
	"errors"
	"strconv"
	"strings"
	"unicode/utf8"
	"unsafe"

	"github.com/mqttwaf/mqttwaf/normalize"
)

// This file parses rule paths: the subset of gjson path syntax that names
// places in the document (keys, array indexes, '#' for every element).
// Wildcards, queries, modifiers, multipaths and pipes select computed values,
// which have no single JSON pointer to report, so they are refused.

// path is a compiled rule path.
type path struct {
	text   string   // the gjson path as written, for gjson.Get when !each
	raw    []string // components with gjson escapes kept ("#" for every element)
	keys   []string // components unescaped
	folded []string // keys folded (normalize.FoldKey), for matching keys the way back ends do
	index  []int    // the array index a component names, or -1
	each   bool     // some component is '#'
	fixed  string   // JSON pointer of the path as written when !each
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
		k := lit.String()
		idx := -1
		if i, err := strconv.Atoi(k); err == nil && i >= 0 && strconv.Itoa(i) == k && r != "#" {
			idx = i
		}
		out.raw = append(out.raw, r)
		out.keys = append(out.keys, k)
		out.folded = append(out.folded, normalize.FoldKey(k))
		out.index = append(out.index, idx)
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
		out.fixed = trail(nil).pointer(out.keys)
	}
	return out, nil
}

// place is one component of the place in a document a walk has reached: an
// object key as the document spells it, or an array index (idx >= 0).
type place struct {
	key string
	idx int
}

// trail is the place a walk has reached, outermost first. Failures report
// it as a JSON pointer: the actual place, with the document's own keys and
// the indexes of the arrays passed through.
type trail []place

// pointer is the JSON pointer (RFC 6901) of t followed by the keys suffix.
func (t trail) pointer(suffix []string) string {
	n := 0
	for _, s := range t {
		n += len(s.key) + 8
	}
	for _, k := range suffix {
		n += len(k) + 2
	}
	var b strings.Builder
	b.Grow(n) // one allocation: escapes are rare
	for _, s := range t {
		b.WriteByte('/')
		if s.idx >= 0 {
			b.WriteString(strconv.Itoa(s.idx))
		} else {
			writeToken(&b, s.key)
		}
	}
	for _, k := range suffix {
		b.WriteByte('/')
		writeToken(&b, k)
	}
	return b.String()
}

func writeToken(b *strings.Builder, k string) {
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

// keyMatches reports whether the document key key folds to folded. An
// ASCII key folds by lowercasing, compared in place; others are folded in
// a stack buffer (one that outgrows it allocates).
func keyMatches(key, folded string) bool {
	if len(key) > 0 && len(folded) > 0 && key[0] < utf8.RuneSelf && (len(key) == 1 || key[1] < utf8.RuneSelf) &&
		lowerASCII(key[0]) != folded[0] {
		// Most keys differ at once. An ASCII byte followed by another can only fold to
		// itself lowercased: NFKC composes a letter with a following mark, never ASCII.
		return false
	}
	for i := 0; i < len(key); i++ {
		if key[i] >= utf8.RuneSelf {
			var buf [64]byte
			return string(normalize.AppendFoldedKey(buf[:0], unsafe.Slice(unsafe.StringData(key), len(key)))) == folded
		}
	}
	if len(key) != len(folded) {
		return false
	}
	for i := 0; i < len(key); i++ {
		if lowerASCII(key[i]) != folded[i] {
			return false
		}
	}
	return true
}

func lowerASCII(c byte) byte {
	if c >= 'A' && c <= 'Z' {
		c += 'a' - 'A'
	}
	return c
}
