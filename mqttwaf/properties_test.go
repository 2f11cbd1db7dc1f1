package mqttwaf

import (
	"strings"
	"testing"
	"time"
)

// TestPropertyLimits: the MQTT 5 properties a client fills freely obey
// the rules of topics (response topic) and have their own bounds (content
// type, correlation data, user property characters).
func TestPropertyLimits(t *testing.T) {
	tests := []struct {
		name  string
		props Properties
		want  wantVerdict
	}{
		{"none", Properties{}, wantVerdict{}},
		{"ordinary request", Properties{ResponseTopic: "replies/dev1", ContentType: "application/json", CorrelationData: []byte("0123456789abcdef")}, wantVerdict{}},
		{"response topic at the limits", Properties{ResponseTopic: "a/b/c/" + strings.Repeat("r", 26)}, wantVerdict{}},
		{"response topic too long", Properties{ResponseTopic: strings.Repeat("r", 33)}, over(CodeTopicNameInvalid, "response_topic_too_long", 33, 32)},
		{"response topic too many levels", Properties{ResponseTopic: "a/b/c/d/e"}, over(CodeTopicNameInvalid, "response_topic_too_many_levels", 5, 4)},
		{"response topic control characters", Properties{ResponseTopic: "a/\x1b[2J"}, reject(CodeTopicNameInvalid, "response_topic_invalid_chars")},
		{"response topic $SYS", Properties{ResponseTopic: "$SYS/broker"}, reject(CodeTopicNameInvalid, "response_topic_reserved")},
		{"response topic $mqttwaf", Properties{ResponseTopic: ReservedPrefix + "x"}, reject(CodeTopicNameInvalid, "response_topic_reserved")},
		{"response topic wildcard", Properties{ResponseTopic: "replies/+"}, reject(CodeTopicNameInvalid, "response_topic_wildcard")},
		{"content type at the limit", Properties{ContentType: strings.Repeat("c", 20)}, wantVerdict{}},
		{"content type too long", Properties{ContentType: strings.Repeat("c", 21)}, over(CodePacketTooLarge, "content_type_too_long", 21, 20)},
		{"content type escape", Properties{ContentType: "text/\x1b]0;x\x07"}, reject(CodePayloadFormatInvalid, "content_type_invalid_chars")},
		{"content type newline", Properties{ContentType: "text/plain\r\nX: y"}, reject(CodePayloadFormatInvalid, "content_type_invalid_chars")},
		{"correlation data at the limit", Properties{CorrelationData: make([]byte, 64)}, wantVerdict{}},
		{"correlation data too large", Properties{CorrelationData: make([]byte, 65)}, over(CodePacketTooLarge, "correlation_data_too_large", 65, 64)},
		{"user property value with line breaks", Properties{User: []UserProperty{{Key: "note", Value: "a\tb\r\nc"}}}, wantVerdict{}},
		{"user property key with newline", Properties{User: []UserProperty{{Key: "a\nb", Value: "v"}}}, reject(CodeImplementationSpecific, "user_property_invalid_chars")},
		{"user property value escape", Properties{User: []UserProperty{{Key: "k", Value: "\x1b[31m"}}}, reject(CodeImplementationSpecific, "user_property_invalid_chars")},
		{"user property value C1", Properties{User: []UserProperty{{Key: "k", Value: "\u009b31m"}}}, reject(CodeImplementationSpecific, "user_property_invalid_chars")},
	}
	tw := newTestWAF(t, `limits:
  topic: {max_length: 32, max_levels: 4}
  content_type: {max_length: 20}
  correlation_data: {max_bytes: 64}
`)
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			v, _ := tw.Publish(testClient("dev1", "alice"), &Message{Topic: "req/x", QoS: 1, Payload: []byte("{}"), Props: tc.props})
			checkVerdict(t, "Publish", v, tc.want)
			evs := tw.events.take()
			if tc.want.action == Allow {
				if len(evs) != 0 {
					t.Errorf("events = %+v", evs)
				}
				return
			}
			rule := "limits.properties"
			if strings.HasPrefix(tc.want.reason, "user_property") {
				rule = "limits.user_properties"
			}
			if len(evs) != 1 || evs[0].Rule != rule || evs[0].Topic != "req/x" {
				t.Errorf("events = %+v, want one %s event", evs, rule)
			}
		})
	}
}

