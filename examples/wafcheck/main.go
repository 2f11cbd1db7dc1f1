// Command wafcheck dry-runs a policy on one message, without a broker: it
// runs the same engine the broker runs (a CONNECT for the client, then the
// PUBLISH) and prints what subscribers would receive.
//
//	go run ./examples/wafcheck -policy fleet.yaml -topic fleet/dev1/telemetry [-client dev1] [-username dev1] [-subscriber backend] < payload.json
//
// Exit status: 0 and the delivered payload on stdout when the message
// passes; 1 and the rejection (rule, reason, reason code) on stderr when it
// is refused; 2 for usage or policy errors. With -json the verdict is one
// JSON object on stdout whatever it is.
//
//	go run ./examples/wafcheck test [-report json] [-junit FILE] SUITE.yaml...
//
// runs policy regression suites (see suite.go for the format, README.md
// "Policy regression suites"): exit status 0 when every case passes, 1 when
// any fails, 2 for a bad suite or policy file.
//
//	go run ./examples/wafcheck lint [-sample FILE]... [-format human|json] POLICY
//
// lints a policy (see lint.go, README.md "Linting a policy"): exit status 0
// without findings at warning or above, 1 with warnings only, 2 with errors
// or a policy that does not load.
//
//	go run ./examples/wafcheck import-mosquitto -passwd FILE -acl FILE [-out DIR]
//
// writes a policy and a credentials file made from a mosquitto password
// file and ACL file (see importmosq.go, README.md "Importing a mosquitto
// configuration"); what cannot be carried over is a warning on stderr.
package main

import (
	"encoding/base64"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"os"
	"unicode/utf8"

	"github.com/mqttwaf/mqttwaf/mqttwaf"
)

func main() {
	os.Exit(run(os.Args[1:], os.Stdin, os.Stdout, os.Stderr))
}

// result is the -json output.
type result struct {
	Verdict       string          `json:"verdict"` // allow, rewrite, drop, reject, disconnect, ban
	Stage         string          `json:"stage,omitempty"`
	Rule          string          `json:"rule,omitempty"`
	Reason        string          `json:"reason,omitempty"`
	Code          string          `json:"code,omitempty"`
	Payload       *string         `json:"payload,omitempty"`        // UTF-8 payload subscribers receive
	PayloadBase64 *string         `json:"payload_base64,omitempty"` // when it is not UTF-8
	Events        []mqttwaf.Event `json:"events"`
}

func run(args []string, stdin io.Reader, stdout, stderr io.Writer) int {
	if len(args) > 0 && args[0] == "test" {
		return runTest(args[1:], stdout, stderr)
	}
	if len(args) > 0 && args[0] == "lint" {
		return runLint(args[1:], stdout, stderr)
	}
	if len(args) > 0 && args[0] == "import-mosquitto" {
		return runImportMosquitto(args[1:], stderr)
	}
	fs := flag.NewFlagSet("wafcheck", flag.ContinueOnError)
	fs.SetOutput(stderr)
	policyPath := fs.String("policy", "", "policy file (YAML or JSON); the embedded default policy if empty")
	topic := fs.String("topic", "", "topic the message is published to (required)")
	clientID := fs.String("client", "wafcheck", "client ID of the publisher")
	username := fs.String("username", "", "identity of the publisher, from the policy's credentials file (anonymous if empty)")
	listener := fs.String("listener", "tcp", "listener id the publisher is connected to")
	qos := fs.Uint("qos", 0, "QoS of the publish (0, 1 or 2)")
	retain := fs.Bool("retain", false, "publish as a retained message")
	asJSON := fs.Bool("json", false, "print the verdict as one JSON object on stdout")
	subscriber := fs.String("subscriber", "", "show what this identity receives (its role's view); default: a subscriber without a raw view")
	if err := fs.Parse(args); err != nil {
		return 2
	}
	if *topic == "" || fs.NArg() > 0 || *qos > 2 {
		fmt.Fprintln(stderr, "usage: wafcheck [-policy FILE] -topic TOPIC [-client ID] [-username U] [-qos N] [-retain] [-json] < payload")
		return 2
	}
	policy := &mqttwaf.Policy{}
	var err error
	if *policyPath != "" {
		if policy, err = mqttwaf.ReadPolicyFile(*policyPath); err != nil {
			fmt.Fprintln(stderr, "wafcheck:", err)
			return 2
		}
	}
	// A message larger than the broker would accept is refused there from
	// its header; read one byte more than that to tell.
	maxPacket := int64(policy.WithDefaults().Broker.MaxPacketSize)
	payload, err := io.ReadAll(io.LimitReader(stdin, maxPacket+1))
	if err != nil {
		fmt.Fprintln(stderr, "wafcheck: reading the payload:", err)
		return 2
	}

	var res result
	sink := mqttwaf.SinkFunc(func(e mqttwaf.Event) { res.Events = append(res.Events, e) })
	w, err := mqttwaf.New(policy, mqttwaf.Options{Sink: sink, LocalState: true})
	if err != nil {
		fmt.Fprintln(stderr, "wafcheck:", err)
		return 2
	}
	v, out, stage := check(w, payload, maxPacket, *clientID, *username, *listener, *topic, byte(*qos), *retain)
	if !v.Blocked() && w.HasViews() {
		// The broker stores the message as published and redacts per
		// subscriber: show the view of the subscriber asked for.
		stored := out
		if stored == nil {
			stored = payload
		}
		var sub *mqttwaf.Client
		if *subscriber != "" {
			sub = &mqttwaf.Client{ID: *subscriber, Username: *subscriber, Auth: mqttwaf.AuthPassword}
		}
		if view, changed := w.View(sub, *topic, stored); changed {
			out = view
		}
	}
	res.Verdict = v.Action.String()
	if v.Blocked() {
		code, _ := v.Code.MarshalText()
		res.Stage, res.Rule, res.Reason, res.Code = string(stage), v.Rule, v.Reason, string(code)
	} else {
		if out == nil {
			out = payload
		} else {
			res.Verdict = mqttwaf.Rewrite.String()
		}
		if utf8.Valid(out) {
			s := string(out)
			res.Payload = &s
		} else {
			s := base64.StdEncoding.EncodeToString(out)
			res.PayloadBase64 = &s
		}
	}

	if *asJSON {
		enc := json.NewEncoder(stdout)
		enc.SetIndent("", "  ")
		if err := enc.Encode(res); err != nil {
			fmt.Fprintln(stderr, "wafcheck:", err)
			return 2
		}
	} else if v.Blocked() {
		fmt.Fprintf(stderr, "refused at %s by %s: %s (reason code %s, %s)\n", stage, v.Rule, v.Reason, res.Code, v.Code)
	} else if _, err := stdout.Write(out); err != nil {
		fmt.Fprintln(stderr, "wafcheck:", err)
		return 2
	}
	if v.Blocked() {
		return 1
	}
	return 0
}

