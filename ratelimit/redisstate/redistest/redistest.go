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
	"path/filepath"
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
	conf   string   // a config file to start with (a sentinel's)
	extra  []string // arguments after the defaults (--replicaof, --sentinel)
	cmd    *exec.Cmd
	done   chan struct{}
	stderr bytes.Buffer
}

// Start runs a redis-server and returns it; it stops at the test's cleanup.
func Start(t testing.TB) *Server {
	t.Helper()
	return startWith(t, nil)
}

// StartReplica runs a redis-server replicating primary (replicaof) and
// waits until it has synced with it.
func StartReplica(t testing.TB, primary *Server) *Server {
	t.Helper()
	s := startWith(t, func(s *Server) {
		s.extra = []string{"--replicaof", "127.0.0.1", strconv.Itoa(primary.port)}
	})
	deadline := time.Now().Add(10 * time.Second)
	for s.Info("master_link_status") != "up" {
		if time.Now().After(deadline) {
			t.Fatalf("replica on %s did not sync with %s", s.Addr(), primary.Addr())
		}
		time.Sleep(20 * time.Millisecond)
	}
	return s
}

// StartSentinel runs a redis-server as a Redis Sentinel that monitors
// master under name, with a quorum of one and short timeouts (the primary
// is judged down after 300ms), and waits until it has found master's
// replicas that are already connected, so that it can fail over to them.
func StartSentinel(t testing.TB, master *Server, name string) *Server {
	t.Helper()
	s := startWith(t, func(s *Server) {
		// The sentinel rewrites its config file; port, bind and dir come as
		// arguments.
		s.conf = filepath.Join(s.dir, "sentinel.conf")
		text := fmt.Sprintf("sentinel monitor %s 127.0.0.1 %d 1\n"+
			"sentinel down-after-milliseconds %[1]s 300\n"+
			"sentinel failover-timeout %[1]s 3000\n", name, master.port)
		if err := os.WriteFile(s.conf, []byte(text), 0o600); err != nil {
			t.Fatal(err)
		}
		s.extra = []string{"--sentinel"}
	})
	want, err := master.Do("INFO", "replication")
	if err != nil {
		t.Fatal(err)
	}
	replicas := fieldOf(want, "connected_slaves")
	deadline := time.Now().Add(10 * time.Second)
	for {
		// Do reads only the first line of an array reply (SENTINEL
		// REPLICAS): INFO says "master0:name=...,slaves=N,sentinels=1".
		info, err := s.Do("INFO", "sentinel")
		if err == nil && strings.Contains(fieldOf(info, "master0"), ",slaves="+replicas+",") {
			return s
		}
		if time.Now().After(deadline) {
			t.Fatalf("sentinel on %s did not find %s's %s replicas: %s %v", s.Addr(), master.Addr(), replicas, info, err)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// startWith starts a server after setup (if not nil) has set its conf and
// extra arguments, for the port it was given.
func startWith(t testing.TB, setup func(*Server)) *Server {
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
		if setup != nil {
			setup(s)
		}
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
	var args []string
	if s.conf != "" {
		args = append(args, s.conf) // a config file comes first
	}
	args = append(args, "--port", strconv.Itoa(s.port), "--bind", "127.0.0.1",
		"--save", "", "--appendonly", "no", "--dir", s.dir, "--loglevel", "warning")
	s.cmd = exec.Command(s.bin, append(args, s.extra...)...)
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
	return fieldOf(out, field)
}

// Calls returns how many times the server has run the given commands
// (lower case, e.g. "evalsha", "eval"), summed, from INFO commandstats:
// a count of round trips for tests.
func (s *Server) Calls(cmds ...string) int {
	s.t.Helper()
	out, err := s.Do("INFO", "commandstats")
	if err != nil {
		s.t.Fatal(err)
	}
	n := 0
	for _, c := range cmds {
		stats := fieldOf(out, "cmdstat_"+c) // calls=3,usec=...
		calls, _, _ := strings.Cut(strings.TrimPrefix(stats, "calls="), ",")
		k, _ := strconv.Atoi(calls)
		n += k
	}
	return n
}

// fieldOf returns one field of an INFO reply.
func fieldOf(info, field string) string {
	for line := range strings.SplitSeq(info, "\n") {
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
