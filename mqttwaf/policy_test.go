package mqttwaf

import (
	"encoding"
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"

	"go.yaml.in/yaml/v3"
)

// allTopKeys is what an unknown top-level key error lists: every key of
// the Policy type, sorted.
var allTopKeys = func() string {
	var keys []string
	t := reflect.TypeFor[Policy]()
	for i := 0; i < t.NumField(); i++ {
		if name, _, _ := strings.Cut(t.Field(i).Tag.Get("yaml"), ","); name != "" && name != "-" {
			keys = append(keys, name)
		}
	}
	slices.Sort(keys)
	return "known keys: " + strings.Join(keys, ", ")
}()

// policySeeds is the one seed list for ParsePolicy: TestParsePolicy,
// BenchmarkParsePolicy and FuzzParsePolicy all use it. errHas lists what the
// error must contain (nil: the document must parse); check, if set, looks
// at the parsed policy.
var policySeeds = []struct {
	name   string
	doc    string
	errHas []string
	errNot []string // what the error must not contain
	check  func(t *testing.T, p *Policy)
}{
	// Empty documents and null sections are the default policy.
	{name: "empty", doc: "", check: isDefault},
	{name: "whitespace", doc: "\n  \n", check: isDefault},
	{name: "comment only", doc: "# nothing to change\n", check: isDefault},
	{name: "document marker", doc: "---\n", check: isDefault},
	{name: "null", doc: "null\n", check: isDefault},
	{name: "tilde", doc: "~\n", check: isDefault},
	{name: "empty mapping", doc: "{}\n", check: isDefault},
	{name: "null sections", doc: "mode:\nevents:\nbroker: null\nconnections: ~\nlisteners:\nlimits:\n  topic:\nsessions: {}\nwills:\nresponses:\n", check: isDefault},
	{name: "default policy file", doc: string(DefaultPolicyYAML), check: isDefault},
	{name: "json defaults", doc: `{"mode": "enforce", "events": {"log": "stderr", "level": "info", "max_per_second": 100}, "broker": {"max_packet_size": "256KiB", "max_connections": 10000}, "connections": {"connect_timeout": "10s"}, "listeners": {}}`, check: isDefault},

	{name: "some settings", doc: "mode: detection_only\nevents: {log: off, level: warn}\nlimits:\n  topic: {max_length: 64, max_levels: 4}\nwills: {on_violation: strip, strip_all: true}\n",
		check: func(t *testing.T, p *Policy) {
			want := &Policy{Mode: DetectionOnly, Events: EventsPolicy{Log: "off", Level: "warn"},
				Limits: LimitsPolicy{Topic: TopicLimits{MaxLength: 64, MaxLevels: 4}}, Wills: WillsPolicy{OnViolation: "strip", StripAll: true}}
			if !reflect.DeepEqual(p, want) {
				t.Errorf("got %+v\nwant %+v", p, want)
			}
		}},
	{name: "same settings in json", doc: `{"mode": "detection_only", "events": {"log": "off", "level": "warn"}, "limits": {"topic": {"max_length": 64, "max_levels": 4}}, "wills": {"on_violation": "strip", "strip_all": true}}`,
		check: func(t *testing.T, p *Policy) {
			want := &Policy{Mode: DetectionOnly, Events: EventsPolicy{Log: "off", Level: "warn"},
				Limits: LimitsPolicy{Topic: TopicLimits{MaxLength: 64, MaxLevels: 4}}, Wills: WillsPolicy{OnViolation: "strip", StripAll: true}}
			if !reflect.DeepEqual(p, want) {
				t.Errorf("got %+v\nwant %+v", p, want)
			}
		}},
	{name: "listener overrides", doc: "connections: {max_keepalive: 60s}\nlisteners:\n  ws: {connect_timeout: 5s}\n  tcp:\n",
		check: func(t *testing.T, p *Policy) {
			want := map[string]ConnectionPolicy{"ws": {ConnectTimeout: Duration(5 * time.Second)}, "tcp": {}}
			if !reflect.DeepEqual(p.Listeners, want) {
				t.Errorf("listeners = %+v, want %+v (as written; defaults apply later)", p.Listeners, want)
			}
		}},

	// Unknown keys name the key, its line, where it is and what is allowed.
	{name: "unknown top key", doc: "mode: enforce\nmodes: detection_only\n",
		errHas: []string{"test.yaml:2", `unknown key "modes"`, "in the policy", allTopKeys}},
	{name: "unknown nested key", doc: "limits:\n  topic:\n    max_lenght: 10\n",
		errHas: []string{"test.yaml:3", `unknown key "max_lenght"`, "in limits.topic", "known keys: max_length, max_levels"}},
	{name: "unknown listener key", doc: "listeners:\n  ws:\n    timeout: 5s\n",
		errHas: []string{"test.yaml:3", `unknown key "timeout"`, "listeners.ws", "known keys: allowed_hosts, allowed_origins, connect_timeout, max_connections_per_ip, max_keepalive"}},
	{name: "unknown json key", doc: `{"mode": "enforce", "brokr": {}}`,
		errHas: []string{"test.yaml:1", `unknown key "brokr"`, allTopKeys}},
	{name: "empty key", doc: "{\"\": {}}", errHas: []string{"test.yaml:1", "empty key in the policy"}}, // found by FuzzParsePolicy
	{name: "empty nested key", doc: "limits:\n  \"\": 1\n", errHas: []string{"test.yaml:2", "empty key in limits"}},
	{name: "merge key", doc: "<<: {mode: enforce}\n", errHas: []string{"test.yaml:1", `unknown key "<<"`}},

	// Wrong types name the line and the field path.
	{name: "string for int", doc: "broker:\n  max_connections: ten\n",
		errHas: []string{"test.yaml:2", "broker.max_connections", "ten"}},
	// 1.5 events per second is not a whole number: it must not become 1,
	// nor 0.5 connections 0 (which is "use the default", 256).
	{name: "float for int", doc: "events:\n  max_per_second: 1.5\n",
		errHas: []string{"test.yaml:2", "events.max_per_second"}},
	{name: "fraction for int", doc: "connections:\n  max_connections_per_ip: 0.5\n",
		errHas: []string{"test.yaml:2", "connections.max_connections_per_ip"}},
	{name: "int overflow", doc: "\n\nbroker: {max_connections: 99999999999999999999999}\n",
		errHas: []string{"test.yaml:3", "broker.max_connections"}},
	{name: "bad bool", doc: "wills:\n  strip_all: sometimes\n",
		errHas: []string{"test.yaml:2", "wills.strip_all"}},
	{name: "list for section", doc: "limits: [1, 2]\n",
		errHas: []string{"test.yaml:1", "limits", "expected a mapping of keys (client_id, content_type, correlation_data, topic, user_properties), found a list"}},
	{name: "scalar for section", doc: "sessions: same_identity\n",
		errHas: []string{"test.yaml:1", "sessions", "found a single value"}},
	{name: "list for listeners", doc: "listeners: [tcp, ws]\n",
		errHas: []string{"test.yaml:1", "listeners", "expected a mapping, found a list"}},
	{name: "mapping for string", doc: "mode:\n  value: enforce\n",
		errHas: []string{"test.yaml:2", "mode", "expected a single value, found a mapping"}},
	{name: "list for int", doc: "limits:\n  client_id:\n    max_length: [1]\n",
		errHas: []string{"test.yaml:3", "limits.client_id.max_length", "found a list"}},
	{name: "top-level list", doc: "- mode: enforce\n", errHas: []string{"test.yaml:1", "expected a mapping of keys", "found a list"}},
	{name: "top-level scalar", doc: "enforce\n", errHas: []string{"test.yaml:1", "found a single value"}},

	// YAML features a policy refuses.
	{name: "alias value", doc: "events: &e {log: off}\nlisteners: *e\n",
		errHas: []string{"test.yaml:2", "listeners", "aliases are not allowed"}},
	{name: "alias scalar", doc: "events:\n  log: &x off\n  level: *x\n",
		errHas: []string{"test.yaml:3", "events.level", "aliases are not allowed"}},
	{name: "alias key", doc: "listeners:\n  &a tcp: {connect_timeout: 5s}\n  *a : {connect_timeout: 6s}\n",
		errHas: []string{"test.yaml:3", "keys in listeners must be plain names, not aliases"}},
	{name: "two documents", doc: "mode: enforce\n---\nmode: detection_only\n",
		errHas: []string{"test.yaml:2", "one document"}},
	{name: "empty second document", doc: "---\nmode: enforce\n---\n", errHas: []string{"one document"}},
	{name: "broken second document", doc: "mode: enforce\n---\n{\n", errHas: []string{"test.yaml", "after the first document", "line 3"}},
	{name: "duplicate key", doc: "mode: enforce\nmode: detection_only\n",
		errHas: []string{"test.yaml:2", "mode"}},
	{name: "duplicate nested key", doc: "limits:\n  topic: {max_length: 10}\n  topic: {max_levels: 3}\n",
		errHas: []string{"test.yaml:3", "topic"}},
	{name: "duplicate listener", doc: "listeners:\n  tcp: {connect_timeout: 5s}\n  tcp: {connect_timeout: 60s}\n",
		errHas: []string{"test.yaml:3", "tcp"}},
	{name: "duplicate json key", doc: `{"mode": "enforce", "mode": "detection_only"}`,
		errHas: []string{"test.yaml:1", "mode"}},
	{name: "syntax error", doc: "mode: [enforce\n", errHas: []string{"test.yaml"}},
	{name: "invalid utf-8", doc: "mode: \xff\n", errHas: []string{"test.yaml"}},

	// Values that decode but do not validate.
	{name: "unknown mode", doc: "mode: block\n",
		errHas: []string{"test.yaml: invalid policy", `mode: unknown value "block": use one of enforce, detection_only`}},
	{name: "several invalid values", doc: "mode: x\nbroker: {max_packet_size: 10}\nlisteners: {ws: {connect_timeout: 1h}}\n",
		errHas: []string{"mode: unknown value", "broker.max_packet_size: must be between 64 and 268435456, got 10",
			"listeners.ws.connect_timeout: must be between 100ms and 5m, got 1h"},
		// One mistake, one error: the default user_properties.max_bytes
		// follows a small max_packet_size instead of failing against it.
		errNot: []string{"limits.user_properties"}},
	{name: "one typo, one error", doc: "identity:\n  anonymous: {allow: nevr}\n",
		errHas: []string{`test.yaml:2: identity.anonymous.allow: unknown value "nevr": use one of loopback, never, networks, anywhere`},
		errNot: []string{"unknown role"}},
	{name: "empty listener id", doc: "listeners: {\"\": {connect_timeout: 5s}}\n",
		errHas: []string{"test.yaml:1", "empty key in listeners"}},
}

