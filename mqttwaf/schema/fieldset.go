package schema

import (
	"unicode/utf8"
	"unsafe"

	"github.com/tidwall/gjson"

	"github.com/mqttwaf/mqttwaf/normalize"
)

// This file evaluates all field rules in one walk over the document. Rule
// paths are merged into a trie; each object on the way is iterated once
// with gjson.ForEach and its keys dispatched to the trie, instead of one
// gjson.Get per rule re-scanning the document from the start. The result is
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
					c = &fieldNode{id: fs.nodes, depth: ci + 1}
					fs.nodes++
					if n.keys == nil {
						n.keys = map[string]*fieldNode{}
					}
					n.keys[k] = c
					n.keyList = append(n.keyList, c)
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
	fs.visit(fs.root, gjson.Parse(doc), sc)
	clear(sc.at[:cap(sc.at)]) // keys point into the document
	return sc.err
}

func (sc *fieldScratch) fail(ri int, e *ValidationError) {
	if e != nil && ri < sc.best {
		sc.best, sc.err = ri, e
	}
}

func (sc *fieldScratch) push(key string, idx int) { sc.at = append(sc.at, place{key, idx}) }
func (sc *fieldScratch) pop()                     { sc.at = sc.at[:len(sc.at)-1] }

func (fs *fieldSet) visit(n *fieldNode, r gjson.Result, sc *fieldScratch) {
	for _, ri := range n.rules {
		if ri < sc.best {
			sc.fail(ri, fs.rules[ri].check(r, sc.at))
		}
	}
	if len(n.keyList) > 0 {
		fs.visitKeys(n, r, sc, false, false)
	}
	if c := n.each; c != nil {
		if !r.IsArray() {
			for _, ri := range c.required {
				if ri < sc.best {
					sc.fail(ri, verr(sc.at.pointer(nil), "type", "must be an array"))
				}
			}
			return
		}
		i := 0
		r.ForEach(func(_, v gjson.Result) bool {
			sc.push("", i)
			fs.visit(c, v, sc)
			sc.pop()
			i++
			return true
		})
	}
}

// visitKeys dispatches the keys of r, or the elements of array r, to n's
// key children, and reports required ones that are missing. through: r is
// an object reached through an array, where an index child is not
// required (the array's own index decides); nested: r is an array inside
// such an array, whose indexes mean nothing to n. It returns how many
// objects it visited.
func (fs *fieldSet) visitKeys(n *fieldNode, r gjson.Result, sc *fieldScratch, through, nested bool) int {
	sc.gen++
	if sc.gen == 0 { // wrapped: old stamps could match again
		clear(sc.seen)
		sc.gen = 1
	}
	stamp := sc.gen
	switch {
	case r.IsObject():
		r.ForEach(func(k, v gjson.Result) bool {
			if c := fs.child(n, k.Str, sc); c != nil {
				sc.seen[c.id] = stamp
				sc.push(k.Str, -1)
				fs.visit(c, v, sc)
				sc.pop()
			}
			return true
		})
		fs.missing(n, sc, stamp, func(c *fieldNode) bool { return !through || !c.isIndex })
		return 1
	case r.IsArray():
		if !nested && n.index != nil {
			i := 0
			r.ForEach(func(_, v gjson.Result) bool {
				if c := n.index[i]; c != nil {
					sc.seen[c.id] = stamp
					sc.push("", i)
					fs.visit(c, v, sc)
					sc.pop()
				}
				i++
				return true
			})
		}
		if !nested {
			// Before the walk below, which reuses the stamps.
			fs.missing(n, sc, stamp, func(c *fieldNode) bool { return c.isIndex })
		}
		objs := 0
		if fs.fold {
			i := 0
			r.ForEach(func(_, v gjson.Result) bool {
				if v.IsObject() || v.IsArray() {
					sc.push("", i)
					objs += fs.visitKeys(n, v, sc, true, v.IsArray())
					sc.pop()
				}
				i++
				return true
			})
		}
		if !nested && objs == 0 {
			// No object to look into: the keys are missing here.
			fs.missing(n, sc, 0, func(c *fieldNode) bool { return !c.isIndex })
		}
		return objs
	}
	fs.missing(n, sc, stamp, func(*fieldNode) bool { return true })
	return 0
}

// child returns n's child for the document key key, or nil.
func (fs *fieldSet) child(n *fieldNode, key string, sc *fieldScratch) *fieldNode {
	if !fs.fold {
		return n.keys[key]
	}
	b := sc.fkey[:0]
	for i := 0; i < len(key); i++ {
		c := key[i]
		if c >= utf8.RuneSelf {
			b = normalize.AppendFoldedKey(sc.fkey[:0], unsafe.Slice(unsafe.StringData(key), len(key)))
			break
		}
		b = append(b, lowerASCII(c)) // the fold of an ASCII key
	}
	sc.fkey = b
	return n.keys[string(b)]
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
