package ratelimit

import (
	"errors"
	"fmt"
)

// OptionError reports an invalid field of an options struct: which field, what
// is wrong with it and what would be accepted. Constructors return it before
// any state is built, so a bad configuration never half-works.
type OptionError struct {
	Field   string // e.g. "LimiterOptions.Burst"
	Problem string // e.g. "must be between 1 and 1099511627776, got -1"
}

func (e *OptionError) Error() string { return "ratelimit: " + e.Field + ": " + e.Problem }

func optErr(field, format string, args ...any) error {
	return &OptionError{Field: field, Problem: fmt.Sprintf(format, args...)}
}

// ParseError reports text that ParseRate or ParseTarget could not read. Input
// is cut to 64 bytes so that attacker-sized input never ends up in logs whole.
type ParseError struct {
	What    string // "rate" or "ban target"
	Input   string
	Problem string
}

func (e *ParseError) Error() string {
	return fmt.Sprintf("ratelimit: bad %s %q: %s", e.What, e.Input, e.Problem)
}

const maxQuotedInput = 64

func parseErr(what, input, problem string) error {
	if len(input) > maxQuotedInput {
		input = input[:maxQuotedInput] + "..."
	}
	return &ParseError{What: what, Input: input, Problem: problem}
}

// ErrFull is returned by BanList.Add and BanList.Strike when the list is at
// MaxBans and the new ban would expire before every ban already held, so
// keeping it would mean dropping a longer one.
var ErrFull = errors.New("ratelimit: ban list full and every held ban outlasts the new one; raise MaxBans")
