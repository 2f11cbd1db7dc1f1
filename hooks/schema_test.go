package hooks

import (
	"fmt"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/mqttwaf/mqttwaf/mqttwaf"
)

// komdi builds a komdi alarm message at a position and report time.
func komdi(lat, lon float64, reportTime string, count int) []byte {
	return fmt.Appendf(nil, `{"DATA":{"UKEY":"TTNU1372314SU02-2017-04978","STS":"S","ALARM_FLAG":"Y","ALARM_GRADE":3,`+
		`"REPORT_TIME":"%s","LAT":%v,"LON":%v,"REPORT_COUNT":%d,"SG_CONTNO":"TTNU1372314"},"TYPE":"MALARM_INFO"}`,
		reportTime, lat, lon, count)
}

func contractPolicy(t *testing.T) string {
	t.Helper()
	schemaFile, err := filepath.Abs(filepath.Join("..", "mqttwaf", "schema", "testdata", "komdi-alarm.schema.json"))
	if err != nil {
		t.Fatal(err)
	}
	return `
payloads:
  - topics: ["fleet/+/telemetry"]
    format: json
    schema: ` + schemaFile + `
    fields:
      - {path: DATA.LAT, required: true, min: -90, max: 90}
      - {path: DATA.LON, required: true, min: -180, max: 180}
    plausibility:
      timestamp_path: DATA.REPORT_TIME
      timestamp_format: "20060102150405"
      timestamp_zone: "+09:00"
      lat_path: DATA.LAT
      lon_path: DATA.LON
      max_speed_kmh: 150
      replay_window: 10m
`
}

// TestContractsEndToEnd: the seed message passes its schema; a message
// breaking the schema, a position jump and a replay are refused with 0x99
// and an event naming the rule, the keyword and the place, while normal
// traffic keeps flowing.
func TestContractsEndToEnd(t *testing.T) {
	b := startBroker(t, contractPolicy(t), brokerOpts{})
	sub := mustV5(t, b.addr, "backend", "")
	sub.subscribe(t, 1, "fleet/+/telemetry")
	dev := mustV5(t, b.addr, "dev1", "")

	seoul := komdi(37.4057689, 126.9720319, "20171128134520", 1)
	publish := func(p []byte) byte {
		t.Helper()
		resp, _ := dev.publish(t, "fleet/dev1/telemetry", 1, p)
		if resp == nil {
			t.Fatal("no PUBACK")
		}
		return resp.ReasonCode
	}
	if rc := publish(seoul); rc != 0 {
		t.Fatalf("valid message: 0x%02x", rc)
	}
	expectMsg(t, sub.msgs, 5*time.Second)

	for _, tc := range []struct {
		name, rule, reason, where string
		payload                   []byte
	}{
		{"schema: latitude out of range", "payload.schema", "maximum", "/DATA/LAT", komdi(91, 126.97, "20171128134530", 2)},
		{"fields: latitude is text", "payload.schema", "type", "/DATA/LAT",
			[]byte(strings.Replace(string(komdi(37.40, 126.97, "20171128134530", 2)), `"LAT":37.4`, `"LAT":"37.4"`, 1))},
		{"schema: container number format", "payload.schema", "pattern", "/DATA/SG_CONTNO",
			[]byte(strings.Replace(string(komdi(37.40, 126.97, "20171128134530", 2)), "TTNU1372314\"}", "X\"}", 1))},
		{"Seoul to Busan in 10 seconds", "payload.plausibility", "speed", "", komdi(35.1796, 129.0756, "20171128134530", 2)},
		{"timestamp going backwards", "payload.plausibility", "timestampBackwards", "", komdi(37.4057, 126.9720, "20171128134500", 2)},
		{"replay of the first message", "payload.plausibility", "replay", "", seoul},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if rc := publish(tc.payload); rc != byte(mqttwaf.CodePayloadFormatInvalid) {
				t.Fatalf("0x%02x, want 0x99", rc)
			}
			e := b.events.wait(t, tc.rule, tc.reason, time.Second)
			if !strings.Contains(e.Detail, tc.where) || e.ClientID != "dev1" {
				t.Fatalf("event %+v", e)
			}
			for _, secret := range []string{"35.1796", "TTNU", "37.4"} {
				if strings.Contains(e.Detail, secret) {
					t.Fatalf("event detail carries a payload value: %q", e.Detail)
				}
			}
			expectNoMsg(t, sub.msgs, 100*time.Millisecond)
		})
	}
	// A refused message did not become the reference: the device's next
	// honest message (a few metres on, a minute later) passes.
	if rc := publish(komdi(37.4058, 126.9721, "20171128134620", 3)); rc != 0 {
		t.Fatalf("honest message after the refusals: 0x%02x", rc)
	}
	expectMsg(t, sub.msgs, 5*time.Second)
	// Another device has its own history.
	dev2 := mustV5(t, b.addr, "dev2", "")
	if resp, err := dev2.publish(t, "fleet/dev2/telemetry", 1, komdi(35.1796, 129.0756, "20171128134530", 1)); err != nil || resp.ReasonCode != 0 {
		t.Fatalf("dev2: %v %+v", err, resp)
	}
}

func TestBrokenSchemaRefusedAtLoad(t *testing.T) {
	for _, f := range []string{"broken.schema.json", "ref-to-broken.schema.json", "remote-ref.schema.json", "missing.schema.json"} {
		path, _ := filepath.Abs(filepath.Join("..", "mqttwaf", "schema", "testdata", f))
		p, err := mqttwaf.ParsePolicy([]byte("payloads: [{topics: [t], format: json, schema: "+path+"}]\n"), "p.yaml")
		if err != nil {
			t.Fatalf("%s: %v", f, err)
		}
		_, err = mqttwaf.New(p, mqttwaf.Options{Sink: newRecorder()})
		if err == nil || !strings.Contains(err.Error(), "payloads[0]") {
			t.Fatalf("%s: New = %v, want an error naming payloads[0] and the file", f, err)
		}
		t.Logf("%s: %v", f, err)
	}
}
