package main

// The suite file format of `wafcheck test`: one YAML file is one suite of
// cases against one policy. Decoding is by hand over yaml.Node, so every
// mistake is reported with the file, line, case and key as the file spells
// them (cases[2] "name": expect.verdcit), never a Go type.

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"

	"go.yaml.in/yaml/v3"

	"github.com/mqttwaf/mqttwaf/mqttwaf"
)

// maxSuiteBytes bounds a suite file and each payload file it names: cases
// are configuration, and a payload larger than this would be refused by any
// broker configured sanely anyway.
const maxSuiteBytes = 16 << 20

// suite is one decoded suite file.
type suite struct {
	File   string // as given on the command line
	Policy string // resolved path of the policy file
	Cases  []testCase
}

// testCase is one case: who connects, what it does, what must happen.
type testCase struct {
	Index     int
	Name      string
	Line      int
	Client    identity
	Publish   *publishSpec   // nil: no publish
	Subscribe *subscribeSpec // nil: no subscribe; neither: a connect-only case
	Repeat    int            // connect this many times (lockouts); the last attempt is checked
	Expect    expectation
}

// identity is the client of a case. With a password it goes through the
// broker's credential check exactly as a network client does; without one
// (publish and subscribe cases) it is taken as already authenticated as
// username, which the policy must know; without a username it is anonymous.
type identity struct {
	Username, ClientID, Listener string
	Password                     []byte
	PasswordSet                  bool
}

type publishSpec struct {
	Topic   string
	QoS     byte
	Retain  bool
	Payload []byte
	User    []mqttwaf.UserProperty // MQTT 5 user properties
}

type subscribeSpec struct {
	Filter string
	QoS    byte
}

// expectation holds what a case expects; nil fields are not checked.
type expectation struct {
	Verdict    string
	Reason     *string
	Code       *mqttwaf.ReasonCode
	Deliveries []delivery
}

// delivery is what one subscriber identity must receive of the publish.
type delivery struct {
	Username string
	None     bool   // must receive nothing
	Payload  []byte // exact bytes, when !None
	Source   string // the payload_file, for reports
	// User is the MQTT 5 user properties it must receive, in order
	// (provenance, kept properties); nil: not checked.
	User []mqttwaf.UserProperty
}

// verdicts are the actions a case may expect, as the WAF names them. A
// message that passes, rewritten or not, is "allow": what subscribers get
// is what deliveries check.
var verdicts = []string{"allow", "drop", "reject", "disconnect", "ban"}

// suiteError is a mistake in a suite file, in the file's own terms.
type suiteError struct {
	file string
	line int
	at   string // "cases[2] \"name\": expect.verdict", or a top-level key
	msg  string
}

func (e *suiteError) Error() string {
	loc := e.file
	if e.line > 0 {
		loc += ":" + strconv.Itoa(e.line)
	}
	if e.at == "" {
		return loc + ": " + e.msg
	}
	return loc + ": " + e.at + ": " + e.msg
}

// suiteDecoder carries where it is, for errors.
type suiteDecoder struct {
	file string
	dir  string // payload_file and policy are relative to the suite file
	pfx  string // the case prefix, `cases[2] "name"`, or ""
}

func (d *suiteDecoder) errf(n *yaml.Node, key, format string, args ...any) error {
	at := key
	if d.pfx != "" {
		at = d.pfx
		if key != "" {
			at += ": " + key
		}
	}
	line := 0
	if n != nil {
		line = n.Line
	}
	return &suiteError{file: d.file, line: line, at: at, msg: fmt.Sprintf(format, args...)}
}

// readSuite reads and checks one suite file.
func readSuite(path string) (*suite, error) {
	data, err := readLimited(path)
	if err != nil {
		return nil, err
	}
	return parseSuite(data, path)
}

func parseSuite(data []byte, path string) (*suite, error) {
	d := &suiteDecoder{file: path, dir: filepath.Dir(path)}
	var doc yaml.Node
	if err := yaml.NewDecoder(bytes.NewReader(data)).Decode(&doc); err != nil {
		if errors.Is(err, io.EOF) {
			return nil, d.errf(nil, "", "empty; a suite needs policy: and cases:")
		}
		return nil, &suiteError{file: path, msg: err.Error()}
	}
	root := &doc
	if root.Kind == yaml.DocumentNode && len(root.Content) == 1 {
		root = root.Content[0]
	}
	top, err := d.mapping(root, "", "policy", "cases")
	if err != nil {
		return nil, err
	}
	s := &suite{File: path}
	pol, ok := top["policy"]
	if !ok {
		return nil, d.errf(root, "", "policy: is missing; name the policy file, relative to this file")
	}
	if s.Policy, err = d.str(pol, "policy"); err != nil {
		return nil, err
	}
	if s.Policy == "" {
		return nil, d.errf(pol, "policy", "empty; name the policy file, relative to this file")
	}
	s.Policy = d.rel(s.Policy)
	cases, ok := top["cases"]
	if !ok || cases.Kind != yaml.SequenceNode || len(cases.Content) == 0 {
		return nil, d.errf(root, "cases", "a suite needs a list of at least one case")
	}
	for i, n := range cases.Content {
		c, err := d.testCase(i, n)
		if err != nil {
			return nil, err
		}
		s.Cases = append(s.Cases, *c)
	}
	return s, nil
}

