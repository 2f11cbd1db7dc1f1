//go:build linux

package hooks

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"net"
	"slices"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/eclipse/paho.golang/packets"
	"github.com/redis/go-redis/v9"

	"github.com/mqttwaf/mqttwaf/ratelimit/redisstate"
	"github.com/mqttwaf/mqttwaf/ratelimit/redisstate/redistest"
)

// What state.backend: redis costs at CONNECT (issue 17). With the state in
// Redis a CONNECT asks Redis once for the session-ownership claim
// (sessions.takeover: same_identity, the default) and, for a client ID this
// node has not admitted lately, once more for the new-client-ID budget;
// the owner record is written once the session is established (after the
// CONNACK) and shortened or deleted at disconnect. BenchmarkStateConnect
// runs the same CONNECT/CONNACK/DISCONNECT loop against the hardened broker
// with its state in memory and in a real redis-server on loopback, in one
// run, rounds alternating (as compareLoads), and reports CONNECTs per second,
// CONNECT->CONNACK latency p50/p99 and redis/memory:
//
//	flock /work/bench.lock go test -run '^$' -bench StateConnect -benchtime 20000x -count 3 ./hooks/
//
// The clients are a raw MQTT 5 loop (paho.golang's packet codec over a
// plain TCP connection), not paho clients: a paho.Client starts goroutines
// and allocates its queues per connection, client work that shares the two
// cores with the broker and would dilute the difference measured. The
// latency runs from writing the CONNECT to reading the CONNACK (the dial is
// outside it); a cycle ends when the broker closes the connection after the
// DISCONNECT, so the disconnect's work (and its Redis call) is in the rate.

// connBenchPolicy lifts every limit a loop of CONNECTs from a few addresses
// would hit, keeping each check on: the benchmark measures their cost, not
// their refusals.
const connBenchPolicy = `rates:
  connect: {per_ip: 100000000/s, per_network: 100000000/s, per_listener: 100000000/s}
  flapping: {connects: 100000000/min, per_ip: 100000000/min}
  new_client_ids: {global: 100000000/min, per_ip: 100000000/min, per_username: 100000000/min}
`

const (
	// connBenchKnown is how many client IDs per worker the known loop
	// reconnects in turn: an ID comes back only after all the others, its
	// previous connection long gone.
	connBenchKnown = 64
	// connBenchAddrs: source addresses in 127/8 the workers dial from, so
	// the closed connections' TIME_WAIT ports never run out.
	connBenchAddrs = 64
)

// connBenchSeq numbers new client IDs, unique across a test binary's runs
// (the Redis seen-sets and the local novelty state outlive a round).
var connBenchSeq atomic.Int64

// connRound is one broker's share of a round: its duration and every
// CONNECT's latency.
type connRound struct {
	elapsed time.Duration
	lat     []time.Duration
}

// runConnects makes n CONNECTs to addr with the given number of workers,
// each on its own source address: known reconnects the worker's
// connBenchKnown client IDs in turn, otherwise every CONNECT has a new
// client ID.
func runConnects(tb testing.TB, addr string, n, workers int, known bool, tag string) connRound {
	var (
		next atomic.Int64
		mu   sync.Mutex
		lat  = make([]time.Duration, 0, n)
		wg   sync.WaitGroup
		errs = make(chan error, workers)
	)
	start := time.Now()
	for w := range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			local := net.IPv4(127, 31, byte(w%connBenchAddrs/250), byte(1+w%connBenchAddrs%250))
			own := make([]time.Duration, 0, n/workers+1)
			defer func() { mu.Lock(); lat = append(lat, own...); mu.Unlock() }()
			for {
				k := next.Add(1)
				if k > int64(n) {
					return
				}
				id := fmt.Sprintf("%s-n%09d", tag, connBenchSeq.Add(1))
				if known {
					id = fmt.Sprintf("%s-k%05d", tag, k%int64(workers*connBenchKnown))
				}
				d, err := connectCycle(addr, local, id)
				if err != nil {
					errs <- fmt.Errorf("%s: %v", id, err)
					return
				}
				own = append(own, d)
			}
		}()
	}
	wg.Wait()
	elapsed := time.Since(start)
	select {
	case err := <-errs:
		tb.Fatal(err)
	default:
	}
	return connRound{elapsed: elapsed, lat: lat}
}

