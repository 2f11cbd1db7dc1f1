package redact

// IMEIs and payment cards are digit runs with a Luhn check digit. A run may
// be split into groups by a single space or '-' (the same one throughout);
// it must stand alone (not glued to letters, digits, '.', or other groups).

type digitRun struct {
	end    int
	n      int // digits
	digits [19]byte
	groups [8]int
	ng     int
}

func digitStartBlocked(c byte) bool {
	return isWord(c) || c == '.' || c == '-' || c == '+' || c == '/' || c == ':'
}

// readRun reads a digit run of at most 19 digits starting at b[i].
func readRun(b []byte, i int) (digitRun, bool) {
	var r digitRun
	var sep byte
	j := i
	for {
		st := j
		for j < len(b) && isDigit(b[j]) {
			if r.n == len(r.digits) {
				return r, false
			}
			r.digits[r.n] = b[j]
			r.n++
			j++
		}
		if r.ng == len(r.groups) {
			return r, false
		}
		r.groups[r.ng] = j - st
		r.ng++
		if j+1 < len(b) && (b[j] == ' ' || b[j] == '-') && isDigit(b[j+1]) && (sep == 0 || sep == b[j]) {
			sep = b[j]
			j++
			continue
		}
		break
	}
	if j < len(b) && isWord(b[j]) {
		return r, false
	}
	if j+1 < len(b) && (b[j] == '.' || b[j] == '-' || b[j] == ' ' || b[j] == ':' || b[j] == '/') && isDigit(b[j+1]) {
		return r, false // continues as another number
	}
	r.end = j
	return r, true
}

func luhn(d []byte) bool {
	sum, double := 0, false
	for i := len(d) - 1; i >= 0; i-- {
		v := int(d[i] - '0')
		if double {
			if v *= 2; v > 9 {
				v -= 9
			}
		}
		sum += v
		double = !double
	}
	return sum%10 == 0
}

// findDigits finds an IMEI (imei) or a payment card (!imei). A flag, not
// a func value, keeps the run on the stack.
func findDigits(b []byte, from int, imei bool) (int, int) {
	for i := from; i < len(b); i++ {
		if !isDigit(b[i]) || i > 0 && digitStartBlocked(b[i-1]) {
			continue
		}
		r, fine := readRun(b, i)
		if fine && (imei && isIMEI(&r) || !imei && isCard(&r)) {
			return i, r.end
		}
	}
	return -1, -1
}

func findIMEI(b []byte, from int) (int, int) { return findDigits(b, from, true) }

func findCard(b []byte, from int) (int, int) { return findDigits(b, from, false) }

// isIMEI: 15 digits, plain or grouped 2-6-6-1 / 8-6-1 (TAC, serial,
// check digit), Luhn-valid.
func isIMEI(r *digitRun) bool {
	if r.n != 15 {
		return false
	}
	g := r.groups[:r.ng]
	shape := len(g) == 1 ||
		len(g) == 4 && g[0] == 2 && g[1] == 6 && g[2] == 6 && g[3] == 1 ||
		len(g) == 3 && g[0] == 8 && g[1] == 6 && g[2] == 1
	return shape && luhn(r.digits[:15])
}

// isCard: 13-19 digits, groups of at least 3, a known issuer prefix, and
// Luhn-valid. The prefix check rejects most numbers that only pass Luhn
// (one random number in ten does).
func isCard(r *digitRun) bool {
	if r.n < 13 || r.n > 19 {
		return false
	}
	for _, n := range r.groups[:r.ng] {
		if n < 3 {
			return false
		}
	}
	return cardPrefix(r.digits[:r.n]) && luhn(r.digits[:r.n])
}

func cardPrefix(d []byte) bool {
	p2 := int(d[0]-'0')*10 + int(d[1]-'0')
	p4 := p2*100 + int(d[2]-'0')*10 + int(d[3]-'0')
	switch {
	case d[0] == '4': // Visa
		return true
	case p2 >= 51 && p2 <= 55, p4 >= 2221 && p4 <= 2720: // Mastercard
		return true
	case p2 == 34 || p2 == 37: // American Express
		return true
	case p2 == 36 || p2 == 38 || p2 == 39 || p4 >= 3000 && p4 <= 3059: // Diners
		return true
	case p4 >= 3528 && p4 <= 3589: // JCB
		return true
	case p4 == 6011 || p2 == 65 || p4 >= 6440 && p4 <= 6499: // Discover
		return true
	case p2 == 62: // UnionPay
		return true
	case p2 == 50 || p2 >= 56 && p2 <= 69: // Maestro
		return true
	}
	return false
}
