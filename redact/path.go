package redact

import (
	"errors"
	"strconv"
	"strings"
	"unicode/utf8"

	"github.com/mqttwaf/mqttwaf/normalize"
)

// This file parses rule paths (the key/index subset of gjson path syntax)
// and compiles them into a trie that the rewriter steps through while it
// walks the document once.
//
// Folded matching (the default, Options.ExactPaths off) stores every key of
// a path folded (normalize.FoldKey) and compares a document key folded: a
// plain ASCII key (most keys) is compared with its letters lowercased on the
// fly, without a copy; any other key is folded in full by the walker first.
// An array met by a key step passes that step on to its objects: such
// "through" states are stored as ^node (negative), take key edges only and
// never select a rule themselves.

type compKind uint8

const (
	compKey  compKind = iota // literal key; also an array index when numeric
	compWild                 // key pattern with '*' or '?'
	compAll                  // '#': every array element
)

type comp struct {
	kind  compKind
	text  string // literal key (unescaped) or pattern (gjson escapes kept)
	index int    // compKey: array index, or -1 when text is not a number
}

// parsePath splits a gjson path into components. Queries, modifiers,
// multipaths and pipes select computed values, not places in the document,
// so they cannot name what to redact and are refused. With fold, keys and
// the literal parts of key patterns are folded.
func parsePath(p string, fold bool) ([]comp, error) {
	if p == "" {
		return nil, errors.New("must not be empty")
	}
	var comps []comp
	var lit, pat strings.Builder
	wild, escaped := false, false
	flush := func() error {
		raw := pat.String()
		switch {
		case raw == "":
			return errors.New("empty component (\"..\" or a leading/trailing '.')")
		case raw == "#":
			comps = append(comps, comp{kind: compAll, text: "#", index: -1})
		case raw[0] == '@':
			return errors.New("gjson modifiers (@...) are not supported")
		case strings.HasPrefix(raw, "#("):
			return errors.New("gjson queries (#(...)) are not supported")
		case raw[0] == '[' || raw[0] == '{':
			return errors.New("gjson multipaths are not supported")
		case raw[0] == '!':
			return errors.New("gjson literals (!...) are not supported")
		case wild:
			if fold {
				raw = foldPattern(raw)
			}
			comps = append(comps, comp{kind: compWild, text: raw, index: -1})
		default:
			c := comp{kind: compKey, text: lit.String(), index: -1}
			if n, err := strconv.Atoi(c.text); err == nil && n >= 0 && strconv.Itoa(n) == c.text {
				c.index = n
			}
			if fold {
				c.text = normalize.FoldKey(c.text)
			}
			comps = append(comps, c)
		}
		lit.Reset()
		pat.Reset()
		wild = false
		return nil
	}
	for i := 0; i < len(p); i++ {
		c := p[i]
		if escaped {
			lit.WriteByte(c)
			pat.WriteByte(c)
			escaped = false
			continue
		}
		switch c {
		case '\\':
			escaped = true
			pat.WriteByte(c)
			continue
		case '.':
			if err := flush(); err != nil {
				return nil, err
			}
			continue
		case '|':
			return nil, errors.New("gjson pipes (|) are not supported")
		case '*', '?':
			wild = true
		}
		lit.WriteByte(c)
		pat.WriteByte(c)
	}
	if escaped {
		return nil, errors.New("ends with a lone '\\'")
	}
	if err := flush(); err != nil {
		return nil, err
	}
	return comps, nil
}

// foldPattern folds the literal runs of a key pattern and escapes any '*',
// '?' or '\' the fold produced (U+FF0A folds to '*'), so they stay literal.
func foldPattern(pat string) string {
	var out, run strings.Builder
	flush := func() {
		for _, c := range []byte(normalize.FoldKey(run.String())) {
			if c == '*' || c == '?' || c == '\\' {
				out.WriteByte('\\')
			}
			out.WriteByte(c)
		}
		run.Reset()
	}
	for i := 0; i < len(pat); i++ {
		switch c := pat[i]; c {
		case '\\':
			if i+1 < len(pat) {
				i++
				run.WriteByte(pat[i])
			}
		case '*', '?':
			flush()
			out.WriteByte(c)
		default:
			run.WriteByte(c)
		}
	}
	flush()
	return out.String()
}

// lowerASCII maps 'A'-'Z' to 'a'-'z' and every other byte to itself.
var lowerASCII = func() (t [256]byte) {
	for i := range t {
		t[i] = byte(i)
		if i >= 'A' && i <= 'Z' {
			t[i] += 'a' - 'A'
		}
	}
	return t
}()

// equalFold compares a folded path key with a document key whose only
// difference from its fold may be ASCII upper case.
func equalFold(folded string, key []byte) bool {
	if len(folded) != len(key) {
		return false
	}
	for i := range key {
		if lowerASCII[folded[i]] != lowerASCII[key[i]] {
			return false
		}
	}
	return true
}

// wildMatch matches s against a gjson key pattern: '*' any run, '?' one
// character, '\' escapes. One backtrack point keeps it O(len(pat)*len(s)).
// With fold, s's ASCII letters are compared lowercased (pat is folded).
func wildMatch(pat string, s []byte, fold bool) bool {
	low := &identity
	if fold {
		low = &lowerASCII
	}
	p, i := 0, 0
	starP, starI := -1, 0
	for i < len(s) {
		if p < len(pat) {
			switch pat[p] {
			case '*':
				starP, starI = p, i
				p++
				continue
			case '?':
				_, size := utf8.DecodeRune(s[i:])
				i += size
				p++
				continue
			case '\\':
				if p+1 < len(pat) && pat[p+1] == low[s[i]] {
					p += 2
					i++
					continue
				}
			default:
				if pat[p] == low[s[i]] {
					p++
					i++
					continue
				}
			}
		}
		if starP < 0 {
			return false
		}
		_, size := utf8.DecodeRune(s[starI:])
		starI += size
		p, i = starP+1, starI
	}
	for p < len(pat) && pat[p] == '*' {
		p++
	}
	return p == len(pat)
}

