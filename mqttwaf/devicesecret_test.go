package mqttwaf

import (
	"encoding/base64"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"testing"
	"time"

	"golang.org/x/crypto/argon2"
	"golang.org/x/crypto/bcrypt"
)

// handMadeSecretHash is a device-secret hash of any string, as someone
// might write with their own script: the format allows it, verification
// must not.
func handMadeSecretHash(secret string) string {
	return formatDeviceSecretHash([]byte("0123456789abcdef"), []byte(secret))
}

// generated is one secret from NewDeviceSecret, and its hash.
func generated(t testing.TB) (string, string) {
	t.Helper()
	s, h, err := NewDeviceSecret()
	if err != nil {
		t.Fatal(err)
	}
	return s, h
}

func TestNewDeviceSecret(t *testing.T) {
	seen := map[string]bool{}
	for range 200 {
		s, h := generated(t)
		if !deviceSecretShaped([]byte(s)) {
			t.Fatalf("generated secret %q does not have the shape it is checked against", s)
		}
		if seen[s] {
			t.Fatalf("secret %q generated twice", s)
		}
		seen[s] = true
		if _, _, err := parseDeviceSecretHash(h); err != nil {
			t.Fatalf("hash %q of a generated secret does not parse: %v", h, err)
		}
		if !verifyPassword(h, []byte(s)) {
			t.Fatalf("secret %q does not verify against its hash %q", s, h)
		}
		if strings.Contains(h, s) {
			t.Fatalf("the hash %q contains the secret", h)
		}
	}
	// The same secret under two salts gives two hashes, and each verifies it.
	s, h := generated(t)
	other := formatDeviceSecretHash([]byte("fedcba9876543210"), []byte(s))
	if other == h || !verifyPassword(other, []byte(s)) {
		t.Fatalf("salting: %q / %q", h, other)
	}
}

// generatedSecret is one fixed secret of the generated kind (the tests
// below need its exact characters).
const generatedSecret = "Zq3X9v_Lw-0aTb7NcRd2Ye5Uf8Ig1Hh4Jj6Kk0Mm3Pk"

func TestDeviceSecretShape(t *testing.T) {
	for _, tc := range []struct {
		name string
		pw   string
		want bool
	}{
		{"generated", generatedSecret, true},
		{"42 characters", generatedSecret[:42], false},
		{"44 characters", generatedSecret + "A", false},
		{"empty", "", false},
		{"a person's password", "correct horse battery staple", false},
		{"standard base64 '+'", "+" + generatedSecret[1:], false},
		{"standard base64 '/'", generatedSecret[:10] + "/" + generatedSecret[11:], false},
		{"padding", generatedSecret[:42] + "=", false},
		{"space", generatedSecret[:20] + " " + generatedSecret[21:], false},
		{"NUL", generatedSecret[:20] + "\x00" + generatedSecret[21:], false},
		{"non-ASCII", generatedSecret[:20] + "\xc3\xa9" + generatedSecret[22:], false},
		// The last character carries 4 bits of the 32 bytes and 2 zero bits:
		// 'l' (37) leaves bits over, so no 32-byte value encodes to it.
		{"stray bits in the last character", generatedSecret[:42] + "l", false},
		{"last character with zero low bits", generatedSecret[:42] + "w", true},
		{"one character 43 times", strings.Repeat("a", 43), false},
		{"a phrase repeated", "mypasswordmypasswordmypasswordmypasswordmyA", false},
		{"15 different characters", strings.Repeat("ABCDEFGHIJKLMNO", 3)[:42] + "A", false},
		{"16 different characters", strings.Repeat("ABCDEFGHIJKLMNOP", 3)[:42] + "A", true},
	} {
		if got := deviceSecretShaped([]byte(tc.pw)); got != tc.want {
			t.Errorf("%s (%q): shaped %v, want %v", tc.name, tc.pw, got, tc.want)
		}
	}
}

