package ratelimit_test

import (
	"fmt"
	"net/netip"
	"time"

	"github.com/mqttwaf/mqttwaf/ratelimit"
)

// A per-client publish limit: 100 messages a second, burst 100, and a byte
// limit of 512 KiB a second on the same client.
func Example() {
	msgs, err := ratelimit.NewLimiter(ratelimit.LimiterOptions{}) // 100/s, burst 100
	if err != nil {
		panic(err)
	}
	byteRate, _ := ratelimit.ParseRate("512KiB/s")
	bytes, err := ratelimit.NewLimiter(ratelimit.LimiterOptions{Rate: byteRate})
	if err != nil {
		panic(err)
	}

	now := time.Date(2025, 11, 25, 12, 0, 0, 0, time.UTC)
	allowed := 0
	for range 150 {
		if msgs.Allow(now, "truck-42") && bytes.AllowN(now, "truck-42", 700) {
			allowed++
		}
	}
	fmt.Println("allowed at once:", allowed)
	fmt.Println("10ms later:", msgs.Allow(now.Add(10*time.Millisecond), "truck-42"))
	// Output:
	// allowed at once: 100
	// 10ms later: true
}

// Flapping detection is a Counter and a BanList: count CONNECTs per client
// ID over a minute, ban past 15, and check bans first on every CONNECT.
func Example_flapping() {
	connects, _ := ratelimit.NewCounter(ratelimit.CounterOptions{Window: time.Minute, Limit: 15})
	bans, _ := ratelimit.NewBanList(ratelimit.BanOptions{}) // 5m, doubling, up to 1h

	onConnect := func(now time.Time, clientID string, ip netip.Addr) string {
		if ban, banned := bans.Check(now, clientID, "", ip); banned {
			return "refused (0x8A banned) until " + ban.Until.Format("15:04")
		}
		if connects.AddN(now, clientID, 1) > float64(connects.Limit()) {
			ban, _ := bans.Strike(now, ratelimit.ClientIDTarget(clientID), "flapping")
			return fmt.Sprintf("banned for %v", ban.Until.Sub(now))
		}
		return "ok"
	}

	now := time.Date(2025, 11, 25, 12, 0, 0, 0, time.UTC)
	ip := netip.MustParseAddr("192.0.2.10")
	var last string
	for i := range 16 {
		last = onConnect(now.Add(time.Duration(i)*time.Second), "flappy-7", ip)
	}
	fmt.Println(last)
	fmt.Println(onConnect(now.Add(time.Minute), "flappy-7", ip))
	// Output:
	// banned for 5m0s
	// refused (0x8A banned) until 12:05
}

// Budgets on new client IDs: 2 per IP and 1000 overall per minute. Known
// client IDs reconnect freely; new ones beyond the budget are refused.
func ExampleNovelty() {
	ids, _ := ratelimit.NewNovelty(ratelimit.NoveltyOptions{Window: time.Minute})
	now := time.Date(2025, 11, 25, 12, 0, 0, 0, time.UTC)
	for _, id := range []string{"sensor-1", "sensor-2", "sensor-3", "sensor-1"} {
		ok := ids.Allow(now, id, ratelimit.Budget{Group: "ip:192.0.2.10", Limit: 2}, ratelimit.Budget{Group: "", Limit: 1000})
		fmt.Println(id, ok)
	}
	fmt.Println("new IDs from 192.0.2.10:", ids.Count(now, "ip:192.0.2.10"))
	// Output:
	// sensor-1 true
	// sensor-2 true
	// sensor-3 false
	// sensor-1 true
	// new IDs from 192.0.2.10: 2
}

// A quota on distinct topics per username per hour.
func ExampleDistinct() {
	topics, _ := ratelimit.NewDistinct(ratelimit.DistinctOptions{Window: time.Hour, Limit: 3})
	now := time.Date(2025, 11, 25, 12, 0, 0, 0, time.UTC)
	for _, topic := range []string{"a/1", "a/1", "a/2", "a/3", "a/4"} {
		fmt.Println(topic, topics.Allow(now, "user:mallory", topic))
	}
	// Output:
	// a/1 true
	// a/1 true
	// a/2 true
	// a/3 true
	// a/4 false
}

func ExampleParseTarget() {
	for _, s := range []string{"ip:203.0.113.77/24", "ip:::ffff:198.51.100.1", "client:a:b", "host:x"} {
		t, err := ratelimit.ParseTarget(s)
		fmt.Println(t, err)
	}
	// Output:
	// ip:203.0.113.0/24 <nil>
	// ip:198.51.100.1 <nil>
	// client:a:b <nil>
	//  ratelimit: bad ban target "host:x": unknown kind: want client, user or ip
}
