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

// Keys are compared folded by default: a back end that matches keys case-insensitively (as
// encoding/json does) would otherwise read "lat" where a check read "LAT".
func ExampleOptions_exactKeys() {
	folded, _ := normalize.New(normalize.Options{})
	exact, _ := normalize.New(normalize.Options{ExactKeys: true})
	in := []byte(`{"LAT":45,"lat":999}`)

	_, err := folded.Append(nil, in)
	fmt.Println(err)
	out, err := exact.Append(nil, in)
	fmt.Println(string(out), err)
	fmt.Println(normalize.FoldKey("ＵＳＥＲ_Name"), normalize.FoldKey("Straße"))
	// Output:
	// normalize: duplicate object key (duplicate_key) at byte 10
	// {"LAT":45,"lat":999} <nil>
	// user_name strasse
}
