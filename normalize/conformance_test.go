package normalize

import (
	"os"
	"path/filepath"
	"sort"
	"strings"
	"testing"
)

// JSONTestSuite (testdata/JSONTestSuite, MIT, see its LICENSE): y_ files must be accepted, n_
// files rejected, i_ files are implementation-defined and pinned below.

const suiteDir = "testdata/JSONTestSuite"

func suiteFiles(t *testing.T, dir, prefix string) map[string][]byte {
	t.Helper()
	names, err := filepath.Glob(filepath.Join(suiteDir, dir, prefix+"*.json"))
	if err != nil {
		t.Fatal(err)
	}
	files := make(map[string][]byte, len(names))
	for _, name := range names {
		b, err := os.ReadFile(name)
		if err != nil {
			t.Fatal(err)
		}
		files[filepath.Base(name)] = b
	}
	return files
}

var (
	nRFCValidate = mustNew(Options{Profile: ProfileRFC8259, Output: OutputValidate})
	nRFCKeep     = mustNew(Options{Profile: ProfileRFC8259, BigNumbers: NumbersKeep})
	nExact       = mustNew(Options{ExactKeys: true})
	nExactJCS    = mustNew(Options{ExactKeys: true, Output: OutputJCS})
)

// duplicateKeyFiles are the y_ files the I-JSON profile rejects on purpose.
var duplicateKeyFiles = map[string]bool{
	"y_object_duplicated_key.json":           true,
	"y_object_duplicated_key_and_value.json": true,
}

func TestSuiteAccepted(t *testing.T) {
	files := suiteFiles(t, "test_parsing", "y_")
	if len(files) != 95 {
		t.Fatalf("found %d y_ files, want 95", len(files))
	}
	for name, in := range files {
		for _, n := range []*Normalizer{nRFC, nRFCValidate, nRFCKeep} {
			out, err := n.Append(nil, in)
			if err != nil {
				t.Errorf("%s (%s %s): rejected: %v", name, n.opts.Profile, n.opts.Output, err)
				continue
			}
			checkOutput(t, n, in, out)
		}
		for _, n := range []*Normalizer{nCompact, nValidate, nJCS, nExact, nExactJCS} {
			out, err := n.Append(nil, in)
			if duplicateKeyFiles[name] {
				if ReasonOf(err) != ReasonDuplicateKey {
					t.Errorf("%s (%s %s): got %v, want duplicate_key", name, n.opts.Profile, n.opts.Output, err)
				}
				continue
			}
			if err != nil {
				t.Errorf("%s (%s %s): rejected: %v", name, n.opts.Profile, n.opts.Output, err)
				continue
			}
			checkOutput(t, n, in, out)
		}
	}
}

func TestSuiteRejected(t *testing.T) {
	files := suiteFiles(t, "test_parsing", "n_")
	if len(files) != 188 {
		t.Fatalf("found %d n_ files, want 188", len(files))
	}
	for name, in := range files {
		for _, n := range []*Normalizer{nRFC, nRFCValidate, nRFCKeep, nCompact, nValidate, nJCS, nExact, nExactJCS} {
			if out, err := n.Append(nil, in); err == nil {
				t.Errorf("%s (%s %s): accepted as %q", name, n.opts.Profile, n.opts.Output, out)
			} else if ReasonOf(err) == reasonNone {
				t.Errorf("%s: error %v is not an *Error", name, err)
			}
		}
	}
}

const accepted Reason = ""

