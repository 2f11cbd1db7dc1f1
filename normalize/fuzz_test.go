package normalize

import (
	"encoding/json"
	"os"
	"path/filepath"
	"testing"
	"unicode/utf8"
)

// FuzzAppend checks, on arbitrary input: no panic; every accepted output is valid for
// encoding/json, idempotent and decodes to the input's value (checkOutput); the configurations
// agree with each other wherever their rules coincide; and valid JSON is only rejected for a
// limit.
func FuzzAppend(f *testing.F) {
	for _, tc := range seeds {
		if len(tc.in) <= 64<<10 { // the 1 MiB seeds would slow every mutation
			f.Add([]byte(tc.in))
		}
	}
	for _, dir := range []string{"test_parsing", "test_transform"} {
		names, _ := filepath.Glob(filepath.Join(suiteDir, dir, "*.json"))
		for _, name := range names {
			if b, err := os.ReadFile(name); err == nil && len(b) <= 64<<10 {
				f.Add(b)
			}
		}
	}
	f.Fuzz(func(t *testing.T, in []byte) {
		type res struct {
			out []byte
			err error
		}
		run := func(n *Normalizer) res {
			out, err := n.Append(nil, in)
			if err == nil {
				checkOutput(t, n, in, out)
				if n.opts.BigNumbers == NumbersReject {
					var v any
					if err := json.Unmarshal(out, &v); err != nil {
						t.Fatalf("%s %s: json.Unmarshal(output): %v", n.opts.Profile, n.opts.Output, err)
					}
				}
			} else if ReasonOf(err) == reasonNone {
				t.Fatalf("error %v is not an *Error", err)
			}
			return res{out, err}
		}
		compact, validate, jcs := run(nCompact), run(nValidate), run(nJCS)
		rfc, rfcValidate, keep, exact := run(nRFC), run(nRFCValidate), run(nRFCKeep), run(nExact)

		same := func(a, b error) bool { return ReasonOf(a) == ReasonOf(b) && (a == nil || *a.(*Error) == *b.(*Error)) }
		// stricter: b adds one rule (reason r) to a, so it fails the same way or earlier with r.
		stricter := func(a, b error, r Reason) bool {
			return same(a, b) || ReasonOf(b) == r && (a == nil || a.(*Error).Offset >= b.(*Error).Offset)
		}
		if !same(compact.err, validate.err) {
			t.Fatalf("compact %v, validate %v", compact.err, validate.err)
		}
		if !stricter(compact.err, jcs.err, ReasonNumberTooLarge) {
			t.Fatalf("compact %v, jcs %v", compact.err, jcs.err)
		}
		// Folded keys (the default) add one rule to exact comparison, and never change the
		// output; the reference (refFoldedDuplicate) says which inputs it must refuse.
		if !stricter(exact.err, compact.err, ReasonDuplicateKey) {
			t.Fatalf("exact %v, compact %v", exact.err, compact.err)
		}
		if compact.err == nil && string(exact.out) != string(compact.out) {
			t.Fatalf("folding changed the output")
		}
		if exact.err == nil {
			if dup := refFoldedDuplicate(in); dup != (compact.err != nil) {
				t.Fatalf("reference says folded duplicate %v, compact gave %v", dup, compact.err)
			}
		}
		switch r := ReasonOf(rfcValidate.err); {
		case same(rfc.err, rfcValidate.err):
		case (r == ReasonInvalidUTF8 || r == ReasonLoneSurrogate) &&
			(rfc.err == nil || rfc.err.(*Error).Offset >= rfcValidate.err.(*Error).Offset):
			// Validate cannot rewrite, so it stops at the first bad byte that RFC 8259 output replaces.
		default:
			t.Fatalf("rfc %v, rfc validate %v", rfc.err, rfcValidate.err)
		}
		if exact.err == nil && (rfc.err != nil || string(rfc.out) != string(exact.out)) {
			t.Fatalf("I-JSON accepted but RFC 8259 gave %q, %v", rfc.out, rfc.err)
		}
		if rfc.err == nil && compact.err != nil {
			switch ReasonOf(compact.err) {
			case ReasonDuplicateKey, ReasonInvalidUTF8, ReasonLoneSurrogate:
			default:
				t.Fatalf("RFC 8259 accepted what I-JSON rejects with %v", compact.err)
			}
		}
		if rfc.err == nil && (keep.err != nil || string(keep.out) != string(rfc.out)) {
			t.Fatalf("keep differs from reject on an accepted input: %v", keep.err)
		}
		// The most permissive configuration rejects valid JSON only for a limit.
		if keep.err != nil && json.Valid(in) {
			switch ReasonOf(keep.err) {
			case ReasonDepth, ReasonMembers, ReasonElements, ReasonStringTooLong, ReasonNumberTooLong, ReasonTooLarge:
			default:
				t.Fatalf("valid JSON rejected: %v", keep.err)
			}
		}
		if keep.err == nil && !json.Valid(in) {
			t.Fatalf("accepted what encoding/json calls invalid")
		}
	})
}

// FuzzFoldKey checks FoldKey, with its shortcuts (ASCII, character-by-character table), against
// its definition, spelled out in fullFold.
func FuzzFoldKey(f *testing.F) {
	for _, tc := range foldedKeyCases {
		f.Add(tc.in)
	}
	for _, s := range []string{"ÉTAT", "값", "ＡＤＭＩＮ", "Straße", "\u212a", "ﬁle", "a\u0301", "\u1100\u1161\u11a8", "İ", "ς"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, key string) {
		if !utf8.ValidString(key) {
			return
		}
		if got, want := FoldKey(key), fullFold(key); got != want {
			t.Fatalf("FoldKey(%+q) = %+q, want %+q", key, got, want)
		}
	})
}