// isDefault checks that p means the default policy.
func isDefault(t *testing.T, p *Policy) {
	t.Helper()
	got := normalized(p.WithDefaults())
	if want := normalized(Defaults()); !reflect.DeepEqual(got, want) {
		t.Errorf("policy with defaults = %+v\nwant Defaults() = %+v", got, want)
	}
}

// parsePolicy calls ParsePolicy and turns a panic into a test failure, so
// one crashing document does not take every other test down with it.
func parsePolicy(t *testing.T, doc []byte, name string) (p *Policy, err error) {
	t.Helper()
	defer func() {
		if r := recover(); r != nil {
			t.Fatalf("ParsePolicy(%q) panicked: %v", doc, r)
		}
	}()
	return ParsePolicy(doc, name)
}

func TestParsePolicy(t *testing.T) {
	for _, tc := range policySeeds {
		t.Run(tc.name, func(t *testing.T) {
			p, err := parsePolicy(t, []byte(tc.doc), "test.yaml")
			if tc.errHas != nil {
				if err == nil {
					t.Fatalf("no error; parsed %+v", p)
				}
				if p != nil {
					t.Errorf("a policy was returned with the error %v", err)
				}
				for _, s := range tc.errHas {
					if !strings.Contains(err.Error(), s) {
						t.Errorf("error %q\ndoes not contain %q", err, s)
					}
				}
				for _, s := range tc.errNot {
					if strings.Contains(err.Error(), s) {
						t.Errorf("error %q\ncontains %q", err, s)
					}
				}
				return
			}
			if err != nil {
				t.Fatalf("ParsePolicy: %v", err)
			}
			if err := p.Validate(); err != nil {
				t.Errorf("parsed policy does not validate: %v", err)
			}
			if tc.check != nil {
				tc.check(t, p)
			}
		})
	}
}