// connectCycle dials addr from local, sends a clean-start MQTT 5 CONNECT
// for id, reads the CONNACK, sends DISCONNECT and waits for the broker to
// close. It returns the CONNECT->CONNACK time, or an error for anything but
// a successful CONNACK.
func connectCycle(addr string, local net.IP, id string) (time.Duration, error) {
	dialer := net.Dialer{LocalAddr: &net.TCPAddr{IP: local}, Timeout: 10 * time.Second}
	conn, err := dialer.Dial("tcp", addr)
	if err != nil {
		return 0, err
	}
	defer conn.Close()
	_ = conn.SetDeadline(time.Now().Add(10 * time.Second))
	cp := packets.NewControlPacket(packets.CONNECT)
	c := cp.Content.(*packets.Connect)
	c.ClientID, c.CleanStart, c.KeepAlive = id, true, 60
	start := time.Now()
	if _, err := cp.WriteTo(conn); err != nil {
		return 0, err
	}
	r := bufio.NewReader(conn)
	pk, err := packets.ReadPacket(r)
	if err != nil {
		return 0, fmt.Errorf("no CONNACK: %v", err)
	}
	d := time.Since(start)
	ca, ok := pk.Content.(*packets.Connack)
	if !ok {
		return 0, fmt.Errorf("%s instead of CONNACK", pk.PacketType())
	}
	if ca.ReasonCode != 0 {
		return 0, fmt.Errorf("refused with 0x%02X", ca.ReasonCode)
	}
	if _, err := packets.NewControlPacket(packets.DISCONNECT).WriteTo(conn); err != nil {
		return 0, err
	}
	if _, err := io.Copy(io.Discard, r); err != nil { // until the broker closes
		return 0, err
	}
	return d, nil
}

// latencyPct is the p-th quantile of sorted latencies, in microseconds.
func latencyPct(sorted []time.Duration, p float64) float64 {
	if len(sorted) == 0 {
		return 0
	}
	return float64(sorted[min(len(sorted)-1, int(p*float64(len(sorted))))]) / float64(time.Microsecond)
}

// compareConnects runs b.N CONNECTs against each broker in addrs, in
// rounds alternating who goes first (after a warm-up pass that also makes
// the known client IDs known), and reports each one's CONNECTs/s and
// latency p50/p99, and the others' ratios to the first: throughput as the
// median of the per-round ratios (with min and max), latency as the ratio
// of the quantiles over the whole run. It reports the CPU time per CONNECT
// of this process (broker and clients; the clients' share is the same for
// every broker) and, where cpu[i] is not nil, of a process broker i
// depends on (cpu[i] returns its CPU seconds: redis-server, which competes
// for the same cores here).
func compareConnects(b *testing.B, names, addrs []string, cpu []func() float64, workers int, known bool) {
	tags := make([]string, len(addrs))
	for i := range addrs {
		tags[i] = fmt.Sprintf("%s-c%d", names[i], workers)
		runConnects(b, addrs[i], workers*connBenchKnown, workers, known, tags[i])
	}
	rounds := max(1, min(10, b.N/1000))
	spent := make([]time.Duration, len(addrs))
	perRound := make([][]time.Duration, len(addrs))
	lat := make([][]time.Duration, len(addrs))
	cpuSpent, procSpent := make([]float64, len(addrs)), make([]float64, len(addrs))
	b.ReportAllocs()
	b.ResetTimer()
	for round := range rounds {
		n := b.N / rounds
		if round == rounds-1 {
			n = b.N - n*(rounds-1)
		}
		for k := range addrs {
			i := (k + round) % len(addrs)
			var cpu0 float64
			if cpu[i] != nil {
				cpu0 = cpu[i]()
			}
			proc0 := processCPU(b) // scale_bench_test.go
			r := runConnects(b, addrs[i], n, workers, known, tags[i])
			procSpent[i] += (processCPU(b) - proc0).Seconds()
			if cpu[i] != nil {
				cpuSpent[i] += cpu[i]() - cpu0
			}
			spent[i] += r.elapsed
			perRound[i] = append(perRound[i], r.elapsed)
			lat[i] = append(lat[i], r.lat...)
		}
	}
	b.StopTimer()
	for i, name := range names {
		slices.Sort(lat[i])
		b.ReportMetric(float64(b.N)/spent[i].Seconds(), name+"_connects/s")
		b.ReportMetric(latencyPct(lat[i], 0.50), name+"_p50_us")
		b.ReportMetric(latencyPct(lat[i], 0.99), name+"_p99_us")
		b.ReportMetric(procSpent[i]/float64(b.N)*1e6, name+"_proc_cpu_us/connect")
		if cpu[i] != nil {
			b.ReportMetric(cpuSpent[i]/float64(b.N)*1e6, name+"_server_cpu_us/connect")
		}
		if i == 0 {
			continue
		}
		rel := name + "/" + names[0]
		reportRoundRatios(b, perRound, i, rel+"_connects/s", rel) // bench_test.go
		b.ReportMetric(latencyPct(lat[i], 0.50)/latencyPct(lat[0], 0.50), rel+"_p50")
		b.ReportMetric(latencyPct(lat[i], 0.99)/latencyPct(lat[0], 0.99), rel+"_p99")
	}
}

