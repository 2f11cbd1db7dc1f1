// Package redact hides personal data in live JSON telemetry: declarative,
// fast, and aware of what IoT messages carry (coordinates, phone numbers,
// device identifiers, number plates).
//
// A Redactor is compiled once from Options and then rewrites documents
// with Apply, appending the result to a caller's buffer. It walks each
// document once, without building a tree, and allocates nothing in the
// steady state (except when a caller-defined regexp matches).
//
// # Rules and detectors
//
// Path rules name places in the document with gjson path syntax
// (DATA.USER_NAME, readings.#.phone, DATA.*) and apply one operator there:
// remove, replace, mask, pseudonym (keyed HMAC-SHA-256), truncate, round,
// bucket, or coarsen (a latitude/longitude pair snapped to a grid). When
// several rules match one value, the first in Options order wins; a rule
// on an object or array applies its operator to every scalar inside.
//
// Paths match keys the way back ends read them, so that what a back end
// reads as DATA.USER_NAME is what gets redacted: a key step matches every
// key equal to it after Unicode case folding and NFKC (normalize.FoldKey:
// "user_name" and "ＵＳＥＲ_ＮＡＭＥ" too, which encoding/json would read into
// a USER_NAME field), and a key step that meets an array applies to every
// object in it, at any depth ({"DATA":[{"USER_NAME":"x"}]}, as Elasticsearch
// and MongoDB read DATA.USER_NAME). Options.ExactPaths matches as gjson
// does instead: keys byte for byte, never through an array.
//
// Detectors look at every string value, wherever it is, after JSON
// unescaping (so "\u0030\u0031\u0030-..." is seen as "010-..."): phone
// numbers, e-mail addresses, IPv4/IPv6 and MAC addresses, IMEIs and payment
// card numbers (both Luhn-checked), and caller-defined regular expressions.
// They do not look at keys, and not at JSON numbers unless asked
// (Detector.Numbers): sensor readings, counters and timestamps are numbers
// that only look like phone numbers. Detectors run after path rules, on what
// mask and truncate leave; the results of pseudonym, replace and the number
// operators are final.
//
// # Guarantees
//
// Apply never panics and never emits invalid JSON: input that is not one
// valid UTF-8 JSON value, is nested deeper than MaxDepth or would grow past
// MaxOutput is refused with an *InputError and nothing is written. A value the rules cannot handle is replaced by null rather than
// let through (for example round on a string that is not a number, or a
// longitude whose latitude is missing). What Apply emits is stable: applied
// again, the detectors find nothing and every operator except pseudonym
// (a keyed hash of a keyed hash differs) leaves it as it is.
//
// Redaction only hides what the rules name and the detectors recognise;
// it is one layer, not a proof of anonymity.
package redact