// TestVerifyDeviceSecret: the right secret verifies; anything else does
// not, and neither does a hand-made hash of a password that is not a
// generated secret, even when that very password is presented.
func TestVerifyDeviceSecret(t *testing.T) {
	s, h := generated(t)
	flipped := []byte(s)
	flipped[5] ^= 'A' ^ 'B'
	if flipped[5] == s[5] {
		t.Fatal("flip did not change the secret")
	}
	for _, tc := range []struct {
		name, hash, pw string
		want           bool
	}{
		{"right secret", h, s, true},
		{"one character changed", h, string(flipped), false},
		{"another generated secret", h, generatedSecret, false},
		{"empty password", h, "", false},
		{"secret with a newline", h, s + "\n", false},
		{"secret in standard base64", handMadeSecretHash(generatedSecret), strings.NewReplacer("-", "+", "_", "/").Replace(generatedSecret), false},
		{"hand-made hash of a person's password", handMadeSecretHash("dev1-password"), "dev1-password", false},
		{"hand-made hash of a low-entropy 43-character string", handMadeSecretHash(strings.Repeat("ab", 21) + "A"), strings.Repeat("ab", 21) + "A", false},
		{"hand-made hash of a secret-shaped string", handMadeSecretHash(generatedSecret), generatedSecret, true},
		{"malformed hash", deviceSecretScheme + "xx$yy", s, false},
	} {
		if got := verifyPassword(tc.hash, []byte(tc.pw)); got != tc.want {
			t.Errorf("%s: verified %v, want %v", tc.name, got, tc.want)
		}
	}
}

// credentialSeeds is the one seed list for the credentials parser:
// TestParseCredentials checks each, and FuzzParseCredentials starts from
// them. errHas is what the error must contain (nil: the file must load).
var credentialSeeds = func() []struct {
	name   string
	file   string
	errHas []string
} {
	secret := handMadeSecretHash(generatedSecret)
	salt, digest, _ := strings.Cut(strings.TrimPrefix(secret, deviceSecretScheme), "$")
	bc, _ := bcrypt.GenerateFromPassword([]byte("a person's password"), bcrypt.MinCost)
	a2 := "$argon2id$v=19$m=1024,t=1,p=1$c2FsdHNhbHQ$" +
		base64.RawStdEncoding.EncodeToString(argon2.IDKey([]byte("pw"), []byte("saltsalt"), 1, 1024, 1, 16))
	return []struct {
		name   string
		file   string
		errHas []string
	}{
		{"device secret", "dev1:device:" + secret + "\n", nil},
		{"every kind", "# fleet\n\ndev1:device:" + secret + "\nops:device:" + string(bc) + "\nana:device:" + a2 + "\ncam:device:-\n", nil},
		{"surrounding spaces", "  dev1:device:" + secret + "  \n", nil},
		{"plaintext", "dev1:device:dev1-password\n", []string{"creds:1", `identity "dev1"`, "a plaintext password is refused", "-new-device-secret", "-hash-password"}},
		{"plaintext shaped like a secret", "dev1:device:" + generatedSecret + "\n", []string{"a plaintext password is refused"}},
		{"unknown version", "dev1:device:$mqttwaf-secret$v=2$" + salt + "$" + digest + "\n", []string{"creds:1", "version v=2", "v=1"}},
		{"no version", "dev1:device:$mqttwaf-secret$" + salt + "$" + digest + "\n", []string{"creds:1", "v=1"}},
		{"no digest", "dev1:device:" + deviceSecretScheme + salt + "\n", []string{"creds:1", "<salt: 22 characters>$<digest: 43 characters>", "-new-device-secret"}},
		{"empty salt and digest", "dev1:device:" + deviceSecretScheme + "$\n", []string{"22 characters"}},
		{"short salt", "dev1:device:" + deviceSecretScheme + salt[1:] + "$" + digest + "\n", []string{"22 characters"}},
		{"short digest", "dev1:device:" + deviceSecretScheme + salt + "$" + digest[1:] + "\n", []string{"43 characters"}},
		{"long digest", "dev1:device:" + deviceSecretScheme + salt + "$" + digest + "A\n", []string{"43 characters"}},
		{"padded digest", "dev1:device:" + deviceSecretScheme + salt + "$" + digest[:42] + "=\n", []string{"digest", "not base64"}},
		{"url alphabet in the salt", "dev1:device:" + deviceSecretScheme + "-" + salt[1:] + "$" + digest + "\n", []string{"salt", "not base64"}},
		{"stray bits in the digest", "dev1:device:" + deviceSecretScheme + salt + "$" + digest[:42] + "B\n", []string{"digest", "not base64"}},
		{"extra field", "dev1:device:" + secret + "$x\n", []string{"43 characters"}},
		{"the secret itself after the hash", "dev1:device:" + secret + ":" + generatedSecret + "\n", []string{"43 characters"}},
		{"unknown role", "dev1:camera:" + secret + "\n", []string{`unknown role "camera"`}},
		{"twice", "dev1:device:" + secret + "\ndev1:device:" + secret + "\n", []string{"creds:2", "appears twice"}},
		{"no role", "dev1:" + secret + "\n", []string{"want name:role:hash"}},
		{"bad name", "dev/1:device:" + secret + "\n", []string{"must not contain"}},
		{"bcrypt with a bad cost", "dev1:device:$2a$99$" + strings.Repeat("a", 53) + "\n", []string{"a plaintext password is refused"}},
	}
}()

