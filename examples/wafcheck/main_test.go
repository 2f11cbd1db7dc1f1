package main

import (
	"bytes"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestWafcheck(t *testing.T) {
	dir := t.TempDir()
	strict := filepath.Join(dir, "strict.yaml")
	if err := os.WriteFile(strict, []byte("limits: {topic: {max_levels: 3}}\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	broken := filepath.Join(dir, "broken.yaml")
	if err := os.WriteFile(broken, []byte("mode: enforcing\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	fleet := filepath.Join("..", "hardened-broker", "fleet.yaml")
	seed, err := os.ReadFile(filepath.Join("..", "..", "mqttwaf", "testdata", "komdi-alarm.json"))
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name       string
		args       []string
		stdin      []byte
		code       int
		stdout     string // exact, when not empty
		stderrHas  string
		wantStdout []byte
	}{
		{name: "passes unchanged", args: []string{"-topic", "guest/wafcheck/telemetry"}, stdin: seed, code: 0, wantStdout: seed},
		{name: "binary passes", args: []string{"-topic", "guest/wafcheck/b"}, stdin: []byte{0, 0xff, 0xfe}, code: 0, wantStdout: []byte{0, 0xff, 0xfe}},
		{name: "default policy: outside the guest sandbox", args: []string{"-topic", "fleet/dev1/telemetry"}, stdin: seed, code: 1,
			stderrHas: "refused at publish by acl: publish_not_permitted (reason code 0x87"},
		{name: "topic too deep for the policy", args: []string{"-policy", strict, "-topic", "guest/wafcheck/c/d"}, stdin: seed, code: 1,
			stderrHas: "limits.topic: topic_too_many_levels (reason code 0x90"},
		{name: "fleet: a device's own telemetry, as the back end sees it", args: []string{"-policy", fleet, "-username", "dev1", "-client", "dev1",
			"-topic", "fleet/dev1/telemetry", "-subscriber", "backend"}, stdin: seed, code: 0, wantStdout: compact(t, seed)},
		{name: "fleet: as another device", args: []string{"-policy", fleet, "-username", "dev1", "-client", "dev1", "-topic", "fleet/dev2/telemetry"},
			stdin: seed, code: 1, stderrHas: "publish_not_permitted"},
		{name: "fleet: unknown identity", args: []string{"-policy", fleet, "-username", "eve", "-topic", "fleet/eve/telemetry"},
			stdin: seed, code: 1, stderrHas: "refused at connect by identity.authenticate: unknown_identity"},
		// The broker's reason for an anonymous client, not unknown_identity: wafcheck takes the broker's path.
		{name: "fleet: anonymous", args: []string{"-policy", fleet, "-topic", "fleet/x/telemetry"},
			stdin: seed, code: 1, stderrHas: "refused at connect by identity.authenticate: anonymous_not_allowed (reason code 0x87"},
		{name: "bad client id refused at connect", args: []string{"-topic", "a", "-client", "x/#"}, stdin: []byte("{}"), code: 1,
			stderrHas: "refused at connect by limits.client_id"},
		{name: "missing topic", args: nil, code: 2, stderrHas: "usage"},
		{name: "invalid policy", args: []string{"-policy", broken, "-topic", "a"}, code: 2, stderrHas: `mode: unknown value "enforcing"`},
		{name: "missing policy", args: []string{"-policy", filepath.Join(dir, "nope.yaml"), "-topic", "a"}, code: 2, stderrHas: "no such file"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var stdout, stderr bytes.Buffer
			code := run(tc.args, bytes.NewReader(tc.stdin), &stdout, &stderr)
			if code != tc.code {
				t.Fatalf("exit %d, want %d; stderr: %s", code, tc.code, stderr.String())
			}
			if tc.wantStdout != nil && !bytes.Equal(stdout.Bytes(), tc.wantStdout) {
				t.Fatalf("stdout %q, want %q", stdout.Bytes(), tc.wantStdout)
			}
			if tc.code != 0 && stdout.Len() != 0 {
				t.Fatalf("stdout not empty on failure: %q", stdout.String())
			}
			if !strings.Contains(stderr.String(), tc.stderrHas) {
				t.Fatalf("stderr %q lacks %q", stderr.String(), tc.stderrHas)
			}
		})
	}
}

func TestWafcheckJSON(t *testing.T) {
	for _, tc := range []struct {
		topic   string
		stdin   []byte
		code    int
		verdict string
		rule    string
		payload *string
		b64     *string
	}{
		{"$SYS/x", []byte("x"), 1, "reject", "limits.topic", nil, nil},
		{"guest/wafcheck/x", []byte(`{"a":1}`), 0, "allow", "", ptr(`{"a":1}`), nil},
		{"guest/wafcheck/x", []byte{0xff}, 0, "allow", "", nil, ptr("/w==")},
	} {
		var stdout, stderr bytes.Buffer
		if code := run([]string{"-json", "-topic", tc.topic}, bytes.NewReader(tc.stdin), &stdout, &stderr); code != tc.code {
			t.Fatalf("%s: exit %d, want %d (%s)", tc.topic, code, tc.code, stderr.String())
		}
		var res result
		if err := json.Unmarshal(stdout.Bytes(), &res); err != nil {
			t.Fatalf("%s: %v: %s", tc.topic, err, stdout.String())
		}
		if res.Verdict != tc.verdict || res.Rule != tc.rule || !eq(res.Payload, tc.payload) || !eq(res.PayloadBase64, tc.b64) {
			t.Fatalf("%s: %+v", tc.topic, res)
		}
		if tc.code == 1 && (res.Code != "0x90" || len(res.Events) != 1) { // $SYS/x: a reserved topic
			t.Fatalf("%s: code %s, %d events", tc.topic, res.Code, len(res.Events))
		}
	}
}

func ptr(s string) *string { return &s }

// compact is encoding/json's compact form of b (the fleet policy forwards
// JSON in canonical compact form; the seed has no escapes to decode).
func compact(t *testing.T, b []byte) []byte {
	t.Helper()
	var out bytes.Buffer
	if err := json.Compact(&out, b); err != nil {
		t.Fatal(err)
	}
	return out.Bytes()
}

func eq(a, b *string) bool { return a == nil && b == nil || a != nil && b != nil && *a == *b }

// TestWafcheckRedactionGolden pins what the fleet example's redaction makes
// of the seed message (hooks/views_test.go checks the broker delivers the
// same bytes), and what a raw-view subscriber sees.
func TestWafcheckRedactionGolden(t *testing.T) {
	fleet := filepath.Join("..", "hardened-broker", "fleet.yaml")
	seed, err := os.ReadFile(filepath.Join("..", "..", "mqttwaf", "testdata", "komdi-alarm.json"))
	if err != nil {
		t.Fatal(err)
	}
	want, err := os.ReadFile(filepath.Join("testdata", "komdi-alarm.fleet-redacted.json"))
	if err != nil {
		t.Fatal(err)
	}
	args := []string{"-policy", fleet, "-username", "dev1", "-client", "dev1", "-topic", "fleet/dev1/telemetry"}
	var stdout, stderr bytes.Buffer
	if code := run(args, bytes.NewReader(seed), &stdout, &stderr); code != 0 {
		t.Fatalf("exit %d: %s", code, stderr.String())
	}
	if !bytes.Equal(stdout.Bytes(), want) {
		t.Fatalf("redacted output changed:\ngot  %s\nwant %s", stdout.Bytes(), want)
	}
	for _, gone := range []string{"홍길수", "01012344321", "37.4057689", "126.9720319", "8378", "14구9999"} {
		if bytes.Contains(stdout.Bytes(), []byte(gone)) {
			t.Errorf("redacted output still contains %q", gone)
		}
	}
	stdout.Reset()
	if code := run(append(args, "-subscriber", "backend"), bytes.NewReader(seed), &stdout, &stderr); code != 0 {
		t.Fatalf("exit %d: %s", code, stderr.String())
	}
	if !bytes.Contains(stdout.Bytes(), []byte("홍길수")) || !bytes.Contains(stdout.Bytes(), []byte(`"LAT":37.4057689`)) {
		t.Fatalf("the raw view was redacted: %s", stdout.Bytes())
	}
}
