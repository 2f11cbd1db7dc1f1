package normalize_test

import (
	"fmt"

	"github.com/mqttwaf/mqttwaf/normalize"
)

func Example() {
	n, err := normalize.New(normalize.Options{}) // I-JSON, compact output, default limits
	if err != nil {
		panic(err)
	}
	var buf []byte // reuse across messages: Append then allocates nothing

	buf, err = n.Append(buf[:0], []byte(`{ "user": "\u0061dmin", "path": "a\/b", "n": 1.50 }`))
	fmt.Println(string(buf), err)

	// The same key twice: encoding/json would read "admin", other parsers "guest".
	_, err = n.Append(buf[:0], []byte(`{"role":"guest","r\u006fle":"admin"}`))
	fmt.Println(normalize.ReasonOf(err))
	fmt.Println(err)
	// Output:
	// {"user":"admin","path":"a/b","n":1.50} <nil>
	// duplicate_key
	// normalize: duplicate object key (duplicate_key) at byte 16
}

func ExampleOptions_jcs() {
	n, err := normalize.New(normalize.Options{Output: normalize.OutputJCS})
	if err != nil {
		panic(err)
	}
	out, err := n.Append(nil, []byte(`{"b": [1E6, 2.50, -0], "a": "\u00e9"}`))
	fmt.Println(string(out), err)
	// Output:
	// {"a":"é","b":[1000000,2.5,0]} <nil>
}

func ExampleNew_badOption() {
	_, err := normalize.New(normalize.Options{MaxDepth: -1})
	fmt.Println(err)
	// Output:
	// normalize: MaxDepth: must be between 1 and 1000 (0 means the default, 32), got -1
}
