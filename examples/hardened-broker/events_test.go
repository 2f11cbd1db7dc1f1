package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/eclipse/paho.golang/packets"
	"github.com/eclipse/paho.golang/paho"
)

// refusedPublish connects clientID (MQTT 5, anonymous: the default policy's
// guest sandbox) and publishes to a 9-level topic in its sandbox, which the
// default limits.topic refuses: one event naming the client.
func refusedPublish(t *testing.T, addr, clientID string) {
	t.Helper()
	conn, err := net.DialTimeout("tcp", addr, 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	c := paho.NewClient(paho.ClientConfig{Conn: packets.NewThreadSafeConn(conn), PacketTimeout: 5 * time.Second})
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if _, err := c.Connect(ctx, &paho.Connect{ClientID: clientID, KeepAlive: 30, CleanStart: true}); err != nil {
		t.Fatalf("%s: connect: %v", clientID, err)
	}
	defer c.Disconnect(&paho.Disconnect{})
	pr, err := c.Publish(ctx, &paho.Publish{Topic: "guest/" + clientID + "/a/b/c/d/e/f/g", QoS: 1, Payload: []byte("x")})
	if err == nil && (pr == nil || pr.ReasonCode < 0x80) {
		t.Fatalf("%s: a 9-level topic was accepted", clientID)
	}
}

// fileLines waits until the file at path has a line containing want, and
// returns all its lines.
func fileLines(t *testing.T, path, want string) []string {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		b, _ := os.ReadFile(path)
		if bytes.Contains(b, []byte(want)) {
			return strings.Split(strings.TrimSuffix(string(b), "\n"), "\n")
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s has no line with %q:\n%s", path, want, b)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// TestEventsFileRotation: with -events-file the events go to the file as
// well as stderr, in the policy's events.format; after logrotate's
// rename-then-SIGHUP, earlier lines stay in the renamed file and later ones
// go to a new file at the same path. The json and ecs lines logged here
// (go test -v -run TestEventsFileRotation) are the README's samples.
func TestEventsFileRotation(t *testing.T) {
	for _, tc := range []struct {
		format string
		// client is where the line names the client, action what it did
		client, action func(map[string]any) any
	}{
		{"json", func(m map[string]any) any { return m["client_id"] }, func(m map[string]any) any { return m["action"] }},
		{"ecs", func(m map[string]any) any { return m["mqtt"].(map[string]any)["client_id"] },
			func(m map[string]any) any { return m["event"].(map[string]any)["action"] }},
	} {
		t.Run(tc.format, func(t *testing.T) {
			dir := t.TempDir()
			policy, path := filepath.Join(dir, "p.yaml"), filepath.Join(dir, "events.log")
			if err := os.WriteFile(policy, []byte("events: {format: "+tc.format+"}\n"), 0o600); err != nil {
				t.Fatal(err)
			}
			addr, stderr := startBroker(t, "-policy", policy, "-events-file", path)
			refusedPublish(t, addr, "before-rotation")
			fileLines(t, path, "before-rotation")

			if err := os.Rename(path, path+".1"); err != nil {
				t.Fatal(err)
			}
			hup(t)
			waitStderr(t, stderr, `"msg":"policy reloaded"`)
			refusedPublish(t, addr, "after-rotation")
			newer := fileLines(t, path, "after-rotation")
			older := fileLines(t, path+".1", "before-rotation")
			if strings.Contains(strings.Join(older, "\n"), "after-rotation") || strings.Contains(strings.Join(newer, "\n"), "before-rotation") {
				t.Fatalf("lines in the wrong file:\nrotated: %q\nnew: %q", older, newer)
			}
			for _, line := range append(older, newer...) {
				var m map[string]any
				if err := json.Unmarshal([]byte(line), &m); err != nil {
					t.Fatalf("not a JSON line: %q", line)
				}
				if id := tc.client(m); id != "before-rotation" && id != "after-rotation" {
					t.Fatalf("line names client %v: %s", id, line)
				}
				if a := tc.action(m); a != "reject" {
					t.Fatalf("line has action %v: %s", a, line)
				}
				if !strings.Contains(stderr.String(), line) {
					t.Fatalf("the file's line is not on stderr: %s", line)
				}
			}
			t.Logf("sample %s line: %s", tc.format, newer[len(newer)-1])
		})
	}
}

// TestEventFileConcurrentAndReopened: lines written from many goroutines
// while the file is rotated and reopened are all written, each whole, in
// one of the files.
func TestEventFileConcurrentAndReopened(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "events.log")
	f, err := openEventFile(path, slog.New(slog.NewJSONHandler(io.Discard, nil)))
	if err != nil {
		t.Fatal(err)
	}
	const writers, perWriter, rotations = 8, 400, 10
	var wg sync.WaitGroup
	for w := range writers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			buf := make([]byte, 0, 512)
			for i := range perWriter {
				// Lines of different lengths, built in a reused buffer as slog does.
				buf = fmt.Appendf(buf[:0], `{"writer":%d,"line":%d,"pad":"%s"}`+"\n", w, i, strings.Repeat("x", (w*perWriter+i)%300))
				f.enqueue(buf)
			}
		}()
	}
	for r := range rotations {
		if err := os.Rename(path, fmt.Sprintf("%s.%d", path, r)); err != nil {
			t.Fatal(err)
		}
		if err := f.reopen(); err != nil {
			t.Fatal(err)
		}
	}
	wg.Wait()
	f.close()

	seen := map[string]bool{}
	files, _ := filepath.Glob(path + "*")
	for _, name := range files {
		fh, err := os.Open(name)
		if err != nil {
			t.Fatal(err)
		}
		sc := bufio.NewScanner(fh)
		for sc.Scan() {
			var l struct {
				Writer, Line int
				Pad          string
			}
			if err := json.Unmarshal(sc.Bytes(), &l); err != nil || len(l.Pad) != (l.Writer*perWriter+l.Line)%300 {
				t.Fatalf("%s: broken line %q", name, sc.Text())
			}
			key := fmt.Sprint(l.Writer, "/", l.Line)
			if seen[key] {
				t.Fatalf("line %s written twice", key)
			}
			seen[key] = true
		}
		fh.Close()
	}
	if len(seen) != writers*perWriter || f.written.Load() != writers*perWriter || f.dropped.Load() != 0 || f.failed.Load() != 0 {
		t.Fatalf("%d distinct lines in %d files, written %d dropped %d failed %d; want %d written",
			len(seen), len(files), f.written.Load(), f.dropped.Load(), f.failed.Load(), writers*perWriter)
	}
}

