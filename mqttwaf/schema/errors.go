package schema

import (
	"errors"
	"fmt"
)

// Keywords of a ValidationError that are not JSON Schema keywords. Field
// rules use the JSON Schema names (required, type, minimum, maximum,
// minLength, maxLength, pattern, enum), so one vocabulary covers both.
const (
	KeywordJSON               = "json"               // payload is not one valid UTF-8 JSON value
	KeywordDepth              = "depth"              // payload nested deeper than Options.MaxDepth
	KeywordDuplicateKey       = "duplicateKey"       // an object repeats a key
	KeywordNumber             = "number"             // a number longer than 1000 characters or with an exponent beyond ±1000
	KeywordTimestamp          = "timestamp"          // timestamp missing or unreadable
	KeywordTimestampBackwards = "timestampBackwards" // timestamp older than the device's last one
	KeywordTimestampFuture    = "timestampFuture"    // timestamp too far ahead of now
	KeywordPosition           = "position"           // latitude/longitude missing, unreadable or out of range
	KeywordSpeed              = "speed"              // implied speed above MaxSpeedKmh
	KeywordReplay             = "replay"             // payload identical to a recent one from the device
)

// ErrInvalid is wrapped by every *ValidationError, so that callers can test
// errors.Is(err, schema.ErrInvalid) without caring which check fired.
var ErrInvalid = errors.New("schema: payload rejected")

// ValidationError reports why a payload was refused: where (Path, a JSON
// pointer such as "/DATA/LAT", "" for the whole document), by which check
// (Keyword, e.g. "maximum", "required", "speed") and a short Message. It
// never contains payload values, so it can be logged as is; Path may
// contain object keys of the payload (cut to 256 bytes).
//
// The zero value is not meaningful. A ValidationError is immutable once
// returned and safe to share between goroutines.
type ValidationError struct {
	Path    string
	Keyword string
	Message string
}

func (e *ValidationError) Error() string {
	p := e.Path
	if p == "" {
		p = "(root)"
	}
	return "schema: " + p + ": " + e.Keyword + ": " + e.Message
}

// Unwrap returns ErrInvalid.
func (e *ValidationError) Unwrap() error { return ErrInvalid }

// maxPointer caps the length of ValidationError.Path: pointers can carry
// payload keys, and attacker-sized keys must not end up in logs whole.
const maxPointer = 256

func verr(path, keyword, msg string) *ValidationError {
	if len(path) > maxPointer {
		path = path[:maxPointer-3] + "..."
	}
	return &ValidationError{Path: path, Keyword: keyword, Message: msg}
}

// OptionError reports an invalid field of an options struct, or a schema
// that does not compile: which field, what is wrong and what would be
// accepted. Constructors return it before any state is built, so a bad
// configuration never half-works. The zero value is not meaningful; an
// OptionError is immutable and safe to share between goroutines.
type OptionError struct {
	Field   string // e.g. "Options.Fields[2].Pattern"
	Problem string // e.g. "invalid regular expression: missing closing )"
	Err     error  // ErrRemoteRef, or nil
}

func (e *OptionError) Error() string { return "schema: " + e.Field + ": " + e.Problem }

// Unwrap returns the cause, if it is one a caller can test for.
func (e *OptionError) Unwrap() error { return e.Err }

func optErr(field, format string, args ...any) error {
	return &OptionError{Field: field, Problem: fmt.Sprintf(format, args...)}
}
