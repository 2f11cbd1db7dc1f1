package normalize

import (
	"errors"
	"strconv"
)

// Reason is a stable, machine-readable cause of rejection, suitable for security events and
// metrics labels. Values never change once released; new ones may be added.
type Reason string

// Reasons reported in Error.Reason.
const (
	ReasonTooLarge       Reason = "payload_too_large" // input longer than MaxBytes
	ReasonDepth          Reason = "depth_exceeded"    // nesting deeper than MaxDepth
	ReasonMembers        Reason = "too_many_members"  // object with more than MaxMembers members
	ReasonElements       Reason = "too_many_elements" // array with more than MaxElements elements
	ReasonStringTooLong  Reason = "string_too_long"   // string longer than MaxStringBytes
	ReasonNumberTooLong  Reason = "number_too_long"   // number with more than MaxNumberDigits digits
	ReasonNumberTooLarge Reason = "number_too_large"  // integer beyond ±(2^53-1) or binary64 overflow
	ReasonDuplicateKey   Reason = "duplicate_key"     // a key repeated within one object (compared folded unless ExactKeys)
	ReasonInvalidUTF8    Reason = "invalid_utf8"      // bytes that are not UTF-8
	ReasonLoneSurrogate  Reason = "lone_surrogate"    // unpaired UTF-16 surrogate, escaped or UTF-8 encoded
	ReasonTrailingData   Reason = "trailing_data"     // anything but whitespace after the value
	ReasonUnexpectedEnd  Reason = "unexpected_end"    // input ends inside a value (or is empty)
	ReasonBOM            Reason = "byte_order_mark"   // leading UTF-8 or UTF-16 byte order mark
	ReasonSyntax         Reason = "syntax_error"      // any other violation of the JSON grammar
	ReasonInvalidEscape  Reason = "invalid_escape"    // backslash sequence JSON does not define
	ReasonControlChar    Reason = "control_character" // raw byte below 0x20 inside a string
	ReasonInvalidNumber  Reason = "invalid_number"    // malformed number (leading zero, "1.", "-")
	ReasonNonFinite      Reason = "non_finite_number" // NaN or Infinity
	ReasonTrailingComma  Reason = "trailing_comma"    // comma before ] or }
	ReasonComment        Reason = "comment"           // "/" where a value or separator belongs
	ReasonKeyNotString   Reason = "key_not_string"    // object member name that is not a string
	ReasonMissingColon   Reason = "missing_colon"     // member name not followed by ':'
	ReasonMissingComma   Reason = "missing_comma"     // two values not separated by ','
	reasonNone           Reason = ""                  // internal: no error
)

var descriptions = map[Reason]string{
	ReasonTooLarge:       "payload too large",
	ReasonDepth:          "nesting too deep",
	ReasonMembers:        "too many object members",
	ReasonElements:       "too many array elements",
	ReasonStringTooLong:  "string too long",
	ReasonNumberTooLong:  "number has too many digits",
	ReasonNumberTooLarge: "number out of interoperable range",
	ReasonDuplicateKey:   "duplicate object key",
	ReasonInvalidUTF8:    "invalid UTF-8",
	ReasonLoneSurrogate:  "unpaired UTF-16 surrogate",
	ReasonTrailingData:   "data after the JSON value",
	ReasonUnexpectedEnd:  "unexpected end of input",
	ReasonBOM:            "byte order mark",
	ReasonSyntax:         "syntax error",
	ReasonInvalidEscape:  "invalid escape sequence",
	ReasonControlChar:    "unescaped control character in string",
	ReasonInvalidNumber:  "malformed number",
	ReasonNonFinite:      "NaN or Infinity",
	ReasonTrailingComma:  "trailing comma",
	ReasonComment:        "comment",
	ReasonKeyNotString:   "object key is not a string",
	ReasonMissingColon:   "missing ':' after object key",
	ReasonMissingComma:   "missing ',' between values",
}

// Error reports why an input was rejected. It models one rejection: the byte offset in the input
// where the problem was detected and a stable Reason. Its message never contains payload bytes.
// Errors are immutable once returned and safe to share between goroutines.
type Error struct {
	// Offset is the byte offset in the input at which the problem was detected (for
	// ReasonTooLarge: MaxBytes, the first byte over the limit).
	Offset int
	// Reason is the machine-readable cause.
	Reason Reason
}

// Error returns a short description, for example
// "normalize: duplicate object key (duplicate_key) at byte 57".
func (e *Error) Error() string {
	d, ok := descriptions[e.Reason]
	if !ok {
		d = "rejected"
	}
	return "normalize: " + d + " (" + string(e.Reason) + ") at byte " + strconv.Itoa(e.Offset)
}

// ReasonOf returns the Reason of err if it is (or wraps) an *Error, and "" otherwise.
func ReasonOf(err error) Reason {
	if e, ok := err.(*Error); ok { // the common, unwrapped case without errors.As's allocation
		return e.Reason
	}
	var e *Error
	if errors.As(err, &e) {
		return e.Reason
	}
	return reasonNone
}
