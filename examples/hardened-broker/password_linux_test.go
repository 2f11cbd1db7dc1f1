package main

import (
	"bytes"
	"os"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
	"unsafe"
)

// openPTY opens a pseudo-terminal pair: what is written to the master is
// typed on the terminal (the slave), and what the terminal shows (echo,
// prompts written to it) is read from the master.
func openPTY(t *testing.T) (master, slave *os.File) {
	t.Helper()
	m, err := os.OpenFile("/dev/ptmx", os.O_RDWR|syscall.O_NOCTTY, 0)
	if err != nil {
		t.Skipf("no pseudo-terminals here: %v", err)
	}
	var unlock int32
	if _, _, e := syscall.Syscall(syscall.SYS_IOCTL, m.Fd(), syscall.TIOCSPTLCK, uintptr(unsafe.Pointer(&unlock))); e != 0 {
		t.Fatal(e)
	}
	var n uint32
	if _, _, e := syscall.Syscall(syscall.SYS_IOCTL, m.Fd(), syscall.TIOCGPTN, uintptr(unsafe.Pointer(&n))); e != 0 {
		t.Fatal(e)
	}
	s, err := os.OpenFile("/dev/pts/"+strconv.Itoa(int(n)), os.O_RDWR|syscall.O_NOCTTY, 0)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { m.Close(); s.Close() })
	return m, s
}

// TestHashPasswordTerminal: on a terminal -hash-password asks twice and
// the password never appears on the screen; two different answers hash
// nothing.
func TestHashPasswordTerminal(t *testing.T) {
	for _, tc := range []struct {
		name, typed string
		ok          bool
	}{
		{"same twice", "correct horse\ncorrect horse\n", true},
		{"differ", "correct horse\ncorrect house\n", false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			master, slave := openPTY(t)
			screen := make(chan []byte, 1)
			go func() { // what the terminal shows
				var b bytes.Buffer
				buf := make([]byte, 256)
				_ = master.SetReadDeadline(time.Now().Add(5 * time.Second))
				for {
					n, err := master.Read(buf)
					b.Write(buf[:n])
					if err != nil || strings.Count(b.String(), ": ") >= 2 && strings.HasSuffix(b.String(), "\n") && strings.Count(b.String(), "\n") >= 2 {
						screen <- b.Bytes()
						return
					}
				}
			}()
			// Type each answer once its prompt is up, as a person would.
			go func() {
				for _, line := range strings.SplitAfter(tc.typed, "\n") {
					time.Sleep(100 * time.Millisecond)
					_, _ = master.Write([]byte(line))
				}
			}()
			var out bytes.Buffer
			err := hashPassword(slave, &out, slave)
			shown := string(<-screen)
			if strings.Contains(shown, "correct") {
				t.Fatalf("the password was echoed: %q", shown)
			}
			if !strings.Contains(shown, "Password (8 characters or more): ") || !strings.Contains(shown, "Again: ") {
				t.Fatalf("prompts missing: %q", shown)
			}
			if tc.ok {
				if err != nil || !strings.HasPrefix(out.String(), "$2a$") {
					t.Fatalf("hash %q, %v", out.String(), err)
				}
				w := wafWithCredential(t, t.TempDir(), strings.TrimSpace(out.String()))
				if !loginOK(w, "correct horse") {
					t.Fatal("the hash does not admit the password typed")
				}
			} else if err == nil || out.Len() > 0 {
				t.Fatalf("two different answers: %q, %v", out.String(), err)
			}
		})
	}
}
