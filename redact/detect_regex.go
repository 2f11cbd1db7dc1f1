package redact

import "regexp/syntax"

// Caller-defined detectors run Go's regexp (RE2: linear time, no
// backtracking blow-up). The literal below lets most values skip it.

// requiredLiteral returns the longest case-sensitive literal that every
// match of pattern contains ("EMP-" in `\bEMP-[0-9]{5}`), or "". A value
// without it skips the regexp.
func requiredLiteral(pattern string) string {
	re, err := syntax.Parse(pattern, syntax.Perl)
	if err != nil {
		return ""
	}
	var lit func(*syntax.Regexp) string
	lit = func(re *syntax.Regexp) string {
		switch re.Op {
		case syntax.OpLiteral:
			if re.Flags&syntax.FoldCase == 0 {
				return string(re.Rune)
			}
		case syntax.OpCapture, syntax.OpPlus:
			return lit(re.Sub[0])
		case syntax.OpRepeat:
			if re.Min >= 1 {
				return lit(re.Sub[0])
			}
		case syntax.OpConcat:
			best := ""
			for _, sub := range re.Sub {
				if l := lit(sub); len(l) > len(best) {
					best = l
				}
			}
			return best
		}
		return ""
	}
	return lit(re.Simplify())
}
