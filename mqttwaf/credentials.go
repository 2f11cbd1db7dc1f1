package mqttwaf

import (
	"bufio"
	"bytes"
	"crypto/subtle"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"
	"sync"

	"golang.org/x/crypto/argon2"
	"golang.org/x/crypto/bcrypt"
)

// credentials are the per-device identities of a credentials file: one line
// per identity, "name:role:hash", where hash is a bcrypt ($2a$, $2b$, $2y$)
// or argon2id ($argon2id$v=19$m=...,t=...,p=...$salt$hash) string for a
// person's password, a device-secret hash ($mqttwaf-secret$v=1$salt$digest,
// see devicesecret.go) for a machine-generated secret, or "-" for an
// identity that logs in only with a certificate. Blank lines and lines
// starting with '#' are ignored. Plaintext passwords are refused when the
// file is loaded.
type credentials map[string]credential

type credential struct {
	role string
	hash string
}

// maxCredentialsBytes bounds a credentials file (about 100,000 devices).
const maxCredentialsBytes = 16 << 20

// readCredentials loads a credentials file; roles lists the roles that
// exist, so a typo in a role is caught at load.
func readCredentials(path string, roles map[string]RolePolicy) (credentials, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	data, err := io.ReadAll(io.LimitReader(f, maxCredentialsBytes+1))
	if err != nil {
		return nil, err
	}
	if len(data) > maxCredentialsBytes {
		return nil, fmt.Errorf("%s: larger than %s", path, ByteSize(maxCredentialsBytes))
	}
	return parseCredentials(data, path, roles)
}

