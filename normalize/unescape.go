package normalize

import (
	"bytes"
	"unicode/utf16"
	"unicode/utf8"
)

// AppendUnescaped appends the value of a JSON string body (the bytes
// between the quotes, already checked to be a valid JSON string) to dst,
// with every escape decoded: \n to a newline, \u00e9 to é, a surrogate
// pair to its character. A lone surrogate becomes U+FFFD, as encoding/json
// decodes it. It is for the packages that read JSON this package has
// already checked (redaction, schema checks), so they unescape exactly as
// the firewall did.
func AppendUnescaped(dst, body []byte) []byte {
	for len(body) > 0 {
		j := bytes.IndexByte(body, '\\')
		if j < 0 {
			return append(dst, body...)
		}
		dst = append(dst, body[:j]...)
		body = body[j:]
		switch body[1] {
		case 'b':
			dst = append(dst, '\b')
		case 'f':
			dst = append(dst, '\f')
		case 'n':
			dst = append(dst, '\n')
		case 'r':
			dst = append(dst, '\r')
		case 't':
			dst = append(dst, '\t')
		case 'u':
			r := hexRune(body[2:6])
			body = body[6:]
			if utf16.IsSurrogate(r) {
				r2 := rune(-1)
				if len(body) >= 6 && body[0] == '\\' && body[1] == 'u' {
					r2 = hexRune(body[2:6])
				}
				if c := utf16.DecodeRune(r, r2); c != utf8.RuneError {
					r = c
					body = body[6:]
				} else {
					r = utf8.RuneError
				}
			}
			dst = utf8.AppendRune(dst, r)
			continue
		default: // '"', '\\', '/'
			dst = append(dst, body[1])
		}
		body = body[2:]
	}
	return dst
}

// hexRune decodes four hex digits (already checked).
func hexRune(b []byte) rune {
	var r rune
	for _, c := range b[:4] {
		switch {
		case c <= '9':
			r = r<<4 | rune(c-'0')
		case c >= 'a':
			r = r<<4 | rune(c-'a'+10)
		default:
			r = r<<4 | rune(c-'A'+10)
		}
	}
	return r
}
