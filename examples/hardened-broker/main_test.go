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
	"syscall"
	"testing"
	"time"

	"github.com/mqttwaf/mqttwaf/mqttwaf"
	"github.com/mqttwaf/mqttwaf/mqttwaf/mqtttest"
)

// syncBuffer is a bytes.Buffer safe for the broker's goroutines to write.
type syncBuffer = mqtttest.SyncBuffer

func startBroker(t *testing.T, args ...string) (string, *syncBuffer) {
	t.Helper()
	addr, stderr, stop := launchBroker(t, args...)
	t.Cleanup(stop)
	return addr, stderr
}

// launchBroker runs the example in-process and returns its TCP address, its
// stderr, and a function that stops it and checks it shut down cleanly.
func launchBroker(t *testing.T, args ...string) (string, *syncBuffer, func()) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	stderr := &syncBuffer{}
	done := make(chan error, 1)
	go func() { done <- run(ctx, append([]string{"-addr", "127.0.0.1:0"}, args...), io.Discard, stderr) }()
	var once sync.Once
	stop := func() {
		once.Do(func() {
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
	}
	deadline := time.Now().Add(30 * time.Second) // generous: the race detector on a shared machine
	for time.Now().Before(deadline) {
		sc := bufio.NewScanner(strings.NewReader(stderr.String()))
		for sc.Scan() {
			var line struct {
				Msg       string            `json:"msg"`
				Listeners map[string]string `json:"listeners"`
			}
			if json.Unmarshal(sc.Bytes(), &line) == nil && line.Msg == "hardened-broker ready" {
				return line.Listeners["tcp"], stderr, stop
			}
		}
		select {
		case err := <-done:
			cancel()
			t.Fatalf("broker exited: %v\n%s", err, stderr.String())
		case <-time.After(20 * time.Millisecond):
		}
	}
	cancel()
	t.Fatalf("broker not ready:\n%s", stderr.String())
	return "", nil, nil
}

// mosquitto finds a mosquitto client tool.
var mosquitto = mqtttest.NeedMosquitto

func TestHardenedBrokerWithMosquittoClients(t *testing.T) {
	addr, stderr := startBroker(t)
	host, port, _ := net.SplitHostPort(addr)
	payload, err := os.ReadFile(filepath.Join("..", "..", "mqttwaf", "testdata", "komdi-alarm.json"))
	if err != nil {
		t.Fatal(err)
	}
	// The default policy gives anonymous local clients a sandbox per client
	// ID. Retained, so the subscriber started afterwards receives it for sure.
	pub := exec.Command(mosquitto(t, "mosquitto_pub"), "-h", host, "-p", port, "-i", "dev1", "-t", "guest/dev1/telemetry", "-r", "-q", "1", "-s")
	pub.Stdin = bytes.NewReader(payload)
	if b, err := pub.CombinedOutput(); err != nil {
		t.Fatalf("mosquitto_pub: %v %s", err, b)
	}
	out, err := exec.Command(mosquitto(t, "mosquitto_sub"), "-h", host, "-p", port, "-i", "dev1", "-t", "guest/dev1/#",
		"-C", "1", "-W", "10", "-N").Output()
	if err != nil {
		t.Fatalf("mosquitto_sub: %v", err)
	}
	if !bytes.Equal(out, payload) {
		t.Fatalf("mosquitto_sub got %q", out)
	}

	// A refused publish shows up on stderr as a JSON event.
	if b, err := exec.Command(mosquitto(t, "mosquitto_pub"), "-h", host, "-p", port, "-V", "mqttv5", "-q", "1",
		"-i", "dev1", "-t", "guest/dev1/c/d/e/f/g/h/i", "-m", "x").CombinedOutput(); err == nil && !strings.Contains(string(b), "invalid") {
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

// TestFleetExample runs the README's worked example: the fleet policy and its
// demo credentials, driven with the exact mosquitto lines the README shows.
func TestFleetExample(t *testing.T) {
	addr, _ := startBroker(t, "-policy", "fleet.yaml")
	host, port, _ := net.SplitHostPort(addr)
	hp := []string{"-h", host, "-p", port}
	cmd := func(tool string, args ...string) *exec.Cmd {
		return exec.Command(mosquitto(t, tool), append(append([]string(nil), hp...), args...)...)
	}
	// The back end reads all telemetry (MQTT 5, so it sees the stamped identity).
	var backendOut bytes.Buffer
	backend := cmd("mosquitto_sub", "-V", "mqttv5", "-u", "backend", "-P", "backend-demo-pass", "-i", "backend",
		"-t", "fleet/+/telemetry", "-F", "%t %P %p", "-C", "1", "-W", "120")
	backend.Stdout = &backendOut
	if err := backend.Start(); err != nil {
		t.Fatal(err)
	}
	// The snoop is refused: anonymous clients may not connect at all.
	if out, err := cmd("mosquitto_sub", "-t", "#", "-C", "1", "-W", "3").CombinedOutput(); err == nil {
		t.Fatalf("anonymous '#' snoop connected: %s", out)
	}
	// dev1 may not publish as dev2 ("not authorized"), but may publish its own telemetry.
	if out, _ := cmd("mosquitto_pub", "-V", "mqttv5", "-q", "1", "-u", "dev1", "-P", "dev1-demo-pass", "-i", "dev1",
		"-t", "fleet/dev2/telemetry", "-m", `{"spoofed":true}`).CombinedOutput(); !strings.Contains(string(out), "Not authorized") {
		t.Fatalf("dev1 publishing as dev2: %s", out)
	}
	// Publish until the back end (whose CONNECT runs a bcrypt check, slow
	// under the race detector) has subscribed and received one.
	done := make(chan error, 1)
	go func() { done <- backend.Wait() }()
	for published := false; ; {
		select {
		case err := <-done:
			if err != nil || !published {
				t.Fatalf("backend: %v (%s)", err, backendOut.String())
			}
		case <-time.After(500 * time.Millisecond):
			if out, err := cmd("mosquitto_pub", "-q", "1", "-u", "dev1", "-P", "dev1-demo-pass", "-i", "dev1",
				"-t", "fleet/dev1/telemetry", "-f", filepath.Join("..", "..", "mqttwaf", "testdata", "komdi-alarm.json")).CombinedOutput(); err != nil {
				t.Fatalf("dev1 telemetry: %v %s", err, out)
			}
			published = true
			continue
		}
		break
	}
	if got := backendOut.String(); !strings.HasPrefix(got, "fleet/dev1/telemetry x-identity:dev1 ") {
		t.Fatalf("backend got %q", got)
	}
}

func TestHashPassword(t *testing.T) {
	var out bytes.Buffer
	if err := runWithInput(context.Background(), []string{"-hash-password"}, strings.NewReader("correct horse\n"), &out, io.Discard); err != nil {
		t.Fatal(err)
	}
	line := strings.TrimSpace(out.String())
	if !strings.HasPrefix(line, "$2a$") {
		t.Fatalf("hash %q", line)
	}
	// The hash works in a credentials file.
	w := wafWithCredential(t, t.TempDir(), line)
	for pass, ok := range map[string]bool{"correct horse": true, "wrong horse": false} {
		if got := loginOK(w, pass); got != ok {
			t.Fatalf("password %q: admitted %v", pass, got)
		}
	}
	if err := runWithInput(context.Background(), []string{"-hash-password"}, strings.NewReader("short\n"), io.Discard, io.Discard); err == nil {
		t.Fatal("a 5-character password was hashed")
	}
}

// wafWithCredential writes a credentials file with dev9's hash, and a
// policy using it, into dir and returns a WAF running that policy.
func wafWithCredential(t *testing.T, dir, hash string) *mqttwaf.WAF {
	t.Helper()
	if err := os.WriteFile(filepath.Join(dir, "c.creds"), []byte("dev9:r:"+hash+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	pol := "identity: {credentials_file: c.creds, anonymous: {allow: never}}\nroles: {r: {publish: [x]}}\n"
	if err := os.WriteFile(filepath.Join(dir, "p.yaml"), []byte(pol), 0o600); err != nil {
		t.Fatal(err)
	}
	p, err := mqttwaf.ReadPolicyFile(filepath.Join(dir, "p.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	w, err := mqttwaf.New(p, mqttwaf.Options{Sink: mqttwaf.SinkFunc(func(mqttwaf.Event) {})})
	if err != nil {
		t.Fatal(err)
	}
	return w
}

// loginOK reports whether dev9 gets in with pass.
func loginOK(w *mqttwaf.WAF, pass string) bool {
	c := &mqttwaf.Client{ID: "dev9", Username: "dev9", RemoteIP: mqttwaf.ParseRemoteIP("192.0.2.7:1")}
	return !w.Connect(&mqttwaf.Connect{Client: c, Keepalive: 30, UsernameSet: true, Password: []byte(pass)}).Blocked()
}

// TestNewDeviceSecret: -new-device-secret prints a secret and its hash, one
// per line, reading nothing; the pair works in a credentials file, through
// the broker itself with mosquitto_pub, and every run makes a new one.
func TestNewDeviceSecret(t *testing.T) {
	pair := func() (string, string) {
		t.Helper()
		var out, errOut bytes.Buffer
		// Whatever stdin holds is not read: nobody chooses a device secret.
		if err := runWithInput(context.Background(), []string{"-new-device-secret"}, strings.NewReader("my-chosen-password\n"), &out, &errOut); err != nil {
			t.Fatal(err)
		}
		lines := strings.Split(strings.TrimSuffix(out.String(), "\n"), "\n")
		if len(lines) != 2 || !strings.Contains(errOut.String(), "line 1") {
			t.Fatalf("stdout %q, stderr %q: want two lines and an explanation", out.String(), errOut.String())
		}
		return lines[0], lines[1]
	}
	secret, hash := pair()
	if len(secret) != 43 || !strings.HasPrefix(hash, "$mqttwaf-secret$v=1$") || strings.Contains(secret+hash, "my-chosen-password") {
		t.Fatalf("secret %q, hash %q", secret, hash)
	}
	if s2, h2 := pair(); s2 == secret || h2 == hash {
		t.Fatalf("two runs printed the same secret or hash: %q %q", s2, h2)
	}
	dir := t.TempDir()
	w := wafWithCredential(t, dir, hash)
	for pass, ok := range map[string]bool{secret: true, strings.ToUpper(secret): false, "my-chosen-password": false} {
		if got := loginOK(w, pass); got != ok {
			t.Fatalf("password %q: admitted %v", pass, got)
		}
	}

	// The same files, served: mosquitto_pub gets in with the secret (QoS 1,
	// so it waits for the PUBACK) and is refused without it.
	addr, _ := startBroker(t, "-policy", filepath.Join(dir, "p.yaml"))
	host, port, _ := net.SplitHostPort(addr)
	pub := func(pass string) ([]byte, error) {
		return exec.Command(mosquitto(t, "mosquitto_pub"), "-h", host, "-p", port, "-V", "mqttv5", "-q", "1",
			"-i", "dev9", "-u", "dev9", "-P", pass, "-t", "x", "-m", "hello").CombinedOutput()
	}
	if out, err := pub(secret); err != nil {
		t.Fatalf("mosquitto_pub with the device secret: %v %s", err, out)
	}
	wrong := []byte(secret)
	if wrong[20] = 'A'; secret[20] == 'A' {
		wrong[20] = 'B'
	}
	if out, err := pub(string(wrong)); err == nil || !strings.Contains(strings.ToLower(string(out)), "bad user name or password") {
		t.Fatalf("mosquitto_pub with a wrong secret: %v %s", err, out)
	}
}

// TestReloadOnSIGHUP: editing the policy file and sending SIGHUP applies the
// new policy without a restart; a broken file leaves the old one in force.
func TestReloadOnSIGHUP(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "p.yaml")
	write := func(s string) {
		t.Helper()
		if err := os.WriteFile(path, []byte(s), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	write("mode: enforce\n")
	_, stderr := startBroker(t, "-policy", path)
	waitFor := func(what string) {
		t.Helper()
		deadline := time.Now().Add(10 * time.Second)
		for !strings.Contains(stderr.String(), what) {
			if time.Now().After(deadline) {
				t.Fatalf("no %q on stderr:\n%s", what, stderr.String())
			}
			time.Sleep(10 * time.Millisecond)
		}
	}
	write("mode: detection_only\n")
	if err := syscall.Kill(os.Getpid(), syscall.SIGHUP); err != nil {
		t.Fatal(err)
	}
	waitFor(`"msg":"policy reloaded","policy":"` + path + `","mode":"detection_only"`)
	write("mode: sometimes\n")
	if err := syscall.Kill(os.Getpid(), syscall.SIGHUP); err != nil {
		t.Fatal(err)
	}
	waitFor(`"msg":"reload failed`)
}
