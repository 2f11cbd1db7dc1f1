package schema

import (
	"unicode/utf8"
	"unsafe"

	"github.com/tidwall/gjson"

	"github.com/mqttwaf/mqttwaf/normalize"
)

// This file evaluates all field rules in one walk over the document. Rule
// paths are merged into a trie; each object on the way is iterated once
// and its keys dispatched to the trie, instead of one gjson.Get per rule
// re-scanning the document from the start. The iteration (members,
// elements) only finds where each member ends: a value is decoded (as a
// gjson.Result) only when a rule names its key, and a key whose length no
// rule's key has is not even looked up, so an object of many members of
// which rules name a few costs little more than reading it. The result is
// the same as evaluating the rules one by one in Options order: the failing
// rule with the smallest index is reported.
//
// Unless Options.ExactPaths, keys are matched the way case-insensitive back
// ends read them: the trie is keyed by folded keys (normalize.FoldKey) and
// each document key is folded before the look-up, so two keys of one
// object that fold alike are both checked; and a key step that meets an
// array applies to every object in it, at any depth ("through" the array),
// each of which must then have the required keys.

type fieldNode struct {
	id       int
	keys     map[string]*fieldNode // children by (unescaped; folded unless exact) key
	keyList  []*fieldNode          // the same, in insertion order, for missing checks
	index    map[int]*fieldNode    // children whose key is an array index
	isIndex  bool                  // this node's key is an array index too
	each     *fieldNode            // the '#' child
	depth    int                   // components from the root
	rules    []int                 // rules whose path ends here
	required []int                 // required rules in this subtree
	key      string                // this node's key in its parent's keys
	// lens has bit l set when a key child's key is l bytes long (l < 64),
	// long when one is longer: a document key of another length is no
	// child, which most keys of an object are, found without a look-up.
	lens uint64
	long bool
}

// mayHave reports whether n may have a key child of a key l bytes long.
func (n *fieldNode) mayHave(l int) bool {
	if l >= 64 {
		return n.long
	}
	return n.lens&(1<<l) != 0
}

// fieldSet is the compiled rule list and its trie.
type fieldSet struct {
	rules []fieldRule
	root  *fieldNode
	nodes int
	fold  bool // match keys folded and through arrays (!Options.ExactPaths)
}

func newFieldSet(rules []fieldRule, fold bool) *fieldSet {
	fs := &fieldSet{rules: rules, root: &fieldNode{}, fold: fold}
	fs.nodes = 1
	for ri := range rules {
		n := fs.root
		p := &rules[ri].path
		for ci, raw := range p.raw {
			if rules[ri].required {
				n.required = append(n.required, ri)
			}
			var c *fieldNode
			if raw == "#" {
				if n.each == nil {
					n.each = &fieldNode{id: fs.nodes, depth: ci + 1}
					fs.nodes++
				}
				c = n.each
			} else {
				k := p.keys[ci]
				if fold {
					k = p.folded[ci]
				}
				if c = n.keys[k]; c == nil {
					c = &fieldNode{id: fs.nodes, depth: ci + 1, key: k}
					fs.nodes++
					if n.keys == nil {
						n.keys = map[string]*fieldNode{}
					}
					n.keys[k] = c
					n.keyList = append(n.keyList, c)
					if len(k) >= 64 {
						n.long = true
					} else {
						n.lens |= 1 << len(k)
					}
					if i := p.index[ci]; i >= 0 {
						if n.index == nil {
							n.index = map[int]*fieldNode{}
						}
						n.index[i], c.isIndex = c, true
					}
				}
			}
			n = c
		}
		if rules[ri].required {
			n.required = append(n.required, ri)
		}
		n.rules = append(n.rules, ri)
	}
	return fs
}

// fieldScratch is per-call state, pooled with the decoder.
type fieldScratch struct {
	seen []uint32 // per node id: the stamp of the visit that saw it
	gen  uint32
	at   trail  // where the walk is
	fkey []byte // a folded document key
	best int    // index of the failing rule reported so far
	err  *ValidationError
}

// check evaluates every rule on doc, a valid JSON document.
func (fs *fieldSet) check(doc string, sc *fieldScratch) *ValidationError {
	if len(sc.seen) < fs.nodes {
		sc.seen = make([]uint32, fs.nodes)
	}
	sc.at, sc.best, sc.err = sc.at[:0], len(fs.rules), nil
	fs.visit(fs.root, doc[skipWS(doc, 0):], sc) // the whole document is one value
	clear(sc.at[:cap(sc.at)])                   // keys point into the document
	return sc.err
}

func (sc *fieldScratch) fail(ri int, e *ValidationError) {
	if e != nil && ri < sc.best {
		sc.best, sc.err = ri, e
	}
}

func (sc *fieldScratch) push(key string, idx int) { sc.at = append(sc.at, place{key, idx}) }
func (sc *fieldScratch) pop()                     { sc.at = sc.at[:len(sc.at)-1] }

