package hooks

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	mqtt3 "github.com/eclipse/paho.mqtt.golang"
	"golang.org/x/crypto/bcrypt"

	"github.com/mqttwaf/mqttwaf/mqttwaf"
)

// TestDeviceSecretEndToEnd: devices with generated secrets connect through
// the real broker (paho MQTT 5, paho 3.1.1 and mosquitto_pub) beside a
// person with a bcrypt password; a wrong secret is refused with 0x86 (3.1.1:
// 4), and the lockout applies to device secrets as to any password.
func TestDeviceSecretEndToEnd(t *testing.T) {
	secrets := map[string]string{}
	var creds strings.Builder
	for _, dev := range []string{"dev1", "dev2", "dev3"} {
		s, h, err := mqttwaf.NewDeviceSecret()
		if err != nil {
			t.Fatal(err)
		}
		secrets[dev] = s
		fmt.Fprintf(&creds, "%s:device:%s\n", dev, h)
	}
	ops, err := bcrypt.GenerateFromPassword([]byte("ops-password"), bcrypt.MinCost)
	if err != nil {
		t.Fatal(err)
	}
	fmt.Fprintf(&creds, "ops:device:%s\n", ops)
	path := filepath.Join(t.TempDir(), "fleet.creds")
	if err := os.WriteFile(path, []byte(creds.String()), 0o600); err != nil {
		t.Fatal(err)
	}
	b := startBroker(t, `identity: {credentials_file: `+path+`, anonymous: {allow: never}, lockout: {max_failures: 3, duration: 1m}}
roles: {device: {publish: ["fleet/{username}/#"], subscribe: ["fleet/{username}/#"]}}
`, brokerOpts{})
	connect := func(user, pass string) byte {
		t.Helper()
		return connectCode(t, b.addr, user, pass)
	}

	// The right secrets get in, over both protocol versions, and can work.
	c := mustV5Pass(t, b.addr, "dev1", "dev1", secrets["dev1"])
	c.subscribe(t, 1, "fleet/dev1/cmd")
	if _, err := c.publish(t, "fleet/dev1/cmd", 1, []byte("on")); err != nil {
		t.Fatal(err)
	}
	if m := expectMsg(t, c.msgs, 5*time.Second); string(m.Payload) != "on" {
		t.Fatalf("dev1 got %q", m.Payload)
	}
	if _, code, err := dialV3(t, b.addr, "dev2", "dev2", func(o *mqtt3.ClientOptions) { o.SetPassword(secrets["dev2"]) }); err != nil {
		t.Fatalf("3.1.1 with dev2's secret: code %d, %v", code, err)
	}
	if rc := connect("ops", "ops-password"); rc != 0 {
		t.Fatalf("the bcrypt identity beside the devices: 0x%02x", rc)
	}

	// Wrong secrets: another device's, a person's password, an altered one.
	altered := []byte(secrets["dev3"])
	if altered[0] = 'A'; secrets["dev3"][0] == 'A' {
		altered[0] = 'B'
	}
	for i, pass := range []string{secrets["dev1"], "dev3-password", string(altered)} {
		if rc := connect("dev3", pass); rc != 0x86 {
			t.Fatalf("dev3, wrong secret %d: 0x%02x, want 0x86", i, rc)
		}
	}
	if _, code, err := dialV3(t, b.addr, "dev3", "dev3", func(o *mqtt3.ClientOptions) { o.SetPassword(secrets["dev2"]) }); err == nil || code != v3BadUsernamePassword {
		t.Fatalf("3.1.1, wrong secret: code %d, %v", code, err)
	}
	// That was the fourth failure: dev3 is locked out, even with its secret;
	// dev2 from the same address is not.
	if rc := connect("dev3", secrets["dev3"]); rc != 0x8A {
		t.Fatalf("dev3's own secret while locked out: 0x%02x, want 0x8A", rc)
	}
	if rc := connect("dev2", secrets["dev2"]); rc != 0 {
		t.Fatalf("dev2 beside the locked-out dev3: 0x%02x", rc)
	}
	e := b.events.wait(t, "identity.authenticate", "bad_credentials", time.Second)
	if e.Detail != "wrong device secret" || e.Username != "dev3" {
		t.Fatalf("event %+v", e)
	}
	b.events.wait(t, "identity.lockout", "authentication_locked_out", time.Second)

	// mosquitto_pub, as a device's firmware might use it.
	if out, err := mosquittoPub(t, b.addr, "-V", "mqttv5", "-q", "1", "-i", "dev1", "-u", "dev1", "-P", secrets["dev1"],
		"-t", "fleet/dev1/telemetry", "-m", `{"t":1}`); err != nil {
		t.Fatalf("mosquitto_pub with dev1's secret: %v %s", err, out)
	}
	if out, err := mosquittoPub(t, b.addr, "-V", "mqttv5", "-q", "1", "-i", "dev2", "-u", "dev2", "-P", secrets["dev1"],
		"-t", "fleet/dev2/telemetry", "-m", `{"t":1}`); err == nil || !strings.Contains(strings.ToLower(out), "bad user name or password") {
		t.Fatalf("mosquitto_pub with another device's secret: %v %s", err, out)
	}
}
