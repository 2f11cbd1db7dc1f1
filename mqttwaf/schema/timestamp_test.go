package schema

import (
	"errors"
	"testing"
	"time"

	"github.com/tidwall/gjson"
)

func TestTimestampFormats(t *testing.T) {
	kst := time.FixedZone("KST", 9*3600)
	seed := time.Date(2017, 11, 28, 13, 45, 20, 0, kst)
	for _, c := range []struct {
		format, zone string
		raw          string // JSON value
		want         time.Time
	}{
		{"20060102150405", "+09:00", `"20171128134520"`, seed},
		{"20060102150405", "+09:00", `20171128134520`, seed},
		{"20060102150405", "", `"20171128134520"`, time.Date(2017, 11, 28, 13, 45, 20, 0, time.UTC)},
		{"20060102150405", "UTC", `"2017112813452"`, time.Time{}},
		{"20060102150405", "UTC", `"20171328134520"`, time.Time{}},
		{"2006-01-02 15:04:05", "-05:30", `"2017-11-28 13:45:20"`, time.Date(2017, 11, 28, 13, 45, 20, 0, time.FixedZone("", -(5*3600+1800)))},
		{"", "", `"2017-11-28T13:45:20+09:00"`, seed},
		{"rfc3339", "", `"2017-11-28T04:45:20.5Z"`, seed.Add(500 * time.Millisecond)},
		{"rfc3339", "", `"2017-11-28 04:45:20Z"`, time.Time{}},
		{"rfc3339", "", `1511844320`, time.Time{}},
		{"rfc3339", "", `"1969-12-31T23:59:59Z"`, time.Time{}},
		{"unix", "", `1511844320`, seed},
		{"unix", "", `"1511844320"`, seed},
		{"unix", "", `1511844320.25`, seed.Add(250 * time.Millisecond)},
		{"unix", "", `1511844320.0000000019`, seed.Add(1)},
		{"unix", "", `1.51184432e9`, time.Time{}},
		{"unix", "", `-1`, time.Time{}},
		{"unix", "", `"12a"`, time.Time{}},
		{"unix", "", `"1.2.3"`, time.Time{}},
		{"unix", "", `99999999999999999999`, time.Time{}},
		{"unix", "", `7000000000`, time.Time{}},
		{"unix", "", `true`, time.Time{}},
		{"unix", "", `null`, time.Time{}},
		{"unix_ms", "", `1511844320123`, seed.Add(123 * time.Millisecond)},
		{"unix_ms", "", `"1511844320123.5"`, seed.Add(123*time.Millisecond + 500*time.Microsecond)},
		{"unix_ms", "", `{"ms":1}`, time.Time{}},
	} {
		f, err := parseTSFormat(c.format, c.zone)
		if err != nil {
			t.Errorf("%q %q: %v", c.format, c.zone, err)
			continue
		}
		got, err := f.read(gjson.Parse(c.raw))
		if c.want.IsZero() {
			if err == nil {
				t.Errorf("%q %s: got %v, want an error", c.format, c.raw, time.Unix(0, got))
			}
			continue
		}
		if err != nil || got != c.want.UnixNano() {
			t.Errorf("%q %q %s: got %v (%v), want %v", c.format, c.zone, c.raw, time.Unix(0, got).UTC(), err, c.want.UTC())
		}
	}
}

func TestTimestampFormatOptionErrors(t *testing.T) {
	for _, c := range []struct{ format, zone, field string }{
		{"15:04:05", "", "PlausibilityOptions.TimestampFormat"},
		{"yyyyMMdd", "", "PlausibilityOptions.TimestampFormat"},
		{"unix", "+09:00", "PlausibilityOptions.TimestampZone"},
		{"20060102", "+9", "PlausibilityOptions.TimestampZone"},
		{"20060102", "Nowhere/Atlantis", "PlausibilityOptions.TimestampZone"},
	} {
		_, err := parseTSFormat(c.format, c.zone)
		var oe *OptionError
		if !errors.As(err, &oe) || oe.Field != c.field {
			t.Errorf("%q %q: got %v, want an error on %s", c.format, c.zone, err, c.field)
		}
	}
}
