package main

import (
	"context"
	"io"
	"net"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/eclipse/paho.golang/paho"
)

func TestWrapExistingIsProtected(t *testing.T) {
	policy := filepath.Join(t.TempDir(), "p.yaml")
	if err := os.WriteFile(policy, []byte("connections: {connect_timeout: 500ms}\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	addrc := make(chan string, 1)
	done := make(chan error, 1)
	go func() {
		done <- run(ctx, []string{"-addr", "127.0.0.1:0", "-policy", policy}, io.Discard, func(a string) { addrc <- a })
	}()
	defer func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("run: %v", err)
		}
	}()
	var addr string
	select {
	case addr = <-addrc:
	case err := <-done:
		t.Fatalf("run: %v", err)
	case <-time.After(10 * time.Second):
		t.Fatal("not ready")
	}

	// An idle socket is closed at the CONNECT deadline, which plain mochi never does.
	idle, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer idle.Close()
	_ = idle.SetReadDeadline(time.Now().Add(5 * time.Second))
	start := time.Now()
	if _, err := io.ReadAll(idle); err != nil {
		t.Fatalf("idle socket not closed: %v", err)
	}
	if d := time.Since(start); d > 4*time.Second {
		t.Fatalf("closed after %s", d)
	}

	// And clients still work where the policy lets them (the default policy:
	// anonymous local clients, a sandbox per client ID); the WAF replaced
	// AllowHook as the authentication provider.
	conn, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	c := paho.NewClient(paho.ClientConfig{Conn: conn})
	cctx, ccancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer ccancel()
	if _, err := c.Connect(cctx, &paho.Connect{ClientID: "dev1", CleanStart: true, KeepAlive: 30}); err != nil {
		t.Fatal(err)
	}
	if _, err := c.Publish(cctx, &paho.Publish{Topic: "guest/dev1/status", QoS: 1, Payload: []byte("up")}); err != nil {
		t.Fatal(err)
	}
	// ...and nowhere else.
	if _, err := c.Publish(cctx, &paho.Publish{Topic: "status/dev1", QoS: 1, Payload: []byte("up")}); err == nil {
		t.Fatal("publish outside the policy accepted")
	}
	_ = c.Disconnect(&paho.Disconnect{})
}
