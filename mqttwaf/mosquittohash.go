package mqttwaf

import (
	"crypto/pbkdf2"
	"crypto/sha512"
	"crypto/subtle"
	"encoding/base64"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"sync"
)

// mosquitto's password file hashes, so a fleet moving from mosquitto keeps
// its devices' passwords: a mosquitto_passwd line "name:$7$..." becomes
// "name:role:$7$..." in a credentials file.
//
//	$7$<iterations>$<salt, base64>$<PBKDF2-HMAC-SHA512, base64>   mosquitto 2.x (101 iterations by default)
//	$6$<salt, base64>$<SHA-512(password || salt), base64>         mosquitto 1.x: refused
//
// $7$ verifies in well under a millisecond at mosquitto's 101 iterations:
// against online guessing the lockouts hold as for any password; offline,
// a leaked file of them falls much faster than bcrypt, so the README says
// to re-issue people's passwords with -hash-password (devices with
// -new-device-secret) once the move is done. $6$, a single salted SHA-512,
// is refused rather than imported.
const (
	mosquittoPBKDF2Prefix = "$7$"
	mosquittoSHA512Prefix = "$6$"
	// mosquittoMaxIterations bounds the work one CONNECT can cost.
	mosquittoMaxIterations = 10_000_000
)

// isMosquittoHash reports whether h claims to be a mosquitto $7$ hash.
func isMosquittoHash(h string) bool { return strings.HasPrefix(h, mosquittoPBKDF2Prefix) }

// parseMosquittoHash parses "$7$<iterations>$<salt>$<hash>" (standard
// base64, padded, as mosquitto_passwd writes it).
func parseMosquittoHash(h string) (iterations int, salt, sum []byte, err error) {
	if strings.HasPrefix(h, mosquittoSHA512Prefix) {
		return 0, nil, nil, errors.New("mosquitto's old $6$ hash (one SHA-512) is too weak to import: " +
			"re-issue the password (mosquitto_passwd of mosquitto 2.x writes $7$, or -hash-password)")
	}
	parts := strings.Split(strings.TrimPrefix(h, mosquittoPBKDF2Prefix), "$")
	if !isMosquittoHash(h) || len(parts) != 3 {
		return 0, nil, nil, errors.New("a mosquitto hash is $7$<iterations>$<salt>$<hash>, as mosquitto_passwd writes it")
	}
	iterations, err = strconv.Atoi(parts[0])
	if err != nil || iterations < 1 || iterations > mosquittoMaxIterations {
		return 0, nil, nil, fmt.Errorf("mosquitto hash: iterations %q must be a number from 1 to %d", parts[0], mosquittoMaxIterations)
	}
	if salt, err = base64.StdEncoding.DecodeString(parts[1]); err != nil || len(salt) < 8 {
		return 0, nil, nil, errors.New("mosquitto hash: the salt is not base64 of at least 8 bytes")
	}
	if sum, err = base64.StdEncoding.DecodeString(parts[2]); err != nil || len(sum) != sha512.Size {
		return 0, nil, nil, errors.New("mosquitto hash: the hash is not base64 of 64 bytes (PBKDF2-HMAC-SHA512)")
	}
	return iterations, salt, sum, nil
}

// verifyMosquittoHash checks password against a $7$ hash in constant time.
func verifyMosquittoHash(h string, password []byte) bool {
	iterations, salt, want, err := parseMosquittoHash(h)
	if err != nil {
		return false
	}
	got, err := pbkdf2.Key(sha512.New, string(password), salt, iterations, len(want))
	return err == nil && subtle.ConstantTimeCompare(got, want) == 1
}

// mosquittoHash makes a $7$ hash, for tests and for the unknown-user dummy.
func mosquittoHash(password []byte, salt []byte, iterations int) string {
	sum, _ := pbkdf2.Key(sha512.New, string(password), salt, iterations, sha512.Size)
	return mosquittoPBKDF2Prefix + strconv.Itoa(iterations) + "$" +
		base64.StdEncoding.EncodeToString(salt) + "$" + base64.StdEncoding.EncodeToString(sum)
}

// dummyMosquittoHashes holds one $7$ dummy per iteration count (see
// credentials.dummy).
var dummyMosquittoHashes sync.Map // iterations -> string

func dummyMosquittoHash(iterations int) string {
	if h, ok := dummyMosquittoHashes.Load(iterations); ok {
		return h.(string)
	}
	h, _ := dummyMosquittoHashes.LoadOrStore(iterations,
		mosquittoHash([]byte("mqttwaf-no-such-user"), []byte("mqttwaf-dummy"), iterations))
	return h.(string)
}
