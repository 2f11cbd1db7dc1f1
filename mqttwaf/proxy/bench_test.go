package proxy

import (
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/mqttwaf/mqttwaf/mqttwaf"
	"github.com/mqttwaf/mqttwaf/mqttwaf/frame"
)

// benchRates lifts the publish rates above the benchmark's load: every
// rate check still runs, none refuses. The flapping ban is off: every run
// connects the same two client IDs again.
const benchRates = `
rates:
  flapping: {off: true}
  publish:
    per_connection: {messages: 1000000/s, bytes: 1GiB/s}
    per_username: {messages: 1000000/s, bytes: 1GiB/s}
    per_ip: {messages: 1000000/s, bytes: 1GiB/s}
`

// BenchmarkProxy measures one publisher and one subscriber on the same
// mosquitto, directly and through the proxy with the default policy and
// with the fleet policy (strict JSON, provenance stamp, views: the
// subscriber is the back end, view raw; its publisher MQTT 5, and 3.1.1
// translated to MQTT 5 upstream), at QoS 0 and 1, in one run.
//
// max: the publisher keeps at most 64 messages ahead of the subscriber
// (a closed loop, so neither path drops QoS 0 messages): msg/s is the
// throughput, p50/p99 the publish-to-delivery latency at that load.
// 5k: the publisher sends 5,000 messages a second: p50/p99 at that rate.
//
//	flock /work/bench.lock go test -run '^$' -bench Proxy -benchtime 20000x -count 3 ./mqttwaf/proxy/
func BenchmarkProxy(b *testing.B) {
	up := startMosquitto(b)
	fleetPath := filepath.Join("..", "..", "examples", "hardened-broker", "fleet.yaml")
	fleetYAML, err := os.ReadFile(fleetPath)
	if err != nil {
		b.Fatal(err)
	}
	// Its files by absolute path: the policy is parsed from memory.
	dir, err := filepath.Abs(filepath.Dir(fleetPath))
	if err != nil {
		b.Fatal(err)
	}
	for _, f := range []string{"fleet.creds", "fleet.pseudonym.key"} {
		fleetYAML = bytes.ReplaceAll(fleetYAML, []byte(" "+f), []byte(" "+filepath.Join(dir, f)))
	}
	policies := []struct {
		name, yaml, path string
	}{{"default", benchRates, "bench.yaml"}, {"fleet", string(fleetYAML) + benchRates, fleetPath}}
	type path struct {
		name             string
		addr             string
		pubUser, pubPass string
		subUser, subPass string
		topic, filter    string
		pubVer           byte
	}
	paths := []path{{name: "direct", addr: up, topic: "guest/pub/t", filter: "guest/#", pubVer: 5}}
	for _, pol := range policies {
		p, err := mqttwaf.ParsePolicy([]byte(pol.yaml), pol.path)
		if err != nil {
			b.Fatal(err)
		}
		px, _ := startProxyWith(b, p, up, nil)
		pa := path{name: "proxy-" + pol.name, addr: px.Addr(), topic: "guest/pub/t", filter: "guest/#", pubVer: 5}
		if pol.name == "fleet" {
			pa.pubUser, pa.pubPass, pa.subUser, pa.subPass = "dev1", "dev1-demo-pass", "backend", "backend-demo-pass"
			pa.topic, pa.filter = "fleet/dev1/telemetry", "fleet/+/telemetry"
			// The same with a 3.1.1 publisher, translated to MQTT 5
			// upstream so that its messages carry the stamp.
			p311 := pa
			p311.name, p311.pubVer = "proxy-fleet-311", 4
			paths = append(paths, pa, p311)
			continue
		}
		paths = append(paths, pa)
	}
	for _, load := range []string{"max", "5k"} {
		for _, qos := range []byte{0, 1} {
			for _, pa := range paths {
				b.Run(fmt.Sprintf("%s/qos%d/%s", load, qos, pa.name), func(b *testing.B) {
					sub := rawLogin(b, pa.addr, 5, "bench-sub", pa.subUser, pa.subPass)
					pubID := "pub"
					if pa.pubUser != "" {
						pubID = pa.pubUser // fleet: client IDs are bound to identities
					}
					sub.send(b, rawSubscribe(5, 1, pa.filter, qos))
					sub.next(b) // SUBACK
					pub := rawLogin(b, pa.addr, pa.pubVer, pubID, pa.pubUser, pa.pubPass)
					runLoad(b, pub, sub, pa.topic, qos, load == "5k")
				})
			}
		}
	}
}

