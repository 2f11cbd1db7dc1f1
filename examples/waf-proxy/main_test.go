package main

import (
	"bytes"
	"context"
	"net"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/mqttwaf/mqttwaf/mqttwaf/mqtttest"
)

// The shared test support (mqttwaf/mqtttest).
type syncBuffer = mqtttest.SyncBuffer

var tool = mqtttest.NeedMosquitto

// mosquitto starts the broker on a free loopback port, anonymous clients
// allowed (the proxy is what checks them).
func mosquitto(t *testing.T) string { return mqtttest.StartMosquitto(t) }

// startProxy runs the command with args and returns its address.
func startProxy(t *testing.T, args ...string) (string, *syncBuffer) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	stderr := &syncBuffer{}
	ready := make(chan string, 1)
	done := make(chan error, 1)
	go func() {
		done <- run(ctx, append([]string{"-listen", "127.0.0.1:0"}, args...), &bytes.Buffer{}, stderr, func(a string) { ready <- a })
	}()
	t.Cleanup(func() { cancel(); <-done })
	select {
	case a := <-ready:
		return a, stderr
	case err := <-done:
		t.Fatalf("waf-proxy: %v: %s", err, stderr)
	case <-time.After(10 * time.Second):
		t.Fatal("waf-proxy did not start")
	}
	return "", nil
}

// The README's fleet lines through waf-proxy in front of mosquitto.
func TestFleetThroughWafProxy(t *testing.T) {
	up := mosquitto(t)
	addr, stderr := startProxy(t, "-upstream", up, "-policy", filepath.Join("..", "hardened-broker", "fleet.yaml"))
	host, port, _ := net.SplitHostPort(addr)
	cmd := func(name string, args ...string) *exec.Cmd {
		return exec.Command(tool(t, name), append([]string{"-h", host, "-p", port}, args...)...)
	}
	if out, err := cmd("mosquitto_sub", "-t", "#", "-C", "1", "-W", "5").CombinedOutput(); err == nil || !strings.Contains(string(out), "not authorised") {
		t.Fatalf("anonymous '#' snoop: %v %s", err, out)
	}
	if out, _ := cmd("mosquitto_pub", "-V", "mqttv5", "-q", "1", "-u", "dev1", "-P", "dev1-demo-pass", "-i", "dev1",
		"-t", "fleet/dev2/telemetry", "-m", `{"spoofed":true}`).CombinedOutput(); !strings.Contains(string(out), "Not authorized") {
		t.Fatalf("dev1 publishing as dev2: %s", out)
	}
	var backendOut bytes.Buffer
	backend := cmd("mosquitto_sub", "-V", "mqttv5", "-u", "backend", "-P", "backend-demo-pass", "-i", "backend",
		"-t", "fleet/+/telemetry", "-F", "%t %P %p", "-C", "1", "-W", "60")
	backend.Stdout = &backendOut
	if err := backend.Start(); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- backend.Wait() }()
	// Publish until the back end has subscribed and received one.
	for published := false; ; {
		select {
		case err := <-done:
			if err != nil || !published {
				t.Fatalf("backend: %v (%s) %s", err, backendOut.String(), stderr)
			}
		case <-time.After(300 * time.Millisecond):
			// MQTT 3.1.1: the policy stamps provenance, so the proxy
			// speaks MQTT 5 upstream and the stamp reaches the broker.
			if out, err := cmd("mosquitto_pub", "-V", "mqttv311", "-q", "1", "-u", "dev1", "-P", "dev1-demo-pass", "-i", "dev1",
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
	if !strings.Contains(stderr.String(), `"rule":"acl"`) {
		t.Fatalf("no acl event on stderr: %s", stderr)
	}
}

func TestBadFlags(t *testing.T) {
	for _, tc := range []struct {
		args []string
		want string
	}{
		{nil, "-upstream"},
		{[]string{"-upstream", "nohost"}, "host:port"},
		{[]string{"-upstream", "127.0.0.1:1", "-upstream-identity", "service"}, "-upstream-username"},
		{[]string{"-upstream", "127.0.0.1:1", "-upstream-identity", "both"}, "forward"},
		{[]string{"-upstream", "127.0.0.1:1", "-tls-cert", "x.pem"}, "-tls-key"},
		{[]string{"-upstream", "127.0.0.1:1", "-upstream-protocol", "3"}, "-upstream-protocol"},
		{[]string{"-upstream", "127.0.0.1:1", "-policy", "/nonexistent.yaml"}, "nonexistent"},
	} {
		err := run(context.Background(), append([]string{"-listen", "127.0.0.1:0"}, tc.args...), &bytes.Buffer{}, &bytes.Buffer{}, nil)
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%v: %v, want an error naming %q", tc.args, err, tc.want)
		}
	}
}