// first is the first byte of raw, or 0.
func first(raw string) byte {
	if raw == "" {
		return 0
	}
	return raw[0]
}

// visit checks n's rules on the value at the start of raw and walks n's
// children in it. raw runs on to the end of the document: the walk finds
// where the value ends, and visit returns its length, so the member or
// element that holds it is not read twice to find out.
func (fs *fieldSet) visit(n *fieldNode, raw string, sc *fieldScratch) int {
	if len(n.rules) > 0 {
		// A number, string or literal ends where it does; an object or
		// array runs on, but rules read only the type of those.
		r := gjson.Parse(raw)
		for _, ri := range n.rules {
			if ri < sc.best {
				sc.fail(ri, fs.rules[ri].check(r, sc.at))
			}
		}
	}
	end := -1
	if len(n.keyList) > 0 {
		_, end = fs.visitKeys(n, raw, sc, false, false)
	}
	if c := n.each; c != nil {
		if first(raw) != '[' {
			for _, ri := range c.required {
				if ri < sc.best {
					sc.fail(ri, verr(sc.at.pointer(nil), "type", "must be an array"))
				}
			}
		} else {
			i := 0
			end = elements(raw, func(v string) int {
				sc.push("", i)
				n := fs.visit(c, v, sc)
				sc.pop()
				i++
				return n
			})
		}
	}
	if end < 0 {
		end = valueEnd(raw, 0)
	}
	return end
}

// visitKeys dispatches the keys of the object at the start of raw, or the
// elements of the array there, to n's key children, and reports required
// ones that are missing. through: the object was reached through an
// array, where an index child is not required (the array's own index
// decides); nested: the array is inside such an array, whose indexes mean
// nothing to n. It returns how many objects it visited, and the length of
// the value if it read to its end (-1 if not).
func (fs *fieldSet) visitKeys(n *fieldNode, raw string, sc *fieldScratch, through, nested bool) (objs, end int) {
	sc.gen++
	if sc.gen == 0 { // wrapped: old stamps could match again
		clear(sc.seen)
		sc.gen = 1
	}
	stamp := sc.gen
	switch first(raw) {
	case '{':
		end = members(raw, func(k string, escaped bool, v string) int {
			if escaped {
				k = gjson.Parse(k).Str // unescaped as gjson does (allocates)
			} else {
				k = k[1 : len(k)-1]
			}
			c := fs.child(n, k, sc)
			if c == nil {
				return -1
			}
			sc.seen[c.id] = stamp
			sc.push(k, -1)
			l := fs.visit(c, v, sc)
			sc.pop()
			return l
		})
		fs.missing(n, sc, stamp, func(c *fieldNode) bool { return !through || !c.isIndex })
		return 1, end
	case '[':
		end = -1
		if !nested && n.index != nil {
			i := 0
			end = elements(raw, func(v string) int {
				l := -1
				if c := n.index[i]; c != nil {
					sc.seen[c.id] = stamp
					sc.push("", i)
					l = fs.visit(c, v, sc)
					sc.pop()
				}
				i++
				return l
			})
		}
		if !nested {
			// Before the walk below, which reuses the stamps.
			fs.missing(n, sc, stamp, func(c *fieldNode) bool { return c.isIndex })
		}
		if fs.fold {
			i := 0
			end = elements(raw, func(v string) int {
				l := -1
				if v[0] == '{' || v[0] == '[' {
					sc.push("", i)
					var o int
					o, l = fs.visitKeys(n, v, sc, true, v[0] == '[')
					objs += o
					sc.pop()
				}
				i++
				return l
			})
		}
		if !nested && objs == 0 {
			// No object to look into: the keys are missing here.
			fs.missing(n, sc, 0, func(c *fieldNode) bool { return !c.isIndex })
		}
		return objs, end
	}
	fs.missing(n, sc, stamp, func(*fieldNode) bool { return true })
	return 0, -1
}

// child returns n's child for the document key key (unescaped), or nil.
// A node with few children compares their keys in place; more are looked
// up in the map.
func (fs *fieldSet) child(n *fieldNode, key string, sc *fieldScratch) *fieldNode {
	const few = 8
	if !fs.fold {
		if !n.mayHave(len(key)) {
			return nil
		}
		if len(n.keyList) <= few {
			for _, c := range n.keyList {
				if c.key == key {
					return c
				}
			}
			return nil
		}
		return n.keys[key]
	}
	for i := 0; i < len(key); i++ {
		if key[i] >= utf8.RuneSelf {
			sc.fkey = normalize.AppendFoldedKey(sc.fkey[:0], unsafe.Slice(unsafe.StringData(key), len(key)))
			return n.keys[string(sc.fkey)]
		}
	}
	// An ASCII key folds to itself lowercased, as long as it is.
	if !n.mayHave(len(key)) {
		return nil
	}
	if len(n.keyList) <= few {
		for _, c := range n.keyList {
			if len(c.key) == len(key) && lowerEquals(key, c.key) {
				return c
			}
		}
		return nil
	}
	b := sc.fkey[:0]
	for i := 0; i < len(key); i++ {
		b = append(b, lowerASCII(key[i]))
	}
	sc.fkey = b
	return n.keys[string(b)]
}

