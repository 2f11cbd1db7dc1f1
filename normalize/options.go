package normalize

import "fmt"

// Profile selects how strictly the input is judged.
type Profile string

const (
	// ProfileIJSON is RFC 7493 I-JSON: RFC 8259 syntax, plus valid UTF-8 only, no lone surrogates
	// (escaped or raw) and no duplicate object keys. It is the default ("" means I-JSON).
	ProfileIJSON Profile = "i-json"
	// ProfileRFC8259 accepts everything RFC 8259's grammar accepts, including duplicate keys,
	// which are kept in input order. Invalid UTF-8 and lone surrogates are replaced by U+FFFD
	// in compact output (one U+FFFD per invalid byte, as encoding/json decodes them), so the
	// output is always valid UTF-8; with OutputValidate they are rejected, because the input
	// is passed through unchanged.
	ProfileRFC8259 Profile = "rfc8259"
)

// Output selects what Append writes.
type Output string

const (
	// OutputCompact removes insignificant whitespace, decodes unnecessary escapes and writes the
	// required ones in one canonical form. Numbers keep their exact text. The default.
	OutputCompact Output = "compact"
	// OutputValidate checks the input and, if it passes, appends it unchanged.
	OutputValidate Output = "validate"
	// OutputJCS writes the RFC 8785 JSON Canonicalization Scheme form: compact, object members
	// sorted by the UTF-16 code units of their keys, numbers in ECMAScript notation. It needs
	// ProfileIJSON and NumbersReject, and also rejects a number ECMAScript would print as an
	// integer beyond 2^53-1 (9007199254740992.0), so the output passes the same checks again.
	OutputJCS Output = "jcs"
)

// NumberPolicy says what happens to numbers that many parsers cannot represent exactly:
// integer literals beyond ±(2^53-1) and literals whose value overflows binary64 (1e400).
type NumberPolicy string

const (
	// NumbersReject rejects such numbers with ReasonNumberTooLarge. The default.
	NumbersReject NumberPolicy = "reject"
	// NumbersKeep accepts them and keeps their exact text (compact and validate output only:
	// RFC 8785 turns every number into a binary64, so OutputJCS cannot keep them).
	NumbersKeep NumberPolicy = "keep"
)

// Defaults used for the zero value of the corresponding Options field.
const (
	DefaultMaxBytes        = 1 << 20 // 1 MiB, the largest payload common brokers accept by default
	DefaultMaxDepth        = 32      // enough for telemetry; deep nesting is an attack, not data
	DefaultMaxMembers      = 1000    // per object
	DefaultMaxElements     = 10000   // per array
	DefaultMaxStringBytes  = 64 << 10
	DefaultMaxNumberDigits = 100 // the longest number in JSONTestSuite's y_ files has 79 digits
)

// Upper bounds accepted by New. Offsets are kept in 32 bits, and depth sizes a per-call stack.
const (
	maxMaxBytes = 256 << 20 // MQTT's own packet limit is 256 MiB; keeps output offsets below 2^31
	maxMaxDepth = 1000
)