// rawLogin is rawClient with credentials.
func rawLogin(b *testing.B, addr string, ver byte, id, user, pass string) *raw {
	b.Helper()
	if user == "" {
		return rawClient(b, addr, ver, id)
	}
	id = user // fleet: client IDs are bound to identities
	r := rawDial(b, addr, ver)
	cp := connect{protoName: "MQTT", level: ver, clean: true, keepalive: 60, clientID: id,
		hasUser: true, username: user, hasPass: true, password: []byte(pass)}
	r.send(b, cp.encode())
	if pk := r.next(b); pk[0]>>4 != frame.TypeConnack || pk[3] != 0 {
		b.Fatalf("CONNACK %x", pk)
	}
	return r
}

// runLoad publishes b.N messages from pub and receives them on sub,
// reporting throughput and latency percentiles.
func runLoad(b *testing.B, pub, sub *raw, topic string, qos byte, paced bool) {
	const window = 64
	credit := make(chan struct{}, window)
	for range window {
		credit <- struct{}{}
	}
	lat := make([]time.Duration, 0, b.N)
	var wg sync.WaitGroup
	errs := make(chan error, 3)
	wg.Add(1)
	go func() { // the subscriber: time each delivery, acknowledge QoS 1
		defer wg.Done()
		for len(lat) < b.N {
			_ = sub.c.SetReadDeadline(time.Now().Add(30 * time.Second))
			pk, err := sub.r.Next()
			if err != nil {
				errs <- fmt.Errorf("subscriber after %d: %w", len(lat), err)
				return
			}
			if pk[0]>>4 != frame.TypePublish {
				continue
			}
			p, err := decodePublish(5, pk)
			if err != nil {
				errs <- fmt.Errorf("delivery %x: %v", pk, err)
				return
			}
			lat = append(lat, time.Since(time.Unix(0, digits(p.payload))))
			if qos == 1 {
				if _, err := sub.c.Write(ack(5, frame.TypePuback, p.id, 0)); err != nil {
					errs <- err
					return
				}
			}
			select {
			case credit <- struct{}{}:
			default:
			}
		}
	}()
	if qos == 1 {
		wg.Add(1)
		go func() { // the publisher's PUBACKs
			defer wg.Done()
			for n := 0; n < b.N; {
				_ = pub.c.SetReadDeadline(time.Now().Add(30 * time.Second))
				pk, err := pub.r.Next()
				if err != nil {
					errs <- fmt.Errorf("publisher after %d PUBACKs: %w", n, err)
					return
				}
				if pk[0]>>4 == frame.TypePuback {
					if len(pk) > 4 && pk[4] >= 0x80 {
						errs <- fmt.Errorf("PUBACK %x: refused", pk)
						return
					}
					n++
				}
			}
		}()
	}
	b.ReportAllocs()
	b.ResetTimer()
	start := time.Now()
	var buf []byte
	id := uint16(0)
	for i := 0; i < b.N; i++ {
		if paced {
			if d := time.Until(start.Add(time.Duration(i) * 200 * time.Microsecond)); d > 0 {
				time.Sleep(d)
			}
		} else {
			select {
			case <-credit:
			case err := <-errs:
				b.Fatal(err)
			}
		}
		id++
		if id == 0 {
			id = 1
		}
		// Valid JSON for the fleet policy's firewall.
		payload := fmt.Appendf(buf[:0], `{"t":"%d"}`, time.Now().UnixNano()) // a string: I-JSON numbers stop at 2^53
		m := publish{qos: qos, id: id, topic: topic, payload: payload}
		if _, err := pub.c.Write(m.encode(pub.ver)); err != nil {
			b.Fatal(err)
		}
	}
	done := make(chan struct{})
	go func() { wg.Wait(); close(done) }()
	select {
	case <-done:
	case err := <-errs:
		b.Fatal(err)
	}
	elapsed := time.Since(start)
	b.StopTimer()
	slices.Sort(lat)
	b.ReportMetric(float64(b.N)/elapsed.Seconds(), "msg/s")
	b.ReportMetric(float64(lat[len(lat)/2].Microseconds()), "p50-µs")
	b.ReportMetric(float64(lat[len(lat)*99/100].Microseconds()), "p99-µs")
}

// digits reads the decimal number in b, ignoring everything else.
func digits(b []byte) int64 {
	var n int64
	for _, c := range b {
		if c >= '0' && c <= '9' {
			n = n*10 + int64(c-'0')
		}
	}
	return n
}