func parseCredentials(data []byte, path string, roles map[string]RolePolicy) (credentials, error) {
	creds := credentials{}
	sc := bufio.NewScanner(bytes.NewReader(data))
	sc.Buffer(make([]byte, 0, 4096), 64<<10)
	for n := 1; sc.Scan(); n++ {
		line := strings.TrimSpace(sc.Text())
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		name, rest, ok1 := strings.Cut(line, ":")
		role, hash, ok2 := strings.Cut(rest, ":")
		if !ok1 || !ok2 {
			return nil, fmt.Errorf("%s:%d: want name:role:hash", path, n)
		}
		if err := checkIdentityName(name); err != nil {
			return nil, fmt.Errorf("%s:%d: %w", path, n, err)
		}
		if _, ok := roles[role]; !ok {
			return nil, fmt.Errorf("%s:%d: identity %q: unknown role %q; define it under roles in the policy", path, n, name, role)
		}
		if isDeviceSecretHash(hash) {
			if _, _, err := parseDeviceSecretHash(hash); err != nil {
				return nil, fmt.Errorf("%s:%d: identity %q: %w; copy the line -new-device-secret printed", path, n, name, err)
			}
		} else if isMosquittoHash(hash) {
			if _, _, _, err := parseMosquittoHash(hash); err != nil {
				return nil, fmt.Errorf("%s:%d: identity %q: %w", path, n, name, err)
			}
		} else if hash != "-" && !isPasswordHash(hash) {
			return nil, fmt.Errorf("%s:%d: identity %q: the third field is not a password hash this broker reads "+
				"(bcrypt $2a$/$2b$/$2y$, $argon2id$, mosquitto $7$ or $6$, or a device secret's $mqttwaf-secret$); a plaintext password is refused. "+
				"For a person: go run ./examples/hardened-broker -hash-password; for a device: go run ./examples/hardened-broker -new-device-secret", path, n, name)
		}
		if _, dup := creds[name]; dup {
			return nil, fmt.Errorf("%s:%d: identity %q appears twice", path, n, name)
		}
		creds[name] = credential{role: role, hash: hash}
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return creds, nil
}

// checkIdentityName refuses names that could not be used safely in topic
// templates and logs.
func checkIdentityName(name string) error {
	switch {
	case name == "":
		return errors.New("empty identity name")
	case len(name) > 256:
		return fmt.Errorf("identity name longer than 256 bytes")
	case strings.ContainsAny(name, "/+#$:") || hasControl(name):
		return fmt.Errorf("identity %q: names must not contain '/', '+', '#', '$', ':' or control characters", name)
	}
	return nil
}

func isPasswordHash(h string) bool {
	if strings.HasPrefix(h, "$2a$") || strings.HasPrefix(h, "$2b$") || strings.HasPrefix(h, "$2y$") {
		_, err := bcrypt.Cost([]byte(h))
		return err == nil
	}
	_, _, err := parseArgon2(h)
	return err == nil
}

// HashPassword returns a bcrypt hash of password for a credentials file.
func HashPassword(password []byte) (string, error) {
	if len(password) < 8 {
		return "", errors.New("use a password of at least 8 characters")
	}
	h, err := bcrypt.GenerateFromPassword(password, bcrypt.DefaultCost)
	return string(h), err
}

// verifyPassword checks password against a bcrypt, argon2id or
// device-secret hash in constant time.
func verifyPassword(hash string, password []byte) bool {
	if isDeviceSecretHash(hash) {
		return verifyDeviceSecret(hash, password)
	}
	if isMosquittoHash(hash) {
		return verifyMosquittoHash(hash, password)
	}
	if strings.HasPrefix(hash, "$argon2id$") {
		p, want, err := parseArgon2(hash)
		if err != nil {
			return false
		}
		got := argon2.IDKey(password, p.salt, p.time, p.memory, p.threads, uint32(len(want)))
		return subtle.ConstantTimeCompare(got, want) == 1
	}
	return bcrypt.CompareHashAndPassword([]byte(hash), password) == nil
}

// dummyHashes holds one bcrypt hash per cost, made when a credentials file
// is loaded: a CONNECT for an unknown user is checked against the dummy of
// the file's cost, so a wrong user name takes as long as a wrong password
// (no user enumeration by timing), and no CONNECT pays for making one.
var dummyHashes sync.Map // cost -> string

func dummyHash(cost int) string {
	if h, ok := dummyHashes.Load(cost); ok {
		return h.(string)
	}
	h, err := bcrypt.GenerateFromPassword([]byte("mqttwaf-no-such-user"), cost)
	if err != nil {
		h, _ = bcrypt.GenerateFromPassword([]byte("mqttwaf-no-such-user"), bcrypt.DefaultCost)
	}
	v, _ := dummyHashes.LoadOrStore(cost, string(h))
	return v.(string)
}

// dummy is the hash a CONNECT for an unknown user name is checked
// against: of the kind most of the file's identities have, so that a wrong
// user name cannot be told from a wrong password of most identities. A
// fleet's file is mostly device secrets (the dummy is then one too, and an
// unknown name costs one HMAC); a file of people's passwords gets a bcrypt
// dummy at the most common cost (the default cost if there is none).
func (cr credentials) dummy() string {
	secrets, mosquitto, others := 0, 0, 0
	costs, iterations := map[int]int{}, map[int]int{}
	for _, c := range cr {
		switch {
		case isDeviceSecretHash(c.hash):
			secrets++
		case isMosquittoHash(c.hash):
			mosquitto++
			if n, _, _, err := parseMosquittoHash(c.hash); err == nil {
				iterations[n]++ // 0: $6$
			}
		case c.hash != "-":
			others++
			if cost, err := bcrypt.Cost([]byte(c.hash)); err == nil {
				costs[cost]++
			}
		}
	}
	if secrets > others && secrets >= mosquitto {
		return dummyDeviceSecretHash()
	}
	if mosquitto > others {
		return dummyMosquittoHash(mostCommon(iterations, 101))
	}
	return dummyHash(mostCommon(costs, bcrypt.DefaultCost))
}

// mostCommon returns the key of counts seen most often, the lower one on a
// tie, or def if counts is empty.
func mostCommon(counts map[int]int, def int) int {
	best := def
	for k, n := range counts {
		if n > counts[best] || n == counts[best] && k < best {
			best = k
		}
	}
	return best
}

type argon2Params struct {
	memory, time uint32
	threads      uint8
	salt         []byte
}

// parseArgon2 parses "$argon2id$v=19$m=19456,t=2,p=1$<salt>$<hash>" (PHC
// string format, unpadded standard base64).
func parseArgon2(h string) (argon2Params, []byte, error) {
	var p argon2Params
	parts := strings.Split(h, "$")
	if len(parts) != 6 || parts[1] != "argon2id" || parts[2] != "v=19" {
		return p, nil, errors.New("not an argon2id hash")
	}
	var threads uint32
	if _, err := fmt.Sscanf(parts[3], "m=%d,t=%d,p=%d", &p.memory, &p.time, &threads); err != nil {
		return p, nil, err
	}
	// Bound the cost an attacker-supplied file... or a typo could impose.
	if p.memory < 1024 || p.memory > 1<<20 || p.time < 1 || p.time > 16 || threads < 1 || threads > 16 {
		return p, nil, errors.New("argon2id parameters out of range")
	}
	p.threads = uint8(threads)
	var err error
	if p.salt, err = base64.RawStdEncoding.DecodeString(parts[4]); err != nil || len(p.salt) < 8 {
		return p, nil, errors.New("bad argon2id salt")
	}
	want, err := base64.RawStdEncoding.DecodeString(parts[5])
	if err != nil || len(want) < 16 {
		return p, nil, errors.New("bad argon2id hash")
	}
	return p, want, nil
}
