// Package schema checks that MQTT payloads fit the contract of their topic,
// and that each device's messages make sense over time.
//
// Two engines, each compiled once from an options struct and then
// immutable and safe for concurrent use:
//
//   - A Validator (New) runs fast field rules and a JSON Schema. Field rules
//     (required, type, min/max, length in characters, RE2 pattern, enum)
//     look values up with gjson in the raw bytes, in one walk after one
//     validating scan, without decoding the document, and allocate nothing
//     when the payload passes. JSON Schema
//     (drafts 2020-12, 2019-09 and 07, via santhosh-tekuri/jsonschema)
//     covers everything else; it needs the payload decoded into a value
//     tree, which costs several times more (see the benchmarks): prefer
//     field rules on hot topics.
//   - A Plausibility (NewPlausibility) judges each message against the
//     history of its device: timestamps that go backwards or lie in the
//     future, positions that imply an impossible speed, payloads replayed
//     verbatim. History is bounded (an LRU table of ratelimit.Store) and is
//     updated only by messages that pass.
//
// Every refusal is a *ValidationError carrying the JSON pointer of the
// failing place ("/DATA/LAT"), the keyword that failed ("maximum") and a
// short message that never includes payload values, so it can be logged.
//
// # Input
//
// Payloads are expected to come from the normalize package (valid UTF-8,
// compact, unique keys), but nothing is assumed: a payload that is not one
// valid JSON value, repeats a key in an object, nests deeper than
// Options.MaxDepth or holds a number longer than 1000 characters or with an
// exponent beyond ±1000 is refused with keyword "json", "duplicateKey",
// "depth" or "number". Duplicate keys are refused because parsers disagree
// on which one wins: gjson reads the first, most decoders the last. The
// number bounds keep the JSON Schema library, which compares numbers as
// exact fractions, from spending seconds on one exponent (or panicking on
// a larger one); a panic inside the library would still be caught and
// turn into a refusal.
//
// # Paths
//
// Field rule paths (Options.Fields) and the plausibility paths match keys
// the way back ends read them, so that a rule checks what a back end will
// read: a key step matches every key of the object that equals it after
// Unicode case folding and NFKC (normalize.FoldKey), so a rule on DATA.LAT
// also checks "lat" and "ＬＡＴ" (encoding/json would read "lat" into a LAT
// field); and a key step that meets an array applies to every object in it,
// at any depth, as Elasticsearch and MongoDB read such paths. Failures
// report the actual place ("/DATA/1/lat"). A plausibility path that finds
// more than one value is refused: there is no telling which one a back end
// reads. Options.ExactPaths and PlausibilityOptions.ExactPaths read paths as
// gjson does instead: keys byte for byte, never through an array.
//
// JSON Schema "properties" match keys exactly, as the JSON Schema
// specification says: a schema with properties {"LAT": {"maximum": 90}} does
// not look at "lat". Behind the normalize package with its defaults, a key
// that differs from another of its object only by case never arrives; a
// lone "lat" does, and only additionalProperties (or a field rule) catches
// it.
//
// # Schemas
//
// Schemas are read from local files and Options.Resources when New runs,
// never from the network: a $ref to an http(s) URL that is not a key of
// Resources fails with ErrRemoteRef. Relative $refs resolve against the
// referring file. The format keyword is asserted in every draft; content
// keywords (contentEncoding, contentMediaType) are annotations only.
package schema
