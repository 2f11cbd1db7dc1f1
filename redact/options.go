package redact

// Op names an operator: what happens to a value a rule or detector selects.
// The zero value "" is invalid in a Rule and means OpMask in a Detector.
// Like all option types, it is plain data, safe to share between goroutines
// once no longer modified.
type Op string

// Operators. Numbers, strings, booleans and null are "scalars"; operators
// marked (scalar) apply to every scalar inside a selected object or array.
const (
	OpRemove    Op = "remove"    // delete the object member; null in arrays (keeps indices stable)
	OpReplace   Op = "replace"   // replace with the constant Value (any JSON value)
	OpMask      Op = "mask"      // (scalar) keep KeepFirst/KeepLast characters, mask the rest
	OpPseudonym Op = "pseudonym" // (scalar) keyed HMAC-SHA-256, truncated to Length characters
	OpTruncate  Op = "truncate"  // (scalar) keep the first Length characters
	OpRound     Op = "round"     // (scalar) round a number to Decimals decimals
	OpBucket    Op = "bucket"    // (scalar) replace a number by the lower bound of its bucket
	OpCoarsen   Op = "coarsen"   // snap a latitude/longitude pair to a grid cell centre
)

// Kind names a built-in detector, or "regex" for a caller's pattern. The
// zero value is invalid (Detector.Kind is required).
type Kind string

// Detector kinds. Detectors look at string values (after JSON unescaping),
// in objects and arrays at any depth, never at keys.
const (
	KindPhone Kind = "phone" // E.164 (+821012345678), Korean (010-1234-5678, 01012345678, 02-123-4567), US ((555) 123-4567)
	KindEmail Kind = "email" // local@domain.tld (ASCII)
	KindIPv4  Kind = "ipv4"  // dotted quad, no leading zeros
	KindIPv6  Kind = "ipv6"  // RFC 4291 text form with at least 4 hex digits
	KindMAC   Kind = "mac"   // aa:bb:cc:dd:ee:ff, aa-bb-..., aabb.ccdd.eeff
	KindIMEI  Kind = "imei"  // 15 digits, Luhn-valid (plain or 2-6-6-1 / 8-6-1 groups)
	KindCard  Kind = "card"  // 13-19 digits, Luhn-valid, known issuer prefix, spaces/dashes allowed
	KindRegex Kind = "regex" // Pattern (RE2 syntax, linear time)
)

// Secret is a key kept out of logs: fmt and text/JSON/YAML marshalling print
// "[redacted]" instead of it (decoding reads it as a plain string). Its zero
// value is the empty (missing) key. Values are immutable and safe to share.
type Secret string

// String hides the secret from fmt.
func (s Secret) String() string {
	if s == "" {
		return ""
	}
	return "[redacted]"
}

// GoString hides the secret from %#v.
func (s Secret) GoString() string { return `redact.Secret("` + s.String() + `")` }

// MarshalText hides the secret from encoders (encoding/json, YAML).
func (s Secret) MarshalText() ([]byte, error) { return []byte(s.String()), nil }

// Action is an operator and its parameters, shared by Rule and Detector
// (inlined in YAML and JSON: {path: x, op: mask, keep_last: 4}).
// Parameters an operator does not use must be left zero. The zero value
// (Op "") is invalid in a Rule and a full mask in a Detector. New copies
// what it needs: changing an Action afterwards does not affect a Redactor.
type Action struct {
	Op Op `yaml:"op" json:"op"`

	// KeepFirst and KeepLast (mask): characters (Unicode code points, not
	// bytes) left visible at each end; 0 and 0 masks everything. A value
	// with KeepFirst+KeepLast or fewer characters is masked entirely.
	KeepFirst int `yaml:"keep_first,omitempty" json:"keep_first,omitempty"`
	KeepLast  int `yaml:"keep_last,omitempty" json:"keep_last,omitempty"`
	// MaskChar (mask): one character, default "*". Digits, the hex letters
	// a-f/A-F, whitespace and the characters . : - + @ _ % ( ) / " \ are
	// refused: a masked value must not look like data to a detector.
	MaskChar string `yaml:"mask_char,omitempty" json:"mask_char,omitempty"`

	// Length: truncate keeps this many characters (required, >= 1);
	// pseudonym emits this many characters (default 16, at least 8).
	Length int `yaml:"length,omitempty" json:"length,omitempty"`
	// Encoding (pseudonym): "base32" (default; lower case RFC 4648 alphabet,
	// 5 bits a character) or "hex" (4 bits a character).
	Encoding string `yaml:"encoding,omitempty" json:"encoding,omitempty"`

	// Value (replace): the constant, any JSON value; nil means null.
	Value any `yaml:"value,omitempty" json:"value,omitempty"`

	// Decimals: round keeps this many decimals (negative rounds to tens,
	// hundreds, ...; -15..15); coarsen in degree mode rounds both
	// coordinates to this many decimals (1..7) when CellMetres is 0.
	Decimals int `yaml:"decimals,omitempty" json:"decimals,omitempty"`
	// CellMetres (coarsen): grid cell size in metres (1 .. 10,000,000).
	CellMetres float64 `yaml:"cell_metres,omitempty" json:"cell_metres,omitempty"`

	// Boundaries (bucket): strictly ascending, 1..64 finite numbers.
	Boundaries []float64 `yaml:"boundaries,omitempty" json:"boundaries,omitempty"`
}

