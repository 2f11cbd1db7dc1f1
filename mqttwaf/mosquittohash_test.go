package mqttwaf

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// pyVector is $7$ of "device-pass" with salt "0123456789ab" and 101
// iterations, made by Python's hashlib.pbkdf2_hmac (an implementation
// other than ours):
//
//	hashlib.pbkdf2_hmac('sha512', b'device-pass', b'0123456789ab', 101)
//
// pySHA512Vector is mosquitto 1.x's $6$ of "device-pass" with salt
// "0123456789ab", made by Python:
//
//	hashlib.sha512(b'device-pass' + b'0123456789ab').digest()
const pySHA512Vector = "$6$MDEyMzQ1Njc4OWFi$TjZUSJJMMlSuYUFFwconoFzpLap0g08CiKe06IovqFk3NtJSJgIvkbtoE0iqM0ve87hCopRHncnBG7ZwSRiw1g=="

const pyVector = "$7$101$MDEyMzQ1Njc4OWFi$rWtTy4kXk+4xbxBknG8GhuTTnLvY7chtPJ1ZDXdHWzSZ7xmp2bfmVRvDM8ERRZmpeFGD5ctFMjsKT7L3gC4dEg=="

// mosquittoHashCases are credentials-file lines with mosquitto hashes:
// the ones that load, and what the others are refused for.
var mosquittoHashCases = []struct {
	name, hash string
	err        string // a substring of the load error; "" loads
}{
	{"pbkdf2", pyVector, ""},
	{"more iterations", mosquittoHash([]byte("x"), []byte("saltsalt"), 1000), ""},
	{"sha512", pySHA512Vector, ""},
	{"sha512 with iterations", "$6$101$MDEyMzQ1Njc4OWFi$" + strings.Repeat("A", 86) + "==", "as mosquitto_passwd writes them"},
	{"no fields", "$7$", "as mosquitto_passwd writes them"},
	{"iterations zero", "$7$0$MDEyMzQ1Njc4OWFi$" + strings.Repeat("A", 86) + "==", "iterations \"0\""},
	{"iterations huge", "$7$99999999$MDEyMzQ1Njc4OWFi$" + strings.Repeat("A", 86) + "==", "from 1 to 10000000"},
	{"short salt", "$7$101$YWJj$" + strings.Repeat("A", 86) + "==", "salt"},
	{"short hash", "$7$101$MDEyMzQ1Njc4OWFi$YWJj", "64 bytes"},
	{"plaintext", "device-pass", "a plaintext password is refused"},
}

func TestMosquittoHashes(t *testing.T) {
	for _, tc := range mosquittoHashCases {
		t.Run(tc.name, func(t *testing.T) {
			_, err := parseCredentials([]byte("dev1:all:"+tc.hash+"\n"), "devices.creds", map[string]RolePolicy{"all": {}})
			switch {
			case tc.err == "" && err != nil:
				t.Fatalf("refused: %v", err)
			case tc.err != "" && (err == nil || !strings.Contains(err.Error(), tc.err)):
				t.Fatalf("error %v, want one saying %q", err, tc.err)
			case tc.err != "" && !strings.Contains(err.Error(), "devices.creds:1"):
				t.Fatalf("error %v does not name the file and line", err)
			}
		})
	}
	if !verifyPassword(pyVector, []byte("device-pass")) {
		t.Fatal("the Python-made hash does not verify")
	}
	if verifyPassword(pyVector, []byte("device-pasS")) {
		t.Fatal("a wrong password verifies")
	}
	if !verifyPassword(pySHA512Vector, []byte("device-pass")) || verifyPassword(pySHA512Vector, []byte("device-pasS")) {
		t.Fatal("the Python-made $6$ hash does not verify as it should")
	}
}

