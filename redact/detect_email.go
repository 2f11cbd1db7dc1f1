package redact

// E-mail addresses: ASCII local part [A-Za-z0-9._%+-], '@', a domain of
// at least two labels ending in a TLD of letters. Found from each '@'
// outwards, so text without '@' costs one byte scan.

func emailLocal(c byte) bool {
	return isWord(c) || c == '.' || c == '%' || c == '+' || c == '-'
}

func findEmail(b []byte, from int) (int, int) {
	for at := from; at < len(b); at++ {
		if b[at] != '@' {
			continue
		}
		st := at
		for st > from && emailLocal(b[st-1]) {
			st--
		}
		for st < at && b[st] == '.' {
			st++
		}
		if st == at {
			continue
		}
		if end := emailDomain(b, at+1); end > 0 {
			return st, end
		}
	}
	return -1, -1
}

// emailDomain returns the end of a domain starting at b[i], or -1.
func emailDomain(b []byte, i int) int {
	j := i
	for j < len(b) && (isDigit(b[j]) || isAlpha(b[j]) || b[j] == '-' || b[j] == '.') {
		j++
	}
	if j < len(b) && (b[j] == '_' || b[j] == '@') {
		return -1
	}
	for j > i && (b[j-1] == '.' || b[j-1] == '-') {
		j--
	}
	labels, st, last := 0, i, i
	for k := i; k <= j; k++ {
		if k < j && b[k] != '.' {
			continue
		}
		if n := k - st; n == 0 || n > 63 || b[st] == '-' || b[k-1] == '-' {
			return -1
		}
		labels++
		last, st = st, k+1
	}
	if labels < 2 || j-last < 2 {
		return -1
	}
	for _, c := range b[last:j] {
		if !isAlpha(c) {
			return -1
		}
	}
	return j
}
