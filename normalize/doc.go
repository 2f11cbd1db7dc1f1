// Package normalize is a strict, canonicalising JSON firewall engine: it validates one JSON
// text in a single pass and appends a canonical re-encoding of it (or the input unchanged) to
// a caller's buffer, so every later stage and every downstream consumer reads exactly the bytes
// that were checked.
//
// JSON parsers disagree on duplicate keys (encoding/json keeps the last, others the first),
// invalid UTF-8 and lone surrogates, numbers beyond 2^53 or beyond binary64, and deep nesting.
// A payload that one component checks and another reads differently is how filters are
// bypassed. A Normalizer removes the ambiguity: by default it accepts I-JSON (RFC 7493) only and
// writes a compact form in which escapes, whitespace and duplicate keys can no longer hide
// anything.
//
// # Use
//
// Build a Normalizer once from Options (the zero value is the safe default) and share it:
//
//	n, err := normalize.New(normalize.Options{MaxDepth: 16})
//	...
//	buf, err = n.Append(buf[:0], payload) // buf is reused: no allocation per message
//	if err != nil {
//		reason := normalize.ReasonOf(err) // "duplicate_key", "depth_exceeded", ...
//	}
//
// # What is accepted
//
// The grammar is RFC 8259's, with no extensions: a byte order mark, NaN, Infinity, comments,
// single quotes and trailing commas are always rejected. Any JSON value may be the top level.
// ProfileIJSON (the default) further rejects invalid UTF-8, lone surrogates (escaped, like
// "\ud800", or UTF-8 encoded) and duplicate keys, comparing keys after decoding escapes, so
// {"a":1,"\u0061":2} is a duplicate.
//
// Keys are compared folded, FoldKey's NFKC(casefold(NFKC(key))), so {"LAT":45,"lat":999} and
// {"admin":1,"ＡＤＭＩＮ":2} are duplicates too: encoding/json and many other decoders match keys to
// fields case-insensitively and keep the last match, so a check that read "LAT" as 45 would let
// a back end read 999. Options.ExactKeys compares keys byte for byte instead, for consumers that
// all match keys exactly; RFC 8785's example {"a":{},"A":{}} needs it. Keys are written as sent
// either way. ProfileRFC8259 allows duplicate keys (kept in order) and, in compact output,
// replaces invalid UTF-8 and lone surrogates by U+FFFD exactly as encoding/json decodes them;
// with OutputValidate it rejects them, since the input is passed through unchanged. Either way
// the output is valid UTF-8.
//
// Numbers: an integer literal (no fraction, no exponent) beyond ±(2^53-1) and a literal whose
// value overflows binary64 (1e400) are rejected by default (NumbersKeep accepts them and keeps
// the text). A literal with a fraction or exponent is a float to every parser, so
// 10000000000000000000.0 is accepted. Underflow (1e-400) is accepted: everyone reads it as 0.
//
// Every limit (size, depth, members per object, elements per array, string bytes, number
// digits) has a non-zero default; see the Default* constants.
//
// # Output
//
// OutputCompact removes insignificant whitespace, decodes every escape that is not needed
// (\u00e9 becomes é, \/ becomes /) and writes the needed ones in one form: \" \\ \b \f \n \r \t,
// other control characters as lowercase \u00xx. Numbers keep their exact text. Input that is
// already canonical is copied in blocks, so minified input costs little more than validation.
// OutputJCS writes RFC 8785: compact, members sorted by the UTF-16 code units of their keys,
// numbers as ECMAScript prints them (1E6 becomes 1000000, 1.0 becomes 1, -0 becomes 0). JCS
// also rejects numbers that ECMAScript would print as an integer beyond 2^53-1
// (9007199254740992.0), so its output passes the same checks again. OutputValidate appends the
// input unchanged.
//
// # Errors
//
// Rejections are *Error values with a byte Offset and a stable, machine-readable Reason for
// security events. Messages never quote the payload.
//
// # Cost
//
// One pass, no recursion, no tree, no reflection; OutputValidate runs a copy of the loop without
// the output bookkeeping. Nesting is bounded by MaxDepth before any work is done at that depth,
// so 1 MiB of '[' is rejected after MaxDepth bytes. Duplicate detection is a filtered linear
// scan for objects up to 32 members and a seeded hash set beyond, so it stays linear for 100,000
// members. Folding costs ASCII keys about a tenth more (letters are lowercased eight at a time);
// non-ASCII keys fold character by character through a table, and only keys with compatibility
// characters or combining marks take the full Unicode path (see BenchmarkFoldedVsExact and the
// unfolded-keys shape of BenchmarkHostile). Scratch memory is pooled per Normalizer; Append
// allocates nothing when dst has room.
package normalize