var seedRoles = map[string]RolePolicy{"device": {}}

func TestParseCredentials(t *testing.T) {
	for _, tc := range credentialSeeds {
		t.Run(tc.name, func(t *testing.T) {
			creds, err := parseCredentials([]byte(tc.file), "test.creds", seedRoles)
			if tc.errHas == nil {
				if err != nil {
					t.Fatal(err)
				}
				if len(creds) == 0 {
					t.Fatal("no identity loaded")
				}
				return
			}
			if err == nil {
				t.Fatalf("loaded %v", creds)
			}
			for _, s := range tc.errHas {
				if !strings.Contains(err.Error(), s) {
					t.Errorf("error %q does not say %q", err, s)
				}
			}
			// A secret or password put where its hash belongs is never
			// repeated into logs.
			for _, leak := range []string{generatedSecret, "dev1-password"} {
				if strings.Contains(err.Error(), leak) {
					t.Errorf("error %q repeats the secret %q", err, leak)
				}
			}
		})
	}
}

// FuzzParseCredentials: no panic; a file that loads has only usable
// credentials (a parseable hash of a known kind, or "-"), and written back
// out it loads to the same identities.
func FuzzParseCredentials(f *testing.F) {
	for _, tc := range credentialSeeds {
		f.Add([]byte(tc.file))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		creds, err := parseCredentials(data, "fuzz.creds", seedRoles)
		if err != nil {
			if creds != nil {
				t.Fatalf("credentials %v returned with error %v", creds, err)
			}
			return
		}
		var out strings.Builder
		names := make([]string, 0, len(creds))
		for name := range creds {
			names = append(names, name)
		}
		sort.Strings(names)
		for _, name := range names {
			c := creds[name]
			if checkIdentityName(name) != nil {
				t.Fatalf("identity name %q loaded", name)
			}
			switch {
			case c.hash == "-":
			case isDeviceSecretHash(c.hash):
				if _, _, err := parseDeviceSecretHash(c.hash); err != nil {
					t.Fatalf("malformed device-secret hash %q loaded: %v", c.hash, err)
				}
			case !isPasswordHash(c.hash):
				t.Fatalf("hash %q of %q loaded", c.hash, name)
			}
			fmt.Fprintf(&out, "%s:%s:%s\n", name, c.role, c.hash)
		}
		again, err := parseCredentials([]byte(out.String()), "again.creds", seedRoles)
		if err != nil || len(again) != len(creds) {
			t.Fatalf("written back out, the file does not load the same: %v (%d of %d)", err, len(again), len(creds))
		}
		for name, c := range creds {
			if again[name] != c {
				t.Fatalf("%q: %+v after the round trip, was %+v", name, again[name], c)
			}
		}
	})
}