// check runs the broker's stages for one publisher and one message: the
// socket, the CONNECT, then the PUBLISH. It returns the deciding verdict,
// the rewritten payload (nil if unchanged) and the stage that decided.
func check(w *mqttwaf.WAF, payload []byte, maxPacket int64, clientID, username, listener, topic string, qos byte, retain bool) (mqttwaf.Verdict, []byte, mqttwaf.Stage) {
	if v, ok := tooLarge(payload, maxPacket); !ok {
		return v, nil, mqttwaf.StageAccept
	}
	c, v, stage := connectAs(w, identity{ClientID: clientID, Username: username, Listener: listener}, localRemote)
	if v.Blocked() {
		return v, nil, stage
	}
	defer w.Close(localRemote)
	v, out := w.PublishLayers(c, &mqttwaf.Message{Topic: topic, QoS: qos, Retain: retain, Payload: payload})
	if out == nil {
		return v, nil, mqttwaf.StagePublish
	}
	return v, out.Payload, mqttwaf.StagePublish
}

// localRemote is the address wafcheck's clients connect from: it has no
// real peer, so it checks as a local client.
const localRemote = "127.0.0.1:50000"

// tooLarge refuses a message larger than the broker accepts, as the broker
// does from the packet's header, before any rule sees it.
func tooLarge(payload []byte, maxPacket int64) (mqttwaf.Verdict, bool) {
	if int64(len(payload)) > maxPacket {
		return mqttwaf.Verdict{Action: mqttwaf.Disconnect, Rule: "connections.max_packet_size", Reason: "packet_too_large",
			Code: mqttwaf.CodePacketTooLarge}, false
	}
	return mqttwaf.Verdict{}, true
}

// connectAs runs the broker's accept and CONNECT stages for id connecting
// from remote, and returns the client as the engine established it. When
// the verdict passes, the caller must w.Close(remote).
//
// A client with a password, and an anonymous one, take exactly the path a
// network client takes in the broker (hooks build the client with no
// authentication method and let identity.authenticate decide), so the
// reasons are the broker's: anonymous_not_allowed, bad_credentials. Only a
// user name without a password is taken as already authenticated (a dry
// run knows no device's password); the policy must know the identity.
func connectAs(w *mqttwaf.WAF, id identity, remote string) (*mqttwaf.Client, mqttwaf.Verdict, mqttwaf.Stage) {
	if v := w.Open(id.Listener, remote); v.Blocked() {
		return nil, v, mqttwaf.StageAccept
	}
	c := &mqttwaf.Client{ID: id.ClientID, Username: id.Username, Listener: id.Listener, RemoteAddr: remote,
		RemoteIP: mqttwaf.ParseRemoteIP(remote), Protocol: mqttwaf.MQTT5}
	if id.Username != "" && !id.PasswordSet {
		c.Auth = mqttwaf.AuthPassword
	}
	conn := &mqttwaf.Connect{Client: c, Clean: true, Keepalive: 60, UsernameSet: id.Username != "", Password: id.Password}
	if v := w.Connect(conn); v.Blocked() {
		w.Close(remote)
		return nil, v, mqttwaf.StageConnect
	}
	w.Established(c)
	return c, mqttwaf.Verdict{}, mqttwaf.StageConnect
}