// iVerdicts pins every i_ file: the reason for rejection, or accepted. Columns: the default
// (I-JSON, compact; validate and JCS agree), RFC 8259 compact, RFC 8259 validate, and RFC 8259
// compact with BigNumbers keep.
var iVerdicts = []struct {
	file                          string
	ijson, rfc, rfcValidate, keep Reason
}{
	{"i_number_double_huge_neg_exp.json", accepted, accepted, accepted, accepted}, // underflow reads as 0
	{"i_number_huge_exp.json", ReasonNumberTooLong, ReasonNumberTooLong, ReasonNumberTooLong, ReasonNumberTooLong},
	{"i_number_neg_int_huge_exp.json", ReasonNumberTooLarge, ReasonNumberTooLarge, ReasonNumberTooLarge, accepted},
	{"i_number_pos_double_huge_exp.json", ReasonNumberTooLarge, ReasonNumberTooLarge, ReasonNumberTooLarge, accepted},
	{"i_number_real_neg_overflow.json", ReasonNumberTooLarge, ReasonNumberTooLarge, ReasonNumberTooLarge, accepted},
	{"i_number_real_pos_overflow.json", ReasonNumberTooLarge, ReasonNumberTooLarge, ReasonNumberTooLarge, accepted},
	{"i_number_real_underflow.json", accepted, accepted, accepted, accepted},
	{"i_number_too_big_neg_int.json", ReasonNumberTooLarge, ReasonNumberTooLarge, ReasonNumberTooLarge, accepted},
	{"i_number_too_big_pos_int.json", ReasonNumberTooLarge, ReasonNumberTooLarge, ReasonNumberTooLarge, accepted},
	{"i_number_very_big_negative_int.json", ReasonNumberTooLarge, ReasonNumberTooLarge, ReasonNumberTooLarge, accepted},
	{"i_object_key_lone_2nd_surrogate.json", ReasonLoneSurrogate, accepted, ReasonLoneSurrogate, accepted},
	{"i_string_1st_surrogate_but_2nd_missing.json", ReasonLoneSurrogate, accepted, ReasonLoneSurrogate, accepted},
	{"i_string_1st_valid_surrogate_2nd_invalid.json", ReasonLoneSurrogate, accepted, ReasonLoneSurrogate, accepted},
	{"i_string_UTF-16LE_with_BOM.json", ReasonBOM, ReasonBOM, ReasonBOM, ReasonBOM},
	{"i_string_UTF-8_invalid_sequence.json", ReasonInvalidUTF8, accepted, ReasonInvalidUTF8, accepted},
	{"i_string_UTF8_surrogate_U+D800.json", ReasonLoneSurrogate, accepted, ReasonLoneSurrogate, accepted},
	{"i_string_incomplete_surrogate_and_escape_valid.json", ReasonLoneSurrogate, accepted, ReasonLoneSurrogate, accepted},
	{"i_string_incomplete_surrogate_pair.json", ReasonLoneSurrogate, accepted, ReasonLoneSurrogate, accepted},
	{"i_string_incomplete_surrogates_escape_valid.json", ReasonLoneSurrogate, accepted, ReasonLoneSurrogate, accepted},
	{"i_string_invalid_lonely_surrogate.json", ReasonLoneSurrogate, accepted, ReasonLoneSurrogate, accepted},
	{"i_string_invalid_surrogate.json", ReasonLoneSurrogate, accepted, ReasonLoneSurrogate, accepted},
	{"i_string_invalid_utf-8.json", ReasonInvalidUTF8, accepted, ReasonInvalidUTF8, accepted},
	{"i_string_inverted_surrogates_U+1D11E.json", ReasonLoneSurrogate, accepted, ReasonLoneSurrogate, accepted},
	{"i_string_iso_latin_1.json", ReasonInvalidUTF8, accepted, ReasonInvalidUTF8, accepted},
	{"i_string_lone_second_surrogate.json", ReasonLoneSurrogate, accepted, ReasonLoneSurrogate, accepted},
	{"i_string_lone_utf8_continuation_byte.json", ReasonInvalidUTF8, accepted, ReasonInvalidUTF8, accepted},
	{"i_string_not_in_unicode_range.json", ReasonInvalidUTF8, accepted, ReasonInvalidUTF8, accepted},
	{"i_string_overlong_sequence_2_bytes.json", ReasonInvalidUTF8, accepted, ReasonInvalidUTF8, accepted},
	{"i_string_overlong_sequence_6_bytes.json", ReasonInvalidUTF8, accepted, ReasonInvalidUTF8, accepted},
	{"i_string_overlong_sequence_6_bytes_null.json", ReasonInvalidUTF8, accepted, ReasonInvalidUTF8, accepted},
	{"i_string_truncated-utf-8.json", ReasonInvalidUTF8, accepted, ReasonInvalidUTF8, accepted},
	{"i_string_utf16BE_no_BOM.json", ReasonSyntax, ReasonSyntax, ReasonSyntax, ReasonSyntax},
	{"i_string_utf16LE_no_BOM.json", ReasonSyntax, ReasonSyntax, ReasonSyntax, ReasonSyntax},
	{"i_structure_500_nested_arrays.json", ReasonDepth, ReasonDepth, ReasonDepth, ReasonDepth},
	{"i_structure_UTF-8_BOM_empty_object.json", ReasonBOM, ReasonBOM, ReasonBOM, ReasonBOM},
}

