package mqttwaf

import (
	"bufio"
	"bytes"
	"strings"
	"testing"
)

// The attack these tests are about: a field rule checks DATA.LAT and
// DATA.CMD, a back end decoding with encoding/json (or any case-insensitive
// decoder) reads the last case variant, lat 999 and cmd "reboot".
const caseVariantAttack = `{"DATA":{"LAT":45,"lat":999,"CMD":"status","cmd":"reboot"}}`

// keysPolicy is one JSON payload entry with a field rule, a redaction rule
// and plausibility; opt adds keys to the entry (the opt-outs).
func keysPolicy(opt string) string {
	return `
payloads:
  - topics: ["t/#"]
    format: json
    fields:
      - {path: DATA.LAT, max: 90}
      - {path: DATA.CMD, enum: [status]}
    redact:
      rules: [{path: DATA.USER_NAME, op: remove}]
` + opt
}

// publishResult runs one publish through the WAF and returns the verdict and
// the payload that would be forwarded.
func publishResult(tw *testWAF, topic string, retain bool, payload string) (Verdict, string) {
	m := &Message{Topic: topic, QoS: 1, Retain: retain, Payload: []byte(payload)}
	v, out := tw.Publish(testClient("dev1", ""), m)
	if out != nil {
		return v, string(out.Payload)
	}
	return v, payload
}

// TestPayloadKeysAsBackEndsReadThem: by default keys are compared and matched
// the way case-insensitive back ends read them; each opt-out brings the
// exact behaviour back, and only for its own stage.
func TestPayloadKeysAsBackEndsReadThem(t *testing.T) {
	for _, tc := range []struct {
		name    string
		opt     string // keys added to the payload entry
		payload string
		reject  string // rule: reason of the refusal; "" = forwarded
		detail  string // part of the refusal's detail
		out     string // forwarded payload ("" = as published)
	}{
		{"case variants refused", "", caseVariantAttack, "payload.json:duplicate_key", "at byte 18", ""},
		{"fullwidth variant refused", "", `{"DATA":{"CMD":"status","ＣＭＤ":"reboot"}}`, "payload.json:duplicate_key", "", ""},
		{"exact_keys, folded fields: lat is checked", "    json: {exact_keys: true}\n", `{"DATA":{"LAT":45,"lat":999}}`,
			"payload.schema:maximum", "at /DATA/lat", ""},
		{"exact_keys and exact_field_paths: the bypass is back", "    json: {exact_keys: true}\n    exact_field_paths: true\n",
			caseVariantAttack, "", "", ""},
		{"a lone lower-case key is checked", "", `{"DATA":{"lat":999}}`, "payload.schema:maximum", "at /DATA/lat", ""},
		{"exact_field_paths: a lone lower-case key is not", "    exact_field_paths: true\n", `{"DATA":{"lat":999}}`, "", "", ""},
		{"an array of objects is checked", "", `{"DATA":[{"LAT":45},{"LAT":91}]}`, "payload.schema:maximum", "at /DATA/1/LAT", ""},
		{"a lone lower-case key is redacted", "", `{"DATA":{"user_name":"홍길수","LAT":1}}`, "", "", `{"DATA":{"LAT":1}}`},
		{"an array of objects is redacted", "", `{"DATA":[{"USER_NAME":"x"},{"user_name":"y"}]}`, "", "", `{"DATA":[{},{}]}`},
		{"redact.exact_paths: neither is", "    redact:\n      rules: [{path: DATA.USER_NAME, op: remove}]\n      exact_paths: true\n",
			`{"DATA":[{"USER_NAME":"x"},{"user_name":"y"}],"x":{"user_name":"z"}}`, "", "", ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			policy := keysPolicy(tc.opt)
			if strings.Contains(tc.opt, "    redact:") {
				// The opt-out replaces the entry's redact section.
				policy = strings.Replace(policy, "    redact:\n      rules: [{path: DATA.USER_NAME, op: remove}]\n", "", 1)
			}
			tw := newTestWAF(t, policy)
			v, out := publishResult(tw, "t/1", false, tc.payload)
			if tc.reject != "" {
				if !v.Blocked() || v.Rule+":"+v.Reason != tc.reject || v.Code != CodePayloadFormatInvalid || !strings.Contains(v.Detail, tc.detail) {
					t.Fatalf("verdict %+v, want %s (0x99) with detail %q", v, tc.reject, tc.detail)
				}
				evs := tw.events.take()
				if len(evs) != 1 || evs[0].Rule+":"+evs[0].Reason != tc.reject || !evs[0].Enforced {
					t.Fatalf("events %+v, want one %s", summarize(evs), tc.reject)
				}
				return
			}
			want := tc.out
			if want == "" {
				want = tc.payload
			}
			if v.Blocked() || out != want {
				t.Fatalf("verdict %+v, forwarded %s; want %s", v, out, want)
			}
		})
	}
}