// Roles of a coarsen rule's two paths.
const (
	roleNone uint8 = iota
	roleLat
	roleLon
)

type edge struct {
	c  comp
	to int32
}

type litEdge struct {
	key  string
	to   int32
	next int16 // 1 + index of the next lit with the same keyHash, or 0
}

type node struct {
	children []edge    // every edge, for building
	lits     []litEdge // literal-key edges, for stepping
	slot     [64]int16 // keyHash -> 1 + index of the first such lit, or 0
	wild     bool      // some edge in others is a key pattern
	others   []edge    // wildcard, '#' and index edges
	rule     int32     // lowest-numbered rule whose path ends here, or -1
	role     uint8     // that rule's role (coarsen)
}

// identity maps every byte to itself (wildMatch without fold).
var identity = func() (t [256]byte) {
	for i := range t {
		t[i] = byte(i)
	}
	return t
}()

// trie holds every rule path; node 0 is the document root. It is built by
// New and read-only afterwards, so Redactors share it between goroutines.
type trie struct {
	nodes []node
	fold  bool // keys are folded (see the top of this file)
}

func newTrie(fold bool) trie { return trie{nodes: []node{{rule: -1}}, fold: fold} }

// node returns the node of state s (a through state ^n included).
func (t *trie) node(s int32) *node {
	if s < 0 {
		s = ^s
	}
	return &t.nodes[s]
}

func (t *trie) add(path []comp, rule int32, role uint8) {
	n := int32(0)
next:
	for _, c := range path {
		for _, e := range t.nodes[n].children {
			if e.c == c {
				n = e.to
				continue next
			}
		}
		t.nodes = append(t.nodes, node{rule: -1})
		to := int32(len(t.nodes) - 1)
		nd := &t.nodes[n]
		nd.children = append(nd.children, edge{c: c, to: to})
		if c.kind == compKey {
			h := t.keyHash([]byte(c.text))
			nd.lits = append(nd.lits, litEdge{key: c.text, to: to, next: nd.slot[h]})
			nd.slot[h] = int16(len(nd.lits))
		}
		if c.kind != compKey || c.index >= 0 {
			nd.others = append(nd.others, edge{c: c, to: to})
		}
		nd.wild = nd.wild || c.kind == compWild
		n = to
	}
	if nd := &t.nodes[n]; nd.rule < 0 || rule < nd.rule {
		nd.rule, nd.role = rule, role
	}
}

// keyHash hashes a key's length and end bytes into 0..63: cheap, and
// enough to tell most keys of a telemetry object from the few a rule names.
// Folding, the end bytes are lowercased: a document key reaches it folded,
// or plain ASCII, whose fold only lowercases letters and keeps the length.
func (t *trie) keyHash(k []byte) uint8 {
	h := uint(len(k))
	if len(k) > 0 {
		a, z := k[0], k[len(k)-1]
		if t.fold {
			a, z = lowerASCII[a], lowerASCII[z]
		}
		h = h*7 + uint(a)*3 + uint(z)
	}
	return uint8(h & 63)
}

// mayStep is stepKey's inlinable pre-check for one state: most keys of an
// object have no edge at all.
func (t *trie) mayStep(state int32, key []byte) bool {
	nd := t.node(state)
	return nd.wild || nd.slot[t.keyHash(key)] != 0
}

// stepKey appends to dst the nodes reached from states through object key
// (folding: the key folded, or plain ASCII).
func (t *trie) stepKey(dst, states []int32, key []byte) []int32 {
	h := t.keyHash(key)
	for _, s := range states {
		nd := t.node(s)
		for j := nd.slot[h]; j != 0; {
			l := &nd.lits[j-1]
			if t.fold && equalFold(l.key, key) || !t.fold && l.key == string(key) {
				dst = append(dst, l.to)
			}
			j = l.next
		}
		if nd.wild {
			for i := range nd.others {
				if e := &nd.others[i]; e.c.kind == compWild && wildMatch(e.c.text, key, t.fold) {
					dst = append(dst, e.to)
				}
			}
		}
	}
	return dst
}

// stepIndex appends to dst the nodes reached from states through array
// element idx. Through states take no index edges.
func (t *trie) stepIndex(dst, states []int32, idx int) []int32 {
	for _, s := range states {
		if s < 0 {
			continue
		}
		for _, e := range t.nodes[s].others {
			if e.c.kind == compAll || e.c.kind == compKey && e.c.index == idx {
				dst = append(dst, e.to)
			}
		}
	}
	return dst
}

// winner picks the rule for a value: the lowest-numbered rule among those
// ending at the active nodes and the one inherited from an enclosing
// container (first matching rule wins, as in a firewall rule list).
func (t *trie) winner(states []int32, inherit int32) (int32, uint8) {
	best, role := inherit, roleNone
	for _, s := range states {
		if s < 0 {
			continue // a through state selects nothing itself
		}
		if r := t.nodes[s].rule; r >= 0 && (best < 0 || r < best) {
			best, role = r, t.nodes[s].role
		}
	}
	return best, role
}

// appendThrough appends to dst, as through states, the states that have
// key edges: an array's element that is an object (or an array) gets them,
// so a key step applies to the objects of an array (folded matching only).
func (t *trie) appendThrough(dst, states []int32) []int32 {
	for _, s := range states {
		if nd := t.node(s); len(nd.lits) > 0 || nd.wild {
			if s >= 0 {
				s = ^s
			}
			dst = append(dst, s)
		}
	}
	return dst
}