func (d *suiteDecoder) rel(p string) string {
	if filepath.IsAbs(p) {
		return p
	}
	return filepath.Join(d.dir, p)
}

func (d *suiteDecoder) testCase(i int, n *yaml.Node) (*testCase, error) {
	d.pfx = fmt.Sprintf("cases[%d]", i)
	defer func() { d.pfx = "" }()
	if name := caseName(n); name != "" { // so even a bad key names its case
		d.pfx = fmt.Sprintf("cases[%d] %q", i, name)
	}
	m, err := d.mapping(n, "", "name", "client", "connect", "publish", "subscribe", "repeat", "expect")
	if err != nil {
		return nil, err
	}
	c := &testCase{Index: i, Line: n.Line, Repeat: 1}
	if nn, ok := m["name"]; ok {
		if c.Name, err = d.str(nn, "name"); err != nil {
			return nil, err
		}
	}
	if c.Name == "" {
		return nil, d.errf(n, "name", "missing; give every case a name (it is the test's name in reports)")
	}
	d.pfx = fmt.Sprintf("cases[%d] %q", i, c.Name)
	cl, hasClient := m["client"]
	conn, hasConnect := m["connect"]
	switch {
	case hasClient && hasConnect:
		return nil, d.errf(conn, "connect", "give client: or connect:, not both (connect: is client: for a case that only connects)")
	case hasConnect:
		cl = conn
		hasClient = true
	}
	key := "client"
	if hasConnect {
		key = "connect"
	}
	if hasClient {
		if c.Client, err = d.identity(cl, key); err != nil {
			return nil, err
		}
	}
	if c.Client.Listener == "" {
		c.Client.Listener = "tcp"
	}
	if c.Client.ClientID == "" {
		c.Client.ClientID = c.Client.Username
		if c.Client.ClientID == "" {
			c.Client.ClientID = "wafcheck"
		}
	}
	pub, hasPub := m["publish"]
	sub, hasSub := m["subscribe"]
	if hasPub && hasSub {
		return nil, d.errf(sub, "subscribe", "a case publishes or subscribes, not both; make two cases")
	}
	if hasPub {
		if c.Publish, err = d.publish(pub); err != nil {
			return nil, err
		}
	}
	if hasSub {
		if c.Subscribe, err = d.subscribe(sub); err != nil {
			return nil, err
		}
	}
	if r, ok := m["repeat"]; ok {
		if hasPub || hasSub {
			return nil, d.errf(r, "repeat", "only for connect-only cases (lockouts); remove it or the publish/subscribe")
		}
		v, err := d.uint(r, "repeat", 1, 100)
		if err != nil {
			return nil, err
		}
		c.Repeat = int(v)
	}
	ex, ok := m["expect"]
	if !ok {
		return nil, d.errf(n, "expect", "missing; say at least expect: {verdict: allow}")
	}
	if c.Expect, err = d.expect(ex, hasPub); err != nil {
		return nil, err
	}
	return c, nil
}

// caseName is the name: of a case node, if it has a usable one.
func caseName(n *yaml.Node) string {
	if n.Kind != yaml.MappingNode {
		return ""
	}
	for i := 0; i+1 < len(n.Content); i += 2 {
		if n.Content[i].Value == "name" && n.Content[i+1].Kind == yaml.ScalarNode {
			return n.Content[i+1].Value
		}
	}
	return ""
}

func (d *suiteDecoder) identity(n *yaml.Node, key string) (identity, error) {
	var id identity
	m, err := d.mapping(n, key, "username", "password", "client_id", "listener")
	if err != nil {
		return id, err
	}
	for _, f := range []struct {
		k   string
		dst *string
	}{{"username", &id.Username}, {"client_id", &id.ClientID}, {"listener", &id.Listener}} {
		if v, ok := m[f.k]; ok {
			if *f.dst, err = d.str(v, key+"."+f.k); err != nil {
				return id, err
			}
		}
	}
	if v, ok := m["password"]; ok {
		p, err := d.str(v, key+".password")
		if err != nil {
			return id, err
		}
		id.Password, id.PasswordSet = []byte(p), true
	}
	return id, nil
}