// TestMosquittoPasswdFile: a password file made by mosquitto_passwd itself
// (Debian's mosquitto package) moves over by adding a role to each line,
// and its devices log in with their old passwords; lockouts still apply.
func TestMosquittoPasswdFile(t *testing.T) {
	bin, err := exec.LookPath("mosquitto_passwd")
	if err != nil {
		if os.Getenv("MQTTWAF_REQUIRE_MOSQUITTO") != "" {
			t.Fatal("mosquitto_passwd not found (apt-get install mosquitto)")
		}
		t.Skip("mosquitto_passwd not found (apt-get install mosquitto)")
	}
	pwfile := filepath.Join(t.TempDir(), "passwd")
	for i, u := range []string{"dev1", "dev2"} {
		args := []string{"-b", pwfile, u, u + "-pass"}
		if i == 0 {
			args = append([]string{"-c"}, args...)
		}
		if out, err := exec.Command(bin, args...).CombinedOutput(); err != nil {
			t.Fatalf("mosquitto_passwd: %v: %s", err, out)
		}
	}
	data, err := os.ReadFile(pwfile)
	if err != nil {
		t.Fatal(err)
	}
	var creds strings.Builder
	for _, line := range strings.Fields(string(data)) {
		name, hash, _ := strings.Cut(line, ":")
		if !strings.HasPrefix(hash, "$7$") {
			t.Fatalf("mosquitto_passwd wrote %q, not a $7$ hash", line)
		}
		creds.WriteString(name + ":all:" + hash + "\n")
	}
	path := filepath.Join(t.TempDir(), "devices.creds")
	if err := os.WriteFile(path, []byte(creds.String()), 0o600); err != nil {
		t.Fatal(err)
	}
	tw := newPolicyWAF(t, `identity:
  credentials_file: `+path+`
  anonymous: {allow: never}
  lockout: {max_failures: 2, window: 5m, duration: 1m}
roles:
  all: {publish: ["#"]}
rates: {flapping: {off: true}, new_client_ids: {global: 100000/min, per_ip: 100000/min, per_username: 100000/min}, connect: {per_ip: 100000/s, per_network: 100000/s}}
`)
	bad := want{Reject, "identity.authenticate", "bad_credentials", CodeBadUsernameOrPassword}
	locked := want{Reject, "identity.lockout", "authentication_locked_out", CodeBanned}
	check(t, "dev1, its mosquitto password", tw.login("dev1", "dev1-pass", "192.0.2.1"), allowed)
	check(t, "dev2, its mosquitto password", tw.login("dev2", "dev2-pass", "192.0.2.2"), allowed)
	check(t, "dev2, dev1's password", tw.login("dev2", "dev1-pass", "192.0.2.2"), bad)
	check(t, "unknown user", tw.login("dev3", "dev3-pass", "192.0.2.3"), bad)
	for range 3 { // max_failures tolerated, the next one locks out
		check(t, "dev1 guess", tw.login("dev1", "guess", "192.0.2.1"), bad)
	}
	check(t, "dev1 locked out", tw.login("dev1", "dev1-pass", "192.0.2.1"), locked)
	if d := readCreds(t, path).dummy(); !isMosquittoHash(d) {
		t.Fatalf("the unknown-user dummy for a file of mosquitto hashes is %q, not a $7$ hash (a wrong name would be told from a wrong password by its time)", d)
	}
}

func readCreds(t *testing.T, path string) credentials {
	t.Helper()
	cr, err := readCredentials(path, map[string]RolePolicy{"all": {}})
	if err != nil {
		t.Fatal(err)
	}
	return cr
}

// FuzzMosquittoHash: no hash line crashes the parser or verifies a
// password unless it parses.
func FuzzMosquittoHash(f *testing.F) {
	for _, tc := range mosquittoHashCases {
		f.Add(tc.hash, "device-pass")
	}
	f.Fuzz(func(t *testing.T, hash, password string) {
		_, _, _, err := parseMosquittoHash(hash)
		if ok := verifyMosquittoHash(hash, []byte(password)); ok && err != nil {
			t.Fatalf("%q verifies %q but does not parse: %v", hash, password, err)
		}
	})
}
