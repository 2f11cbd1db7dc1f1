package redact

import (
	"slices"
	"strings"
)

// Phone numbers are found by a hand-written scanner: it reads a run of
// digit groups (separated by one space, '-', '.' or '/', with an optional
// parenthesised area code), then accepts the run only if it has the shape
// of a known numbering plan: E.164 with '+' or "00", Korean, North
// American, and national numbers with a trunk '0' in groups (European
// style: "06 12 34 56 78", "020 7946 0958", "0171 1234567"). Bare digit
// runs are accepted only for Korean mobiles (01X...), whose prefix no
// timestamp or reading starts with, and digits spaced out one by one
// ("0 1 0 8 3 7 8 1 2 3 4": no timestamp is written like that) are read
// as a bare run. Look-alike digits and separators are folded first
// (fold.go).

// phoneStartBlocked: a number glued to these is part of something else
// (an identifier, a decimal, a date or a path).
func phoneStartBlocked(c byte) bool {
	return isWord(c) || c == '+' || c == '-' || c == '.' || c == '/'
}

// phonePlans is a set of national numbering plans (Detector.Regions).
type phonePlans uint8

const (
	planKorea        phonePlans = 1 << iota // KR
	planNorthAmerica                        // US, CA: the North American Numbering Plan
	planTrunk0                              // GB, FR, DE, NL, BE, CH, AT, IT, IE
)

// phoneRegions maps the ISO 3166 codes Detector.Regions accepts to plans.
var phoneRegions = map[string]phonePlans{
	"KR": planKorea, "US": planNorthAmerica, "CA": planNorthAmerica,
	"GB": planTrunk0, "FR": planTrunk0, "DE": planTrunk0, "NL": planTrunk0, "BE": planTrunk0,
	"CH": planTrunk0, "AT": planTrunk0, "IT": planTrunk0, "IE": planTrunk0,
}

// knownRegions lists phoneRegions' codes, sorted, for errors.
func knownRegions() string {
	codes := make([]string, 0, len(phoneRegions))
	for c := range phoneRegions {
		codes = append(codes, c)
	}
	slices.Sort(codes)
	return strings.Join(codes, ", ")
}

func findPhone(b []byte, from int, plans phonePlans) (int, int) {
	if plans == 0 {
		plans = planKorea | planNorthAmerica | planTrunk0
	}
	for i := from; i < len(b); i++ {
		c := b[i]
		if c != '+' && c != '(' && !isDigit(c) || i > 0 && phoneStartBlocked(b[i-1]) {
			continue
		}
		if end := phoneAt(b, i, plans); end > 0 {
			return i, end
		}
	}
	return -1, -1
}

// phoneAt returns the end of a phone number starting at b[i], or -1.
func phoneAt(b []byte, i int, plans phonePlans) int {
	j := i
	plus := b[j] == '+'
	if plus {
		j++
	}
	var g [16]int   // digit-group lengths
	var pre [4]byte // first digits
	ng, nd, np := 0, 0, 0
	for {
		open := j < len(b) && b[j] == '('
		if open {
			if ng > 1 {
				return -1
			}
			j++
		}
		st := j
		for j < len(b) && isDigit(b[j]) {
			if np < len(pre) {
				pre[np] = b[j]
				np++
			}
			j++
		}
		n := j - st
		if n == 0 || ng == len(g) {
			return -1
		}
		g[ng] = n
		ng++
		nd += n
		if nd > 15 {
			return -1
		}
		if open {
			if j >= len(b) || b[j] != ')' {
				return -1
			}
			j++
			if j+1 < len(b) && (b[j] == ' ' || b[j] == '-') && isDigit(b[j+1]) {
				j++
			}
			if j < len(b) && isDigit(b[j]) {
				continue
			}
			break
		}
		if j+1 < len(b) && (b[j] == ' ' || b[j] == '-' || b[j] == '.' || b[j] == '/') && (isDigit(b[j+1]) || b[j+1] == '(') {
			j++
			continue
		}
		break
	}
	// The run must end cleanly: not glued to a word, nor continued like a
	// date, time, decimal or path ("2017-11-28", "12.5", "10:30").
	if j < len(b) && (isWord(b[j]) || b[j] == '+') {
		return -1
	}
	if j+1 < len(b) && (b[j] == '-' || b[j] == '.' || b[j] == ':' || b[j] == '/') && isDigit(b[j+1]) {
		return -1
	}
	if np < 4 {
		return -1
	}
	if plus { // E.164: country code 1-9, 8 to 15 digits in all
		if nd >= 8 && pre[0] != '0' {
			return j
		}
		return -1
	}
	spaced := ng >= 6 && spacedOut(g[:ng])
	if spaced {
		ng, g[0] = 1, nd // one digit at a time: read as the bare run
	}
	if pre[0] == '0' && pre[1] == '0' && pre[2] != '0' && nd >= 10 {
		return j // international with the "00" prefix: 00 + E.164
	}
	koreanMobile := pre[0] == '0' && pre[1] == '1' && (pre[2] == '0' || pre[2] == '1' || pre[2] >= '6' && pre[2] <= '9')
	if koreanMobile && plans&planKorea != 0 {
		// Korean mobile: 010-1234-5678, 011-123-4567, 01012345678.
		if ng == 1 && (nd == 10 || nd == 11) || ng == 3 && g[0] == 3 && (g[1] == 3 || g[1] == 4) && g[2] == 4 {
			return j
		}
	}
	if pre[0] == '0' && ng == 3 && (g[1] == 3 || g[1] == 4) && g[2] == 4 && plans&planKorea != 0 {
		// Korean landline and internet phone, separators required:
		// 02-123-4567, 031-1234-5678, 070-1234-5678.
		if g[0] == 2 && pre[1] == '2' || g[0] == 3 && (pre[1] >= '3' && pre[1] <= '6' && pre[2] >= '1' && pre[2] <= '5' || pre[1] == '7' && pre[2] == '0') {
			return j
		}
	}
	if plans&planTrunk0 != 0 && pre[0] == '0' && pre[1] != '0' && ng >= 2 && ng <= 5 && (nd == 10 || nd == 11) && g[0] >= 2 && g[0] <= 5 &&
		(!koreanMobile || g[0] >= 4) { // 010-1234-567 is a Korean mobile with a digit missing, not this
		// A national number with its trunk prefix, in groups: France
		// 06 12 34 56 78, the UK 020 7946 0958 and 07700 900123, Germany
		// 030 12345678 and 0171 1234567, the Netherlands 06 12345678.
		return j
	}
	// North American: (555) 123-4567, 555-123-4567, 555.123.4567,
	// 1-555-123-4567; the area code starts with 2-9. Ten bare digits are
	// refused: they are usually Unix timestamps or ids (unless spaced out).
	if plans&planNorthAmerica == 0 {
		return -1
	}
	if ng == 3 && g[0] == 3 && g[1] == 3 && g[2] == 4 && pre[0] >= '2' {
		return j
	}
	if ng == 4 && g[0] == 1 && pre[0] == '1' && g[1] == 3 && g[2] == 3 && g[3] == 4 && pre[1] >= '2' {
		return j
	}
	if spaced && (nd == 10 && pre[0] >= '2' || nd == 11 && pre[0] == '1' && pre[1] >= '2') {
		return j
	}
	return -1
}

// spacedOut reports whether every group is one digit.
func spacedOut(g []int) bool {
	for _, n := range g {
		if n != 1 {
			return false
		}
	}
	return true
}