func (d *suiteDecoder) publish(n *yaml.Node) (*publishSpec, error) {
	m, err := d.mapping(n, "publish", "topic", "qos", "retain", "payload", "payload_file", "user_properties")
	if err != nil {
		return nil, err
	}
	p := &publishSpec{}
	if p.Topic, p.QoS, err = d.topicAndQoS(n, m, "publish", "topic", "name the topic the message is published to"); err != nil {
		return nil, err
	}
	if r, ok := m["retain"]; ok {
		if p.Retain, err = d.bool(r, "publish.retain"); err != nil {
			return nil, err
		}
	}
	if p.Payload, _, err = d.payload(n, m, "publish"); err != nil {
		return nil, err
	}
	if up, ok := m["user_properties"]; ok {
		if p.User, err = d.userProperties(up, "publish.user_properties"); err != nil {
			return nil, err
		}
	}
	return p, nil
}

func (d *suiteDecoder) subscribe(n *yaml.Node) (*subscribeSpec, error) {
	m, err := d.mapping(n, "subscribe", "filter", "qos")
	if err != nil {
		return nil, err
	}
	s := &subscribeSpec{}
	if s.Filter, s.QoS, err = d.topicAndQoS(n, m, "subscribe", "filter", "give the topic filter"); err != nil {
		return nil, err
	}
	return s, nil
}

// topicAndQoS reads the required topic (or filter) key and the optional
// qos of a publish or subscribe mapping.
func (d *suiteDecoder) topicAndQoS(n *yaml.Node, m map[string]*yaml.Node, key, topicKey, hint string) (string, byte, error) {
	t, ok := m[topicKey]
	if !ok {
		return "", 0, d.errf(n, key+"."+topicKey, "missing; %s", hint)
	}
	topic, err := d.str(t, key+"."+topicKey)
	if err != nil {
		return "", 0, err
	}
	var qos uint64
	if q, ok := m["qos"]; ok {
		if qos, err = d.uint(q, key+".qos", 0, 2); err != nil {
			return "", 0, err
		}
	}
	return topic, byte(qos), nil
}

// payload reads payload: or payload_file: of mapping m (at most one; none
// is an empty payload). It returns the bytes and the file name, if any.
func (d *suiteDecoder) payload(n *yaml.Node, m map[string]*yaml.Node, key string) ([]byte, string, error) {
	inline, hasInline := m["payload"]
	file, hasFile := m["payload_file"]
	switch {
	case hasInline && hasFile:
		return nil, "", d.errf(file, key+".payload_file", "give payload: or payload_file:, not both")
	case hasInline:
		s, err := d.str(inline, key+".payload")
		return []byte(s), "", err
	case hasFile:
		name, err := d.str(file, key+".payload_file")
		if err != nil {
			return nil, "", err
		}
		data, err := readLimited(d.rel(name))
		if err != nil {
			return nil, "", d.errf(file, key+".payload_file", "%v", err)
		}
		return data, name, nil
	}
	return nil, "", nil
}

func readLimited(path string) ([]byte, error) {
	return readAtMost(path, maxSuiteBytes, "a suite and its payloads are test data, not bulk data")
}

// readAtMost reads a file of at most limit bytes; why says what to do
// about a larger one.
func readAtMost(path string, limit int64, why string) ([]byte, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	data, err := io.ReadAll(io.LimitReader(f, limit+1))
	if err == nil && int64(len(data)) > limit {
		err = fmt.Errorf("%s: larger than %d bytes; %s", path, limit, why)
	}
	return data, err
}