// TestCredentialsDummy: an unknown user name is checked against a hash of
// the kind most identities have.
func TestCredentialsDummy(t *testing.T) {
	secret := credential{role: "device", hash: handMadeSecretHash(generatedSecret)}
	cost4 := credential{role: "device", hash: "$2a$04$" + strings.Repeat("a", 53)}
	cost5 := credential{role: "device", hash: "$2a$05$" + strings.Repeat("a", 53)}
	cert := credential{role: "device", hash: "-"}
	for _, tc := range []struct {
		name  string
		creds credentials
		want  string // "secret" or "bcrypt-<cost>"
	}{
		{"empty", credentials{}, "bcrypt-10"},
		{"only secrets", credentials{"a": secret, "b": secret}, "secret"},
		{"a fleet and two people", credentials{"a": secret, "b": secret, "c": secret, "ops": cost4, "backend": cost4}, "secret"},
		{"people and one device", credentials{"a": secret, "ops": cost4, "backend": cost4}, "bcrypt-4"},
		{"a tie goes to bcrypt", credentials{"a": secret, "ops": cost4}, "bcrypt-4"},
		{"certificates do not count", credentials{"a": secret, "c1": cert, "c2": cert}, "secret"},
		{"most common cost", credentials{"a": cost4, "b": cost5, "c": cost5}, "bcrypt-5"},
		{"lower cost on a tie", credentials{"a": cost5, "b": cost4}, "bcrypt-4"},
	} {
		d := tc.creds.dummy()
		got := "secret"
		if !isDeviceSecretHash(d) {
			cost, err := bcrypt.Cost([]byte(d))
			if err != nil {
				t.Fatalf("%s: dummy %q is neither kind", tc.name, d)
			}
			got = fmt.Sprintf("bcrypt-%d", cost)
		} else if _, _, err := parseDeviceSecretHash(d); err != nil {
			t.Fatalf("%s: dummy %q: %v", tc.name, d, err)
		}
		if got != tc.want {
			t.Errorf("%s: dummy %s, want %s", tc.name, got, tc.want)
		}
	}
}

// TestPasswordCheckerDeviceSecrets: device secrets are answered with every
// slow-hash slot taken (they never queue behind bcrypt), leave no cache
// entry, and an unknown user name against the device-secret dummy is
// refused the same way.
func TestPasswordCheckerDeviceSecrets(t *testing.T) {
	pc := newPasswordChecker(newFakeClock().Now)
	for range cap(pc.slots) {
		pc.slots <- struct{}{}
	}
	pc.wait = 0
	s, h := generated(t)
	cred := credential{role: "device", hash: h}
	dummy := dummyDeviceSecretHash()
	for _, tc := range []struct {
		name  string
		user  string
		cred  credential
		known bool
		pw    string
		want  checkResult
	}{
		{"right secret", "dev1", cred, true, s, passwordOK},
		{"right secret again", "dev1", cred, true, s, passwordOK},
		{"wrong secret", "dev1", cred, true, generatedSecret, passwordWrong},
		{"not a secret", "dev1", cred, true, "dev1-password", passwordWrong},
		{"unknown user name", "nobody", credential{}, false, s, passwordWrong},
		{"unknown user name, the dummy's own shape", "nobody", credential{}, false, generatedSecret, passwordWrong},
		// A certificate-only identity is checked against the dummy too.
		{"certificate-only identity", "cam", credential{role: "device", hash: "-"}, true, s, passwordWrong},
		// A bcrypt identity beside them still needs a slot.
		{"bcrypt identity", "ops", testCred(t, "ops-password"), true, "ops-password", passwordBusy},
	} {
		if got := pc.check(tc.user, tc.cred, tc.known, dummy, []byte(tc.pw)); got != tc.want {
			t.Errorf("%s: %v, want %v", tc.name, got, tc.want)
		}
	}
	pc.mu.Lock()
	defer pc.mu.Unlock()
	if len(pc.cache) != 0 || len(pc.queues) != 0 {
		t.Fatalf("device-secret checks left %d cache entries and %d queues", len(pc.cache), len(pc.queues))
	}
}

