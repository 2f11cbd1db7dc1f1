package redact

// Network identifiers: IPv4, IPv6 and MAC addresses, found by small
// validating scanners (no regexp, no allocation).

// netBlocked: an address glued to these is part of a longer token
// (a version "v1.2.3.4", a longer dotted or colon-separated string).
func netBlocked(c byte) bool { return isWord(c) || c == '.' || c == ':' || c == '-' }

func findIPv4(b []byte, from int) (int, int) {
	for i := from; i < len(b); i++ {
		if !isDigit(b[i]) || i > 0 && (isWord(b[i-1]) || b[i-1] == '.') {
			continue
		}
		if end := ipv4At(b, i); end > 0 {
			return i, end
		}
	}
	return -1, -1
}

// ipv4At returns the end of a dotted quad at b[i] (octets 0-255 without
// leading zeros) that is not part of a longer dotted number, or -1.
func ipv4At(b []byte, i int) int {
	j := i
	for k := 0; k < 4; k++ {
		if k > 0 {
			if j >= len(b) || b[j] != '.' {
				return -1
			}
			j++
		}
		st, v := j, 0
		for j < len(b) && isDigit(b[j]) && j-st < 3 {
			v = v*10 + int(b[j]-'0')
			j++
		}
		if n := j - st; n == 0 || v > 255 || n > 1 && b[st] == '0' {
			return -1
		}
	}
	if j < len(b) && isWord(b[j]) || j+1 < len(b) && b[j] == '.' && isDigit(b[j+1]) {
		return -1
	}
	return j
}

func findIPv6(b []byte, from int) (int, int) {
	for i := from; i < len(b); i++ {
		c := b[i]
		if !isHex(c) && c != ':' || i > 0 && (isWord(b[i-1]) || b[i-1] == ':' || b[i-1] == '.') {
			continue
		}
		j := i
		for j < len(b) && (isHex(b[j]) || b[j] == ':' || b[j] == '.') {
			j++
		}
		if j < len(b) && isWord(b[j]) {
			i = j
			continue
		}
		end := j
		for end > i && b[end-1] == '.' { // sentence end
			end--
		}
		if validIPv6(b[i:end]) {
			return i, end
		}
		i = j - 1
	}
	return -1, -1
}

// validIPv6 reports whether t is an IPv6 address in RFC 4291 text form
// (optionally ending in a dotted IPv4) with at least 4 hex digits, which
// leaves out "::", "::1" and text like "a::b".
func validIPv6(t []byte) bool {
	groups, hexDigits, double := 0, 0, false
	i := 0
	if len(t) >= 2 && t[0] == ':' && t[1] == ':' {
		double, i = true, 2
	}
	for i < len(t) {
		st := i
		for i < len(t) && isHex(t[i]) && i-st < 4 {
			i++
		}
		if i < len(t) && t[i] == '.' { // embedded IPv4: the last 32 bits
			if ipv4At(t, st) != len(t) {
				return false
			}
			groups += 2
			hexDigits += 4
			break
		}
		n := i - st
		if n == 0 {
			return false
		}
		groups++
		hexDigits += n
		if i == len(t) {
			break
		}
		if t[i] != ':' {
			return false
		}
		i++
		if i < len(t) && t[i] == ':' {
			if double {
				return false
			}
			double = true
			i++
		} else if i == len(t) {
			return false
		}
	}
	if hexDigits < 4 {
		return false
	}
	if double {
		return groups <= 7
	}
	return groups == 8
}

func findMAC(b []byte, from int) (int, int) {
	for i := from; i+14 <= len(b); i++ {
		if !isHex(b[i]) || i > 0 && netBlocked(b[i-1]) {
			continue
		}
		if end := macAt(b, i); end > 0 {
			return i, end
		}
	}
	return -1, -1
}

// macAt accepts six hex pairs joined by one ':' or '-' throughout, or
// three hex quads joined by '.', standing alone.
func macAt(b []byte, i int) int {
	end := -1
	if i+17 <= len(b) && (b[i+2] == ':' || b[i+2] == '-') {
		sep := b[i+2]
		end = i + 17
		for k := 0; k < 6; k++ {
			p := i + 3*k
			if !isHex(b[p]) || !isHex(b[p+1]) || k < 5 && b[p+2] != sep {
				end = -1
				break
			}
		}
	}
	if end < 0 && b[i+4] == '.' {
		end = i + 14
		for k := 0; k < 3; k++ {
			p := i + 5*k
			if !isHex(b[p]) || !isHex(b[p+1]) || !isHex(b[p+2]) || !isHex(b[p+3]) || k < 2 && b[p+4] != '.' {
				return -1
			}
		}
	}
	if end < 0 || end < len(b) && (isWord(b[end]) || end+1 < len(b) && netBlocked(b[end]) && isHex(b[end+1])) {
		return -1
	}
	return end
}
