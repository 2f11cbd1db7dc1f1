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
//	$6$<salt, base64>$<SHA-512(password || salt), base64>         mosquitto 1.x
//
// Both verify in well under a millisecond: against online guessing the
// lockouts hold as for any password; offline, a leaked file of them falls
// much faster than bcrypt ($6$ is a single SHA-512), so the README says to
// re-issue people's passwords with -hash-password (devices with
// -new-device-secret) once the move is done. New hashes are never made in
// these formats.
const (
	mosquittoPBKDF2Prefix = "$7$"
	mosquittoSHA512Prefix = "$6$"
	// mosquittoMaxIterations bounds the work one CONNECT can cost.
	mosquittoMaxIterations = 10_000_000
)

// isMosquittoHash reports whether h claims to be a mosquitto $7$ or $6$ hash.
func isMosquittoHash(h string) bool {
	return strings.HasPrefix(h, mosquittoPBKDF2Prefix) || strings.HasPrefix(h, mosquittoSHA512Prefix)
}

// parseMosquittoHash parses "$7$<iterations>$<salt>$<hash>" or
// "$6$<salt>$<hash>" (standard base64, padded, as mosquitto_passwd writes
// them); iterations is 0 for $6$.
func parseMosquittoHash(h string) (iterations int, salt, sum []byte, err error) {
	var parts []string
	switch {
	case strings.HasPrefix(h, mosquittoSHA512Prefix):
		parts = append([]string{""}, strings.Split(strings.TrimPrefix(h, mosquittoSHA512Prefix), "$")...)
	case strings.HasPrefix(h, mosquittoPBKDF2Prefix):
		parts = strings.Split(strings.TrimPrefix(h, mosquittoPBKDF2Prefix), "$")
	}
	if len(parts) != 3 {
		return 0, nil, nil, errors.New("a mosquitto hash is $7$<iterations>$<salt>$<hash> or $6$<salt>$<hash>, as mosquitto_passwd writes them")
	}
	if parts[0] != "" {
		iterations, err = strconv.Atoi(parts[0])
		if err != nil || iterations < 1 || iterations > mosquittoMaxIterations {
			return 0, nil, nil, fmt.Errorf("mosquitto hash: iterations %q must be a number from 1 to %d", parts[0], mosquittoMaxIterations)
		}
	}
	if salt, err = base64.StdEncoding.DecodeString(parts[1]); err != nil || len(salt) < 8 {
		return 0, nil, nil, errors.New("mosquitto hash: the salt is not base64 of at least 8 bytes")
	}
	if sum, err = base64.StdEncoding.DecodeString(parts[2]); err != nil || len(sum) != sha512.Size {
		return 0, nil, nil, errors.New("mosquitto hash: the hash is not base64 of 64 bytes (SHA-512)")
	}
	return iterations, salt, sum, nil
}

// verifyMosquittoHash checks password against a $7$ hash in constant time.
func verifyMosquittoHash(h string, password []byte) bool {
	iterations, salt, want, err := parseMosquittoHash(h)
	if err != nil {
		return false
	}
	var got []byte
	if iterations == 0 { // $6$
		d := sha512.New()
		d.Write(password)
		d.Write(salt)
		got = d.Sum(nil)
	} else if got, err = pbkdf2.Key(sha512.New, string(password), salt, iterations, len(want)); err != nil {
		return false
	}
	return subtle.ConstantTimeCompare(got, want) == 1
}

// mosquittoHash makes a $7$ hash (a $6$ one for iterations 0), for tests
// and for the unknown-user dummy.
func mosquittoHash(password []byte, salt []byte, iterations int) string {
	if iterations == 0 {
		d := sha512.New()
		d.Write(password)
		d.Write(salt)
		return mosquittoSHA512Prefix + base64.StdEncoding.EncodeToString(salt) + "$" + base64.StdEncoding.EncodeToString(d.Sum(nil))
	}
	sum, _ := pbkdf2.Key(sha512.New, string(password), salt, iterations, sha512.Size)
	return mosquittoPBKDF2Prefix + strconv.Itoa(iterations) + "$" +
		base64.StdEncoding.EncodeToString(salt) + "$" + base64.StdEncoding.EncodeToString(sum)
}

// dummyMosquittoHashes holds one dummy per iteration count (0: $6$; see
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
