package mqttwaf

import (
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"runtime"
	"sync"
	"time"
)

// passwordChecker verifies passwords against the credentials file so that
// a flood of guesses cannot starve legitimate devices, however many
// addresses the guessers rotate through.
//
// A bcrypt or argon2id check costs tens of milliseconds of CPU, so at most
// 2 x GOMAXPROCS run at once (slots). Who gets a slot is fair by user name,
// not first come first served: each known user name may hold at most half
// the slots, and every unknown user name shares one queue (so inventing
// user names buys a guesser nothing). Guessers against a real user name are
// stopped by that name's lockout; everyone else keeps their share.
//
// A password verified recently is recognised without a slow hash: the
// checker keeps, per user name, an HMAC-SHA-256 (under a key made at
// start-up and never stored) of the last password that verified against
// the current credential, for verifiedTTL. A device that reconnects gets in
// in microseconds, and a wrong password for a user name with such an entry
// is refused as fast (it cannot be the password that verified). Only user
// names in the credentials file get entries, so the cache is bounded by the
// file. The timing difference tells a guesser that the name logged in
// recently, nothing about the password.
//
// A device secret (devicesecret.go) takes neither a slot nor a cache entry:
// its check is one HMAC, what a cache lookup costs, so a reconnect storm
// of devices after a restart is not queued behind two slow hashes per core,
// and nothing is gained by remembering it. It keeps everything else: the
// constant-time compare, the lockouts (the caller counts every failure),
// and the unknown-user dummy (of the file's most common kind).
//
// It lives in the WAF's state, so a reload keeps it; an entry is only used
// while its credential is unchanged (a new hash in the file invalidates it).
// A passwordChecker is safe for concurrent use.
type passwordChecker struct {
	slots   chan struct{}
	perName int           // slots one user name (or the unknown queue) may hold
	wait    time.Duration // how long a check waits for its turn (slotWait)

	mu     sync.Mutex
	queues map[string]*nameQueue // per user name being checked; "\x00" for unknown names
	cache  map[string]verified
	key    [32]byte
	now    func() time.Time
}

// verified is a password that verified against credential hash at.
type verified struct {
	hash string // the credential it verified against
	mac  [32]byte
	at   time.Time
}

// verifiedTTL is how long a verified password is recognised without a slow
// hash.
const verifiedTTL = time.Hour

// slotWait bounds how long a CONNECT waits for its turn.
const slotWait = 2 * time.Second

func newPasswordChecker(now func() time.Time) *passwordChecker {
	n := 2 * runtime.GOMAXPROCS(0)
	pc := &passwordChecker{slots: make(chan struct{}, n), perName: max(1, n/2), wait: slotWait,
		queues: map[string]*nameQueue{}, cache: map[string]verified{}, now: now}
	_, _ = rand.Read(pc.key[:])
	return pc
}

// checkResult is what check decided.
type checkResult int

const (
	passwordOK    checkResult = iota
	passwordWrong             // the password (or user name) is wrong
	passwordBusy              // no slot within slotWait
)

// check verifies password for user, whose credential is cred (known false
// for a user name not in the file: it is checked against dummy, so a wrong
// user name takes as long as a wrong password).
func (pc *passwordChecker) check(user string, cred credential, known bool, dummy string, password []byte) checkResult {
	usable := known && cred.hash != "-"
	hash := cred.hash
	if !usable {
		hash = dummy
	}
	if isDeviceSecretHash(hash) {
		if verifyDeviceSecret(hash, password) && usable {
			return passwordOK
		}
		return passwordWrong
	}
	var mac [32]byte
	if usable {
		m := hmac.New(sha256.New, pc.key[:])
		m.Write([]byte(user))
		m.Write([]byte{0})
		m.Write(password)
		copy(mac[:], m.Sum(nil))
		pc.mu.Lock()
		v, ok := pc.cache[user]
		pc.mu.Unlock()
		if ok && v.hash == cred.hash && pc.now().Sub(v.at) < verifiedTTL {
			if hmac.Equal(v.mac[:], mac[:]) {
				return passwordOK
			}
			return passwordWrong
		}
	}
	queue := "\x00"
	if known {
		queue = user
	}
	q := pc.acquire(queue)
	if q == nil {
		return passwordBusy
	}
	ok := verifyPassword(hash, password) && usable
	pc.release(queue, q)
	if !ok {
		return passwordWrong
	}
	pc.mu.Lock()
	pc.cache[user] = verified{hash: cred.hash, mac: mac, at: pc.now()}
	pc.mu.Unlock()
	return passwordOK
}

// nameQueue bounds one user name's checks; refs counts the goroutines
// using it, so it is dropped when nobody is.
type nameQueue struct {
	places chan struct{}
	refs   int
}

// acquire takes one of the name's places, then a slot, within slotWait. It
// returns the queue to hand back to release, or nil.
func (pc *passwordChecker) acquire(name string) *nameQueue {
	timer := time.NewTimer(pc.wait)
	defer timer.Stop()
	pc.mu.Lock()
	q, ok := pc.queues[name]
	if !ok {
		q = &nameQueue{places: make(chan struct{}, pc.perName)}
		pc.queues[name] = q
	}
	q.refs++
	pc.mu.Unlock()
	select {
	case q.places <- struct{}{}:
	case <-timer.C:
		pc.done(name, q)
		return nil
	}
	select {
	case pc.slots <- struct{}{}:
		return q
	case <-timer.C:
		<-q.places
		pc.done(name, q)
		return nil
	}
}

// release gives back the slot and the place acquire took.
func (pc *passwordChecker) release(name string, q *nameQueue) {
	<-pc.slots
	<-q.places
	pc.done(name, q)
}

// done drops q when nobody uses it any more, so the map holds only the
// names being checked.
func (pc *passwordChecker) done(name string, q *nameQueue) {
	pc.mu.Lock()
	if q.refs--; q.refs == 0 {
		delete(pc.queues, name)
	}
	pc.mu.Unlock()
}

// prune drops cache entries for user names no longer in creds, so the
// cache stays bounded by the credentials file across reloads.
func (pc *passwordChecker) prune(creds credentials) {
	pc.mu.Lock()
	defer pc.mu.Unlock()
	for user, v := range pc.cache {
		if c, ok := creds[user]; !ok || c.hash != v.hash {
			delete(pc.cache, user)
		}
	}
}