// TestDeviceSecretLockout: through the WAF, a wrong device secret is
// refused (0x86) with an event saying what was wrong, lockouts count those
// failures as for any password, and the right secret is refused while its
// user name is locked out.
func TestDeviceSecretLockout(t *testing.T) {
	s1, h1 := generated(t)
	s2, h2 := generated(t)
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "fleet.creds"), []byte("dev1:device:"+h1+"\ndev2:device:"+h2+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	tw := newPolicyWAF(t, `identity:
  credentials_file: `+filepath.Join(dir, "fleet.creds")+`
  anonymous: {allow: never}
  lockout: {max_failures: 3, window: 5m, duration: 1m}
roles: {device: {publish: ["fleet/{username}/#"]}}
rates: {flapping: {off: true}}
`)
	login := func(user, pass string) Verdict { return tw.login(user, pass, "192.0.2.10") }
	bad := refused("identity.authenticate", "bad_credentials", CodeBadUsernameOrPassword)
	locked := refused("identity.lockout", "authentication_locked_out", CodeBanned)
	check(t, "dev1, right secret", login("dev1", s1), allowed)
	for i, tc := range []struct{ pw, detail string }{
		{s2, "wrong device secret"},
		{"dev1-old-password", "the password sent is not one"},
		{"", "the password sent is not one"},
		{generatedSecret, "wrong device secret"}, // the fourth failure locks dev1 out
	} {
		check(t, fmt.Sprintf("dev1, failure %d", i+1), login("dev1", tc.pw), bad)
		evs := tw.events.take()
		i := slices.IndexFunc(evs, func(e Event) bool { return e.Reason == "bad_credentials" })
		if i < 0 || !strings.Contains(evs[i].Detail, tc.detail) {
			t.Fatalf("failure with %q: events %+v, want detail %q", tc.pw, evs, tc.detail)
		}
		if strings.Contains(fmt.Sprintf("%+v", evs[i]), s1) || tc.pw != "" && strings.Contains(fmt.Sprintf("%+v", evs[i]), tc.pw) {
			t.Fatalf("the event repeats a secret: %+v", evs[i])
		}
	}
	check(t, "dev1, right secret, locked out", login("dev1", s1), locked)
	check(t, "dev2 beside it", login("dev2", s2), allowed)
	check(t, "unknown user name", login("dev9", s2), bad)
}

func (r checkResult) String() string {
	return [...]string{passwordOK: "ok", passwordWrong: "wrong", passwordBusy: "busy"}[r]
}

// BenchmarkPasswordCheck is one CONNECT's password check, as authenticate
// makes it: a device secret (right, wrong, unknown user name), and a bcrypt
// cost 10 password the first time (cold: a full hash) and again within the
// hour (warm: the verified-password cache):
//
//	flock /work/bench.lock go test -run '^$' -bench PasswordCheck ./mqttwaf/
func BenchmarkPasswordCheck(b *testing.B) {
	s, h := generated(b)
	secret := credential{role: "device", hash: h}
	bc, err := bcrypt.GenerateFromPassword([]byte("a person's password"), bcrypt.DefaultCost)
	if err != nil {
		b.Fatal(err)
	}
	person := credential{role: "device", hash: string(bc)}
	for _, tc := range []struct {
		name  string
		cred  credential
		known bool
		dummy string
		pw    string
		cold  bool // a fresh checker for every check
		want  checkResult
	}{
		{"device-secret", secret, true, dummyDeviceSecretHash(), s, false, passwordOK},
		{"device-secret-wrong", secret, true, dummyDeviceSecretHash(), generatedSecret, false, passwordWrong},
		{"device-secret-unknown-user", credential{}, false, dummyDeviceSecretHash(), s, false, passwordWrong},
		{"bcrypt-10-cold", person, true, dummyHash(bcrypt.DefaultCost), "a person's password", true, passwordOK},
		{"bcrypt-10-warm", person, true, dummyHash(bcrypt.DefaultCost), "a person's password", false, passwordOK},
	} {
		b.Run(tc.name, func(b *testing.B) {
			pc := newPasswordChecker(time.Now)
			b.ReportAllocs()
			for b.Loop() {
				if tc.cold {
					b.StopTimer()
					pc = newPasswordChecker(time.Now)
					b.StartTimer()
				}
				if got := pc.check("dev1", tc.cred, tc.known, tc.dummy, []byte(tc.pw)); got != tc.want {
					b.Fatalf("%v, want %v", got, tc.want)
				}
			}
		})
	}
}
