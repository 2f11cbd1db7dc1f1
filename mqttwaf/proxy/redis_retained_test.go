package proxy

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/eclipse/paho.golang/paho"
	"github.com/redis/go-redis/v9"

	"github.com/mqttwaf/mqttwaf/ratelimit/redisstate/redistest"
)

// Two proxies in front of one broker hold an identity to one retained
// budget with state.retained: shared: its topics retained through either
// proxy count together, it may still replace its own topic at the limit
// through the other proxy, and a deletion through one frees room on the
// other. With per_node each proxy counts only what passed through it, and
// the identity holds more than its budget in the one broker.
func TestRedisRetainedBudgetAcrossProxies(t *testing.T) {
	up := startMosquitto(t)
	srv := redistest.Start(t)
	creds, secrets := deviceCreds(t, "a")
	secret := secrets["a"]
	for _, tc := range []struct {
		retained string
		fourth   byte // the reason code of a fourth topic, through the first proxy (0: any success)
	}{
		{"shared", 0x97},
		{"per_node", 0},
	} {
		t.Run(tc.retained, func(t *testing.T) {
			policy := fmt.Sprintf(`
identity: {credentials_file: %s, anonymous: {allow: never}}
roles: {device: {publish: ["dev/{username}/#"], retain: ["dev/{username}/#"]}}
rates: {retained: {per_identity: {topics: 3}}}
state: {backend: redis, retained: %s, redis: {address: %q, key_prefix: "%s:", timeout: 2s}}
`, creds, tc.retained, srv.Addr(), tc.retained)
			proxies, events := startProxyPair(t, policy, up)
			ca := mustV5(t, proxies[0].Addr(), "a-1", "a", secret)
			cb := mustV5(t, proxies[1].Addr(), "a-2", "a", secret)
			retain := func(c *v5, topic, payload string, want byte) {
				t.Helper()
				res, err := publish5(t, c, &paho.Publish{Topic: topic, QoS: 1, Retain: true, Payload: []byte(payload)})
				code := byte(0)
				if res != nil {
					code = res.ReasonCode
				}
				if ok := code < 0x80 && err == nil; (want == 0) != ok || (want != 0 && code != want) {
					t.Fatalf("retain %s: PUBACK %#x (%v), want %#x", topic, code, err, want)
				}
			}
			// Once Redis holds n topics of a, both proxies read that back
			// at their next sync: the one after the sync under way, which
			// each proxy's presence record (written as a sync starts)
			// shows, since a node syncs one at a time.
			rdb := redis.NewClient(&redis.Options{Addr: srv.Addr()})
			t.Cleanup(func() { _ = rdb.Close() })
			ctx := context.Background()
			waitHeld := func(n int) {
				t.Helper()
				if tc.retained != "shared" {
					return
				}
				for deadline := time.Now().Add(5 * time.Second); ; time.Sleep(5 * time.Millisecond) {
					if s, _ := srv.Do("HGET", tc.retained+":retained:use", "t:u:a"); s == fmt.Sprint(n) || (n == 0 && s == "") {
						break
					}
					if time.Now().After(deadline) {
						t.Fatalf("redis does not hold %d retained topics of a", n)
					}
				}
				syncs := map[string][]float64{}
				for deadline := time.Now().Add(5 * time.Second); ; time.Sleep(5 * time.Millisecond) {
					zs, err := rdb.ZRangeWithScores(ctx, tc.retained+":nodes", 0, -1).Result()
					if err != nil {
						t.Fatal(err)
					}
					done := 0
					for _, z := range zs {
						id := z.Member.(string)
						if l := syncs[id]; len(l) == 0 || l[len(l)-1] != z.Score {
							syncs[id] = append(l, z.Score)
						}
						if len(syncs[id]) >= 3 { // the first seen, the sync under way, the next
							done++
						}
					}
					if done >= 2 {
						return
					}
					if time.Now().After(deadline) {
						t.Fatalf("the proxies did not sync twice: %v", syncs)
					}
				}
			}
			retain(ca, "dev/a/1", "one", 0)
			retain(ca, "dev/a/2", "two", 0)
			retain(cb, "dev/a/3", "three", 0)
			waitHeld(3)
			retain(ca, "dev/a/4", "four", tc.fourth)
			if tc.retained != "shared" {
				return
			}
			if n := events[0].Count("rates.retained", "retained_topics_per_identity"); n != 1 {
				t.Fatalf("%d retained_topics_per_identity events, want 1", n)
			}
			retain(cb, "dev/a/1", "one again", 0) // at the limit, its own topic, retained through the other proxy
			retain(ca, "dev/a/2", "", 0)          // deleted through the first proxy...
			waitHeld(2)
			retain(cb, "dev/a/4", "four", 0) // ...frees room on the second
			// Deleted through the second proxy, a topic the first saw
			// retained is new again there: retaining it once more at the
			// limit is refused, not taken for a replacement.
			waitHeld(3) // 1, 3, 4
			retain(cb, "dev/a/3", "", 0)
			retain(cb, "dev/a/4", "", 0)
			retain(cb, "dev/a/1", "", 0)
			waitHeld(0)
			retain(ca, "dev/a/7", "seven", 0)
			retain(ca, "dev/a/8", "eight", 0)
			retain(ca, "dev/a/9", "nine", 0)
			waitHeld(3)
			retain(ca, "dev/a/1", "one, a fourth", 0x97)
			// Deleted and replaced through the second proxy, so that the
			// shared count is back at the limit: the first proxy, which
			// still holds dev/a/7-9 in its own table, does not take a
			// retained dev/a/7 for a replacement either.
			retain(cb, "dev/a/7", "", 0)
			retain(cb, "dev/a/10", "ten", 0)
			waitHeld(3) // 8, 9, 10
			retain(ca, "dev/a/7", "seven, a fourth", 0x97)
		})
	}
}
