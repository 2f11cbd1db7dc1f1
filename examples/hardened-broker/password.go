package main

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"

	"golang.org/x/term"

	"github.com/mqttwaf/mqttwaf/mqttwaf"
)

// hashPassword reads a person's password and prints its bcrypt hash. On a
// terminal it asks twice without echoing (a password typed at a prompt
// is neither shown nor kept in the shell's history, as one piped from
// echo would be); otherwise it reads one line of stdin, for scripts that
// take the password from a file or a secret store.
func hashPassword(stdin io.Reader, stdout, stderr io.Writer) error {
	var password []byte
	if f, ok := stdin.(*os.File); ok && term.IsTerminal(int(f.Fd())) {
		var err error
		if password, err = askTwice(f, stderr); err != nil {
			return err
		}
	} else {
		line, err := bufio.NewReader(io.LimitReader(stdin, 1024)).ReadString('\n')
		if err != nil && !errors.Is(err, io.EOF) {
			return err
		}
		password = []byte(strings.TrimRight(line, "\r\n"))
	}
	h, err := mqttwaf.HashPassword(password)
	if err != nil {
		return fmt.Errorf("-hash-password: %w", err)
	}
	_, err = fmt.Fprintln(stdout, h)
	return err
}

// askTwice reads the password twice from the terminal f, not echoed.
func askTwice(f *os.File, prompt io.Writer) ([]byte, error) {
	fmt.Fprint(prompt, "Password (8 characters or more): ")
	first, err := term.ReadPassword(int(f.Fd()))
	fmt.Fprintln(prompt)
	if err != nil {
		return nil, err
	}
	fmt.Fprint(prompt, "Again: ")
	second, err := term.ReadPassword(int(f.Fd()))
	fmt.Fprintln(prompt)
	if err != nil {
		return nil, err
	}
	if string(first) != string(second) {
		return nil, errors.New("-hash-password: the two passwords differ; nothing was hashed")
	}
	return first, nil
}
