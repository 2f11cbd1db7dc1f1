package schema

import (
	"strconv"

	"github.com/tidwall/gjson"
)

// This file evaluates all field rules in one walk over the document. Rule
// paths are merged into a trie; each object on the way is iterated once
// with gjson.ForEach and its keys dispatched to the trie, instead of one
// gjson.Get per rule re-scanning the document from the start. The result is
// the same as evaluating the rules one by one in Options order: the failing
// rule with the smallest index is reported.

type fieldNode struct {
	id       int
	keys     map[string]*fieldNode // children by (unescaped) key
	keyList  []*fieldNode          // the same, in insertion order, for missing checks
	index    map[int]*fieldNode    // children whose key is an array index
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
}

func newFieldSet(rules []fieldRule) *fieldSet {
	fs := &fieldSet{rules: rules, root: &fieldNode{}}
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
				if c = n.keys[k]; c == nil {
					c = &fieldNode{id: fs.nodes, depth: ci + 1}
					fs.nodes++
					if n.keys == nil {
						n.keys = map[string]*fieldNode{}
					}
					n.keys[k] = c
					n.keyList = append(n.keyList, c)
					if i, err := strconv.Atoi(k); err == nil && i >= 0 && strconv.Itoa(i) == k {
						if n.index == nil {
							n.index = map[int]*fieldNode{}
						}
						n.index[i] = c
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
	idx  []int // indexes taken at '#' components so far
	best int   // index of the failing rule reported so far
	err  *ValidationError
}

// check evaluates every rule on doc, a valid JSON document.
func (fs *fieldSet) check(doc string, sc *fieldScratch) *ValidationError {
	if len(sc.seen) < fs.nodes {
		sc.seen = make([]uint32, fs.nodes)
	}
	sc.idx, sc.best, sc.err = sc.idx[:0], len(fs.rules), nil
	fs.visit(fs.root, gjson.Parse(doc), sc)
	return sc.err
}

func (sc *fieldScratch) fail(ri int, e *ValidationError) {
	if e != nil && ri < sc.best {
		sc.best, sc.err = ri, e
	}
}

func (fs *fieldSet) visit(n *fieldNode, r gjson.Result, sc *fieldScratch) {
	for _, ri := range n.rules {
		if ri < sc.best {
			sc.fail(ri, fs.rules[ri].check(r, sc.idx))
		}
	}
	if len(n.keyList) > 0 {
		sc.gen++
		if sc.gen == 0 { // wrapped: old stamps could match again
			clear(sc.seen)
			sc.gen = 1
		}
		stamp := sc.gen
		switch {
		case r.IsObject():
			r.ForEach(func(k, v gjson.Result) bool {
				if c := n.keys[k.Str]; c != nil {
					sc.seen[c.id] = stamp
					fs.visit(c, v, sc)
				}
				return true
			})
		case r.IsArray() && n.index != nil:
			i := 0
			r.ForEach(func(_, v gjson.Result) bool {
				if c := n.index[i]; c != nil {
					sc.seen[c.id] = stamp
					fs.visit(c, v, sc)
				}
				i++
				return true
			})
		}
		for _, c := range n.keyList {
			if sc.seen[c.id] != stamp {
				for _, ri := range c.required {
					if ri < sc.best {
						sc.fail(ri, fs.rules[ri].missing(c.depth, sc.idx))
					}
				}
			}
		}
	}
	if c := n.each; c != nil {
		if !r.IsArray() {
			for _, ri := range c.required {
				if ri < sc.best {
					sc.fail(ri, verr(fs.rules[ri].path.pointer(n.depth, sc.idx), "type", "must be an array"))
				}
			}
			return
		}
		i := 0
		r.ForEach(func(_, v gjson.Result) bool {
			sc.idx = append(sc.idx, i)
			fs.visit(c, v, sc)
			sc.idx = sc.idx[:len(sc.idx)-1]
			i++
			return true
		})
	}
}
