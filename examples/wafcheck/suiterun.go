package main

// `wafcheck test SUITE.yaml...`: runs policy regression suites (suite.go)
// through the engine the broker runs, and reports them for people (lines),
// for tools (-report json) and for CI (-junit FILE).

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"encoding/xml"
	"flag"
	"fmt"
	"io"
	"os"
	"slices"
	"strconv"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"

	"github.com/mqttwaf/mqttwaf/mqttwaf"
)

// report is the -report json output.
type report struct {
	Passed int           `json:"passed"`
	Failed int           `json:"failed"`
	Suites []suiteReport `json:"suites"`
}

type suiteReport struct {
	File   string       `json:"file"`
	Policy string       `json:"policy"`
	Cases  []caseResult `json:"cases"`
}

type caseResult struct {
	Index    int             `json:"index"`
	Name     string          `json:"name"`
	Line     int             `json:"line"`
	Passed   bool            `json:"passed"`
	Failures []string        `json:"failures,omitempty"` // what differs, one line each
	Got      outcome         `json:"got"`
	Events   []mqttwaf.Event `json:"events"`
	Seconds  float64         `json:"seconds"`
}

// outcome is what the engine decided for a case.
type outcome struct {
	Verdict    string        `json:"verdict"`
	Stage      string        `json:"stage,omitempty"`
	Rule       string        `json:"rule,omitempty"`
	Reason     string        `json:"reason,omitempty"`
	Code       string        `json:"code"`
	Deliveries []gotDelivery `json:"deliveries,omitempty"`
}

type gotDelivery struct {
	Username       string         `json:"username"`
	None           bool           `json:"none,omitempty"` // receives nothing
	Why            string         `json:"why,omitempty"`  // why nothing: the refusing reason
	Payload        *string        `json:"payload,omitempty"`
	PayloadBase64  *string        `json:"payload_base64,omitempty"` // when not UTF-8
	UserProperties []userProperty `json:"user_properties,omitempty"`
	bytes          []byte
	user           []mqttwaf.UserProperty
}

// userProperty is an MQTT 5 user property in the JSON report.
type userProperty struct {
	Name  string `json:"name"`
	Value string `json:"value"`
}

const testUsage = "usage: wafcheck test [-report human|json] [-junit FILE] SUITE.yaml..."

// runTest is `wafcheck test`. Exit status: 0 when every case passes, 1
// when any fails, 2 for a bad suite or policy file (nothing is run then).
func runTest(args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("wafcheck test", flag.ContinueOnError)
	fs.SetOutput(stderr)
	format := fs.String("report", "human", "report on stdout: human (one line per case) or json")
	junit := fs.String("junit", "", "also write a JUnit XML report to this file (for CI)")
	if err := fs.Parse(args); err != nil {
		return 2
	}
	if fs.NArg() == 0 || (*format != "human" && *format != "json") {
		fmt.Fprintln(stderr, testUsage)
		return 2
	}
	type loaded struct {
		s *suite
		p *mqttwaf.Policy
	}
	var suites []loaded
	bad := false
	for _, path := range fs.Args() {
		s, err := readSuite(path)
		if err != nil {
			fmt.Fprintln(stderr, "wafcheck test:", err)
			bad = true
			continue
		}
		p, err := mqttwaf.ReadPolicyFile(s.Policy)
		if err == nil {
			_, err = mqttwaf.New(p, mqttwaf.Options{Sink: mqttwaf.SinkFunc(func(mqttwaf.Event) {}), LocalState: true})
		}
		if err != nil {
			fmt.Fprintf(stderr, "wafcheck test: %s: policy: %v\n", path, err)
			bad = true
			continue
		}
		suites = append(suites, loaded{s, p})
	}
	if bad {
		return 2
	}
	var rep report
	for _, l := range suites {
		sr := suiteReport{File: l.s.File, Policy: l.s.Policy}
		for _, c := range l.s.Cases {
			r := runCase(l.p, &c)
			if r.Passed {
				rep.Passed++
			} else {
				rep.Failed++
			}
			sr.Cases = append(sr.Cases, r)
		}
		rep.Suites = append(rep.Suites, sr)
	}
	if *junit != "" {
		if err := writeJUnit(*junit, &rep); err != nil {
			fmt.Fprintln(stderr, "wafcheck test: -junit:", err)
			return 2
		}
	}
	if *format == "json" {
		enc := json.NewEncoder(stdout)
		enc.SetIndent("", "  ")
		if err := enc.Encode(&rep); err != nil {
			fmt.Fprintln(stderr, "wafcheck test:", err)
			return 2
		}
	} else {
		writeHuman(stdout, &rep)
	}
	if rep.Failed > 0 {
		return 1
	}
	return 0
}