// Options configures a Normalizer. The zero value is the safe default: I-JSON with keys compared
// folded, compact output, big numbers rejected and every limit at its Default* value. A limit cannot be switched off;
// raise it instead. Options is a plain value: copy it freely.
type Options struct {
	// Profile is ProfileIJSON (default) or ProfileRFC8259.
	Profile Profile `yaml:"profile,omitempty" json:"profile,omitempty"`
	// ExactKeys compares keys for duplicates byte for byte (after decoding escapes) instead of
	// folded. By default (false) keys are compared as FoldKey folds them, Unicode case folding
	// and NFKC, so "lat", "LAT" and "ＬＡＴ" in one object are a duplicate: encoding/json and
	// many other decoders match keys to fields case-insensitively and read whichever comes last,
	// so {"LAT":45,"lat":999} would be read as 999 by a back end after a check on "LAT" saw 45.
	// Set it only when every consumer matches keys exactly. Keys are written as sent either way.
	// ProfileRFC8259 allows duplicate keys, so keys are not compared at all there.
	ExactKeys bool `yaml:"exact_keys,omitempty" json:"exact_keys,omitempty"`
	// Output is OutputCompact (default), OutputValidate or OutputJCS.
	Output Output `yaml:"output,omitempty" json:"output,omitempty"`
	// BigNumbers is NumbersReject (default) or NumbersKeep.
	BigNumbers NumberPolicy `yaml:"big_numbers,omitempty" json:"big_numbers,omitempty"`

	// MaxBytes bounds the input size. Default DefaultMaxBytes, at most 256 MiB.
	MaxBytes int `yaml:"max_bytes,omitempty" json:"max_bytes,omitempty"`
	// MaxDepth bounds nesting of arrays and objects ([[1]] has depth 2). Default 32, at most 1000.
	MaxDepth int `yaml:"max_depth,omitempty" json:"max_depth,omitempty"`
	// MaxMembers bounds the members of one object. Default DefaultMaxMembers.
	MaxMembers int `yaml:"max_members,omitempty" json:"max_members,omitempty"`
	// MaxElements bounds the elements of one array. Default DefaultMaxElements.
	MaxElements int `yaml:"max_elements,omitempty" json:"max_elements,omitempty"`
	// MaxStringBytes bounds one string (keys included), counted in input bytes between the
	// quotes, escapes as written. Default DefaultMaxStringBytes.
	MaxStringBytes int `yaml:"max_string_bytes,omitempty" json:"max_string_bytes,omitempty"`
	// MaxNumberDigits bounds the digits of one number literal (integer, fraction and exponent
	// digits together). Default DefaultMaxNumberDigits.
	MaxNumberDigits int `yaml:"max_number_digits,omitempty" json:"max_number_digits,omitempty"`
}

// withDefaults validates o and fills in zero fields. Errors name the field and the fix.
func (o Options) withDefaults() (Options, error) {
	switch o.Profile {
	case "":
		o.Profile = ProfileIJSON
	case ProfileIJSON, ProfileRFC8259:
	default:
		return o, fmt.Errorf("normalize: Profile: must be %q or %q, got %q", ProfileIJSON, ProfileRFC8259, o.Profile)
	}
	switch o.Output {
	case "":
		o.Output = OutputCompact
	case OutputCompact, OutputValidate, OutputJCS:
	default:
		return o, fmt.Errorf("normalize: Output: must be %q, %q or %q, got %q", OutputCompact, OutputValidate, OutputJCS, o.Output)
	}
	switch o.BigNumbers {
	case "":
		o.BigNumbers = NumbersReject
	case NumbersReject, NumbersKeep:
	default:
		return o, fmt.Errorf("normalize: BigNumbers: must be %q or %q, got %q", NumbersReject, NumbersKeep, o.BigNumbers)
	}
	limits := []struct {
		name     string
		v        *int
		def, max int
	}{
		{"MaxBytes", &o.MaxBytes, DefaultMaxBytes, maxMaxBytes},
		{"MaxDepth", &o.MaxDepth, DefaultMaxDepth, maxMaxDepth},
		{"MaxMembers", &o.MaxMembers, DefaultMaxMembers, maxMaxBytes},
		{"MaxElements", &o.MaxElements, DefaultMaxElements, maxMaxBytes},
		{"MaxStringBytes", &o.MaxStringBytes, DefaultMaxStringBytes, maxMaxBytes},
		{"MaxNumberDigits", &o.MaxNumberDigits, DefaultMaxNumberDigits, maxMaxBytes},
	}
	for _, l := range limits {
		if *l.v == 0 {
			*l.v = l.def
		}
		if *l.v < 1 || *l.v > l.max {
			return o, fmt.Errorf("normalize: %s: must be between 1 and %d (0 means the default, %d), got %d", l.name, l.max, l.def, *l.v)
		}
	}
	if o.Output == OutputJCS && o.Profile == ProfileRFC8259 {
		return o, fmt.Errorf("normalize: Output: %q requires I-JSON input (RFC 8785 section 3.1); use Profile %q", OutputJCS, ProfileIJSON)
	}
	if o.Output == OutputJCS && o.BigNumbers == NumbersKeep {
		return o, fmt.Errorf("normalize: BigNumbers: %q cannot be combined with Output %q, which writes every number as a binary64; use %q", NumbersKeep, OutputJCS, NumbersReject)
	}
	return o, nil
}
