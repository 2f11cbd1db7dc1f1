package main

import (
	"bufio"
	"bytes"
	"context"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"runtime/debug"
	"strings"
	"syscall"
	"testing"
	"time"
)

// unitFile parses a systemd unit into section -> key -> values (a key may
// repeat), joining continuation lines.
func unitFile(t *testing.T, path string) map[string]map[string][]string {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]map[string][]string{}
	section, pending := "", ""
	for n, line := range strings.Split(string(b), "\n") {
		line = strings.TrimSpace(line)
		if pending != "" {
			line, pending = pending+" "+line, ""
		}
		if c, ok := strings.CutSuffix(line, `\`); ok {
			pending = strings.TrimSpace(c)
			continue
		}
		switch {
		case line == "" || line[0] == '#' || line[0] == ';':
		case line[0] == '[' && line[len(line)-1] == ']':
			section = line[1 : len(line)-1]
			out[section] = map[string][]string{}
		default:
			k, v, ok := strings.Cut(line, "=")
			if !ok || section == "" {
				t.Fatalf("%s:%d: not key=value in a section: %q", path, n+1, line)
			}
			out[section][strings.TrimSpace(k)] = append(out[section][strings.TrimSpace(k)], strings.TrimSpace(v))
		}
	}
	return out
}

// TestSystemdUnit checks hardened-broker.service: the sandboxing the README
// promises, a reload that signals the broker itself, an ExecStart whose
// flags this binary accepts, an events file in the service's logs
// directory; and, where systemd-analyze is installed, that systemd finds
// nothing to complain about.
func TestSystemdUnit(t *testing.T) {
	const path = "hardened-broker.service"
	u := unitFile(t, path)
	svc := u["Service"]
	for key, want := range map[string]string{
		"DynamicUser":             "yes",
		"ProtectSystem":           "strict",
		"NoNewPrivileges":         "yes",
		"CapabilityBoundingSet":   "CAP_NET_BIND_SERVICE",
		"AmbientCapabilities":     "CAP_NET_BIND_SERVICE",
		"StateDirectory":          "hardened-broker",
		"LogsDirectory":           "hardened-broker",
		"ExecReload":              "kill -HUP $MAINPID",
		"ProtectHome":             "yes",
		"PrivateDevices":          "yes",
		"RestrictAddressFamilies": "AF_INET AF_INET6 AF_UNIX",
	} {
		if got := svc[key]; len(got) != 1 || got[0] != want {
			t.Errorf("[Service] %s = %q, want exactly %q", key, got, want)
		}
	}
	if got := u["Install"]["WantedBy"]; len(got) != 1 || got[0] != "multi-user.target" {
		t.Errorf("[Install] WantedBy = %q", got)
	}
	start := strings.Fields(strings.Join(svc["ExecStart"], " "))
	if len(start) < 2 || start[0] != "/usr/local/bin/hardened-broker" {
		t.Fatalf("ExecStart %q", start)
	}
	// The flags parse (-version stops before anything is opened).
	var out bytes.Buffer
	if err := run(context.Background(), append(start[1:], "-version"), &out, io.Discard); err != nil || !strings.HasPrefix(out.String(), "hardened-broker ") {
		t.Errorf("ExecStart's flags: %v (%q)", err, out.String())
	}
	for i, a := range start {
		if a == "-events-file" && (i+1 == len(start) || !strings.HasPrefix(start[i+1], "/var/log/hardened-broker/")) {
			t.Errorf("-events-file is not in the LogsDirectory, the only writable place: %q", start[i+1:])
		}
	}

	sa, err := exec.LookPath("systemd-analyze")
	if err != nil {
		t.Log("systemd-analyze not installed: checked the keys only")
		return
	}
	// verify insists that ExecStart exists: point it at an executable that does.
	b, _ := os.ReadFile(path)
	exe, _ := os.Executable()
	copyPath := filepath.Join(t.TempDir(), path)
	if err := os.WriteFile(copyPath, bytes.ReplaceAll(b, []byte("/usr/local/bin/hardened-broker"), []byte(exe)), 0o644); err != nil {
		t.Fatal(err)
	}
	if msg, err := exec.Command(sa, "verify", copyPath).CombinedOutput(); err != nil || len(bytes.TrimSpace(msg)) != 0 {
		t.Fatalf("systemd-analyze verify: %v\n%s", err, msg)
	}
}

// TestVersionFlag: -version prints one line naming the binary, its module
// and version, and the Go toolchain, and does nothing else.
func TestVersionFlag(t *testing.T) {
	var out, errOut bytes.Buffer
	if err := run(context.Background(), []string{"-version"}, &out, &errOut); err != nil {
		t.Fatal(err)
	}
	line := out.String()
	if !strings.HasPrefix(line, "hardened-broker github.com/mqttwaf/mqttwaf ") || !strings.HasSuffix(line, " "+runtime.Version()+" "+runtime.GOOS+"/"+runtime.GOARCH+"\n") ||
		strings.Count(line, "\n") != 1 || errOut.Len() != 0 {
		t.Fatalf("stdout %q, stderr %q", line, errOut.String())
	}
}

// TestVersionOf: the revision, commit time and a dirty tree go into the
// line when the build has them.
func TestVersionOf(t *testing.T) {
	info := func(settings ...debug.BuildSetting) *debug.BuildInfo {
		return &debug.BuildInfo{Main: debug.Module{Path: "github.com/mqttwaf/mqttwaf", Version: "v1.2.3"}, Settings: settings}
	}
	tail := " " + runtime.Version() + " " + runtime.GOOS + "/" + runtime.GOARCH
	for _, tc := range []struct {
		info *debug.BuildInfo
		ok   bool
		want string
	}{
		{info(), true, "hardened-broker github.com/mqttwaf/mqttwaf v1.2.3" + tail},
		{info(debug.BuildSetting{Key: "vcs.revision", Value: "abc123"}, debug.BuildSetting{Key: "vcs.time", Value: "2026-12-01T10:00:00Z"},
			debug.BuildSetting{Key: "vcs.modified", Value: "false"}), true,
			"hardened-broker github.com/mqttwaf/mqttwaf v1.2.3 revision abc123 (2026-12-01T10:00:00Z)" + tail},
		{info(debug.BuildSetting{Key: "vcs.revision", Value: "abc123"}, debug.BuildSetting{Key: "vcs.modified", Value: "true"}), true,
			"hardened-broker github.com/mqttwaf/mqttwaf v1.2.3 revision abc123+dirty" + tail},
		{nil, false, "hardened-broker (no build information)" + tail},
	} {
		if got := versionOf(tc.info, tc.ok); got != tc.want {
			t.Errorf("got  %q\nwant %q", got, tc.want)
		}
	}
}

// TestBuiltBinary builds hardened-broker as go install would and runs it as
// a service manager does: -version names the VCS revision of this checkout,
// and SIGHUP sent to the process (systemctl reload: kill -HUP $MAINPID)
// reloads it, where the same signal sent to a go run wrapper would kill the
// wrapper and orphan the broker.
func TestBuiltBinary(t *testing.T) {
	if testing.Short() {
		t.Skip("builds the binary")
	}
	goTool, err := exec.LookPath("go")
	if err != nil {
		t.Skip("no go tool")
	}
	bin := filepath.Join(t.TempDir(), "hardened-broker")
	build := exec.Command(goTool, "build", "-buildvcs=auto", "-o", bin, ".")
	build.Env = append(os.Environ(), "GOFLAGS=")
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	out, err := exec.Command(bin, "-version").Output()
	if err != nil {
		t.Fatal(err)
	}
	// go build stamps the revision in a git checkout (not in a git
	// worktree, nor with -buildvcs=false): -version must print what it
	// stamped, and only that.
	stamped, err := exec.Command(goTool, "version", "-m", bin).Output()
	if err != nil {
		t.Fatal(err)
	}
	rev := ""
	for _, l := range strings.Split(string(stamped), "\n") {
		if _, v, ok := strings.Cut(l, "vcs.revision="); ok {
			rev = strings.TrimSpace(v)
		}
	}
	if rev != "" && !strings.Contains(string(out), " revision "+rev) || rev == "" && strings.Contains(string(out), "revision") {
		t.Errorf("-version %q; go version -m says revision %q", out, rev)
	}
	t.Logf("%s", out)

	cmd := exec.Command(bin, "-addr", "127.0.0.1:0")
	stderr, err := cmd.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() { _ = cmd.Process.Kill(); _ = cmd.Wait() }()
	lines := make(chan string, 100)
	go func() {
		sc := bufio.NewScanner(stderr)
		for sc.Scan() {
			lines <- sc.Text()
		}
		close(lines)
	}()
	await := func(what string) {
		t.Helper()
		timeout := time.After(20 * time.Second)
		for {
			select {
			case l, ok := <-lines:
				if !ok {
					t.Fatalf("the broker exited before %q", what)
				}
				if strings.Contains(l, what) {
					return
				}
			case <-timeout:
				t.Fatalf("no %q from the broker", what)
			}
		}
	}
	await(`"msg":"hardened-broker ready"`)
	if err := cmd.Process.Signal(syscall.SIGHUP); err != nil {
		t.Fatal(err)
	}
	await(`"msg":"policy reloaded"`)
	if err := cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	await(`"msg":"hardened-broker stopping"`)
	if err := cmd.Wait(); err != nil {
		t.Fatalf("exit after SIGTERM: %v", err)
	}
}