// Rule applies an Action to the values at one or more paths. It models one
// line of a redaction rule set. The zero value is invalid (no path, no op).
// Plain data: New copies it.
type Rule struct {
	// ID names the rule in a Report. Default: "<op>:<first path>".
	ID string `yaml:"id,omitempty" json:"id,omitempty"`
	// Path is a gjson path: keys separated by '.', '*' and '?' wildcards
	// in keys (matching every key, not only the first as gjson.Get does),
	// '#' for every array element, a number for one element, '\' to escape.
	// Queries, modifiers, multipaths and pipes are refused. Unless
	// Options.ExactPaths, a key matches the way case-insensitive back ends
	// read it, and a key applied to an array applies to its objects.
	Path string `yaml:"path,omitempty" json:"path,omitempty"`
	// Paths lists several paths for the same action, instead of Path. For
	// coarsen it is exactly [latitude, longitude]; the two must differ only
	// in their last component, a plain key or index (GeoJSON:
	// ["geometry.coordinates.1", "geometry.coordinates.0"]).
	Paths []string `yaml:"paths,omitempty" json:"paths,omitempty"`

	Action `yaml:",inline"`
}

// Detector finds personal data inside string values wherever they are.
// It models one detection pass of a rule set. Its zero value is invalid
// (no Kind). Plain data: New copies it.
//
// Operators: mask (default, all characters) and pseudonym act on each match
// inside the string and leave the rest; remove and replace act on the whole
// value. Other operators are refused.
type Detector struct {
	// ID names the detector in a Report. Default: "detect:<kind>".
	ID   string `yaml:"id,omitempty" json:"id,omitempty"`
	Kind Kind   `yaml:"kind" json:"kind"`
	// Pattern (regex): RE2 syntax; must not match the empty string.
	Pattern string `yaml:"pattern,omitempty" json:"pattern,omitempty"`
	// Numbers also inspects JSON numbers written as plain digits
	// (e.g. an IMEI sent as a number). A hit turns the number into a string.
	// Off by default: readings, counters and timestamps are numbers too.
	Numbers bool `yaml:"numbers,omitempty" json:"numbers,omitempty"`
	// Regions (phone) lists the countries whose national numbers to find,
	// as ISO 3166 codes: KR (Korean mobile and landline plans); US, CA
	// (North American plan); GB, FR, DE, NL, BE, CH, AT, IT, IE (a trunk
	// 0 and 10 or 11 digits in groups). International numbers (+ or 00 and
	// a country code) are found whatever the list. Empty: every region.
	// Listing only a fleet's countries finds fewer things that merely look
	// like numbers.
	Regions []string `yaml:"regions,omitempty" json:"regions,omitempty"`

	Action `yaml:",inline"`
}

// Options configures a Redactor: one rule set. The zero value is valid and
// redacts nothing (it only validates the input). Rules and Detectors are
// evaluated in the order given; at most MaxRules of them together. Plain
// data: New copies what it needs, so Options can be reused or changed.
type Options struct {
	Rules     []Rule     `yaml:"rules,omitempty" json:"rules,omitempty"`
	Detectors []Detector `yaml:"detectors,omitempty" json:"detectors,omitempty"`
	// PseudonymKey keys the HMAC of every pseudonym operator: at least 16
	// bytes (the bytes of the string as written, not decoded), required
	// when a pseudonym is used. The same key gives the same pseudonym for
	// the same value across messages, restarts and fields; a new key
	// unlinks all pseudonyms.
	PseudonymKey Secret `yaml:"pseudonym_key,omitempty" json:"pseudonym_key,omitempty"`
	// MaxDepth bounds object/array nesting (default 128, 1..1000); deeper
	// input is refused with ErrTooDeep.
	MaxDepth int `yaml:"max_depth,omitempty" json:"max_depth,omitempty"`
	// MaxOutput bounds one redacted document, in bytes, since replace and
	// pseudonym can make output longer than input. 0 means 8 times the
	// input plus 64 KiB. A document that would exceed it is refused with
	// ErrTooLarge.
	MaxOutput int `yaml:"max_output,omitempty" json:"max_output,omitempty"`
	// ExactPaths matches rule paths as gjson does: each key byte for byte,
	// and a key never through an array. By default (false) paths match
	// keys the way back ends read them, so that what a back end reads as
	// DATA.USER_NAME is what gets redacted: a key step matches a key equal
	// to it after Unicode case folding and NFKC (normalize.FoldKey), so
	// DATA.USER_NAME also redacts "user_name" (encoding/json would fill a
	// USER_NAME field with it); and a key step that meets an array applies
	// to every object in it, at any depth, as Elasticsearch and MongoDB
	// read paths, so {"DATA":[{"USER_NAME":"x"}]} is redacted too. Wildcards
	// match the folded key. '#' and indexes work as before.
	ExactPaths bool `yaml:"exact_paths,omitempty" json:"exact_paths,omitempty"`
}

// MaxRules bounds len(Rules)+len(Detectors), so a Report needs no allocation.
const MaxRules = 64

const (
	defaultMaxDepth  = 128
	maxMaxDepth      = 1000
	defaultPseudoLen = 16
	minKeyLen        = 16
)
