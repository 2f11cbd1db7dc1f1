package main

import (
	"bytes"
	"encoding/json"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

// summary renders findings as "severity check path" lines, sorted, so a
// table can list them.
func summary(fs []finding) []string {
	out := make([]string, 0, len(fs))
	for _, f := range fs {
		out = append(out, f.Severity+" "+f.Check+" "+f.Path)
	}
	slices.Sort(out)
	return out
}

// lintRun runs "wafcheck lint ARGS" and returns its exit status and output.
func lintRun(t *testing.T, args ...string) (int, string, string) {
	t.Helper()
	var stdout, stderr bytes.Buffer
	code := run(append([]string{"lint"}, args...), nil, &stdout, &stderr)
	return code, stdout.String(), stderr.String()
}

// lintJSON runs lint with -format json and returns the exit status and the
// findings.
func lintJSON(t *testing.T, args ...string) (int, []finding) {
	t.Helper()
	code, out, errOut := lintRun(t, append([]string{"-format", "json"}, args...)...)
	if code == 2 && out == "" {
		t.Fatalf("lint failed: %s", errOut)
	}
	var rep lintReport
	if err := json.Unmarshal([]byte(out), &rep); err != nil {
		t.Fatalf("json output: %v\n%s", err, out)
	}
	return code, rep.Findings
}

const anonNever = "identity: {anonymous: {allow: never}}\n"

func TestLintPolicies(t *testing.T) {
	sample := `{"DATA":{"USER_NAME":"x","LAT":1.5,"LON":2.5,"TAGS":[{"ID":"a"}]}}`
	schemaDoc := `{"type":"object","properties":{"DATA":{"$ref":"#/$defs/data"}},
	  "$defs":{"data":{"type":"object","properties":{"USER_NAME":{"type":"string"},
	    "TAGS":{"type":"array","items":{"properties":{"ID":{"type":"string"}}}}}}}}`
	for _, tc := range []struct {
		name    string
		policy  string
		samples []string // file bodies, passed as -sample
		want    []string
		code    int
	}{
		{name: "empty policy is the default", policy: "", code: 0,
			want: []string{"info anonymous_publish identity.anonymous.role"}},
		{name: "tight policy", code: 0, policy: anonNever + `
roles:
  device: {publish: ["t/{username}/data"], subscribe: ["t/{username}/cmd"]}
payloads:
  - {topics: ["t/+/data"], format: json}
`},
		{name: "wide grants", code: 2, policy: anonNever + `
roles:
  a: {publish: ["#"], subscribe: ["+/#"], retain: ["+/+/#"], broad_wildcards: true}
  b: {subscribe: ["#"], view: raw}
  c: {subscribe: ["fleet/#", "+/x/#"], sys: true}
`, want: []string{
			"error wide_grant roles.a.publish[0]",
			"error wide_grant roles.a.retain[0]",
			"error wide_grant roles.b.subscribe[0]",
			"info sys roles.c.sys",
			"warning broad_wildcards roles.a.broad_wildcards",
			"warning wide_grant roles.a.subscribe[0]",
		}},
		{name: "anonymous anywhere", code: 2, policy: `
identity: {anonymous: {allow: anywhere, role: guest}}
roles:
  guest: {publish: ["g/{clientid}"], sys: true}
`, want: []string{
			"error anonymous identity.anonymous.allow",
			"warning anonymous_publish identity.anonymous.role",
			"warning sys roles.guest.sys",
		}},
		{name: "anonymous networks", code: 2, policy: `
identity:
  anonymous: {allow: networks, networks: [127.0.0.0/8, "::1/128", 10.1.0.0/16, 0.0.0.0/0], role: reader}
roles:
  reader: {subscribe: ["r/#"]}
`, want: []string{
			"error anonymous identity.anonymous.networks[3]",
			"warning anonymous identity.anonymous.networks[2]",
		}},
		{name: "anonymous loopback networks only", code: 0, policy: `
identity: {anonymous: {allow: networks, networks: [127.0.0.1/32], role: reader}}
roles:
  reader: {subscribe: ["r/#"]}
`},
		{name: "detection only", code: 1, policy: anonNever + "mode: detection_only\nroles: {d: {subscribe: [x/y]}}\n",
			want: []string{"warning detection_only mode"}},
		{name: "uncovered topics", code: 1, policy: anonNever + `
roles:
  d: {publish: ["a/{username}/data", "a/{username}/log", "b/#", "c/+/x", "c/{clientid}/x/y"]}
  e: {publish: ["a/+/data", "z/{username}", "z/dev1"]}
payloads:
  - {topics: ["a/+/data"]}
  - {topics: ["b/#", "c/+/x", "z/dev1"]}
`, want: []string{
			"warning uncovered_topic roles.d.publish[1]",
			"warning uncovered_topic roles.d.publish[4]",
			"warning uncovered_topic roles.e.publish[1]",
		}},
		{name: "no payloads at all: coverage not checked", code: 0, policy: anonNever + "roles: {d: {publish: [a/b]}}\n"},
		{name: "redaction typo against a sample", code: 1, samples: []string{sample}, policy: anonNever + `
roles: {d: {publish: ["t/+"]}}
payloads:
  - topics: ["t/+"]
    format: json
    redact:
      rules:
        - {path: DATA.USR_NAME, op: remove}
        - {path: data.user_name, op: remove}
        - {path: DATA.TAGS.#.ID, op: remove}
        - {path: DATA.TAGS.ID, op: remove}
        - {path: "DATA.*_NAME", op: remove}
        - {paths: [DATA.LAT, DATA.LONG], op: coarsen, cell_metres: 1000}
`, want: []string{
			"warning redact_path payloads[0].redact.rules[0].path",
			"warning redact_path payloads[0].redact.rules[5].paths[1]",
		}},
		{name: "samples by topic", code: 1, samples: []string{"t/dev1=" + sample, "u/dev1=" + `{"ADDR":"x"}`}, policy: anonNever + `
roles: {d: {publish: ["t/+", "u/+"]}}
payloads:
  - {topics: ["t/+"], format: json, redact: {rules: [{path: DATA.USER_NAME, op: remove}, {path: ADDR, op: remove}]}}
  - {topics: ["u/+"], format: json, redact: {rules: [{path: ADDR, op: remove}, {path: DATA.USER_NAME, op: remove}]}}
  - {topics: ["v/+"], format: json, redact: {rules: [{path: ADDR, op: remove}]}}
`, want: []string{
			"info redact_unchecked payloads[2].redact.rules",
			"warning redact_path payloads[0].redact.rules[1].path",
			"warning redact_path payloads[1].redact.rules[1].path",
		}},
		{name: "exact paths keep case", code: 1, samples: []string{sample}, policy: anonNever + `
roles: {d: {publish: ["t/+"]}}
payloads:
  - topics: ["t/+"]
    format: json
    redact: {exact_paths: true, rules: [{path: data.user_name, op: remove}, {path: DATA.USER_NAME, op: remove}]}
`, want: []string{"warning redact_path payloads[0].redact.rules[0].path"}},
		{name: "redaction typo against fields rules", code: 1, policy: anonNever + `
roles: {d: {publish: ["t/+"]}}
payloads:
  - topics: ["t/+"]
    format: json
    fields: [{path: DATA.USER_NAME, type: string}, {path: "DATA.TAGS.#.ID"}]
    redact:
      rules: [{path: DATA.USR_NAME, op: remove}, {path: data.user_name, op: remove}, {path: DATA.TAGS.#.ID, op: remove}]
`, want: []string{"warning redact_path payloads[0].redact.rules[0].path"}},
		{name: "redaction typo against a schema", code: 1, policy: anonNever + `
roles: {d: {publish: ["t/+"]}}
payloads:
  - topics: ["t/+"]
    format: json
    schema: s.json
    redact:
      rules: [{path: DATA.USR_NAME, op: remove}, {path: DATA.USER_NAME, op: remove}, {path: DATA.TAGS.#.ID, op: remove}]
`, want: []string{"warning redact_path payloads[0].redact.rules[0].path"}},
		{name: "nothing to check redaction against", code: 0, policy: anonNever + `
roles: {d: {publish: ["t/+"]}}
payloads:
  - {topics: ["t/+"], format: json, redact: {rules: [{path: DATA.USR_NAME, op: remove}]}}
`, want: []string{"info redact_unchecked payloads[0].redact.rules"}},
		{name: "zero means the default", code: 1, policy: anonNever + `
limits: {topic: {max_levels: 0, max_length: 100}}
connections: {tls_handshake_burst: 0}
roles: {d: {subscribe: ["t/+"], min_literal_levels: 0}}
`, want: []string{
			"warning zero_means_default limits.topic.max_levels",
			"warning zero_means_default roles.d.min_literal_levels",
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			path := writeSuite(t, map[string]string{"s.yaml": tc.policy, "s.json": schemaDoc})
			var args []string
			for i, s := range tc.samples {
				topic, body, ok := strings.Cut(s, "=")
				if !ok || strings.HasPrefix(s, "{") {
					topic, body = "", s
				}
				f := filepath.Join(filepath.Dir(path), "sample"+string(rune('0'+i))+".json")
				if err := os.WriteFile(f, []byte(body), 0o600); err != nil {
					t.Fatal(err)
				}
				if topic != "" {
					f = topic + "=" + f
				}
				args = append(args, "-sample", f)
			}
			code, fs := lintJSON(t, append(args, path)...)
			if got := summary(fs); !slices.Equal(got, tc.want) {
				t.Errorf("findings:\n got  %q\n want %q", got, tc.want)
			}
			if code != tc.code {
				t.Errorf("exit status %d, want %d", code, tc.code)
			}
			for _, f := range fs {
				if f.Message == "" || f.Fix == "" || f.Line == 0 && tc.policy != "" {
					t.Errorf("finding without message, fix or line: %+v", f)
				}
			}
		})
	}
}

// TestLintFleet pins what the shipped worked example gets: the back end may
// publish commands no payload entry checks (a deliberate trust in the
// operator's own back end, worth seeing), ops reads $SYS, and redaction
// paths are checked only with a sample, which the fleet's real message
// passes: every rule's path is in it.
func TestLintFleet(t *testing.T) {
	fleet := filepath.Join("..", "hardened-broker", "fleet.yaml")
	code, fs := lintJSON(t, fleet)
	want := []string{
		"info redact_unchecked payloads[0].redact.rules",
		"info sys roles.ops.sys",
		"warning uncovered_topic roles.backend.publish[0]",
	}
	if got := summary(fs); !slices.Equal(got, want) || code != 1 {
		t.Errorf("fleet.yaml: exit %d, findings %q; want 1, %q", code, got, want)
	}
	lines := map[string]int{}
	for _, f := range fs {
		lines[f.Path] = f.Line
	}
	if lines["roles.ops.sys"] != 22 || lines["roles.backend.publish[0]"] != 15 || lines["payloads[0].redact.rules"] != 30 {
		t.Errorf("lines: %v", lines)
	}

	sample := filepath.Join("..", "..", "mqttwaf", "testdata", "komdi-alarm.json")
	code, fs = lintJSON(t, "-sample", sample, fleet)
	if got := summary(fs); !slices.Equal(got, want[1:]) || code != 1 {
		t.Errorf("fleet.yaml -sample: exit %d, findings %q; want 1, %q", code, got, want[1:])
	}
}

func TestLintDefaultPolicy(t *testing.T) {
	code, fs := lintJSON(t, filepath.Join("..", "..", "mqttwaf", "default-policy.yaml"))
	// Anonymous clients from this machine may publish under guest/: the
	// default that lets a broker be tried on a laptop. Info, not a warning.
	if got, want := summary(fs), []string{"info anonymous_publish identity.anonymous.role"}; !slices.Equal(got, want) || code != 0 {
		t.Errorf("default policy: exit %d, findings %q; want 0, %q", code, got, want)
	}
}

func TestLintHumanAndErrors(t *testing.T) {
	path := writeSuite(t, map[string]string{
		"s.yaml":   anonNever + "roles:\n  d:\n    publish: ['#']\n",
		"bad.yaml": "roles: {d: {publish: ['a/#/b']}}\n",
		"bad.json": "{not json",
		"s.json":   "{}",
		"p.yaml":   "payloads: [{topics: [t/+], format: json}]\n",
	})
	dir := filepath.Dir(path)
	code, out, _ := lintRun(t, path)
	if code != 2 || !strings.Contains(out, path+":4: error: roles.d.publish[0]: \"#\" may publish to every topic") ||
		!strings.Contains(out, "fix: grant the topics") || !strings.Contains(out, "1 errors, 0 warnings") {
		t.Errorf("human output (exit %d):\n%s", code, out)
	}
	for _, args := range [][]string{
		{filepath.Join(dir, "bad.yaml")},
		{filepath.Join(dir, "missing.yaml")},
		{"-sample", filepath.Join(dir, "bad.json"), path},
		{"-sample", "t/x=" + filepath.Join(dir, "missing.json"), path},
		{"-sample", "nowhere/x=" + filepath.Join(dir, "s.json"), filepath.Join(dir, "p.yaml")},
		{"-format", "xml", path},
		{},
		{path, path},
	} {
		if code, out, errOut := lintRun(t, args...); code != 2 || out != "" || errOut == "" {
			t.Errorf("lint %q: exit %d, stdout %q, stderr %q; want 2 and an error", args, code, out, errOut)
		}
	}
	if _, _, errOut := lintRun(t, filepath.Join(dir, "bad.yaml")); !strings.Contains(errOut, "roles.d.publish[0]") {
		t.Errorf("load error does not name the policy path: %s", errOut)
	}
}
