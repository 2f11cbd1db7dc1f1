package redact

import (
	"bytes"
	"encoding/json"
	"fmt"
	"math"
	"strconv"
	"strings"
	"unicode"
	"unicode/utf8"
)

// compileAction validates the parameters of one operator.
func compileAction(f string, in Action) (action, error) {
	a := action{op: in.Op, mask: []byte("*")}
	used := map[string]bool{}
	switch in.Op {
	case OpRemove:
	case OpReplace:
		used["value"] = true
		var buf bytes.Buffer
		enc := json.NewEncoder(&buf)
		enc.SetEscapeHTML(false)
		if err := enc.Encode(in.Value); err != nil {
			return a, errf(f+".value", "not representable as JSON: %v", err)
		}
		a.value = bytes.TrimSpace(buf.Bytes())
		if len(a.value) > 64<<10 {
			return a, errf(f+".value", "at most 64 KiB of JSON, got %d bytes", len(a.value))
		}
	case OpMask:
		used["keep_first"], used["keep_last"], used["mask_char"] = true, true, true
		if in.KeepFirst < 0 || in.KeepFirst > 1024 {
			return a, errf(f+".keep_first", "must be between 0 and 1024, got %d", in.KeepFirst)
		}
		if in.KeepLast < 0 || in.KeepLast > 1024 {
			return a, errf(f+".keep_last", "must be between 0 and 1024, got %d", in.KeepLast)
		}
		a.keepFirst, a.keepLast = in.KeepFirst, in.KeepLast
		if in.MaskChar != "" {
			r, size := utf8.DecodeRuneInString(in.MaskChar)
			if size != len(in.MaskChar) || !validMaskRune(r) {
				return a, errf(f+".mask_char", "must be one printable character other than digits, a-f, A-F, whitespace and . : - + @ _ %% ( ) / \" \\, got %q", in.MaskChar)
			}
			a.mask = []byte(in.MaskChar)
		}
	case OpPseudonym:
		used["length"], used["encoding"] = true, true
		maxLen := 52
		switch in.Encoding {
		case "", "base32":
		case "hex":
			a.hex, maxLen = true, 64
		default:
			return a, errf(f+".encoding", `must be "base32" or "hex", got %q`, in.Encoding)
		}
		a.length = in.Length
		if a.length == 0 {
			a.length = defaultPseudoLen
		}
		if a.length < 8 || a.length > maxLen {
			return a, errf(f+".length", "must be between 8 and %d for this encoding, got %d", maxLen, in.Length)
		}
	case OpTruncate:
		used["length"] = true
		if in.Length < 1 || in.Length > 1<<20 {
			return a, errf(f+".length", "truncate needs the number of characters to keep (1..1048576), got %d", in.Length)
		}
		a.length = in.Length
	case OpRound:
		used["decimals"] = true
		if in.Decimals < -15 || in.Decimals > 15 {
			return a, errf(f+".decimals", "must be between -15 and 15, got %d", in.Decimals)
		}
		a.decimals = in.Decimals
	case OpBucket:
		used["boundaries"] = true
		if len(in.Boundaries) == 0 || len(in.Boundaries) > 64 {
			return a, errf(f+".boundaries", "needs 1 to 64 ascending numbers, got %d", len(in.Boundaries))
		}
		for j, b := range in.Boundaries {
			if math.IsNaN(b) || math.IsInf(b, 0) || j > 0 && b <= in.Boundaries[j-1] {
				return a, errf(fmt.Sprintf("%s.boundaries[%d]", f, j), "must be finite and greater than the one before, got %v", b)
			}
			a.boundText = append(a.boundText, appendJSONFloat(nil, b))
		}
		a.bounds = append([]float64(nil), in.Boundaries...)
	case OpCoarsen:
		used["decimals"], used["cell_metres"] = true, true
		switch {
		case in.CellMetres != 0 && in.Decimals != 0:
			return a, errf(f+".cell_metres", "set cell_metres or decimals, not both")
		case in.CellMetres != 0:
			if !(in.CellMetres >= 1 && in.CellMetres <= 1e7) {
				return a, errf(f+".cell_metres", "must be between 1 and 10000000, got %v", in.CellMetres)
			}
			a.metres = true
			a.nLat = math.Ceil(180 / (in.CellMetres / metresPerDegree))
			a.latStep = 180 / a.nLat
			a.latDec = decimalsFor(a.latStep)
		case in.Decimals >= 1 && in.Decimals <= 7:
			a.decimals = in.Decimals
		default:
			return a, errf(f+".cell_metres", "set cell_metres (e.g. 1000 for about 1 km) or decimals (1..7), got decimals %d", in.Decimals)
		}
	default:
		return a, errf(f+".op", "unknown operator %q; one of remove, replace, mask, pseudonym, truncate, round, bucket, coarsen", in.Op)
	}
	for _, p := range []struct {
		name string
		set  bool
	}{
		{"keep_first", in.KeepFirst != 0}, {"keep_last", in.KeepLast != 0}, {"mask_char", in.MaskChar != ""},
		{"length", in.Length != 0}, {"encoding", in.Encoding != ""}, {"value", in.Value != nil},
		{"decimals", in.Decimals != 0}, {"cell_metres", in.CellMetres != 0}, {"boundaries", in.Boundaries != nil},
	} {
		if p.set && !used[p.name] {
			return a, errf(f+"."+p.name, "not used by %s; remove it", in.Op)
		}
	}
	return a, nil
}

func validMaskRune(r rune) bool {
	if r == utf8.RuneError || !unicode.IsGraphic(r) || unicode.IsSpace(r) || isHex(byte(r)) && r < utf8.RuneSelf {
		return false
	}
	return !strings.ContainsRune(".:-+@_%()/\"\\", r)
}

// appendJSONFloat formats v as the shortest JSON number that parses back
// to v.
func appendJSONFloat(dst []byte, v float64) []byte {
	if a := math.Abs(v); a != 0 && (a < 1e-6 || a >= 1e21) {
		return strconv.AppendFloat(dst, v, 'e', -1, 64)
	}
	if v == 0 {
		return append(dst, '0')
	}
	return strconv.AppendFloat(dst, v, 'f', -1, 64)
}
