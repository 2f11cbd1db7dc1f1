package redact

// E-mail addresses: ASCII local part [A-Za-z0-9._%+-] or a quoted one
// ("john doe"@example.com, RFC 5321), '@', a domain of at least two labels
// ending in a TLD of letters. Found from each '@' outwards, so text
// without '@' costs one byte scan. Full-width forms are folded first
// (fold.go).

func emailLocal(c byte) bool {
	return isWord(c) || c == '.' || c == '%' || c == '+' || c == '-'
}

func findEmail(b []byte, from int) (int, int) {
	for at := from; at < len(b); at++ {
		if b[at] != '@' {
			continue
		}
		st := at
		if q := quotedLocal(b, from, at); q >= 0 {
			st = q
		}
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

// quotedLocal returns the start of a quoted local part ending just before
// b[at] ('"' ... '"'), or -1: printable ASCII and spaces between the
// quotes, a backslash escaping the next character, at most 64 bytes.
func quotedLocal(b []byte, from, at int) int {
	if at-from < 3 || b[at-1] != '"' {
		return -1
	}
	for i := at - 2; i >= from && at-i <= 66; i-- {
		c := b[i]
		switch {
		case c == '"' && (i == from || b[i-1] != '\\'):
			if i == at-2 || i > from && isWord(b[i-1]) {
				return -1 // empty, or glued to a word
			}
			return i
		case c < ' ' || c > '~':
			return -1
		}
	}
	return -1
}
