package mqttwaf

import (
	"encoding/json"
	"io"
	"sync"
	"time"
)

// ECSVersion is the Elastic Common Schema version ECSSink's lines conform
// to (ecs.version in every line).
const ECSVersion = "8.11.0"

// ECSSink writes events as JSON lines with Elastic Common Schema field
// names (events.format: ecs), so Elasticsearch, OpenSearch and the SIEMs
// that read ECS (Elastic Security, Graylog, Wazuh...) index them without a
// parser of their own. Where ECS has a field, it is used: @timestamp,
// log.level, message, event.* (kind, category, type, action, reason,
// outcome, module, dataset), rule.id, source.ip and source.port, user.name,
// observer.*, network.protocol. What ECS has no field for lives under mqtt.*
// (client_id, topic, listener, stage, reason_code, enforced, size, limit,
// value, detail). Objects are nested ({"event":{"action":...}}), the form
// ECS documents; ingest pipelines accept it as it is.
//
// Mapping: event.action is the WAF's action (reject, drop, ban...),
// event.reason its reason (topic_too_long...), rule.id the rule (a policy
// path such as limits.topic). event.outcome is "failure" when the client's
// attempt was stopped (an enforced block) and "success" otherwise (a
// rewrite, or anything in detection_only, which lets the traffic through);
// event.type is ["denied"], ["change"] or ["info"] to match. log.level is
// "warn" for blocks and "info" for the rest, as in the default format.
//
// Each event is one Write of one whole line, under the sink's lock, so
// concurrent emits never interleave within this sink; a writer shared with
// other producers must itself keep each Write whole (os.File in append
// mode does for lines this short). Write errors are returned by nothing:
// Emit must not block the packet path on a failing log; count them in the
// writer.
type ECSSink struct {
	mu sync.Mutex
	w  io.Writer
}

// NewECSSink returns an ECSSink writing to w.
func NewECSSink(w io.Writer) *ECSSink { return &ECSSink{w: w} }

// ecsLine is one event in ECS. The field order is the order of the line.
type ecsLine struct {
	Timestamp string      `json:"@timestamp"`
	Log       ecsLog      `json:"log"`
	Message   string      `json:"message"`
	ECS       ecsVersion  `json:"ecs"`
	Event     ecsEvent    `json:"event"`
	Rule      ecsRule     `json:"rule"`
	Source    *ecsSource  `json:"source,omitempty"`
	User      *ecsUser    `json:"user,omitempty"`
	Observer  ecsObserver `json:"observer"`
	Network   ecsNetwork  `json:"network"`
	MQTT      ecsMQTT     `json:"mqtt"`
}

type ecsLog struct {
	Level string `json:"level"`
}

type ecsVersion struct {
	Version string `json:"version"`
}

type ecsEvent struct {
	Kind     string   `json:"kind"`
	Category []string `json:"category"`
	Type     []string `json:"type"`
	Action   string   `json:"action"`
	Reason   string   `json:"reason,omitempty"`
	Outcome  string   `json:"outcome"`
	Module   string   `json:"module"`
	Dataset  string   `json:"dataset"`
}

type ecsRule struct {
	ID      string `json:"id"`
	Ruleset string `json:"ruleset"`
}

type ecsSource struct {
	IP   string `json:"ip"`
	Port int    `json:"port,omitempty"`
}

type ecsUser struct {
	Name string `json:"name"`
}

type ecsObserver struct {
	Product string `json:"product"`
	Type    string `json:"type"`
}

type ecsNetwork struct {
	Protocol  string `json:"protocol"`
	Transport string `json:"transport"`
}

type ecsMQTT struct {
	Stage      string `json:"stage"`
	Enforced   bool   `json:"enforced"`
	ClientID   string `json:"client_id,omitempty"`
	Topic      string `json:"topic,omitempty"`
	Listener   string `json:"listener,omitempty"`
	ReasonCode string `json:"reason_code,omitempty"`
	ReasonName string `json:"reason_code_name,omitempty"`
	Size       int    `json:"size,omitempty"`
	Limit      int64  `json:"limit,omitempty"`
	Value      int64  `json:"value,omitempty"`
	Detail     string `json:"detail,omitempty"`
}

// ecsOf maps an event to its ECS line.
func ecsOf(e Event) ecsLine {
	l := ecsLine{
		Timestamp: e.Time.UTC().Format(time.RFC3339Nano),
		Log:       ecsLog{Level: "info"},
		ECS:       ecsVersion{Version: ECSVersion},
		Event: ecsEvent{Kind: "event", Category: []string{"network"}, Type: []string{"info"},
			Action: e.Action.String(), Reason: e.Reason, Outcome: "success", Module: "mqttwaf", Dataset: "mqttwaf.events"},
		Rule:     ecsRule{ID: e.Rule, Ruleset: "mqttwaf"},
		Observer: ecsObserver{Product: "mqttwaf", Type: "firewall"},
		Network:  ecsNetwork{Protocol: "mqtt", Transport: "tcp"},
		MQTT: ecsMQTT{Stage: string(e.Stage), Enforced: e.Enforced, ClientID: e.ClientID, Topic: e.Topic,
			Listener: e.Listener, Size: e.Size, Limit: e.Limit, Value: e.Value, Detail: e.Detail},
	}
	if e.Action.Blocks() {
		l.Log.Level = "warn"
	}
	switch {
	case e.Action.Blocks() && e.Enforced:
		l.Event.Type, l.Event.Outcome = []string{"denied"}, "failure"
	case e.Action == Rewrite && e.Enforced:
		l.Event.Type = []string{"change"}
	}
	if e.Stage == StageConnect {
		// CONNECT is where identity is decided: SIEM authentication views
		// pick these up.
		l.Event.Category = append(l.Event.Category, "authentication")
	}
	if e.Stage == StageAdmin {
		// An operator's action through the admin API (HTTP), not MQTT
		// traffic: SIEM configuration-change views pick these up.
		l.Event.Category, l.Network.Protocol = []string{"configuration"}, "http"
	}
	if e.Code != 0 {
		code, _ := e.Code.MarshalText()
		l.MQTT.ReasonCode, l.MQTT.ReasonName = string(code), e.Code.String()
	}
	if e.RemoteIP != "" {
		l.Source = &ecsSource{IP: e.RemoteIP, Port: e.RemotePort}
	}
	if e.Username != "" {
		l.User = &ecsUser{Name: e.Username}
	}
	// message is what a SIEM shows in its list: what happened, then why.
	l.Message = "mqttwaf " + e.Action.String() + " " + string(e.Stage) + ": " + e.Rule
	if e.Reason != "" {
		l.Message += " (" + e.Reason + ")"
	}
	if !e.Enforced {
		l.Message += " [detection_only: not enforced]"
	}
	if e.Detail != "" {
		l.Message += ": " + e.Detail
	}
	return l
}

// Emit implements Sink.
func (s *ECSSink) Emit(e Event) {
	b, err := json.Marshal(ecsOf(e))
	if err != nil { // cannot happen: every field is a string, number or bool
		return
	}
	b = append(b, '\n')
	s.mu.Lock()
	defer s.mu.Unlock()
	_, _ = s.w.Write(b)
}
