package mqtttest

import (
	"bytes"
	"fmt"
	"net"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"
)

// NeedMosquitto returns the path of a mosquitto program (the broker, or
// mosquitto_pub, mosquitto_sub, mosquitto_passwd). A missing one skips the
// test, or fails it when MQTTWAF_REQUIRE_MOSQUITTO is set (CI, which
// installs them).
func NeedMosquitto(t testing.TB, tool string) string {
	t.Helper()
	p, err := exec.LookPath(tool)
	if err != nil && tool == "mosquitto" {
		p, err = exec.LookPath("/usr/sbin/mosquitto") // Debian installs the broker outside a user's PATH
	}
	if err != nil {
		if os.Getenv("MQTTWAF_REQUIRE_MOSQUITTO") != "" {
			t.Fatalf("%s not found (apt-get install mosquitto mosquitto-clients)", tool)
		}
		t.Skipf("%s not installed (apt-get install mosquitto mosquitto-clients)", tool)
	}
	return p
}

// FreePort returns a loopback port nothing listens on right now.
func FreePort(t testing.TB) int {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

// StartMosquitto runs a real mosquitto on a free loopback port with the
// given configuration lines ("allow_anonymous true" when none) and returns
// its address; it is killed at cleanup.
func StartMosquitto(t testing.TB, conf ...string) string {
	t.Helper()
	bin := NeedMosquitto(t, "mosquitto")
	if len(conf) == 0 {
		conf = []string{"allow_anonymous true"}
	}
	for try := 0; ; try++ {
		port := FreePort(t)
		path := filepath.Join(t.TempDir(), "mosquitto.conf")
		// user: run as root, mosquitto switches to the mosquitto user,
		// which cannot read the test's private temporary files.
		text := fmt.Sprintf("listener %d 127.0.0.1\npersistence false\nlog_dest stderr\nlog_type error\nlog_type warning\nuser %s\n%s\n",
			port, currentUser(), strings.Join(conf, "\n"))
		if err := os.WriteFile(path, []byte(text), 0o600); err != nil {
			t.Fatal(err)
		}
		var stderr bytes.Buffer
		cmd := exec.Command(bin, "-c", path)
		cmd.Stderr = &stderr
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		done := make(chan struct{})
		go func() { _ = cmd.Wait(); close(done) }()
		addr := net.JoinHostPort("127.0.0.1", strconv.Itoa(port))
		if listening(addr, done) {
			t.Cleanup(func() { _ = cmd.Process.Kill(); <-done })
			return addr
		}
		select {
		case <-done: // exited: the port was taken meanwhile, or the configuration is wrong
			if try < 3 {
				continue
			}
			t.Fatalf("mosquitto exited: %s", stderr.String())
		default:
			_ = cmd.Process.Kill()
			<-done
			t.Fatalf("mosquitto did not listen on %s: %s", addr, stderr.String())
		}
	}
}

// listening waits up to 10 s for addr to accept a connection, or for done.
func listening(addr string, done <-chan struct{}) bool {
	for deadline := time.Now().Add(10 * time.Second); time.Now().Before(deadline); {
		if c, err := net.DialTimeout("tcp", addr, time.Second); err == nil {
			_ = c.Close()
			return true
		}
		select {
		case <-done:
			return false
		case <-time.After(20 * time.Millisecond):
		}
	}
	return false
}

// RunTool runs a mosquitto client tool (mosquitto_pub, mosquitto_sub)
// against addr and returns its combined output.
func RunTool(t testing.TB, addr, tool string, args ...string) (string, error) {
	t.Helper()
	h, p, err := net.SplitHostPort(addr)
	if err != nil {
		t.Fatal(err)
	}
	out, err := exec.Command(NeedMosquitto(t, tool), append([]string{"-h", h, "-p", p}, args...)...).CombinedOutput()
	return string(out), err
}

// currentUser is the name of the user running the tests.
func currentUser() string {
	if u, err := user.Current(); err == nil {
		return u.Username
	}
	return "root"
}
