package schema

import (
	"encoding/json"
	"errors"
	"strconv"
	"strings"
	"sync"
	"testing"
)

func komdiValidators(t testing.TB) (schemaV, fieldsV *Validator) {
	t.Helper()
	schemaV, err := New(Options{Schema: komdiSchema})
	if err != nil {
		t.Fatal(err)
	}
	fieldsV, err = New(Options{Fields: komdiFields()})
	if err != nil {
		t.Fatal(err)
	}
	return schemaV, fieldsV
}

func gotVerdict(t *testing.T, err error) verdict {
	t.Helper()
	if err == nil {
		return verdict{}
	}
	var ve *ValidationError
	if !errors.As(err, &ve) {
		t.Fatalf("error %v (%T) is not a *ValidationError", err, err)
	}
	if !errors.Is(err, ErrInvalid) {
		t.Errorf("error %v does not wrap ErrInvalid", err)
	}
	if ve.Message == "" {
		t.Errorf("error %v has no message", err)
	}
	return verdict{ve.Path, ve.Keyword}
}

func TestValidateSeeds(t *testing.T) {
	schemaV, fieldsV := komdiValidators(t)
	both, err := New(Options{Schema: komdiSchema, Fields: komdiFields()})
	if err != nil {
		t.Fatal(err)
	}
	for _, s := range seeds {
		t.Run(s.name, func(t *testing.T) {
			wantFields := s.want
			if s.fields != nil {
				wantFields = *s.fields
			}
			for _, c := range []struct {
				engine string
				v      *Validator
				want   verdict
			}{{"schema", schemaV, s.want}, {"fields", fieldsV, wantFields}, {"both", both, wantFields}} {
				err := c.v.Validate([]byte(s.payload))
				if got := gotVerdict(t, err); got != c.want {
					t.Errorf("%s: got %+v (%v), want %+v", c.engine, got, err, c.want)
				}
				if err != nil && s.secret != "" && strings.Contains(err.Error(), s.secret) {
					t.Errorf("%s: error %q leaks the payload value %q", c.engine, err, s.secret)
				}
			}
		})
	}
}

// TestValidateDoesNotKeepPayload reuses the payload buffer after each call,
// as a broker does: a later call must not see the old bytes. The schema's
// value tree borrows the payload's bytes (keys included), its error must
// not.
func TestValidateDoesNotKeepPayload(t *testing.T) {
	_, fieldsV := komdiValidators(t)
	keysV, err := New(Options{Schema: "m.json", Resources: map[string]string{"m.json": `{"additionalProperties": {"type": "string"}}`}})
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		v        *Validator
		in, path string
	}{
		{fieldsV, set("DATA.LAT", 91), "/DATA/LAT"},
		{keysV, `{"a":"x","key":1}`, "/key"},
		{keysV, `{"k~/y":1}`, "/k~0~1y"},
	} {
		buf := []byte(c.in)
		err := c.v.Validate(buf)
		msg := err.Error()
		copy(buf, strings.Repeat("x", len(buf)))
		if err.Error() != msg || !strings.Contains(msg, c.path) {
			t.Fatalf("error changed after the payload was overwritten: %q, then %q", msg, err.Error())
		}
	}
}

func TestZeroOptionsChecksJSONOnly(t *testing.T) {
	v, err := New(Options{})
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		in   string
		want string // keyword, "" = accepted
	}{
		{`{"anything":[1,"two",null]}`, ""},
		{`42`, ""},
		{`{"a":1`, KeywordJSON},
		{`{"a":1,"a":2}`, KeywordDuplicateKey},
		{strings.Repeat("[", 64) + strings.Repeat("]", 64), ""},
		{strings.Repeat("[", 65) + strings.Repeat("]", 65), KeywordDepth},
	} {
		if got := gotVerdict(t, v.Validate([]byte(c.in))); got.keyword != c.want {
			t.Errorf("%.40q: got %q, want %q", c.in, got.keyword, c.want)
		}
	}
}

func TestMaxDepthOption(t *testing.T) {
	v, err := New(Options{MaxDepth: 2})
	if err != nil {
		t.Fatal(err)
	}
	if err := v.Validate([]byte(`{"a":[1]}`)); err != nil {
		t.Errorf("depth 2: %v", err)
	}
	if got := gotVerdict(t, v.Validate([]byte(`{"a":[[1]]}`))); got.keyword != KeywordDepth {
		t.Errorf("depth 3: got %+v, want depth", got)
	}
}

func TestValidatorConcurrent(t *testing.T) {
	both, err := New(Options{Schema: komdiSchema, Fields: komdiFields()})
	if err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	for g := range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range 200 {
				s := seeds[(g*7+i)%len(seeds)]
				want := s.want
				if s.fields != nil {
					want = *s.fields
				}
				var got verdict
				if err := both.Validate([]byte(s.payload)); err != nil {
					ve := err.(*ValidationError)
					got = verdict{ve.Path, ve.Keyword}
				}
				if got != want {
					t.Errorf("%s: got %+v, want %+v", s.name, got, want)
					return
				}
			}
		}()
	}
	wg.Wait()
}

func TestDuplicateKeysInLargeObjects(t *testing.T) {
	v, err := New(Options{})
	if err != nil {
		t.Fatal(err)
	}
	members := func(n int) string {
		var b strings.Builder
		for i := range n {
			if i > 0 {
				b.WriteByte(',')
			}
			b.WriteString(`"k` + strconv.Itoa(i) + `":` + strconv.Itoa(i))
		}
		return b.String()
	}
	for _, c := range []struct {
		name, in string
		dup      bool
	}{
		{"200 distinct keys", `{` + members(200) + `}`, false},
		{"duplicate of the first key at the end", `{` + members(200) + `,"k0":1}`, true},
		{"escaped duplicate at the end", `{` + members(200) + `,"k\u0031\u0039\u0039":1}`, true},
		{"duplicate inside, then more keys", `{` + members(100) + `,"k50":1,` + strings.ReplaceAll(members(50), `"k`, `"x`) + `}`, true},
		{"same keys in sibling objects", `[{` + members(40) + `},{` + members(40) + `}]`, false},
		{"same key in parent and child", `{"a":{"a":{"a":1}}}`, false},
		{"duplicate in an inner object after a large one", `{"big":{` + members(50) + `},"in":{"x":1,"x":2}}`, true},
	} {
		err := v.Validate([]byte(c.in))
		if got := err != nil && err.(*ValidationError).Keyword == KeywordDuplicateKey; got != c.dup || !c.dup && err != nil {
			t.Errorf("%s: got %v, want duplicate=%v", c.name, err, c.dup)
		}
	}
}

// TestLibraryPanicFailsClosed feeds the JSON Schema library a number that
// the decoder would have refused (big.Rat cannot hold it; the library then
// dereferences nil): the payload is refused, the process lives on.
func TestLibraryPanicFailsClosed(t *testing.T) {
	v, err := New(Options{Schema: "m.json", Resources: map[string]string{"m.json": `{"maximum":1}`}})
	if err != nil {
		t.Fatal(err)
	}
	if got := gotVerdict(t, v.validateSchema(json.Number("1e999999999"))); got != (verdict{"", "schema"}) {
		t.Errorf("got %+v, want a refusal with keyword schema", got)
	}
	if err := v.validateSchema(json.Number("0.5")); err != nil {
		t.Errorf("0.5: %v", err)
	}
}