// lowerEquals reports whether the ASCII key lowercased is folded (as long).
func lowerEquals(key, folded string) bool {
	for i := 0; i < len(key); i++ {
		if lowerASCII(key[i]) != folded[i] {
			return false
		}
	}
	return true
}

// missing reports the required rules below each of n's key children that
// the visit with stamp did not see and that which selects.
func (fs *fieldSet) missing(n *fieldNode, sc *fieldScratch, stamp uint32, which func(*fieldNode) bool) {
	for _, c := range n.keyList {
		if (stamp == 0 || sc.seen[c.id] != stamp) && which(c) {
			for _, ri := range c.required {
				if ri < sc.best {
					sc.fail(ri, fs.rules[ri].missing(sc.at, n.depth))
				}
			}
		}
	}
}

// members calls yield with each member of the JSON object at the start of
// raw (a value the decoder accepted; raw may run on after it): the key as
// written with its quotes, whether it has escapes, and the rest of raw from
// the member's value on. yield returns the value's length if it read it,
// or -1. members returns the object's length. It reads only what it must to
// find where each member ends, so the values of keys no rule names are
// never decoded. On input that is not JSON it stops early, never reading
// past raw.
func members(raw string, yield func(key string, escaped bool, val string) int) int {
	i := skipWS(raw, 1)
	if i < len(raw) && raw[i] == '}' {
		return i + 1
	}
	for i < len(raw) && raw[i] == '"' {
		end, escaped := stringEnd(raw, i)
		j := skipWS(raw, end)
		if j >= len(raw) || raw[j] != ':' {
			break
		}
		vs := skipWS(raw, j+1)
		if vs >= len(raw) {
			break
		}
		more := false
		if i, more = next(raw, vs, yield(raw[i:end], escaped, raw[vs:]), '}'); !more {
			return i
		}
	}
	return len(raw)
}

// elements calls yield with the rest of raw from each element of the JSON
// array at its start on, as members does with values, and returns the
// array's length.
func elements(raw string, yield func(val string) int) int {
	i := skipWS(raw, 1)
	if i < len(raw) && raw[i] == ']' {
		return i + 1
	}
	for i < len(raw) {
		more := false
		if i, more = next(raw, i, yield(raw[i:]), ']'); !more {
			return i
		}
	}
	return len(raw)
}

// next steps over the value at start, l bytes long (-1: not known yet), and
// what follows it in its object or array: it returns where the next member
// or element starts and true, or, at the closing byte, the container's
// length and false (len(raw) if what follows is not JSON).
func next(raw string, start, l int, closing byte) (int, bool) {
	if l < 0 {
		l = valueEnd(raw[start:], 0)
	}
	if l <= 0 {
		return len(raw), false
	}
	switch i := skipWS(raw, start+l); {
	case i < len(raw) && raw[i] == ',':
		return skipWS(raw, i+1), true
	case i < len(raw) && raw[i] == closing:
		return i + 1, false
	}
	return len(raw), false
}

func skipWS(s string, i int) int {
	for i < len(s) && (s[i] == ' ' || s[i] == '\t' || s[i] == '\n' || s[i] == '\r') {
		i++
	}
	return i
}

// stringEnd returns the index after the string whose opening quote is at
// i, and whether it has escapes. (A byte loop: keys and values are short,
// and it measured faster than strings.IndexByte on telemetry.)
func stringEnd(s string, i int) (int, bool) {
	escaped := false
	for i++; i < len(s); i++ {
		switch s[i] {
		case '"':
			return i + 1, escaped
		case '\\':
			escaped = true
			i++ // the escaped byte cannot end the string
		}
	}
	return len(s), escaped
}

// valueEnd returns the index after the value starting at i (i itself if
// none does).
func valueEnd(s string, i int) int {
	if i >= len(s) {
		return i
	}
	switch s[i] {
	case '"':
		end, _ := stringEnd(s, i)
		return end
	case '{', '[':
		depth := 0
		for i < len(s) {
			switch s[i] {
			case '"':
				i, _ = stringEnd(s, i)
				continue
			case '{', '[':
				depth++
			case '}', ']':
				if depth--; depth == 0 {
					return i + 1
				}
			}
			i++
		}
		return len(s)
	}
	for i < len(s) && !endsScalar[s[i]] {
		i++
	}
	return i
}

// endsScalar marks the bytes that end a number or literal.
var endsScalar = [256]bool{',': true, '}': true, ']': true, ' ': true, '\t': true, '\n': true, '\r': true}