// TestEmptyRetainedPayloadDeletes: a retained PUBLISH with an empty payload
// deletes the retained message; it passes every payload check of its topic
// (format, JSON, schema, fields, plausibility, redaction, content type), so
// retained personal data can be deleted. A non-retained empty payload is
// judged as before.
func TestEmptyRetainedPayloadDeletes(t *testing.T) {
	tw := newTestWAF(t, keysPolicy(`    content_types: [application/json]
    plausibility: {timestamp_path: DATA.TS, timestamp_format: unix}
  - topics: ["text/#"]
    format: text
    max_size: 10
`))
	for _, topic := range []string{"t/1", "text/1", "other/1"} {
		m := &Message{Topic: topic, QoS: 1, Retain: true, Payload: []byte{},
			Props: Properties{ContentType: "text/plain", PayloadFormat: 1, PayloadFormatSet: true}}
		if v, out := tw.Publish(testClient("dev1", ""), m); v != (Verdict{}) || out != nil {
			t.Errorf("%s: empty retained publish: %+v, %+v; want it to pass unchanged", topic, v, out)
		}
	}
	if evs := tw.events.take(); len(evs) != 0 {
		t.Errorf("events %+v, want none", summarize(evs))
	}
	v, _ := publishResult(tw, "t/1", false, "")
	if !v.Blocked() || v.Reason != "unexpected_end" || v.Code != CodePayloadFormatInvalid {
		t.Errorf("empty non-retained publish on a JSON topic: %+v, want unexpected_end (0x99)", v)
	}
	if v, _ := publishResult(tw, "t/1", true, " "); !v.Blocked() {
		t.Errorf("retained whitespace on a JSON topic: %+v, want refused (only zero bytes delete)", v)
	}
}

// TestPayloadKeysPolicyErrors: the opt-outs are checked in policy terms.
func TestPayloadKeysPolicyErrors(t *testing.T) {
	for _, tc := range []struct{ entry, want string }{
		{"    exact_field_paths: true\n", "payloads[0].exact_field_paths: applies to the paths of fields, and there are none"},
		{"    redact: {exact_paths: true, detectors: [{kind: email}]}\n", "payloads[0].redact.exact_paths: applies to the paths of redact.rules, and there are none"},
		{"    json: {fold_keys: true}\n", `unknown key "fold_keys"`},
		// Errors from the redact package speak in the policy's keys, under the entry's path.
		{"    redact: {rules: [{path: a, op: remove}, {paths: [lat, lon], op: coarsen, cell_metres: -5}]}\n",
			"payloads[0].redact.rules[1].cell_metres: must be between 1 and 10000000, got -5"},
		{"    redact: {detectors: [{kind: email}, {kind: emial}]}\n", `payloads[0].redact.detectors[1].kind: unknown "emial"`},
		// The schema package's option errors too, with its Go names in the message replaced.
		{"    fields: [{path: a, type: number}, {path: b, type: string, min: 1}]\n",
			`payloads[0].fields[1].type: min and max apply to numbers, but type is "string"; use number or integer`},
		{"    plausibility: {max_speed_kmh: 100}\n", `payloads[0].plausibility.max_speed_kmh: needs lat_path and lon_path`},
		{"    json: {output: jcs, profile: rfc8259}\n", `payloads[0].json.output: "jcs" requires I-JSON input (RFC 8785 section 3.1); use profile "i-json"`},
		{"    json: {exact_keys: maybe}\n", "exact_keys"},
	} {
		_, err := ParsePolicy([]byte(testIdentity+"payloads:\n  - topics: [\"t/#\"]\n    format: json\n"+tc.entry), "test.yaml")
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%q: got %v, want an error containing %q", tc.entry, err, tc.want)
		}
	}
	// Each opt-out is accepted where it applies.
	for _, entry := range []string{
		"    json: {exact_keys: true}\n",
		"    json: {profile: rfc8259, exact_keys: true}\n",
		"    fields: [{path: a, type: number}]\n    exact_field_paths: true\n",
		"    redact: {rules: [{path: a, op: remove}], exact_paths: true}\n",
		"    plausibility: {timestamp_path: ts, exact_paths: true}\n",
	} {
		if _, err := ParsePolicy([]byte(testIdentity+"payloads:\n  - topics: [\"t/#\"]\n    format: json\n"+entry), "test.yaml"); err != nil {
			t.Errorf("%q: %v", entry, err)
		}
	}
}