func TestSuiteImplementationDefined(t *testing.T) {
	files := suiteFiles(t, "test_parsing", "i_")
	if len(files) != len(iVerdicts) || len(files) != 35 {
		t.Fatalf("found %d i_ files, table has %d, want 35", len(files), len(iVerdicts))
	}
	for _, v := range iVerdicts {
		in, found := files[v.file]
		if !found {
			t.Errorf("%s: in the table but not in testdata", v.file)
			continue
		}
		for _, c := range []struct {
			n    *Normalizer
			want Reason
		}{
			{nCompact, v.ijson}, {nValidate, v.ijson}, {nJCS, v.ijson}, {nExact, v.ijson},
			{nRFC, v.rfc}, {nRFCValidate, v.rfcValidate}, {nRFCKeep, v.keep},
		} {
			out, err := c.n.Append(nil, in)
			if got := ReasonOf(err); got != c.want {
				t.Errorf("%s (%s %s %s): got %q (%v), want %q", v.file, c.n.opts.Profile, c.n.opts.Output, c.n.opts.BigNumbers, got, err, c.want)
			}
			if err == nil {
				checkOutput(t, c.n, in, out)
			}
		}
	}
}

// transformWants pins the output for each test_transform file. Zero fields mean "same as
// ijson" (the default: I-JSON, keys compared folded); keep is RFC 8259 with BigNumbers keep;
// exact and exactJCS are Options{ExactKeys: true}, compact and JCS (exactJCS: zero means the
// same as jcs).
var transformWants = []struct {
	file                                   string
	ijson, jcs, rfc, keep, exact, exactJCS want
}{
	{file: "number_-9223372036854775808.json", ijson: fail(ReasonNumberTooLarge), keep: ok(`[-9223372036854775808]`)},
	{file: "number_-9223372036854775809.json", ijson: fail(ReasonNumberTooLarge), keep: ok(`[-9223372036854775809]`)},
	{file: "number_1.0.json", ijson: ok(`[1.0]`), jcs: ok(`[1]`)},
	{file: "number_1.000000000000000005.json", ijson: ok(`[1.000000000000000005]`), jcs: ok(`[1]`)},
	{file: "number_1000000000000000.json", ijson: ok(`[1000000000000000]`)},
	{file: "number_10000000000000000999.json", ijson: fail(ReasonNumberTooLarge), keep: ok(`[10000000000000000999]`)},
	{file: "number_1e-999.json", ijson: ok(`[1E-999]`), jcs: ok(`[0]`)},
	{file: "number_1e6.json", ijson: ok(`[1E6]`), jcs: ok(`[1000000]`)},
	{file: "number_9223372036854775807.json", ijson: fail(ReasonNumberTooLarge), keep: ok(`[9223372036854775807]`)},
	{file: "number_9223372036854775808.json", ijson: fail(ReasonNumberTooLarge), keep: ok(`[9223372036854775808]`)},
	{file: "object_key_nfc_nfd.json", ijson: fail(ReasonDuplicateKey), rfc: ok("{\"\u00e9\":\"NFC\",\"e\u0301\":\"NFD\"}"),
		exact: ok("{\"\u00e9\":\"NFC\",\"e\u0301\":\"NFD\"}"), exactJCS: ok("{\"e\u0301\":\"NFD\",\"\u00e9\":\"NFC\"}")},
	{file: "object_key_nfd_nfc.json", ijson: fail(ReasonDuplicateKey), rfc: ok("{\"e\u0301\":\"NFD\",\"\u00e9\":\"NFC\"}"),
		exact: ok("{\"e\u0301\":\"NFD\",\"\u00e9\":\"NFC\"}"), exactJCS: ok("{\"e\u0301\":\"NFD\",\"\u00e9\":\"NFC\"}")},
	{file: "object_same_key_different_values.json", ijson: fail(ReasonDuplicateKey), rfc: ok(`{"a":1,"a":2}`)},
	{file: "object_same_key_same_value.json", ijson: fail(ReasonDuplicateKey), rfc: ok(`{"a":1,"a":1}`)},
	{file: "object_same_key_unclear_values.json", ijson: fail(ReasonDuplicateKey), rfc: ok(`{"a":0,"a":-0}`)},
	{file: "string_1_escaped_invalid_codepoint.json", ijson: fail(ReasonLoneSurrogate), rfc: ok("[\"\uFFFD\"]")},
	{file: "string_1_invalid_codepoint.json", ijson: fail(ReasonLoneSurrogate), rfc: ok("[\"" + strings.Repeat("\uFFFD", 3) + "\"]")},
	{file: "string_2_escaped_invalid_codepoints.json", ijson: fail(ReasonLoneSurrogate), rfc: ok("[\"" + strings.Repeat("\uFFFD", 2) + "\"]")},
	{file: "string_2_invalid_codepoints.json", ijson: fail(ReasonLoneSurrogate), rfc: ok("[\"" + strings.Repeat("\uFFFD", 6) + "\"]")},
	{file: "string_3_escaped_invalid_codepoints.json", ijson: fail(ReasonLoneSurrogate), rfc: ok("[\"" + strings.Repeat("\uFFFD", 3) + "\"]")},
	{file: "string_3_invalid_codepoints.json", ijson: fail(ReasonLoneSurrogate), rfc: ok("[\"" + strings.Repeat("\uFFFD", 9) + "\"]")},
	{file: "string_with_escaped_NULL.json", ijson: ok(`["A\u0000B"]`)},
}