// runCase runs one case on a WAF of its own, so no case's lockouts,
// rates or sessions leak into the next.
func runCase(p *mqttwaf.Policy, c *testCase) caseResult {
	start := time.Now()
	r := caseResult{Index: c.Index, Name: c.Name, Line: c.Line, Events: []mqttwaf.Event{}}
	sink := mqttwaf.SinkFunc(func(e mqttwaf.Event) { r.Events = append(r.Events, e) })
	w, err := mqttwaf.New(p, mqttwaf.Options{Sink: sink, LocalState: true})
	if err != nil { // checked when the suite was loaded; a file changed since
		r.Failures = append(r.Failures, "policy: "+err.Error())
		return r
	}
	v, stage, deliveries := play(w, p, c)
	r.Got = outcome{Verdict: v.Action.String(), Deliveries: deliveries}
	if !v.Blocked() {
		r.Got.Verdict = "allow" // rewritten or not: deliveries say what subscribers get
	}
	code, _ := v.Code.MarshalText()
	r.Got.Code = string(code)
	if v.Blocked() {
		r.Got.Stage, r.Got.Rule, r.Got.Reason = string(stage), v.Rule, v.Reason
	}
	r.Failures = append(r.Failures, compare(c, &r.Got)...)
	r.Passed = len(r.Failures) == 0
	r.Seconds = time.Since(start).Seconds()
	return r
}

// play runs the case's client through the broker's stages: accept,
// CONNECT (repeated for lockout cases), then its SUBSCRIBE or PUBLISH, and
// for a publish that passes, each expected subscriber's delivery.
func play(w *mqttwaf.WAF, p *mqttwaf.Policy, c *testCase) (mqttwaf.Verdict, mqttwaf.Stage, []gotDelivery) {
	var msg *mqttwaf.Message
	if c.Publish != nil {
		msg = &mqttwaf.Message{Topic: c.Publish.Topic, QoS: c.Publish.QoS, Retain: c.Publish.Retain, Payload: c.Publish.Payload,
			Props: mqttwaf.Properties{User: c.Publish.User}}
		if v, ok := tooLarge(msg.Payload, int64(p.WithDefaults().Broker.MaxPacketSize)); !ok {
			return v, mqttwaf.StageAccept, nil
		}
	}
	var cl *mqttwaf.Client
	var v mqttwaf.Verdict
	var stage mqttwaf.Stage
	for range c.Repeat {
		if cl != nil {
			w.Close(localRemote) // the previous attempt's socket
		}
		cl, v, stage = connectAs(w, c.Client, localRemote)
	}
	if v.Blocked() {
		return v, stage, nil
	}
	defer w.Close(localRemote)
	switch {
	case c.Subscribe != nil:
		return w.Subscribe(cl, &mqttwaf.Subscription{Filter: c.Subscribe.Filter, QoS: c.Subscribe.QoS}), mqttwaf.StageSubscribe, nil
	case msg == nil:
		return v, stage, nil
	}
	v, out := w.PublishLayers(cl, msg)
	if v.Blocked() {
		return v, mqttwaf.StagePublish, nil
	}
	if out != nil {
		msg = out
	}
	var got []gotDelivery
	for i, d := range c.Expect.Deliveries {
		got = append(got, deliver(w, d.Username, "127.0.0.1:"+strconv.Itoa(50001+i), msg))
	}
	return v, mqttwaf.StagePublish, got
}

