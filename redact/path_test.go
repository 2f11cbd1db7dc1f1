package redact

import (
	"strings"
	"testing"

	"github.com/tidwall/gjson"
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
		comps, err := parsePath(tc.path)
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
		if got := wildMatch(tc.pat, []byte(tc.key)); got != tc.want {
			t.Errorf("wildMatch(%q, %q) = %v, want %v", tc.pat, tc.key, got, tc.want)
		}
	}
}

// TestPathsAgreeWithGjson: a replace rule changes exactly the values gjson
// finds at the same path (all of them for '#'; for wildcards gjson.Get
// returns only the first, so those are checked by count elsewhere).
func TestPathsAgreeWithGjson(t *testing.T) {
	docs := []string{
		`{"a":{"b":1,"c":[1,2,3]},"d":[{"e":1},{"e":2},{"f":3}],"g.h":4,"1":5,"arr":[[1],[2]]}`,
		`{"a":[{"b":1}],"d":{"e":1,"0":2},"g":{"h":null}}`,
		`[{"a":{"b":2}}]`,
	}
	paths := []string{"a.b", "a.c", "a.c.1", "a.c.#", "d.#.e", "d.0.e", "d.e", "d.0", `g\.h`, "g.h", "1", "arr.#.0", "a.b.c", "x"}
	for _, doc := range docs {
		for _, p := range paths {
			r, err := New(Options{Rules: []Rule{{Path: p, Action: Action{Op: OpReplace, Value: "X"}}}})
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
