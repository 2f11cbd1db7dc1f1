package mqttwaf

import (
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"errors"
	"math/bits"
	"strings"
	"sync"
)

// Device secrets are passwords for machines: 32 bytes from crypto/rand,
// written as 43 characters of unpadded base64url, made by the tooling
// (NewDeviceSecret, hardened-broker -new-device-secret) and never chosen by
// a person. Their credentials-file form is
//
//	$mqttwaf-secret$v=1$<salt>$<digest>
//
// where salt is 16 random bytes and digest is HMAC-SHA-256 keyed by the salt
// over the 43 characters of the secret, both in unpadded standard base64
// (the PHC string style argon2id uses).
//
// Why a fast hash is enough here and not for people: bcrypt and argon2id
// are slow so that whoever steals the credentials file pays tens of
// milliseconds per guess, because a person's password has 20 to 40 bits
// of entropy and falls to a dictionary otherwise. A device secret has 256
// bits: finding it from its digest takes about 2^255 HMACs however fast each
// one is, which no amount of hardware reaches, whereas bcrypt at cost 10
// adds only about 2^16 to the work of each guess. The salt makes equal
// secrets hash differently, so a copied secret cannot be spotted in the
// file. Online guessing meets the lockouts like any password.
//
// A human password must never end up under this hash, so the tooling takes
// no input, and verification refuses any presented password that does not
// have the shape of a generated secret (deviceSecretShaped), before any
// hash: a line someone wrote by hand for "dev1-password" admits nobody.

const (
	deviceSecretTag       = "$mqttwaf-secret$" // the scheme, whatever its version
	deviceSecretScheme    = deviceSecretTag + "v=1$"
	deviceSecretLen       = 43 // base64url characters of 32 bytes, unpadded
	deviceSecretBytes     = 32
	deviceSecretSaltBytes = 16
	// deviceSecretMinDistinct is the fewest different characters a secret
	// may have. 43 random base64url characters have about 31; fewer than 16
	// happens with probability 6e-14, so it refuses only made-up strings
	// ("aaaa...", a phrase repeated) and never costs the generator a retry
	// in practice.
	deviceSecretMinDistinct = 16
)

// NewDeviceSecret returns a new device secret (for the device: its MQTT
// password) and its hash (for the credentials file: name:role:hash). It
// takes no input, so a chosen password cannot end up under the fast hash.
func NewDeviceSecret() (secret, hash string, err error) {
	var raw [deviceSecretBytes]byte
	for {
		if _, err := rand.Read(raw[:]); err != nil {
			return "", "", err
		}
		secret = base64.RawURLEncoding.EncodeToString(raw[:])
		if deviceSecretShaped([]byte(secret)) {
			break
		}
	}
	var salt [deviceSecretSaltBytes]byte
	if _, err := rand.Read(salt[:]); err != nil {
		return "", "", err
	}
	return secret, formatDeviceSecretHash(salt[:], []byte(secret)), nil
}

func formatDeviceSecretHash(salt, secret []byte) string {
	return deviceSecretScheme + base64.RawStdEncoding.EncodeToString(salt) + "$" +
		base64.RawStdEncoding.EncodeToString(deviceSecretDigest(salt, secret))
}

func deviceSecretDigest(salt, secret []byte) []byte {
	m := hmac.New(sha256.New, salt)
	m.Write(secret)
	return m.Sum(nil)
}

// isDeviceSecretHash reports whether h names the device-secret scheme (well
// formed or not, any version): such a credential is verified without a
// password slot.
func isDeviceSecretHash(h string) bool { return strings.HasPrefix(h, deviceSecretTag) }

// parseDeviceSecretHash returns the salt and digest of a device-secret
// hash. Only the canonical encoding is accepted (exact lengths, no padding,
// no stray bits), so one digest has one spelling.
func parseDeviceSecretHash(h string) (salt, digest []byte, err error) {
	rest, ok := strings.CutPrefix(h, deviceSecretScheme)
	if !ok {
		v, _, _ := strings.Cut(strings.TrimPrefix(h, deviceSecretTag), "$")
		if !strings.HasPrefix(v, "v=") || len(v) > 8 {
			return nil, nil, errors.New("the device-secret hash has no version; this broker reads " + deviceSecretScheme + "<salt>$<digest>")
		}
		return nil, nil, errors.New("the device-secret hash has version " + v + "; this broker reads v=1")
	}
	s, d, ok := strings.Cut(rest, "$")
	enc := base64.RawStdEncoding.Strict()
	if !ok || len(s) != enc.EncodedLen(deviceSecretSaltBytes) || len(d) != enc.EncodedLen(sha256.Size) {
		return nil, nil, errors.New("a device-secret hash is " + deviceSecretScheme + "<salt: 22 characters>$<digest: 43 characters>")
	}
	if salt, err = enc.DecodeString(s); err != nil {
		return nil, nil, errors.New("the salt of the device-secret hash is not base64")
	}
	if digest, err = enc.DecodeString(d); err != nil {
		return nil, nil, errors.New("the digest of the device-secret hash is not base64")
	}
	return salt, digest, nil
}

// deviceSecretShaped reports whether pw looks like a generated secret: 43
// base64url characters that decode to 32 bytes (the last one carries 4 bits
// and 2 zero bits) with at least deviceSecretMinDistinct different
// characters. It depends only on pw, so its timing tells nothing about the
// stored secret.
func deviceSecretShaped(pw []byte) bool {
	if len(pw) != deviceSecretLen {
		return false
	}
	var seen uint64
	for i, c := range pw {
		v := base64URLValue(c)
		if v < 0 || i == deviceSecretLen-1 && v&3 != 0 {
			return false
		}
		seen |= 1 << v
	}
	return bits.OnesCount64(seen) >= deviceSecretMinDistinct
}

func base64URLValue(c byte) int {
	switch {
	case c >= 'A' && c <= 'Z':
		return int(c - 'A')
	case c >= 'a' && c <= 'z':
		return int(c-'a') + 26
	case c >= '0' && c <= '9':
		return int(c-'0') + 52
	case c == '-':
		return 62
	case c == '_':
		return 63
	}
	return -1
}

// verifyDeviceSecret checks pw against a device-secret hash: the shape
// first, then one HMAC compared in constant time.
func verifyDeviceSecret(hash string, pw []byte) bool {
	if !deviceSecretShaped(pw) {
		return false
	}
	salt, want, err := parseDeviceSecretHash(hash)
	if err != nil {
		return false
	}
	return subtle.ConstantTimeCompare(deviceSecretDigest(salt, pw), want) == 1
}

// dummyDeviceSecretHash is what a CONNECT for an unknown user name is
// checked against when most of the credentials file is device secrets, so
// a wrong user name costs what a wrong secret costs. Nobody knows its
// secret, and unknown names are refused whatever the answer.
var dummyDeviceSecretHash = sync.OnceValue(func() string {
	_, h, err := NewDeviceSecret()
	if err != nil { // crypto/rand does not fail on supported platforms
		h = formatDeviceSecretHash(make([]byte, deviceSecretSaltBytes), []byte("mqttwaf-no-such-device"))
	}
	return h
})