func TestParsePolicyName(t *testing.T) {
	_, err := ParsePolicy([]byte("bogus: 1\n"), "")
	if err == nil || !strings.HasPrefix(err.Error(), "policy:1: ") {
		t.Errorf("error without a name = %v, want it to start with %q", err, "policy:1: ")
	}
}

func TestParsePolicyTooLarge(t *testing.T) {
	// A valid document padded with comments beyond the limit.
	big := append([]byte("mode: enforce\n"), strings.Repeat("#"+strings.Repeat("x", 1022)+"\n", 4<<10)...)
	if len(big) <= maxPolicyBytes {
		t.Fatalf("test document is only %d bytes", len(big))
	}
	if _, err := ParsePolicy(big, "big.yaml"); err == nil || !strings.Contains(err.Error(), "big.yaml: policy larger than 4MiB") {
		t.Errorf("oversized policy: err = %v", err)
	}
	if _, err := ParsePolicy(big[:maxPolicyBytes-1], "big.yaml"); err != nil {
		t.Errorf("policy just under the limit refused: %v", err)
	}

	path := filepath.Join(t.TempDir(), "big.yaml")
	if err := os.WriteFile(path, big, 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := ReadPolicyFile(path); err == nil || !strings.Contains(err.Error(), "larger than") {
		t.Errorf("ReadPolicyFile(oversized): err = %v", err)
	}
}

func TestReadPolicyFile(t *testing.T) {
	dir := t.TempDir()
	good := filepath.Join(dir, "good.yaml")
	if err := os.WriteFile(good, []byte("mode: detection_only\nevents: {log: off}\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	p, err := ReadPolicyFile(good)
	if err != nil || p.Mode != DetectionOnly {
		t.Fatalf("ReadPolicyFile = %+v, %v", p, err)
	}
	w, err := LoadFile(good)
	if err != nil {
		t.Fatalf("LoadFile: %v", err)
	}
	if got := w.Policy().Mode; got != DetectionOnly {
		t.Errorf("LoadFile mode = %q", got)
	}

	bad := filepath.Join(dir, "bad.yaml")
	if err := os.WriteFile(bad, []byte("mode: enforce\nlimit: {}\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := ReadPolicyFile(bad); err == nil || !strings.Contains(err.Error(), bad+":2: unknown key") {
		t.Errorf("ReadPolicyFile(bad): errors must be labelled with the file name and line, got %v", err)
	}
	if _, err := LoadFile(bad); err == nil {
		t.Error("LoadFile(bad) succeeded")
	}
	if _, err := ReadPolicyFile(filepath.Join(dir, "missing.yaml")); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("ReadPolicyFile(missing) = %v, want ErrNotExist", err)
	}
}

// TestDefaultPolicyYAML: the embedded default policy, parsed as written
// (without applying defaults), is exactly Defaults(), and it writes out every
// key the Policy type has. So the printed default policy cannot drift from
// the code. (An empty list or mapping and none are the same policy: YAML
// has no way to write a nil list.)
func TestDefaultPolicyYAML(t *testing.T) {
	p, err := ParsePolicy(DefaultPolicyYAML, "default-policy.yaml")
	if err != nil {
		t.Fatal(err)
	}
	if got, want := normalized(p), normalized(Defaults()); !reflect.DeepEqual(got, want) {
		t.Errorf("default-policy.yaml = %+v\nDefaults()          = %+v", got, want)
	}

	var doc yaml.Node
	if err := yaml.Unmarshal(DefaultPolicyYAML, &doc); err != nil {
		t.Fatal(err)
	}
	got := yamlPaths(doc.Content[0], reflect.TypeFor[Policy](), "")
	want := structPaths(reflect.TypeFor[Policy](), "")
	if !slices.Equal(got, want) {
		t.Errorf("keys written in default-policy.yaml:\n%v\nkeys of Policy:\n%v", got, want)
	}
}

// yamlTag is the yaml key of a struct field ("" if none).
func yamlTag(f reflect.StructField) string {
	name, _, _ := strings.Cut(f.Tag.Get("yaml"), ",")
	if name == "-" || !f.IsExported() {
		return ""
	}
	return name
}

// yamlPaths lists the dotted paths of the leaves of mapping node n, which
// decodes into struct type t; fields that are not structs (maps included)
// are leaves.
func yamlPaths(n *yaml.Node, t reflect.Type, prefix string) []string {
	var out []string
	for i := 0; i+1 < len(n.Content); i += 2 {
		k, v := n.Content[i].Value, n.Content[i+1]
		path := join(prefix, k)
		var ft reflect.Type
		for j := 0; j < t.NumField(); j++ {
			if yamlTag(t.Field(j)) == k {
				ft = t.Field(j).Type
			}
		}
		if ft != nil && ft.Kind() == reflect.Struct && v.Kind == yaml.MappingNode {
			out = append(out, yamlPaths(v, ft, path)...)
		} else {
			out = append(out, path)
		}
	}
	slices.Sort(out)
	return out
}

// structPaths lists the dotted yaml paths of the leaves of a struct type.
func structPaths(t reflect.Type, prefix string) []string {
	var out []string
	for i := 0; i < t.NumField(); i++ {
		f := t.Field(i)
		name := yamlTag(f)
		if name == "" {
			continue
		}
		path := join(prefix, name)
		if f.Type.Kind() == reflect.Struct && !reflect.PointerTo(f.Type).Implements(reflect.TypeFor[encoding.TextUnmarshaler]()) {
			out = append(out, structPaths(f.Type, path)...)
		} else {
			out = append(out, path)
		}
	}
	slices.Sort(out)
	return out
}

func TestDefaults(t *testing.T) {
	d := Defaults()
	if err := d.Validate(); err != nil {
		t.Fatalf("Defaults() does not validate: %v", err)
	}
	if !reflect.DeepEqual(d.WithDefaults(), d) {
		t.Error("Defaults().WithDefaults() differs from Defaults()")
	}
	if !reflect.DeepEqual((&Policy{}).WithDefaults(), d) {
		t.Error("an empty policy with defaults differs from Defaults()")
	}
	// Spot checks of the documented values.
	if d.Mode != Enforce || d.Broker.MaxPacketSize != 256<<10 || d.Connections.ConnectTimeout != Duration(10*time.Second) ||
		d.Connections.MaxKeepalive != Duration(20*time.Minute) || d.Limits.Topic.MaxLevels != 8 || d.Sessions.Takeover != "same_identity" {
		t.Errorf("unexpected defaults: %+v", d)
	}
}

// TestValidate: each invalid value is reported with its field and the fix.
func TestValidate(t *testing.T) {
	tests := []struct {
		name   string
		policy Policy
		want   string // one error line
	}{
		{"mode", Policy{Mode: "block"}, `mode: unknown value "block": use one of enforce, detection_only`},
		{"events.log", Policy{Events: EventsPolicy{Log: "file"}}, `events.log: unknown value "file": use one of stderr, stdout, off`},
		{"events.level", Policy{Events: EventsPolicy{Level: "debug"}}, `events.level: unknown value "debug": use one of info, warn`},
		{"events.max_per_second", Policy{Events: EventsPolicy{MaxPerSecond: -1}}, "events.max_per_second: must be between 1 and 1000000, got -1"},
		{"broker.max_packet_size low", Policy{Broker: BrokerPolicy{MaxPacketSize: 63}, Limits: LimitsPolicy{UserProperties: UserPropertyLimits{MaxBytes: 1}}}, "broker.max_packet_size: must be between 64 and 268435456, got 63"},
		{"broker.max_packet_size high", Policy{Broker: BrokerPolicy{MaxPacketSize: 256<<20 + 1}}, "broker.max_packet_size: must be between 64 and 268435456, got 268435457"},
		{"broker.max_connections", Policy{Broker: BrokerPolicy{MaxConnections: -5}}, "broker.max_connections: must be between 1 and 10000000, got -5\nconnections.max_connections_per_ip: must be between 1 and -5, got 256"},
		{"broker.topic_alias_maximum", Policy{Broker: BrokerPolicy{TopicAliasMaximum: 65536}}, "broker.topic_alias_maximum: must be between 1 and 65535, got 65536"},
		{"broker.max_session_expiry", Policy{Broker: BrokerPolicy{MaxSessionExpiry: Duration(366 * 24 * time.Hour)}}, "broker.max_session_expiry: must be between 1s and 365d, got 366d"},
		{"broker.max_message_expiry", Policy{Broker: BrokerPolicy{MaxMessageExpiry: Duration(time.Millisecond)}}, "broker.max_message_expiry: must be between 1s and 365d, got 1ms"},
		{"broker.client_write_queue", Policy{Broker: BrokerPolicy{ClientWriteQueue: 8}}, "broker.client_write_queue: must be between 16 and 65536, got 8"},
		{"broker.receive_maximum", Policy{Broker: BrokerPolicy{ReceiveMaximum: 70000}}, "broker.receive_maximum: must be between 1 and 65535, got 70000"},
		{"broker.max_inflight", Policy{Broker: BrokerPolicy{MaxInflight: -1}}, "broker.max_inflight: must be between 1 and 65535, got -1"},
		{"broker.max_inflight_bytes", Policy{Broker: BrokerPolicy{MaxInflightBytes: 100}}, "broker.max_inflight_bytes: must be between 1024 and 1099511627776, got 100"},
		{"connections.connect_timeout", Policy{Connections: ConnectionPolicy{ConnectTimeout: Duration(time.Hour)}}, "connections.connect_timeout: must be between 100ms and 5m, got 1h"},
		{"connections.max_connections_per_ip", Policy{Broker: BrokerPolicy{MaxConnections: 10}, Connections: ConnectionPolicy{MaxConnectionsPerIP: 11}}, "connections.max_connections_per_ip: must be between 1 and 10, got 11"},
		{"connections.max_keepalive", Policy{Connections: ConnectionPolicy{MaxKeepalive: Duration(65536 * time.Second)}}, "connections.max_keepalive: must be between 1s and 18h12m15s, got 18h12m16s"},
		{"listener", Policy{Listeners: map[string]ConnectionPolicy{"ws": {MaxKeepalive: Duration(500 * time.Millisecond)}}}, "listeners.ws.max_keepalive: must be between 1s and 18h12m15s, got 500ms"},
		{"listener inherits invalid", Policy{Connections: ConnectionPolicy{MaxConnectionsPerIP: -2}, Listeners: map[string]ConnectionPolicy{"ws": {}}}, "connections.max_connections_per_ip: must be between 1 and 10000, got -2\nlisteners.ws.max_connections_per_ip: must be between 1 and 10000, got -2"},
		{"empty listener id", Policy{Listeners: map[string]ConnectionPolicy{"": {}}}, "listeners: a listener id must not be empty"},
		{"connections.tls_handshakes_per_ip high", Policy{Connections: ConnectionPolicy{TLSHandshakesPerIP: Rate{N: 2_000_000, Per: time.Second}}},
			`connections.tls_handshakes_per_ip: "2000000/s" is out of range: write 1 to 1000000 handshakes per 1s to 1d, e.g. 20/s`},
		{"connections.tls_handshakes_per_ip short period", Policy{Listeners: map[string]ConnectionPolicy{"tls": {TLSHandshakesPerIP: Rate{N: 1, Per: time.Millisecond}}}},
			`listeners.tls.tls_handshakes_per_ip: "1/1ms" is out of range: write 1 to 1000000 handshakes per 1s to 1d, e.g. 20/s`},
		{"connections.tls_handshakes_per_ip zero", Policy{Connections: ConnectionPolicy{TLSHandshakesPerIP: Rate{Per: time.Second}}},
			`connections.tls_handshakes_per_ip: "0/s" is out of range: write 1 to 1000000 handshakes per 1s to 1d, e.g. 20/s`},
		{"connections.tls_handshake_burst", Policy{Connections: ConnectionPolicy{TLSHandshakeBurst: -1}, Listeners: map[string]ConnectionPolicy{"tls": {TLSHandshakeBurst: 5}}},
			"connections.tls_handshake_burst: must be between 0 and 1000000, got -1"},
		{"allowed_hosts port", Policy{Listeners: map[string]ConnectionPolicy{"ws": {AllowedHosts: []string{"localhost", "broker.example", "evil.example:80"}}}},
			`listeners.ws.allowed_hosts[2]: "evil.example:80" has a port: write the host alone, it matches on every port`},
		{"allowed_hosts URL", Policy{Connections: ConnectionPolicy{AllowedHosts: []string{"https://broker.example"}}},
			`connections.allowed_hosts[0]: "https://broker.example" is a URL: write only its host (origins go in allowed_origins)`},
		{"allowed_hosts wildcard", Policy{Connections: ConnectionPolicy{AllowedHosts: []string{"*.example.com"}}},
			`connections.allowed_hosts[0]: "*.example.com" has a wildcard: list each name, or use "*" alone for any host (which re-opens DNS rebinding)`},
		{"allowed_hosts character", Policy{Connections: ConnectionPolicy{AllowedHosts: []string{"*", "a b"}}},
			`connections.allowed_hosts[1]: "a b" has ' ', which a host name cannot contain: write a host name (broker.example) or an IP address (192.0.2.10)`},
		{"allowed_hosts short IPv4", Policy{Connections: ConnectionPolicy{AllowedHosts: []string{"127.1"}}},
			`connections.allowed_hosts[0]: "127.1" is not a dotted-decimal IP address, and a host name cannot end in a number: write a host name (broker.example) or an IP address (192.0.2.10)`},
		{"allowed_hosts empty", Policy{Connections: ConnectionPolicy{AllowedHosts: []string{"localhost", ""}}},
			`connections.allowed_hosts[1]: "" is empty: write a host name (broker.example) or an IP address (192.0.2.10)`},
		{"allowed_origins null", Policy{Connections: ConnectionPolicy{AllowedOrigins: []string{"null"}}},
			`connections.allowed_origins[0]: "null": "null" is the origin of sandboxed frames and local files, which any page can create; write scheme://host or scheme://host:port, as browsers send it (https://app.example.com)`},
		{"allowed_origins path", Policy{Listeners: map[string]ConnectionPolicy{"ws": {AllowedOrigins: []string{"https://app.example", "https://app.example/mqtt"}}}},
			`listeners.ws.allowed_origins[1]: "https://app.example/mqtt": an origin has no user, path, query or fragment; write scheme://host or scheme://host:port, as browsers send it (https://app.example.com)`},
		{"allowed_origins no scheme", Policy{Connections: ConnectionPolicy{AllowedOrigins: []string{"app.example"}}},
			`connections.allowed_origins[0]: "app.example": not scheme://host[:port]; write scheme://host or scheme://host:port, as browsers send it (https://app.example.com)`},
		{"limits.client_id.max_length", Policy{Limits: LimitsPolicy{ClientID: ClientIDLimits{MaxLength: 65536}}}, "limits.client_id.max_length: must be between 1 and 65535, got 65536"},
		{"limits.topic.max_length", Policy{Limits: LimitsPolicy{Topic: TopicLimits{MaxLength: -1}}}, "limits.topic.max_length: must be between 1 and 65535, got -1"},
		{"limits.topic.max_levels", Policy{Limits: LimitsPolicy{Topic: TopicLimits{MaxLevels: 1025}}}, "limits.topic.max_levels: must be between 1 and 1024, got 1025"},
		{"limits.user_properties.max_count", Policy{Limits: LimitsPolicy{UserProperties: UserPropertyLimits{MaxCount: -3}}}, "limits.user_properties.max_count: must be between 1 and 65535, got -3"},
		{"limits.user_properties.max_bytes", Policy{Limits: LimitsPolicy{UserProperties: UserPropertyLimits{MaxBytes: 512 << 10}}}, "limits.user_properties.max_bytes: must be between 1 and 262144, got 524288"},
		{"sessions.takeover", Policy{Sessions: SessionsPolicy{Takeover: "never"}}, `sessions.takeover: unknown value "never": use one of same_identity, allow`},
		{"wills.on_violation", Policy{Wills: WillsPolicy{OnViolation: "drop"}}, `wills.on_violation: unknown value "drop": use one of refuse, strip`},
		{"responses.mqtt311_publish", Policy{Responses: ResponsesPolicy{MQTT311Publish: "ignore"}}, `responses.mqtt311_publish: unknown value "ignore": use one of drop, disconnect`},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			err := tc.policy.Validate()
			if err == nil {
				t.Fatal("Validate() = nil")
			}
			if got := err.Error(); got != tc.want {
				t.Errorf("Validate() = %q\nwant          %q", got, tc.want)
			}
		})
	}
	// Validate reports every problem, not the first: build a policy with one
	// invalid value in each of several sections.
	all := Policy{
		Mode:        "block",
		Events:      EventsPolicy{Level: "debug"},
		Broker:      BrokerPolicy{ClientWriteQueue: 8},
		Connections: ConnectionPolicy{ConnectTimeout: Duration(time.Hour)},
		Listeners:   map[string]ConnectionPolicy{"ws": {MaxKeepalive: Duration(500 * time.Millisecond)}, "a": {ConnectTimeout: Duration(time.Millisecond)}},
		Limits:      LimitsPolicy{Topic: TopicLimits{MaxLevels: 1025}},
		Sessions:    SessionsPolicy{Takeover: "never"},
		Wills:       WillsPolicy{OnViolation: "drop"},
		Responses:   ResponsesPolicy{MQTT311Publish: "ignore"},
	}
	allWant := []string{"mode:", "events.level:", "broker.client_write_queue:", "connections.connect_timeout:",
		"listeners.a.connect_timeout:", "listeners.ws.connect_timeout:", "listeners.ws.max_keepalive:",
		"limits.topic.max_levels:", "sessions.takeover:", "wills.on_violation:", "responses.mqtt311_publish:"}
	err := all.Validate()
	var joined interface{ Unwrap() []error }
	if !errors.As(err, &joined) {
		t.Fatalf("Validate() = %v, want a joined error", err)
	}
	var got []string
	for _, e := range joined.Unwrap() {
		field, _, _ := strings.Cut(e.Error(), " ")
		got = append(got, field)
	}
	if !slices.Equal(got, allWant) {
		t.Errorf("Validate() reported fields\n%v\nwant (in this order)\n%v", got, allWant)
	}
}

// TestListenerInheritance: a listener override sets only what it names; the
// rest comes from connections (as written or defaulted).
func TestListenerInheritance(t *testing.T) {
	p, err := ParsePolicy([]byte(`connections: {max_keepalive: 60s, allowed_origins: ["https://app.example"], tls_handshake_burst: 40}
listeners:
  ws: {connect_timeout: 5s, allowed_hosts: [broker.example]}
  tls: {max_connections_per_ip: 8, max_keepalive: 30s, allowed_hosts: [], tls_handshakes_per_ip: 5/s}
  tcp:
`), "test.yaml")
	if err != nil {
		t.Fatal(err)
	}
	q := p.WithDefaults()
	loopback, app := []string{"localhost", "127.0.0.1", "::1"}, []string{"https://app.example"}
	perSecond := func(n int64) Rate { return Rate{N: n, Per: time.Second} }
	want := map[string]ConnectionPolicy{
		"ws": {ConnectTimeout: Duration(5 * time.Second), MaxConnectionsPerIP: 256, MaxKeepalive: Duration(time.Minute),
			AllowedHosts: []string{"broker.example"}, AllowedOrigins: app, TLSHandshakesPerIP: perSecond(20), TLSHandshakeBurst: 40},
		"tls": {ConnectTimeout: Duration(10 * time.Second), MaxConnectionsPerIP: 8, MaxKeepalive: Duration(30 * time.Second),
			AllowedHosts: loopback, AllowedOrigins: app, TLSHandshakesPerIP: perSecond(5), TLSHandshakeBurst: 40},
		"tcp": {ConnectTimeout: Duration(10 * time.Second), MaxConnectionsPerIP: 256, MaxKeepalive: Duration(time.Minute),
			AllowedHosts: loopback, AllowedOrigins: app, TLSHandshakesPerIP: perSecond(20), TLSHandshakeBurst: 40},
	}
	if !reflect.DeepEqual(q.Listeners, want) {
		t.Errorf("listeners with defaults = %+v\nwant %+v", q.Listeners, want)
	}
	w, err := New(p, Options{Sink: &eventLog{}})
	if err != nil {
		t.Fatal(err)
	}
	for id, want := range map[string]time.Duration{"ws": 5 * time.Second, "tls": 10 * time.Second, "other": 10 * time.Second} {
		if got := w.ConnectTimeout(id); got != want {
			t.Errorf("ConnectTimeout(%q) = %v, want %v", id, got, want)
		}
	}
}

// TestWithDefaultsDoesNotModify: WithDefaults, Validate, New and Reload leave
// the caller's policy (listeners map included) as it was, and Policy()
// returns a copy.
func TestWithDefaultsDoesNotModify(t *testing.T) {
	mk := func() *Policy {
		return &Policy{Mode: DetectionOnly, Listeners: map[string]ConnectionPolicy{"ws": {ConnectTimeout: Duration(5 * time.Second)}}}
	}
	p, want := mk(), mk()
	q := p.WithDefaults()
	if !reflect.DeepEqual(p, want) {
		t.Errorf("WithDefaults modified its receiver: %+v", p)
	}
	q.Listeners["ws"] = ConnectionPolicy{}
	q.Listeners["new"] = ConnectionPolicy{}
	if !reflect.DeepEqual(p, want) {
		t.Errorf("changing the copy changed the original: %+v", p)
	}
	_ = p.Validate()
	if !reflect.DeepEqual(p, want) {
		t.Errorf("Validate modified its receiver: %+v", p)
	}
	w, err := New(p, Options{Sink: &eventLog{}})
	if err != nil {
		t.Fatal(err)
	}
	if err := w.Reload(p); err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(p, want) {
		t.Errorf("New/Reload modified the policy: %+v", p)
	}
	got := w.Policy()
	got.Listeners["ws"] = ConnectionPolicy{}
	got.Mode = Enforce
	if w.Policy().Listeners["ws"].ConnectTimeout != Duration(5*time.Second) || w.Policy().Mode != DetectionOnly {
		t.Error("changing the result of Policy() changed the running policy")
	}
}

// TestPolicyJSONParity: a policy written as JSON (encoding/json of the
// Policy type) parses to the same policy as its YAML form.
func TestPolicyJSONParity(t *testing.T) {
	p := Defaults()
	p.Mode = DetectionOnly
	p.Listeners = map[string]ConnectionPolicy{"ws": {ConnectTimeout: Duration(5 * time.Second), MaxConnectionsPerIP: 3, MaxKeepalive: Duration(90 * time.Second)}}
	p.Limits.UserProperties.MaxBytes = 1536
	j, err := json.Marshal(p)
	if err != nil {
		t.Fatal(err)
	}
	y, err := yaml.Marshal(p)
	if err != nil {
		t.Fatal(err)
	}
	fromJSON, err := ParsePolicy(j, "p.json")
	if err != nil {
		t.Fatalf("%s\n%v", j, err)
	}
	fromYAML, err := ParsePolicy(y, "p.yaml")
	if err != nil {
		t.Fatalf("%s\n%v", y, err)
	}
	if !reflect.DeepEqual(normalized(fromJSON), normalized(p)) {
		t.Errorf("JSON %s\nparsed to %+v\nwant %+v", j, fromJSON, p)
	}
	if !reflect.DeepEqual(normalized(fromYAML), normalized(p)) {
		t.Errorf("YAML %s\nparsed to %+v\nwant %+v", y, fromYAML, p)
	}
}

func BenchmarkParsePolicy(b *testing.B) {
	for _, tc := range policySeeds { // a panic fails the benchmark, not the binary
		func() {
			defer func() {
				if r := recover(); r != nil {
					b.Fatalf("seed %q: ParsePolicy panicked: %v", tc.name, r)
				}
			}()
			_, _ = ParsePolicy([]byte(tc.doc), "bench.yaml")
		}()
	}
	b.ReportAllocs()
	for b.Loop() {
		for _, tc := range policySeeds {
			_, _ = ParsePolicy([]byte(tc.doc), "bench.yaml")
		}
	}
}

func BenchmarkParseDefaultPolicy(b *testing.B) {
	b.ReportAllocs()
	for b.Loop() {
		if _, err := ParsePolicy(DefaultPolicyYAML, "default-policy.yaml"); err != nil {
			b.Fatal(err)
		}
	}
}

// FuzzParsePolicy: no panic; an error comes without a policy and is
// labelled with the name; a policy comes without an error, always validates,
// and written back out as YAML or as JSON parses to the same policy.
func FuzzParsePolicy(f *testing.F) {
	for _, tc := range policySeeds {
		f.Add([]byte(tc.doc))
	}
	f.Fuzz(func(t *testing.T, doc []byte) {
		p, err := parsePolicy(t, doc, "fuzz.yaml")
		if err != nil {
			if p != nil {
				t.Fatalf("policy %+v returned with error %v", p, err)
			}
			if !strings.HasPrefix(err.Error(), "fuzz.yaml") {
				t.Fatalf("error not labelled with the policy name: %v", err)
			}
			return
		}
		if p == nil {
			t.Fatal("nil policy and nil error")
		}
		if err := p.Validate(); err != nil {
			t.Fatalf("ParsePolicy accepted a policy that does not validate: %v", err)
		}
		p = normalized(p)
		y, err := yaml.Marshal(p)
		if err != nil {
			t.Fatalf("yaml.Marshal: %v", err)
		}
		fromYAML, err := ParsePolicy(y, "again.yaml")
		if err != nil {
			t.Fatalf("the policy written as YAML does not parse:\n%s\n%v", y, err)
		}
		if !reflect.DeepEqual(normalized(fromYAML), p) {
			t.Fatalf("YAML round trip:\n%+v\n!=\n%+v", fromYAML, p)
		}
		j, err := json.Marshal(p)
		if err != nil {
			t.Fatalf("json.Marshal: %v", err)
		}
		fromJSON, err := ParsePolicy(j, "again.json")
		if err != nil {
			t.Fatalf("the policy written as JSON does not parse:\n%s\n%v", j, err)
		}
		if !reflect.DeepEqual(normalized(fromJSON), p) {
			t.Fatalf("JSON round trip:\n%+v\n!=\n%+v", fromJSON, p)
		}
	})
}