// deliver is what subscriber identity username receives of msg, the
// message as the broker stores it: it connects, subscribes to the topic
// itself, passes the delivery check, and gets its view of the message.
func deliver(w *mqttwaf.WAF, username, remote string, msg *mqttwaf.Message) gotDelivery {
	g := gotDelivery{Username: username, None: true}
	sub, v, _ := connectAs(w, identity{Username: username, ClientID: username, Listener: "tcp"}, remote)
	if v.Blocked() {
		g.Why = "cannot connect: " + v.Reason
		return g
	}
	defer w.Close(remote)
	if v := w.Subscribe(sub, &mqttwaf.Subscription{Filter: msg.Topic, QoS: msg.QoS}); v.Blocked() {
		g.Why = "cannot subscribe: " + v.Reason
		return g
	}
	if v := w.Deliver(sub, msg.Topic); v.Blocked() {
		g.Why = "delivery refused: " + v.Reason
		return g
	}
	view, _ := w.ViewMessage(sub, msg)
	g.None, g.bytes, g.user = false, view.Payload, view.Props.User
	for _, u := range view.Props.User {
		g.UserProperties = append(g.UserProperties, userProperty{u.Key, u.Value})
	}
	if utf8.Valid(view.Payload) {
		s := string(view.Payload)
		g.Payload = &s
	} else {
		s := base64.StdEncoding.EncodeToString(view.Payload)
		g.PayloadBase64 = &s
	}
	return g
}

// compare lists how got differs from what c expects.
func compare(c *testCase, got *outcome) []string {
	var out []string
	ex := &c.Expect
	if got.Verdict != ex.Verdict {
		out = append(out, fmt.Sprintf("verdict: got %s, want %s%s", got.Verdict, ex.Verdict, because(got)))
	}
	if ex.Reason != nil && got.Reason != *ex.Reason {
		out = append(out, fmt.Sprintf("reason: got %q, want %q", got.Reason, *ex.Reason))
	}
	if ex.Code != nil {
		if want, _ := ex.Code.MarshalText(); got.Code != string(want) {
			out = append(out, fmt.Sprintf("code: got %s, want %s (%s)", got.Code, want, *ex.Code))
		}
	}
	for i, d := range ex.Deliveries {
		at := fmt.Sprintf("deliveries[%d] (%s)", i, d.Username)
		var g gotDelivery
		if i < len(got.Deliveries) {
			g = got.Deliveries[i]
		} else {
			g.None, g.Why = true, "the publish was refused"
		}
		switch {
		case d.None && !g.None:
			out = append(out, fmt.Sprintf("%s: receives %d bytes, want nothing", at, len(g.bytes)))
		case !d.None && g.None:
			out = append(out, fmt.Sprintf("%s: receives nothing (%s), want %d bytes", at, g.Why, len(d.Payload)))
		case !d.None && !bytes.Equal(g.bytes, d.Payload):
			out = append(out, at+": "+diff(g.bytes, d.Payload, d.Source))
		}
		if d.User != nil && !g.None && !slices.Equal(g.user, d.User) {
			out = append(out, fmt.Sprintf("%s: user properties %s, want %s", at, props(g.user), props(d.User)))
		}
	}
	return out
}

func props(ps []mqttwaf.UserProperty) string {
	if len(ps) == 0 {
		return "none"
	}
	var b strings.Builder
	for i, p := range ps {
		if i > 0 {
			b.WriteString(", ")
		}
		fmt.Fprintf(&b, "%s=%q", p.Key, p.Value)
	}
	return b.String()
}

func because(got *outcome) string {
	if got.Reason == "" {
		return ""
	}
	return fmt.Sprintf(" (%s at %s by %s, %s)", got.Reason, got.Stage, got.Rule, got.Code)
}

