package redact

import (
	"errors"
	"strconv"
)

// Sentinel errors wrapped by *InputError, for errors.Is.
var (
	// ErrInvalidJSON reports input that is not a single valid JSON value
	// (RFC 8259, UTF-8).
	ErrInvalidJSON = errors.New("redact: invalid JSON")
	// ErrTooDeep reports input nested deeper than Options.MaxDepth.
	ErrTooDeep = errors.New("redact: nesting too deep")
	// ErrTooLarge reports a document whose redacted form would exceed
	// Options.MaxOutput (many values replaced by a long constant, say).
	ErrTooLarge = errors.New("redact: output too large")
)

// InputError describes why Apply refused a document. It models a rejected
// input: Apply emits nothing for such a document, so the caller must drop or
// reject the message (fail closed). The zero value is not meaningful. It is
// an immutable value and safe to share between goroutines.
type InputError struct {
	Offset int    // byte offset in the input where the problem was found
	Reason string // short description, never containing input bytes
	Err    error  // ErrInvalidJSON, ErrTooDeep or ErrTooLarge
}

func (e *InputError) Error() string {
	return e.Err.Error() + " at byte " + strconv.Itoa(e.Offset) + ": " + e.Reason
}

// Unwrap returns ErrInvalidJSON, ErrTooDeep or ErrTooLarge.
func (e *InputError) Unwrap() error { return e.Err }

func syntaxErr(off int, reason string) error {
	return &InputError{Offset: off, Reason: reason, Err: ErrInvalidJSON}
}