// BenchmarkStateConnect: see the top of this file. Sub-benchmarks: known
// (reconnects of client IDs the node admitted lately) and new (a client ID
// never seen, within the budget), each with 1 worker (latency alone) and
// 16 (throughput: CONNECTs in flight overlap their Redis round trips);
// call/* time the Redis calls alone, one at a time, on the same
// redis-server: a go-redis PING (the round trip itself), the ownership
// claim, the new-client-ID budget script, and both in one (what a CONNECT
// of a client ID new to the node runs).
func BenchmarkStateConnect(b *testing.B) {
	srv := redistest.Start(b)
	shared := startBroker(b, connBenchPolicy+fmt.Sprintf("state: {backend: redis, redis: {address: %q}}\n", srv.Addr()), brokerOpts{bench: true})
	b.Cleanup(func() { _ = shared.waf.Stop() })
	pollUntil(b, 5*time.Second, "the state backend to connect", func() bool { return shared.waf.State().Up })
	memory := startBroker(b, connBenchPolicy, brokerOpts{bench: true})
	names, addrs := []string{"memory", "redis"}, []string{memory.addr, shared.addr}
	redisCPU := func() float64 {
		var sum float64
		for _, f := range []string{"used_cpu_sys", "used_cpu_user"} {
			v, err := strconv.ParseFloat(srv.Info(f), 64)
			if err != nil {
				b.Fatalf("INFO %s: %v", f, err)
			}
			sum += v
		}
		return sum
	}
	cpu := []func() float64{nil, redisCPU}
	for _, kind := range []string{"known", "new"} {
		for _, workers := range []int{1, 16} {
			b.Run(fmt.Sprintf("%s/c%d", kind, workers), func(b *testing.B) {
				compareConnects(b, names, addrs, cpu, workers, kind == "known")
				if !shared.waf.State().Up {
					b.Fatal("redis went away during the benchmark")
				}
			})
		}
	}
	rdb := redis.NewClient(&redis.Options{Addr: srv.Addr()})
	b.Cleanup(func() { _ = rdb.Close() })
	be, err := redisstate.Open(redisstate.Options{Address: srv.Addr(), KeyPrefix: "calls:"})
	if err != nil {
		b.Fatal(err)
	}
	be.Start()
	b.Cleanup(func() { _ = be.Close() })
	pollUntil(b, 5*time.Second, "the calls' backend to connect", be.Up)
	owners := be.Owners("sessions", time.Minute, 1000)
	budgets := []redisstate.Budget{{Group: "", Limit: 1e9}, {Group: "i:127.0.0.1", Limit: 1e9}}
	for _, call := range []struct {
		name string
		do   func() error
	}{
		{"ping", func() error { return rdb.Ping(context.Background()).Err() }},
		{"claim", func() error { _, err := owners.Claim("dev", "", 10*time.Second); return err }},
		{"admit_new", func() error {
			_, err := be.AdmitNew(time.Now(), "new_ids", fmt.Sprintf("c%09d", connBenchSeq.Add(1)), time.Minute, budgets)
			return err
		}},
		{"claim_admit", func() error {
			_, _, err := owners.ClaimAdmit(fmt.Sprintf("c%09d", connBenchSeq.Add(1)), "", 10*time.Second, time.Now(), "new_ids", time.Minute, budgets)
			return err
		}},
	} {
		b.Run("call/"+call.name, func(b *testing.B) { roundTrips(b, call.do) })
	}
}

// roundTrips times b.N sequential calls of do (each one Redis round trip)
// and reports their p50 and p99.
func roundTrips(b *testing.B, do func() error) {
	if err := do(); err != nil {
		b.Fatal(err)
	}
	lat := make([]time.Duration, 0, b.N)
	b.ReportAllocs()
	b.ResetTimer()
	for range b.N {
		t0 := time.Now()
		if err := do(); err != nil {
			b.Fatal(err)
		}
		lat = append(lat, time.Since(t0))
	}
	b.StopTimer()
	slices.Sort(lat)
	b.ReportMetric(latencyPct(lat, 0.50), "p50_us")
	b.ReportMetric(latencyPct(lat, 0.99), "p99_us")
}
