package schema

// Options configures a Validator: a JSON Schema, fast field rules, or both.
// The zero value is valid and yields a Validator that accepts any one JSON
// value nested at most 64 deep, with unique object keys. Options is plain
// data: New reads it and keeps nothing that aliases it.
type Options struct {
	// Schema is the location of the root JSON Schema: a file path or a key
	// of Resources. "" means no JSON Schema.
	Schema string `yaml:"schema" json:"schema"`
	// Resources holds schema documents given in place (JSON text), by the
	// location a $ref names them with: a file path or a URL such as
	// "https://example.com/coords.json". A $ref is served from here
	// first; otherwise it must name a local file. Remote schemas are never
	// fetched.
	Resources map[string]string `yaml:"resources" json:"resources"`
	// Draft is the JSON Schema draft of schemas that have no $schema:
	// "2020-12" (default), "2019-09" or "7" (also "draft-07").
	Draft string `yaml:"draft" json:"draft"`
	// Fields are fast checks on the raw payload, evaluated in order before
	// the JSON Schema; the first failure is reported. At most 1000.
	Fields []FieldRule `yaml:"fields" json:"fields"`
	// MaxDepth is the deepest nesting of objects and arrays accepted,
	// between 1 and 1000. Default 64.
	MaxDepth int `yaml:"max_depth" json:"max_depth"`
	// ExactPaths matches the paths of Fields as gjson does: each key byte
	// for byte, and a key never through an array. By default (false) they
	// match keys the way back ends read them, so that a rule checks what a
	// back end will read: a key step matches every key of the object equal
	// to it after Unicode case folding and NFKC (normalize.FoldKey), so a
	// rule on DATA.LAT also checks "lat", which encoding/json would read
	// into a LAT field; and a key step that meets an array applies to every
	// object in it, at any depth, as Elasticsearch and MongoDB read paths.
	// JSON Schema "properties" are not affected: they match keys exactly,
	// as the JSON Schema specification says.
	ExactPaths bool `yaml:"exact_paths" json:"exact_paths"`
}

const (
	defaultMaxDepth = 64
	maxMaxDepth     = 1000
)
