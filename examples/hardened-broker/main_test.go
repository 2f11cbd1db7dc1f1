package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/mqttwaf/mqttwaf/mqttwaf"
)

// syncBuffer is a bytes.Buffer safe for the broker's goroutines to write.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// startBroker runs the example in-process and returns its TCP address and
// its stderr.
func startBroker(t *testing.T, args ...string) (string, *syncBuffer) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	stderr := &syncBuffer{}
	done := make(chan error, 1)
	go func() { done <- run(ctx, append([]string{"-addr", "127.0.0.1:0"}, args...), io.Discard, stderr) }()
	t.Cleanup(func() {
		cancel()
		select {
		case err := <-done:
			if err != nil {
				t.Errorf("run returned %v on shutdown", err)
			}
		case <-time.After(10 * time.Second):
			t.Error("broker did not shut down")
		}
	})
	deadline := time.Now().Add(10 * time.Second)
	for time.Now().Before(deadline) {
		sc := bufio.NewScanner(strings.NewReader(stderr.String()))
		for sc.Scan() {
			var line struct {
				Msg       string            `json:"msg"`
				Listeners map[string]string `json:"listeners"`
			}
			if json.Unmarshal(sc.Bytes(), &line) == nil && line.Msg == "hardened-broker ready" {
				return line.Listeners["tcp"], stderr
			}
		}
		select {
		case err := <-done:
			t.Fatalf("broker exited: %v\n%s", err, stderr.String())
		case <-time.After(20 * time.Millisecond):
		}
	}
	t.Fatalf("broker not ready:\n%s", stderr.String())
	return "", nil
}

func mosquitto(t *testing.T, tool string) string {
	t.Helper()
	p, err := exec.LookPath(tool)
	if err != nil {
		if os.Getenv("MQTTWAF_REQUIRE_MOSQUITTO") != "" {
			t.Fatalf("%s not found", tool)
		}
		t.Skipf("%s not installed", tool)
	}
	return p
}

func TestHardenedBrokerWithMosquittoClients(t *testing.T) {
	addr, stderr := startBroker(t)
	host, port, _ := net.SplitHostPort(addr)
	payload, err := os.ReadFile(filepath.Join("..", "..", "mqttwaf", "testdata", "komdi-alarm.json"))
	if err != nil {
		t.Fatal(err)
	}
	// Retained, so the subscriber started afterwards receives it for sure.
	pub := exec.Command(mosquitto(t, "mosquitto_pub"), "-h", host, "-p", port, "-t", "fleet/dev1/telemetry", "-r", "-q", "1", "-s")
	pub.Stdin = bytes.NewReader(payload)
	if b, err := pub.CombinedOutput(); err != nil {
		t.Fatalf("mosquitto_pub: %v %s", err, b)
	}
	out, err := exec.Command(mosquitto(t, "mosquitto_sub"), "-h", host, "-p", port, "-t", "fleet/+/telemetry",
		"-C", "1", "-W", "10", "-N").Output()
	if err != nil {
		t.Fatalf("mosquitto_sub: %v", err)
	}
	if !bytes.Equal(out, payload) {
		t.Fatalf("mosquitto_sub got %q", out)
	}

	// A refused publish shows up on stderr as a JSON event.
	if b, err := exec.Command(mosquitto(t, "mosquitto_pub"), "-h", host, "-p", port, "-V", "mqttv5", "-q", "1",
		"-t", "a/b/c/d/e/f/g/h/i", "-m", "x").CombinedOutput(); err == nil && !strings.Contains(string(b), "invalid") {
		t.Fatalf("publish to a 9-level topic accepted: %s", b)
	}
	deadline := time.Now().Add(5 * time.Second)
	for !strings.Contains(stderr.String(), `"reason":"topic_too_many_levels"`) {
		if time.Now().After(deadline) {
			t.Fatalf("no event on stderr:\n%s", stderr.String())
		}
		time.Sleep(20 * time.Millisecond)
	}
	for _, line := range strings.Split(strings.TrimSpace(stderr.String()), "\n") {
		if !json.Valid([]byte(line)) {
			t.Fatalf("stderr line is not JSON: %q", line)
		}
	}
}

func TestPrintDefaultPolicy(t *testing.T) {
	var out bytes.Buffer
	if err := run(context.Background(), []string{"-print-default-policy"}, &out, io.Discard); err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(out.Bytes(), mqttwaf.DefaultPolicyYAML) {
		t.Fatal("printed policy differs from the embedded default")
	}
	p, err := mqttwaf.ParsePolicy(out.Bytes(), "printed")
	if err != nil {
		t.Fatal(err)
	}
	if got, want := p.WithDefaults(), mqttwaf.Defaults(); !equalJSON(t, got, want) {
		t.Fatal("the printed default policy does not state the defaults")
	}
}

func equalJSON(t *testing.T, a, b any) bool {
	t.Helper()
	ja, _ := json.Marshal(a)
	jb, _ := json.Marshal(b)
	return bytes.Equal(ja, jb)
}

func TestBadFlagsAndPolicies(t *testing.T) {
	dir := t.TempDir()
	bad := filepath.Join(dir, "bad.yaml")
	if err := os.WriteFile(bad, []byte("limits:\n  topic:\n    max_lenght: 10\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"-policy", bad}, `bad.yaml:3: unknown key "max_lenght"`},
		{[]string{"-policy", filepath.Join(dir, "missing.yaml")}, "no such file"},
		{[]string{"-addr", "", "-ws-addr", ""}, "no listener"},
		{[]string{"-tls-client-ca", "ca.pem"}, "needs -tls-cert"},
	} {
		err := run(context.Background(), tc.args, io.Discard, io.Discard)
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%v: error %v, want %q", tc.args, err, tc.want)
		}
	}
}