// TestMessageSize: every byte a client chooses counts.
func TestMessageSize(t *testing.T) {
	m := Message{Topic: "abc", Payload: []byte("12345"), Props: Properties{
		ContentType: "ct", ResponseTopic: "rt/x", CorrelationData: []byte("corr"),
		User: []UserProperty{{Key: "k", Value: "vv"}, {Key: "kk", Value: ""}},
	}}
	if got, want := m.Size(), 3+5+2+4+4+3+2; got != want {
		t.Fatalf("Size() = %d, want %d", got, want)
	}
}

// TestPropertiesCountInByteRatesAndRetainedBudgets: a message with a tiny
// payload and large properties is counted at its full size.
func TestPropertiesCountInByteRatesAndRetainedBudgets(t *testing.T) {
	tw := newRatesWAF(t, "limits: {correlation_data: {max_bytes: 60000}}\n", map[string]string{
		"publish":  `{per_connection: {messages: 1000/s, bytes: 100KiB/s}}`,
		"retained": `{per_identity: {topics: 1000, bytes: 200KiB}}`,
	})
	c := tw.mustDial(t, "dev1", "alice", ipA)
	big := &Message{Topic: "r/1", QoS: 1, Retain: true, Payload: []byte("x"), Props: Properties{CorrelationData: make([]byte, 60000)}}
	v, _ := tw.Publish(c, big)
	check(t, "first", v, allowed)
	tw.Retained(c, big.Topic, big.Size())
	big.Topic = "r/2"
	v, _ = tw.Publish(c, big)
	check(t, "second: 120,006 of 100 KiB/s", v, msgRate("connection_byte_rate"))
	tw.clock.Add(2 * time.Second)
	v, _ = tw.Publish(c, big)
	check(t, "after a refill", v, allowed)
	tw.Retained(c, big.Topic, big.Size())
	tw.clock.Add(2 * time.Second)
	big.Topic = "r/3"
	v, _ = tw.Publish(c, big)
	check(t, "third retained: 180,009 of 200 KiB", v, allowed)
	tw.Retained(c, big.Topic, big.Size())
	tw.clock.Add(2 * time.Second)
	big.Topic = "r/4"
	v, _ = tw.Publish(c, big)
	check(t, "fourth retained: over 200 KiB", v, quota("rates.retained", "retained_bytes_per_identity"))
}

// TestListenerSectionKeepsRequiredCertificates: a listener section that
// changes something else must not silently drop a broker-wide
// require_client_certificate (a bool cannot say "unset").
func TestListenerSectionKeepsRequiredCertificates(t *testing.T) {
	p, err := ParsePolicy([]byte("connections: {require_client_certificate: true}\nlisteners: {ws: {connect_timeout: 5s}}\n"), "t.yaml")
	if err != nil {
		t.Fatal(err)
	}
	full := p.WithDefaults()
	if !full.Listeners["ws"].RequireClientCertificate || !full.listener("tcp").RequireClientCertificate {
		t.Fatalf("require_client_certificate: ws %v, tcp %v; want true for both",
			full.Listeners["ws"].RequireClientCertificate, full.listener("tcp").RequireClientCertificate)
	}
	p, _ = ParsePolicy([]byte("listeners: {tls: {require_client_certificate: true}}\n"), "t.yaml")
	full = p.WithDefaults()
	if !full.listener("tls").RequireClientCertificate || full.listener("tcp").RequireClientCertificate {
		t.Fatal("a per-listener requirement must apply to that listener only")
	}
}
