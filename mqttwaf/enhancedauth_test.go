package mqttwaf

import "testing"

// A CONNECT asking for MQTT 5 enhanced authentication (an Authentication
// Method such as SCRAM) is refused with 0x8C whoever sends it, even with a
// good password: the policy owns authentication, and an AUTH exchange
// would let the broker decide who the client is. In detection_only it is
// recorded and let through, like every other refusal.
func TestEnhancedAuthMethodRefused(t *testing.T) {
	creds := writeCreds(t, "dev1")
	bad := refused("identity.authenticate", "bad_authentication_method", CodeBadAuthMethod)
	for _, tc := range []struct {
		name, mode string
		user, pass string
		want       want
	}{
		{"anonymous", "enforce", "", "", bad},
		{"good password", "enforce", "dev1", "dev1-pass", bad},
		{"wrong password", "enforce", "dev1", "guess", bad},
		{"detection only", "detection_only", "dev1", "dev1-pass", allowed},
	} {
		t.Run(tc.name, func(t *testing.T) {
			tw := newPolicyWAF(t, "mode: "+tc.mode+"\nidentity: {credentials_file: "+creds+
				", anonymous: {allow: anywhere, role: all}}\nroles: {all: {publish: ['#']}}\n")
			c := rclient("ea", "", "192.0.2.1")
			c.Username, c.Auth = tc.user, AuthNone
			v := tw.Connect(&Connect{Client: c, Clean: true, Keepalive: 60, UsernameSet: tc.user != "",
				Password: []byte(tc.pass), AuthMethod: "SCRAM-SHA-256"})
			check(t, tc.name, v, tc.want)
			if e := tw.lastEvent(t); e.Reason != "bad_authentication_method" || e.Enforced != (tc.mode == "enforce") {
				t.Fatalf("event %+v", e)
			}
		})
	}
}
