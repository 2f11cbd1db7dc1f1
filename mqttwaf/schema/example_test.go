package schema_test

import (
	"errors"
	"fmt"
	"time"

	"github.com/mqttwaf/mqttwaf/mqttwaf/schema"
)

func Example() {
	lat, latMax := -90.0, 90.0
	v, err := schema.New(schema.Options{
		Schema: "testdata/komdi-alarm.schema.json", // $refs testdata/coordinates.schema.json
		Fields: []schema.FieldRule{
			{Path: "TYPE", Required: true, Enum: []any{"MALARM_INFO"}},
			{Path: "DATA.LAT", Required: true, Min: &lat, Max: &latMax},
		},
	})
	if err != nil {
		fmt.Println(err)
		return
	}
	for _, payload := range []string{
		`{"DATA":{"LAT":137.4},"TYPE":"MALARM_INFO"}`,
		`{"DATA":{"LAT":37.4},"TYPE":"MALARM_INFO"}`,            // fields pass, the schema wants more
		`{"DATA":{"LAT":37.4},"TYPE":"MALARM_INFO","TYPE":"X"}`, // which TYPE would a database see?
	} {
		err := v.Validate([]byte(payload))
		var ve *schema.ValidationError
		if errors.As(err, &ve) {
			fmt.Printf("refused at %q by %s: %s\n", ve.Path, ve.Keyword, ve.Message)
		}
	}
	// Output:
	// refused at "/DATA/LAT" by maximum: must be <= 90
	// refused at "/DATA/ALARM_FLAG" by required: missing
	// refused at "" by duplicateKey: duplicate object key at byte 42
}

func ExamplePlausibility() {
	p, err := schema.NewPlausibility(schema.PlausibilityOptions{
		TimestampPath:   "DATA.REPORT_TIME",
		TimestampFormat: "20060102150405",
		TimestampZone:   "+09:00",
		LatPath:         "DATA.LAT",
		LonPath:         "DATA.LON",
		MaxSpeedKmh:     150,
		ReplayWindow:    10 * time.Minute,
	})
	if err != nil {
		fmt.Println(err)
		return
	}
	now := time.Date(2017, 11, 28, 13, 45, 21, 0, time.FixedZone("KST", 9*3600))
	for _, payload := range []string{
		`{"DATA":{"REPORT_TIME":"20171128134520","LAT":37.5665,"LON":126.978}}`,  // Seoul
		`{"DATA":{"REPORT_TIME":"20171128134521","LAT":35.1796,"LON":129.0756}}`, // Busan, 1 s later
		`{"DATA":{"REPORT_TIME":"20171128134520","LAT":37.5665,"LON":126.978}}`,  // the first again
		`{"DATA":{"REPORT_TIME":"20171128134519","LAT":37.5665,"LON":126.978}}`,  // older
		`{"DATA":{"REPORT_TIME":"20171128134521","LAT":37.5666,"LON":126.978}}`,  // 11 m north
	} {
		fmt.Println(p.Check(now, "TTNU1372314", []byte(payload)))
	}
	// Output:
	// <nil>
	// schema: /DATA/LAT: speed: implies more than 150 km/h since the device's last position
	// schema: (root): replay: identical to a payload the device sent less than 10m0s ago
	// schema: /DATA/REPORT_TIME: timestampBackwards: older than the device's last accepted timestamp
	// <nil>
}

// Field paths match keys the way back ends read them: a rule on DATA.LAT
// also checks "lat", and the objects of an array at DATA. ExactPaths reads
// paths as gjson does.
func ExampleOptions_exactPaths() {
	latMax := 90.0
	payload := []byte(`{"DATA":[{"LAT":45},{"lat":999}]}`)
	for _, exact := range []bool{false, true} {
		v, err := schema.New(schema.Options{ExactPaths: exact,
			Fields: []schema.FieldRule{{Path: "DATA.LAT", Max: &latMax}}})
		if err != nil {
			panic(err)
		}
		fmt.Println(v.Validate(payload))
	}
	// Output:
	// schema: /DATA/1/lat: maximum: must be <= 90
	// <nil>
}
