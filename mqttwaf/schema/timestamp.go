package schema

import (
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/tidwall/gjson"
)

// This file reads device timestamps: Unix seconds or milliseconds (JSON
// numbers or numeric strings), RFC 3339 strings, or any Go layout
// ("20060102150405" for the seed message's REPORT_TIME).

type tsKind uint8

const (
	tsRFC3339 tsKind = iota
	tsUnix
	tsUnixMs
	tsLayout
)

// Timestamps outside [1970, ~2191] are refused: nothing an IoT device
// reports lies there, and the bound keeps nanoseconds within an int64.
const maxUnixSec = 7_000_000_000

type tsFormat struct {
	kind   tsKind
	layout string
	loc    *time.Location
	name   string // for messages
}

func parseTSFormat(format, zone string) (tsFormat, error) {
	f := tsFormat{name: format}
	switch format {
	case "", "rfc3339":
		f.kind, f.name = tsRFC3339, "rfc3339"
	case "unix":
		f.kind = tsUnix
	case "unix_ms":
		f.kind = tsUnixMs
	default:
		ref := time.Date(2006, 1, 2, 15, 4, 5, 0, time.UTC)
		got, err := time.Parse(format, ref.Format(format))
		if err != nil || got.Year() != 2006 || got.Month() != 1 || got.Day() != 2 {
			return f, optErr("PlausibilityOptions.TimestampFormat",
				`must be "rfc3339", "unix", "unix_ms" or a Go time layout with year, month and day (e.g. "20060102150405"), got %q`, format)
		}
		f.kind, f.layout = tsLayout, format
	}
	loc, err := parseZone(zone)
	if err != nil {
		return f, optErr("PlausibilityOptions.TimestampZone", "%v", err)
	}
	if zone != "" && f.kind != tsLayout {
		return f, optErr("PlausibilityOptions.TimestampZone", "applies only to Go layouts without a zone; %s timestamps carry their own", f.name)
	}
	f.loc = loc
	return f, nil
}

// parseZone accepts "UTC", "Local", a fixed offset ("+09:00") or an IANA
// name ("Asia/Seoul", which needs the system's zone database or an import
// of time/tzdata).
func parseZone(z string) (*time.Location, error) {
	switch {
	case z == "" || z == "UTC":
		return time.UTC, nil
	case z == "Local":
		return time.Local, nil
	case z[0] == '+' || z[0] == '-':
		t, err := time.Parse("-07:00", z)
		if err != nil {
			return nil, fmt.Errorf(`offset must look like "+09:00", got %q`, z)
		}
		_, off := t.Zone()
		return time.FixedZone(z, off), nil
	}
	loc, err := time.LoadLocation(z)
	if err != nil {
		return nil, fmt.Errorf("%v; use an offset such as \"+09:00\" or import time/tzdata", err)
	}
	return loc, nil
}

var errTimestamp = errors.New("unreadable timestamp")

// read returns r as Unix nanoseconds.
func (f *tsFormat) read(r gjson.Result) (int64, error) {
	var s string
	switch r.Type {
	case gjson.String:
		s = r.Str
	case gjson.Number:
		if f.kind == tsRFC3339 {
			return 0, errTimestamp
		}
		s = r.Raw
	default:
		return 0, errTimestamp
	}
	switch f.kind {
	case tsUnix:
		return unixNanos(s, 1e9)
	case tsUnixMs:
		return unixNanos(s, 1e6)
	}
	var t time.Time
	var err error
	if f.kind == tsRFC3339 {
		t, err = time.Parse(time.RFC3339Nano, s)
	} else {
		t, err = time.ParseInLocation(f.layout, s, f.loc)
	}
	if err != nil {
		return 0, errTimestamp
	}
	if sec := t.Unix(); sec < 0 || sec >= maxUnixSec {
		return 0, errTimestamp
	}
	return t.UnixNano(), nil
}

// unixNanos reads a non-negative decimal count of units (1e9 ns for
// seconds, 1e6 for milliseconds), with an optional fraction.
func unixNanos(s string, unit int64) (int64, error) {
	whole, frac, _ := strings.Cut(s, ".")
	if whole == "" || len(whole) > 16 || strings.ContainsAny(s, "eE+-") {
		return 0, errTimestamp
	}
	n, err := strconv.ParseInt(whole, 10, 64)
	if err != nil || n >= maxUnixSec*(1e9/unit) {
		return 0, errTimestamp
	}
	ns := n * unit
	for scale := unit / 10; scale > 0 && frac != ""; scale /= 10 {
		c := frac[0]
		if c < '0' || c > '9' {
			return 0, errTimestamp
		}
		ns += int64(c-'0') * scale
		frac = frac[1:]
	}
	for i := 0; i < len(frac); i++ { // digits below a nanosecond
		if frac[i] < '0' || frac[i] > '9' {
			return 0, errTimestamp
		}
	}
	return ns, nil
}