func TestSuiteTransform(t *testing.T) {
	files := suiteFiles(t, "test_transform", "")
	if len(files) != len(transformWants) || len(files) != 22 {
		t.Fatalf("found %d transform files, table has %d, want 22", len(files), len(transformWants))
	}
	var names []string
	for _, tw := range transformWants {
		names = append(names, tw.file)
		in, found := files[tw.file]
		if !found {
			t.Errorf("%s: not in testdata", tw.file)
			continue
		}
		rfc := orWant(tw.rfc, tw.ijson)
		expect(t, tw.file+" ijson", nCompact, string(in), tw.ijson)
		expect(t, tw.file+" jcs", nJCS, string(in), orWant(tw.jcs, tw.ijson))
		expect(t, tw.file+" rfc", nRFC, string(in), rfc)
		expect(t, tw.file+" keep", nRFCKeep, string(in), orWant(tw.keep, rfc))
		jcs := orWant(tw.jcs, tw.ijson)
		expect(t, tw.file+" exact", nExact, string(in), orWant(tw.exact, tw.ijson))
		expect(t, tw.file+" exact jcs", nExactJCS, string(in), orWant(tw.exactJCS, jcs))
	}
	if !sort.StringsAreSorted(names) {
		t.Error("keep transformWants sorted by file name")
	}
}