// diff says where two payloads first differ, with some context around it.
func diff(got, want []byte, source string) string {
	i := 0
	for i < len(got) && i < len(want) && got[i] == want[i] {
		i++
	}
	from := max(0, i-24)
	window := func(b []byte) string {
		if from >= len(b) {
			return "``"
		}
		return show(b[from:min(len(b), i+24)])
	}
	what := "the payload"
	if source != "" {
		what = source
	}
	return fmt.Sprintf("payload differs from %s at byte %d (got %d bytes, want %d): got …%s…, want …%s…",
		what, i, len(got), len(want), window(got), window(want))
}

// show quotes a payload excerpt for a report: as it is between backquotes
// when it is printable text (JSON stays readable), Go-quoted otherwise.
func show(b []byte) string {
	s := string(b)
	if utf8.ValidString(s) && !strings.ContainsFunc(s, func(r rune) bool { return r == '`' || !unicode.IsPrint(r) && r != ' ' }) {
		return "`" + s + "`"
	}
	return strconv.Quote(s)
}

func writeHuman(w io.Writer, rep *report) {
	for _, s := range rep.Suites {
		for _, c := range s.Cases {
			if c.Passed {
				fmt.Fprintf(w, "ok   %s:%d cases[%d] %s\n", s.File, c.Line, c.Index, c.Name)
				continue
			}
			fmt.Fprintf(w, "FAIL %s:%d cases[%d] %s\n", s.File, c.Line, c.Index, c.Name)
			for _, f := range c.Failures {
				fmt.Fprintf(w, "       %s\n", f)
			}
		}
	}
	fmt.Fprintf(w, "%d passed, %d failed\n", rep.Passed, rep.Failed)
}

// JUnit XML, the subset CI systems read (Jenkins, GitLab, GitHub actions).
type junitSuites struct {
	XMLName  xml.Name     `xml:"testsuites"`
	Tests    int          `xml:"tests,attr"`
	Failures int          `xml:"failures,attr"`
	Suites   []junitSuite `xml:"testsuite"`
}

type junitSuite struct {
	Name     string      `xml:"name,attr"`
	Tests    int         `xml:"tests,attr"`
	Failures int         `xml:"failures,attr"`
	Time     string      `xml:"time,attr"`
	Cases    []junitCase `xml:"testcase"`
}

type junitCase struct {
	Name      string        `xml:"name,attr"`
	ClassName string        `xml:"classname,attr"`
	Time      string        `xml:"time,attr"`
	Failure   *junitFailure `xml:"failure"`
}

type junitFailure struct {
	Message string `xml:"message,attr"`
	Text    string `xml:",chardata"`
}

func writeJUnit(path string, rep *report) error {
	out := junitSuites{Tests: rep.Passed + rep.Failed, Failures: rep.Failed}
	for _, s := range rep.Suites {
		js := junitSuite{Name: s.File, Tests: len(s.Cases)}
		total := 0.0
		for _, c := range s.Cases {
			total += c.Seconds
			jc := junitCase{Name: fmt.Sprintf("cases[%d] %s", c.Index, c.Name), ClassName: s.File, Time: seconds(c.Seconds)}
			if !c.Passed {
				js.Failures++
				var text bytes.Buffer
				for _, f := range c.Failures {
					text.WriteString(f + "\n")
				}
				jc.Failure = &junitFailure{Message: c.Failures[0], Text: text.String()}
			}
			js.Cases = append(js.Cases, jc)
		}
		js.Time = seconds(total)
		out.Suites = append(out.Suites, js)
	}
	data, err := xml.MarshalIndent(out, "", "  ")
	if err != nil {
		return err
	}
	return os.WriteFile(path, append([]byte(xml.Header), append(data, '\n')...), 0o644)
}

func seconds(s float64) string { return strconv.FormatFloat(s, 'f', 3, 64) }