func (d *suiteDecoder) expect(n *yaml.Node, hasPub bool) (expectation, error) {
	var ex expectation
	m, err := d.mapping(n, "expect", "verdict", "reason", "code", "deliveries")
	if err != nil {
		return ex, err
	}
	v, ok := m["verdict"]
	if !ok {
		return ex, d.errf(n, "expect.verdict", "missing; one of %s", strings.Join(verdicts, ", "))
	}
	if ex.Verdict, err = d.str(v, "expect.verdict"); err != nil {
		return ex, err
	}
	if !slices.Contains(verdicts, ex.Verdict) {
		return ex, d.errf(v, "expect.verdict", "unknown value %q; use one of %s", ex.Verdict, strings.Join(verdicts, ", "))
	}
	if r, ok := m["reason"]; ok {
		s, err := d.str(r, "expect.reason")
		if err != nil {
			return ex, err
		}
		ex.Reason = &s
	}
	if c, ok := m["code"]; ok {
		v, err := d.uint(c, "expect.code", 0, 0xff)
		if err != nil {
			return ex, err
		}
		code := mqttwaf.ReasonCode(v)
		ex.Code = &code
	}
	if dl, ok := m["deliveries"]; ok {
		if !hasPub {
			return ex, d.errf(dl, "expect.deliveries", "only a case that publishes delivers; remove it or add publish:")
		}
		if dl.Kind != yaml.SequenceNode {
			return ex, d.errf(dl, "expect.deliveries", "must be a list of {username, payload | payload_file | none: true}")
		}
		for i, e := range dl.Content {
			key := fmt.Sprintf("expect.deliveries[%d]", i)
			dm, err := d.mapping(e, key, "username", "payload", "payload_file", "none", "user_properties")
			if err != nil {
				return ex, err
			}
			var dv delivery
			u, ok := dm["username"]
			if !ok {
				return ex, d.errf(e, key+".username", "missing; name the subscriber identity (from the policy's credentials)")
			}
			if dv.Username, err = d.str(u, key+".username"); err != nil {
				return ex, err
			}
			if nn, ok := dm["none"]; ok {
				if dv.None, err = d.bool(nn, key+".none"); err != nil {
					return ex, err
				}
			}
			_, hasPayload := dm["payload"]
			_, hasFile := dm["payload_file"]
			switch {
			case dv.None && (hasPayload || hasFile):
				return ex, d.errf(e, key, "none: true receives nothing; remove the payload")
			case !dv.None && !hasPayload && !hasFile:
				return ex, d.errf(e, key, "give payload:, payload_file: or none: true")
			}
			if dv.Payload, dv.Source, err = d.payload(e, dm, key); err != nil {
				return ex, err
			}
			if up, ok := dm["user_properties"]; ok {
				if dv.User, err = d.userProperties(up, key+".user_properties"); err != nil {
					return ex, err
				}
			}
			ex.Deliveries = append(ex.Deliveries, dv)
		}
	}
	return ex, nil
}

// userProperties reads a list of {name, value}.
func (d *suiteDecoder) userProperties(n *yaml.Node, key string) ([]mqttwaf.UserProperty, error) {
	if n.Kind != yaml.SequenceNode {
		return nil, d.errf(n, key, "must be a list of {name, value}")
	}
	out := []mqttwaf.UserProperty{}
	for i, e := range n.Content {
		at := fmt.Sprintf("%s[%d]", key, i)
		m, err := d.mapping(e, at, "name", "value")
		if err != nil {
			return nil, err
		}
		var u mqttwaf.UserProperty
		for _, f := range []struct {
			k   string
			dst *string
		}{{"name", &u.Key}, {"value", &u.Value}} {
			v, ok := m[f.k]
			if !ok {
				return nil, d.errf(e, at+"."+f.k, "missing")
			}
			if *f.dst, err = d.str(v, at+"."+f.k); err != nil {
				return nil, err
			}
		}
		out = append(out, u)
	}
	return out, nil
}

// mapping checks that n is a mapping with only known keys, each once, and
// returns its values by key.
func (d *suiteDecoder) mapping(n *yaml.Node, key string, known ...string) (map[string]*yaml.Node, error) {
	if n.Kind != yaml.MappingNode {
		what := "the file"
		if key != "" {
			what = key
		}
		return nil, d.errf(n, key, "%s must be a mapping with keys %s", what, strings.Join(known, ", "))
	}
	m := make(map[string]*yaml.Node, len(n.Content)/2)
	for i := 0; i+1 < len(n.Content); i += 2 {
		k := n.Content[i].Value
		at := k
		if key != "" {
			at = key + "." + k
		}
		if !slices.Contains(known, k) {
			return nil, d.errf(n.Content[i], at, "unknown key; known keys here: %s", strings.Join(known, ", "))
		}
		if _, dup := m[k]; dup {
			return nil, d.errf(n.Content[i], at, "given twice")
		}
		m[k] = n.Content[i+1]
	}
	return m, nil
}

func (d *suiteDecoder) str(n *yaml.Node, key string) (string, error) {
	if n.Kind != yaml.ScalarNode || n.Tag == "!!null" {
		return "", d.errf(n, key, "must be a string")
	}
	return n.Value, nil
}

func (d *suiteDecoder) bool(n *yaml.Node, key string) (bool, error) {
	var b bool
	if n.Kind != yaml.ScalarNode || n.Tag != "!!bool" || n.Decode(&b) != nil {
		return false, d.errf(n, key, "must be true or false, got %q", n.Value)
	}
	return b, nil
}

// uint reads an integer in [lo, hi], decimal or 0x hex (reason codes).
func (d *suiteDecoder) uint(n *yaml.Node, key string, lo, hi uint64) (uint64, error) {
	if n.Kind == yaml.ScalarNode {
		if v, err := strconv.ParseUint(n.Value, 0, 64); err == nil && v >= lo && v <= hi {
			return v, nil
		}
	}
	return 0, d.errf(n, key, "must be a whole number from %d to %d (0x hex allowed), got %q", lo, hi, n.Value)
}
