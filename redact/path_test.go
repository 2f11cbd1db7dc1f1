package redact

import (
	"encoding/json"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/tidwall/gjson"

	"github.com/mqttwaf/mqttwaf/normalize"
)

var pathCases = []struct {
	path string
	want string // components as kind:text, or "error: <substring>"
}{
	{"DATA.USER_NAME", "key:DATA key:USER_NAME"},
	{"readings.#.phone", "key:readings all:# key:phone"},
	{"tags.1", "key:tags key:1#1"},
	{"a.01", "key:a key:01"}, // not a canonical index: a key only
	{`fav\.movie`, "key:fav.movie"},
	{`a\*b.c*`, `key:a*b wild:c*`},
	{`DATA.*`, `key:DATA wild:*`},
	{`x.us?r`, `key:x wild:us?r`},
	{`\#`, "key:#"},
	{`\@this`, "key:@this"},
	{"", "error: must not be empty"},
	{"a..b", "error: empty component"},
	{".a", "error: empty component"},
	{"a.", "error: empty component"},
	{"@this", "error: modifiers"},
	{"a.@reverse", "error: modifiers"},
	{"friends.#(last==\"Murphy\").first", "error: queries"},
	{"a|b", "error: pipes"},
	{"[a,b]", "error: multipaths"},
	{"{a,b}", "error: multipaths"},
	{"!true", "error: literals"},
	{`a\`, "error: lone"},
}

func TestParsePath(t *testing.T) {
	names := map[compKind]string{compKey: "key", compWild: "wild", compAll: "all"}
	for _, tc := range pathCases {
		comps, err := parsePath(tc.path, false)
		var got string
		if err != nil {
			got = "error: " + err.Error()
		} else {
			var parts []string
			for _, c := range comps {
				p := names[c.kind] + ":" + c.text
				if c.index >= 0 {
					p += "#" + string(rune('0'+c.index))
				}
				parts = append(parts, p)
			}
			got = strings.Join(parts, " ")
		}
		if strings.HasPrefix(tc.want, "error: ") && strings.Contains(got, tc.want[7:]) && strings.HasPrefix(got, "error: ") {
			continue
		}
		if got != tc.want {
			t.Errorf("parsePath(%q) = %s, want %s", tc.path, got, tc.want)
		}
	}
}

var wildCases = []struct {
	pat, key string
	want     bool
}{
	{"*", "", true},
	{"*", "anything", true},
	{"USER_*", "USER_NAME", true},
	{"USER_*", "USR_NAME", false},
	{"*_ID", "USER_ID", true},
	{"*_ID", "USER_IDS", false},
	{"u?er", "user", true},
	{"u?er", "uer", false},
	{"?", "홍", true}, // one character, three bytes
	{"홍*", "홍길수", true},
	{"*a*b*c", "xxaxxbxxcxxc", true},
	{"*a*b*c", "xxaxxbxx", false},
	{`a\*`, "a*", true},
	{`a\*`, "ab", false},
	{`a\?`, "ab", false},
}

func TestWildMatch(t *testing.T) {
	for _, tc := range wildCases {
		if got := wildMatch(tc.pat, []byte(tc.key), false); got != tc.want {
			t.Errorf("wildMatch(%q, %q) = %v, want %v", tc.pat, tc.key, got, tc.want)
		}
	}
}

// Documents and paths for the path tests: keys in several cases, arrays of
// objects and of arrays, keys that are numbers.
var (
	pathDocs = []string{
		`{"a":{"b":1,"c":[1,2,3]},"d":[{"e":1},{"e":2},{"f":3}],"g.h":4,"1":5,"arr":[[1],[2]]}`,
		`{"a":[{"b":1}],"d":{"e":1,"0":2},"g":{"h":null}}`,
		`[{"a":{"b":2}}]`,
		`{"A":{"B":1,"c":[{"b":2},[{"B":3}]]},"d":[[{"E":1}],{"0":{"e":2}},{"e":{"E":3}}],"Ａ":{"ｂ":4}}`,
		`{"a":[1,{"b":[{"c":1},{"C":2}]},[[{"b":{"c":3}}]]],"D":{"0":1},"d":[{"0":[5]},[6]]}`,
	}
	pathPaths = []string{"a.b", "a.c", "a.c.1", "a.c.#", "d.#.e", "d.0.e", "d.e", "d.0", `g\.h`, "g.h", "1", "arr.#.0",
		"a.b.c", "x", "A.B", "a.b.c", "d.e.e", "D.0", "a.#.b", "a.1.b.#.c"}
)

// TestPathsAgreeWithGjson: with ExactPaths a replace rule changes exactly
// the values gjson finds at the same path (all of them for '#'; for
// wildcards gjson.Get returns only the first, so those are checked by count
// elsewhere).
func TestPathsAgreeWithGjson(t *testing.T) {
	for _, doc := range pathDocs {
		for _, p := range pathPaths {
			r, err := New(Options{ExactPaths: true, Rules: []Rule{{Path: p, Action: Action{Op: OpReplace, Value: "X"}}}})
			if err != nil {
				t.Fatal(err)
			}
			_, rep, err := r.Apply(nil, []byte(doc))
			if err != nil {
				t.Fatal(err)
			}
			res := gjson.Get(doc, p)
			want := 0
			switch {
			case strings.HasSuffix(p, ".#"): // gjson: the length; here: every element
				want = int(res.Int())
			case strings.Contains(p, "#"):
				for _, v := range res.Array() {
					if v.Exists() {
						want++
					}
				}
			case res.Exists():
				want = 1
			}
			if got := rep.Count("replace:" + p); got != want {
				t.Errorf("doc %s path %q: rule changed %d values, gjson finds %d (%s)", doc, p, got, want, res.Raw)
			}
		}
	}
}

func TestWildcardsMatchEveryKey(t *testing.T) {
	r, err := New(Options{Rules: []Rule{{Path: "DATA.USER_*", Action: Action{Op: OpRemove}}}})
	if err != nil {
		t.Fatal(err)
	}
	out, rep, err := r.Apply(nil, []byte(`{"DATA":{"USER_ID":"1","X":2,"USER_NAME":"n","USER_MOBILE":"m"}}`))
	if err != nil || string(out) != `{"DATA":{"X":2}}` || rep.Changed != 3 {
		t.Fatalf("got %s, %+v, %v", out, rep, err)
	}
}

// The first matching rule wins, in Options order, including rules
// inherited from an enclosing object.
func TestFirstRuleWins(t *testing.T) {
	r, err := New(Options{Rules: []Rule{
		{Path: "a.keep", Action: Action{Op: OpReplace, Value: "first"}},
		{Path: "a", Action: Action{Op: OpMask}},
		{Path: "a.*", Action: Action{Op: OpReplace, Value: "third"}},
	}})
	if err != nil {
		t.Fatal(err)
	}
	out, _, err := r.Apply(nil, []byte(`{"a":{"keep":"x","other":"yy"}}`))
	if err != nil || string(out) != `{"a":{"keep":"first","other":"**"}}` {
		t.Fatalf("got %s, %v", out, err)
	}
}

// TestFoldedPathsAgreeWithReference: by default a replace rule changes
// exactly the values refFoldedMatches finds: keys compared by
// normalize.FoldKey, a key step through arrays to their objects.
func TestFoldedPathsAgreeWithReference(t *testing.T) {
	for _, doc := range pathDocs {
		var v any
		if err := json.Unmarshal([]byte(doc), &v); err != nil {
			t.Fatal(err)
		}
		for _, p := range pathPaths {
			r, err := New(Options{Rules: []Rule{{Path: p, Action: Action{Op: OpReplace, Value: "X"}}}})
			if err != nil {
				t.Fatal(err)
			}
			_, rep, err := r.Apply(nil, []byte(doc))
			if err != nil {
				t.Fatal(err)
			}
			comps, _ := parsePath(p, false)
			want := refFoldedMatches(v, comps, "", false)
			// A replaced container is not looked into: drop matches inside another.
			n := 0
			for _, m := range want {
				inside := false
				for _, o := range want {
					inside = inside || strings.HasPrefix(m, o+"/")
				}
				if !inside {
					n++
				}
			}
			if got := rep.Count("replace:" + p); got != n {
				t.Errorf("doc %s path %q: rule changed %d values, the reference finds %d: %v", doc, p, got, n, want)
			}
		}
	}
}

// refFoldedMatches returns the JSON pointers of the values path comps
// names in v, the obvious way. through: only key steps apply (v was reached
// through an array).
func refFoldedMatches(v any, comps []comp, at string, through bool) []string {
	if len(comps) == 0 {
		return []string{at}
	}
	c, rest := comps[0], comps[1:]
	var out []string
	switch v := v.(type) {
	case map[string]any:
		if c.kind != compKey {
			return nil
		}
		for k, val := range v {
			if normalize.FoldKey(k) == normalize.FoldKey(c.text) {
				out = append(out, refFoldedMatches(val, rest, at+"/"+k, false)...)
			}
		}
	case []any:
		for i, e := range v {
			p := at + "/" + strconv.Itoa(i)
			if !through && (c.kind == compAll || c.kind == compKey && c.index == i) {
				out = append(out, refFoldedMatches(e, rest, p, false)...)
			}
			if c.kind == compKey {
				switch e.(type) {
				case map[string]any, []any:
					out = append(out, refFoldedMatches(e, comps, p, true)...)
				}
			}
		}
	}
	slices.Sort(out)
	return slices.Compact(out)
}

// TestFoldedWildcards: patterns match the folded key, and a fold that
// produces '*' or '?' (fullwidth forms) stays literal.
func TestFoldedWildcards(t *testing.T) {
	for _, tc := range []struct {
		pat, key string
		want     bool
	}{
		{"USER_*", "user_name", true},
		{"user_*", "USER_NAME", true},
		{"ＵＳＥＲ_*", "User_Id", true},
		{"u?er", "USER", true},
		{"a＊", "a*", true},   // U+FF0A folds to a literal '*'
		{"a＊", "abc", false}, // not to a wildcard
		{"a\\*", "A*", true},
		{"straße*", "STRASSE_1", true},
	} {
		comps, err := parsePath("x."+tc.pat, true)
		if err != nil {
			t.Fatal(err)
		}
		c := comps[1]
		key := normalize.AppendFoldedKey(nil, []byte(tc.key))
		got := c.kind == compWild && wildMatch(c.text, []byte(tc.key), true) || c.kind == compKey && equalFold(c.text, key)
		if got != tc.want {
			t.Errorf("pattern %q (folded %q) on %q: %v, want %v", tc.pat, c.text, tc.key, got, tc.want)
		}
	}
}
