package proxy

import (
	"context"
	"testing"
	"time"

	"github.com/eclipse/paho.golang/paho"
	mqtt3 "github.com/eclipse/paho.mqtt.golang"

	"github.com/mqttwaf/mqttwaf/mqttwaf"
	"github.com/mqttwaf/mqttwaf/mqttwaf/mqtttest"
)

// The shared test support (mqttwaf/mqtttest), under the names these tests use.
type v5 = mqtttest.V5

var (
	startMosquitto = mqtttest.StartMosquitto
	needMosquitto  = mqtttest.NeedMosquitto
	freePort       = mqtttest.FreePort
	runTool        = mqtttest.RunTool
	dialV5         = mqtttest.DialV5
	connectV5      = mqtttest.ConnectV5
	expectMsg      = mqtttest.ExpectMsg
	waitToken      = mqtttest.WaitToken
)

// startProxy runs a proxy with policyYAML (the default policy if empty) in
// front of upstream and returns it with its event sink.
func startProxy(t testing.TB, policyYAML, upstream string, mod func(*Options)) (*Proxy, *mqtttest.Events) {
	t.Helper()
	var p *mqttwaf.Policy
	var err error
	if policyYAML != "" {
		p, err = mqttwaf.ParsePolicy([]byte(policyYAML), "test-policy.yaml")
		if err != nil {
			t.Fatal(err)
		}
	}
	return startProxyWith(t, p, upstream, mod)
}

func startProxyWith(t testing.TB, p *mqttwaf.Policy, upstream string, mod func(*Options)) (*Proxy, *mqtttest.Events) {
	t.Helper()
	ev := mqtttest.NewEvents()
	w, err := mqttwaf.New(p, mqttwaf.Options{Sink: ev})
	if err != nil {
		t.Fatal(err)
	}
	o := Options{Listen: "127.0.0.1:0", Upstream: upstream}
	if mod != nil {
		mod(&o)
	}
	px, err := New(w, o)
	if err != nil {
		t.Fatal(err)
	}
	if err := px.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = px.Close() })
	return px, ev
}

func mustV5(t testing.TB, addr, clientID, user, pass string) *v5 {
	t.Helper()
	cp := &paho.Connect{ClientID: clientID, Username: user, CleanStart: true}
	if pass != "" {
		cp.Password = []byte(pass)
	}
	c, err := dialV5(t, addr, cp)
	if err != nil {
		t.Fatalf("connect %s: %v", clientID, err)
	}
	return c
}

func subscribe5(t testing.TB, c *v5, qos byte, filters ...string) *paho.Suback {
	t.Helper()
	return mqtttest.Subscribe(t, c.Client, qos, filters...)
}

func publish5(t testing.TB, c *v5, pb *paho.Publish) (*paho.PublishResponse, error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	return c.Publish(ctx, pb)
}

// dialV3 connects an MQTT 3.1.1 client (paho.mqtt.golang) and returns the
// CONNACK return code.
func dialV3(t testing.TB, addr, clientID, user, pass string) (mqtt3.Client, byte, error) {
	t.Helper()
	return mqtttest.DialV3(t, addr, clientID, user, pass, nil)
}
