package redact_test

import (
	"fmt"

	"github.com/mqttwaf/mqttwaf/redact"
)

func Example() {
	r, err := redact.New(redact.Options{
		PseudonymKey: "example-key-0123456789", // load from a secret store in real use
		Rules: []redact.Rule{
			{Path: "DATA.USER_NAME", Action: redact.Action{Op: redact.OpRemove}},
			{Path: "DATA.USER_MOBILE", Action: redact.Action{Op: redact.OpMask, KeepLast: 4}},
			{Path: "DATA.USER_ID", Action: redact.Action{Op: redact.OpPseudonym}},
			{Paths: []string{"DATA.LAT", "DATA.LON"}, Action: redact.Action{Op: redact.OpCoarsen, CellMetres: 1000}},
		},
		Detectors: []redact.Detector{{Kind: redact.KindEmail}},
	})
	if err != nil {
		panic(err)
	}
	msg := []byte(`{"DATA":{"USER_ID":"01012344321","LON":126.9720319,"LAT":37.4057689,` +
		`"USER_NAME":"홍길수","USER_MOBILE":"010-8378-1234","NOTE":"mail hong@example.com"}}`)
	var buf []byte // reuse across messages: Apply appends to it
	buf, rep, err := r.Apply(buf[:0], msg)
	if err != nil {
		panic(err) // invalid JSON: drop the message
	}
	fmt.Println(string(buf))
	for id, n := range rep.All() {
		fmt.Println(id, n)
	}
	// Output:
	// {"DATA":{"USER_ID":"syps57eilga3prz4","LON":126.9679,"LAT":37.40558,"USER_MOBILE":"*********1234","NOTE":"mail ****************"}}
	// remove:DATA.USER_NAME 1
	// mask:DATA.USER_MOBILE 1
	// pseudonym:DATA.USER_ID 1
	// coarsen:DATA.LAT,DATA.LON 2
	// detect:email 1
}

// A Redactor refuses, up front, a configuration it could not apply.
func ExampleNew() {
	_, err := redact.New(redact.Options{Rules: []redact.Rule{
		{Path: "DATA.USER_ID", Action: redact.Action{Op: redact.OpPseudonym}},
	}})
	fmt.Println(err)
	// Output:
	// redact: pseudonym_key: must be at least 16 bytes for the pseudonym operator, got 0; generate one with `openssl rand -base64 32`
}

// Paths match keys the way back ends read them: case-insensitively, and
// through arrays of objects. ExactPaths matches as gjson does.
func ExampleOptions_exactPaths() {
	msg := []byte(`{"DATA":[{"USER_NAME":"홍길수"},{"user_name":"Kim","n":2}]}`)
	for _, exact := range []bool{false, true} {
		r, err := redact.New(redact.Options{ExactPaths: exact,
			Rules: []redact.Rule{{Path: "DATA.USER_NAME", Action: redact.Action{Op: redact.OpRemove}}}})
		if err != nil {
			panic(err)
		}
		out, _, err := r.Apply(nil, msg)
		fmt.Println(string(out), err)
	}
	// Output:
	// {"DATA":[{},{"n":2}]} <nil>
	// {"DATA":[{"USER_NAME":"홍길수"},{"user_name":"Kim","n":2}]} <nil>
}
