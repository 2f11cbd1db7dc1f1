package mqttwaf

import (
	"strconv"
	"testing"
	"time"

	"golang.org/x/crypto/bcrypt"
)

func testCred(t *testing.T, password string) credential {
	t.Helper()
	h, err := bcrypt.GenerateFromPassword([]byte(password), bcrypt.MinCost)
	if err != nil {
		t.Fatal(err)
	}
	return credential{role: "device", hash: string(h)}
}

// TestPasswordCheckerRecognisesVerifiedPasswords: after a password
// verified, the same password is accepted and any other refused without a
// slow hash (no slot needed), until the credential changes or the entry
// ages out.
func TestPasswordCheckerRecognisesVerifiedPasswords(t *testing.T) {
	clock := newFakeClock()
	pc := newPasswordChecker(clock.Now)
	cred := testCred(t, "right")
	dummy := dummyHash(bcrypt.MinCost)
	if got := pc.check("dev1", cred, true, dummy, []byte("right")); got != passwordOK {
		t.Fatalf("first check: %v", got)
	}
	// Take every slot: only the cache can answer now.
	for range cap(pc.slots) {
		pc.slots <- struct{}{}
	}
	pc.wait = 10 * time.Millisecond
	for _, tc := range []struct {
		pw   string
		want checkResult
	}{{"right", passwordOK}, {"wrong", passwordWrong}, {"righ", passwordWrong}, {"", passwordWrong}} {
		if got := pc.check("dev1", cred, true, dummy, []byte(tc.pw)); got != tc.want {
			t.Errorf("cached check of %q: %v, want %v", tc.pw, got, tc.want)
		}
	}
	// Another user name is not in the cache: it needs a slot.
	if got := pc.check("dev2", testCred(t, "x"), true, dummy, []byte("x")); got != passwordBusy {
		t.Fatalf("uncached check with every slot taken: %v, want busy", got)
	}
	// A changed credential (a new hash in the file) is not answered from
	// the cache, nor is an entry older than verifiedTTL.
	if got := pc.check("dev1", testCred(t, "right"), true, dummy, []byte("right")); got != passwordBusy {
		t.Fatalf("changed credential answered from the cache: %v", got)
	}
	clock.Add(verifiedTTL)
	if got := pc.check("dev1", cred, true, dummy, []byte("right")); got != passwordBusy {
		t.Fatalf("expired entry answered from the cache: %v", got)
	}
	for range cap(pc.slots) {
		<-pc.slots
	}
	// prune drops entries of removed or changed credentials.
	pc.prune(credentials{"dev1": testCred(t, "new")})
	if len(pc.cache) != 0 {
		t.Fatalf("cache after prune: %d entries", len(pc.cache))
	}
}

// TestPasswordCheckerSharesSlotsByName: one user name (or all unknown
// names together) holds at most half the slots, so guessers of some names
// cannot starve the others; queues are dropped when idle.
func TestPasswordCheckerSharesSlotsByName(t *testing.T) {
	pc := newPasswordChecker(time.Now)
	pc.slots = make(chan struct{}, 4)
	pc.perName, pc.wait = 2, 20*time.Millisecond
	var held []*nameQueue
	for range 2 {
		q := pc.acquire("backend")
		if q == nil {
			t.Fatal("backend's own places refused")
		}
		held = append(held, q)
	}
	if q := pc.acquire("backend"); q != nil {
		t.Fatal("a third check for one name got a slot")
	}
	for range 2 {
		q := pc.acquire("\x00") // unknown names share one queue
		if q == nil {
			t.Fatal("unknown names refused while slots are free")
		}
		defer pc.release("\x00", q)
	}
	if q := pc.acquire("\x00"); q != nil {
		t.Fatal("unknown names took more than their share")
	}
	// Every slot is taken now; dev1 waits for one and gets it when
	// backend's check ends.
	done := make(chan *nameQueue)
	pc.wait = 2 * time.Second
	go func() { done <- pc.acquire("dev1") }()
	time.Sleep(10 * time.Millisecond)
	pc.release("backend", held[0])
	if q := <-done; q == nil {
		t.Fatal("dev1 got no slot after one was freed")
	} else {
		pc.release("dev1", q)
	}
	pc.release("backend", held[1])
	pc.mu.Lock()
	n := len(pc.queues)
	pc.mu.Unlock()
	if n != 1 { // only the unknown queue is still held (deferred)
		t.Fatalf("%d queues left, want 1", n)
	}
}

// TestConnectAdmissionOrder: CONNECTs refused for their address never
// spend the listener's budget, and an address refused again and again is
// banned, after which the ban check (the cheapest) refuses it.
func TestConnectAdmissionOrder(t *testing.T) {
	tw := newRatesWAF(t, "", map[string]string{
		"connect":  `{per_ip: 2/s, per_network: 1000/s, per_listener: 10/s, ban_after: 20}`,
		"flapping": `{off: true}`,
	})
	refused := 0
	for i := range 30 {
		_, v := tw.dial(num("flood-", i), "", "198.51.100.7")
		switch {
		case !v.Blocked():
		case v.Reason == "ip_connect_rate":
			refused++
		case v.Action == Ban:
			if refused != 20 {
				t.Fatalf("banned after %d refusals, want 20", refused)
			}
		case v.Reason == "banned":
		default:
			t.Fatalf("CONNECT %d: %+v", i, v)
		}
	}
	if _, v := tw.dial("flood-x", "", "198.51.100.7"); v.Rule != "bans" {
		t.Fatalf("the flooding address after its ban: %+v", v)
	}
	// The flood spent 2 of the listener's 10: a device elsewhere gets 8.
	for i := range 8 {
		if _, v := tw.dial(num("dev-", i), "", num4(203, 0, 113, i+1)); v.Blocked() {
			t.Fatalf("device CONNECT %d refused: %+v", i, v)
		}
	}
	if _, v := tw.dial("dev-9", "", "203.0.113.99"); v.Reason != "listener_connect_rate" {
		t.Fatalf("the listener's budget: %+v", v)
	}
}

func num4(a, b, c, d int) string {
	return strconv.Itoa(a) + "." + strconv.Itoa(b) + "." + strconv.Itoa(c) + "." + strconv.Itoa(d)
}
