// Package redistest runs a real redis-server for tests: on a free loopback
// port, without persistence, in a temporary directory, killed at cleanup.
// Tests that need it are skipped when redis-server is not installed, unless
// MQTTWAF_REQUIRE_REDIS=1 (CI), which fails them instead.
package redistest

import (
	"bufio"
	"bytes"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"testing"
	"time"
)

// Server is a running redis-server.
type Server struct {
	t      testing.TB
	bin    string
	dir    string
	port   int
	cmd    *exec.Cmd
	done   chan struct{}
	stderr bytes.Buffer
}

// Start runs a redis-server and returns it; it stops at the test's cleanup.
func Start(t testing.TB) *Server {
	t.Helper()
	bin, err := exec.LookPath("redis-server")
	if err != nil {
		if os.Getenv("MQTTWAF_REQUIRE_REDIS") == "1" {
			t.Fatalf("redis-server not found (apt-get install redis-server)")
		}
		t.Skip("redis-server not installed (apt-get install redis-server)")
	}
	s := &Server{t: t, bin: bin, dir: t.TempDir()}
	for try := 0; ; try++ {
		s.port = freePort(t)
		if err := s.start(); err == nil {
			break
		} else if try >= 3 {
			t.Fatal(err)
		}
	}
	t.Cleanup(s.Stop)
	return s
}

// Addr is the server's host:port.
func (s *Server) Addr() string { return net.JoinHostPort("127.0.0.1", strconv.Itoa(s.port)) }

func (s *Server) start() error {
	s.stderr.Reset()
	s.cmd = exec.Command(s.bin, "--port", strconv.Itoa(s.port), "--bind", "127.0.0.1",
		"--save", "", "--appendonly", "no", "--dir", s.dir, "--loglevel", "warning")
	s.cmd.Stdout, s.cmd.Stderr = &s.stderr, &s.stderr
	if err := s.cmd.Start(); err != nil {
		return err
	}
	done := make(chan struct{})
	s.done = done
	go func() { _ = s.cmd.Wait(); close(done) }()
	deadline := time.Now().Add(10 * time.Second)
	for {
		if c, err := net.DialTimeout("tcp", s.Addr(), time.Second); err == nil {
			_ = c.Close()
			return nil
		}
		select {
		case <-done:
			return fmt.Errorf("redis-server exited: %s", s.stderr.String())
		case <-time.After(20 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			_ = s.cmd.Process.Kill()
			<-done
			return fmt.Errorf("redis-server did not listen on %s: %s", s.Addr(), s.stderr.String())
		}
	}
}

// Stop kills the server (its data is lost: no persistence).
func (s *Server) Stop() {
	if s.cmd == nil {
		return
	}
	_ = s.cmd.Process.Kill()
	<-s.done
	s.cmd = nil
}

// Restart starts the server again on the same port, empty.
func (s *Server) Restart() {
	s.t.Helper()
	s.Stop()
	var err error
	for try := 0; try < 50; try++ { // the port may linger for a moment
		if err = s.start(); err == nil {
			return
		}
		time.Sleep(100 * time.Millisecond)
	}
	s.t.Fatal(err)
}

// Do sends one command (inline protocol, arguments without spaces) and
// returns the raw first reply line and, for bulk replies, the body.
func (s *Server) Do(args ...string) (string, error) {
	c, err := net.DialTimeout("tcp", s.Addr(), time.Second)
	if err != nil {
		return "", err
	}
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(5 * time.Second))
	if _, err := fmt.Fprintf(c, "%s\r\n", strings.Join(args, " ")); err != nil {
		return "", err
	}
	r := bufio.NewReader(c)
	line, err := r.ReadString('\n')
	if err != nil {
		return "", err
	}
	line = strings.TrimRight(line, "\r\n")
	if strings.HasPrefix(line, "$") {
		n, _ := strconv.Atoi(line[1:])
		if n < 0 {
			return "", nil
		}
		body := make([]byte, n+2)
		if _, err := io.ReadFull(r, body); err != nil {
			return "", err
		}
		return string(body[:n]), nil
	}
	if strings.HasPrefix(line, "-") {
		return "", fmt.Errorf("redis: %s", line[1:])
	}
	return line, nil
}

// Info returns one field of INFO (e.g. used_memory).
func (s *Server) Info(field string) string {
	s.t.Helper()
	out, err := s.Do("INFO")
	if err != nil {
		s.t.Fatal(err)
	}
	for line := range strings.SplitSeq(out, "\n") {
		if k, v, ok := strings.Cut(strings.TrimSpace(line), ":"); ok && k == field {
			return v
		}
	}
	return ""
}

func freePort(t testing.TB) int {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}