// TestEventsFileWriteFailure: a file that cannot be written (/dev/full:
// every write fails with ENOSPC) neither stalls nor stops the broker; the
// events still reach stderr and the failures are counted and reported there.
func TestEventsFileWriteFailure(t *testing.T) {
	if _, err := os.Stat("/dev/full"); err != nil {
		t.Skip("no /dev/full")
	}
	addr, stderr := startBroker(t, "-events-file", "/dev/full")
	refusedPublish(t, addr, "disk-full")
	waitStderr(t, stderr, `"client_id":"disk-full"`, `"msg":"events file: lines not written`, `"failed_writes":1`, "no space left on device")
	// Still serving: more refused publishes, each answered.
	for i := range 3 {
		refusedPublish(t, addr, fmt.Sprint("disk-full-", i))
	}
	waitStderr(t, stderr, `"client_id":"disk-full-2"`)
}

// TestEventsFileErrors: an events file that cannot be opened stops the
// start, naming the flag.
func TestEventsFileErrors(t *testing.T) {
	err := run(context.Background(), []string{"-addr", "127.0.0.1:0", "-events-file", filepath.Join(t.TempDir(), "no", "such", "dir", "e.log")}, io.Discard, io.Discard)
	if err == nil || !strings.Contains(err.Error(), "-events-file") || !strings.Contains(err.Error(), "directory exists") {
		t.Fatalf("error %v", err)
	}
}