// TestDefaultPolicyPayloadExample: the commented payload entry in
// default-policy.yaml, uncommented, is a valid policy, so the example that
// -print-default-policy shows cannot drift from the keys the code reads.
func TestDefaultPolicyPayloadExample(t *testing.T) {
	var entry []string
	in := false
	sc := bufio.NewScanner(bytes.NewReader(DefaultPolicyYAML))
	for sc.Scan() {
		line := sc.Text()
		switch {
		case line == "payloads: []":
			in = true
		case in && strings.HasPrefix(line, "#"):
			entry = append(entry, strings.TrimPrefix(line, "#"))
		case in:
			in = false
		}
	}
	if len(entry) < 10 {
		t.Fatalf("found %d lines of the payload example in default-policy.yaml", len(entry))
	}
	doc := testIdentity + "payloads:\n" + strings.Join(entry, "\n") + "\n"
	if _, err := ParsePolicy([]byte(doc), "default-policy-example.yaml"); err != nil {
		t.Fatalf("the commented payload example does not parse: %v\n%s", err, doc)
	}
	for _, key := range []string{"exact_keys:", "exact_field_paths:", "exact_paths:"} {
		if !strings.Contains(doc, key) {
			t.Errorf("the payload example does not show %s", key)
		}
	}
}

// TestSchemaAfterNormalizeKeepsDecoderBounds: the schema protection skips
// its own JSON decoding only after a normalize entry that checks at least
// as much; a payload past one of the decoder's bounds that normalize lets
// through (an exponent of 5000, a looser depth or digit limit, duplicate
// keys under rfc8259) is still refused by the schema, as before.
func TestSchemaAfterNormalizeKeepsDecoderBounds(t *testing.T) {
	deep := strings.Repeat(`{"DATA":`, 65) + `1` + strings.Repeat(`}`, 65)
	long := `{"DATA":{"LAT":-1.` + strings.Repeat("5", 998) + `}}`
	for _, tc := range []struct {
		name, json, payload, reject string
	}{
		{"within every bound", "", `{"DATA":{"LAT":45}}`, ""},
		{"field rule after the skipped decoding", "", `{"DATA":{"LAT":99}}`, "payload.schema:maximum"},
		{"exponent past the decoder's", "", `{"DATA":{"LAT":1e-5000}}`, "payload.schema:number"},
		{"deeper than the decoder reads", "{max_depth: 100}", deep, "payload.schema:depth"},
		{"longer number than the decoder reads", "{max_number_digits: 1000}", long, "payload.schema:number"},
		{"duplicate keys under rfc8259", "{profile: rfc8259}", `{"DATA":{"LAT":1,"LAT":2}}`, "payload.schema:duplicateKey"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			opt := ""
			if tc.json != "" {
				opt = "    json: " + tc.json + "\n"
			}
			tw := newTestWAF(t, keysPolicy(opt))
			v, _ := publishResult(tw, "t/1", false, tc.payload)
			got := ""
			if v.Blocked() {
				got = v.Rule + ":" + v.Reason
			}
			if got != tc.reject {
				t.Errorf("verdict %q (%s), want %q", got, v.Detail, tc.reject)
			}
		})
	}
}
