package hooks

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/eclipse/paho.golang/paho"
	mqtt "github.com/mochi-mqtt/server/v2"
	"github.com/mochi-mqtt/server/v2/hooks/auth"
	"github.com/mochi-mqtt/server/v2/listeners"

	"github.com/mqttwaf/mqttwaf/mqttwaf"
	"github.com/mqttwaf/mqttwaf/ratelimit/redisstate/redistest"
)

// benchPublishers is how many clients publish concurrently in the broker
// benchmark. Each waits for its PUBACK (QoS 1), so nothing is dropped and
// the figure is end-to-end: publisher -> broker (+WAF) -> subscriber.
const benchPublishers = 8

// startPlainBroker is mochi as its README sets it up: default options,
// AllowHook, a plain TCP listener. It is the baseline.
func startPlainBroker(tb testing.TB) string {
	_, addr := newPlainBroker(tb, &mqtt.Options{})
	return addr
}

// newPlainBroker starts the baseline broker with opts (its logger replaced
// by a silent one) and returns it with its address.
func newPlainBroker(tb testing.TB, opts *mqtt.Options) (*mqtt.Server, string) {
	tb.Helper()
	opts.Logger = slog.New(slog.NewTextHandler(io.Discard, nil))
	server := mqtt.New(opts)
	_ = server.AddHook(new(auth.AllowHook), nil)
	l := listeners.NewTCP(listeners.Config{ID: "t", Address: "127.0.0.1:0"})
	if err := server.AddListener(l); err != nil {
		tb.Fatal(err)
	}
	if err := server.Serve(); err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { _ = server.Close() })
	return server, l.Address()
}

// load is who publishes and who reads in a broker benchmark: one
// subscriber, and publishers that each publish to their own topic.
type load struct {
	publishers int
	// subscriber connects the subscriber and subscribes it (QoS 1).
	subscriber func(tb testing.TB, addr string) *v5
	// publisher connects publisher i and returns it with its topic.
	publisher func(tb testing.TB, addr string, i int) (*v5, string)
}

// benchLoad is the default load: benchPublishers anonymous publishers, each
// on its own topic under bench/, and a subscriber to bench/#.
var benchLoad = load{
	publishers: benchPublishers,
	subscriber: func(tb testing.TB, addr string) *v5 {
		sub := mustV5(tb, addr, "bench-sub", "")
		sub.subscribe(tb, 1, "bench/#")
		return sub
	},
	publisher: func(tb testing.TB, addr string, i int) (*v5, string) {
		name := string(rune('a' + i))
		return mustV5(tb, addr, "bench-pub-"+name, ""), "bench/dev" + name + "/telemetry"
	},
}

// rig is a load's clients connected to one broker, reused across
// measurement rounds. It counts what the broker acknowledged and what the
// subscriber received, so a message the broker accepted and then lost is
// seen, not waited for.
type rig struct {
	sub    *v5
	pubs   []*v5
	topics []string
	got    atomic.Int64 // messages the subscriber received
	acked  atomic.Int64 // publishes the broker acknowledged with success
}

func newRig(tb testing.TB, addr string, l load) *rig {
	tb.Helper()
	r := &rig{sub: l.subscriber(tb, addr)}
	go func() {
		for range r.sub.msgs {
			r.got.Add(1)
		}
	}()
	for i := 0; i < l.publishers; i++ {
		p, topic := l.publisher(tb, addr, i)
		r.pubs, r.topics = append(r.pubs, p), append(r.topics, topic)
	}
	return r
}

// stallTimeout is how long a round waits for the subscriber to make any
// progress before the messages still missing count as lost.
const stallTimeout = 3 * time.Second

// run publishes n messages, each publisher waiting for the PUBACK of one
// before sending the next, and returns how long it took until the
// subscriber had every acknowledged message, or until it stopped receiving
// (lost messages are rig.lost()).
func (r *rig) run(tb testing.TB, n int, payload []byte) time.Duration {
	tb.Helper()
	start := time.Now()
	var wg sync.WaitGroup
	for i, p := range r.pubs {
		wg.Add(1)
		go func(i int, p *v5) {
			defer wg.Done()
			for j := i; j < n; j += len(r.pubs) {
				ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
				_, err := p.Publish(ctx, &paho.Publish{Topic: r.topics[i], QoS: 1, Payload: payload})
				cancel()
				if err != nil {
					tb.Error(err)
					return
				}
				r.acked.Add(1)
			}
		}(i, p)
	}
	wg.Wait()
	last, progress := r.got.Load(), time.Now()
	for r.got.Load() < r.acked.Load() {
		if got := r.got.Load(); got != last {
			last, progress = got, time.Now()
		} else if time.Since(progress) > stallTimeout {
			break // the rest is lost; compareLoads reports it
		}
		time.Sleep(100 * time.Microsecond)
	}
	return time.Since(start)
}

// lost is how many acknowledged messages the subscriber never received.
func (r *rig) lost() int64 { return max(0, r.acked.Load()-r.got.Load()) }

func seedPayload(tb testing.TB) []byte {
	tb.Helper()
	b, err := os.ReadFile(filepath.Join("..", "mqttwaf", "testdata", "komdi-alarm.json"))
	if err != nil {
		tb.Fatal(err)
	}
	return b
}

// compareBrokers runs benchLoad through every broker in addrs; see
// compareLoads.
func compareBrokers(b *testing.B, names []string, addrs []string) {
	compareLoads(b, benchLoad, names, addrs)
}

// compareLoads runs the same load through every broker in addrs in one run
// and reports each one's delivered messages per second and its ratio to
// the first. The load goes in rounds; in each round every broker gets the
// same share, in rotating order, after a GC, and the ratio reported is the
// median of the per-round ratios (with the lowest and highest): pairing
// runs that are seconds apart cancels the drift of a shared machine, which
// summed times do not. It also reports each broker's lost messages
// (acknowledged to the publisher, never delivered) and fails if there are
// any.
func compareLoads(b *testing.B, l load, names []string, addrs []string) {
	payload := seedPayload(b)
	rigs := make([]*rig, len(addrs))
	for i, a := range addrs {
		rigs[i] = newRig(b, a, l)
		rigs[i].run(b, 200, payload) // warm up connections and buffers
	}
	rounds := max(1, min(20, b.N/500))
	spent := make([]time.Duration, len(addrs))
	perRound := make([][]time.Duration, len(addrs))
	b.ReportAllocs()
	b.ResetTimer()
	for round := 0; round < rounds; round++ {
		n := b.N / rounds
		if round == rounds-1 {
			n = b.N - n*(rounds-1)
		}
		for k := range rigs {
			i := (k + round) % len(rigs) // rotate who goes first
			runtime.GC()
			d := rigs[i].run(b, n, payload)
			spent[i] += d
			perRound[i] = append(perRound[i], d)
		}
	}
	b.StopTimer()
	for i, name := range names {
		b.ReportMetric(float64(b.N)/spent[i].Seconds(), name+"_msgs/s")
		lost := rigs[i].lost()
		b.ReportMetric(float64(lost), name+"_lost")
		if lost > 0 {
			b.Errorf("%s: %d of %d acknowledged messages were never delivered", name, lost, rigs[i].acked.Load())
		}
		if i == 0 {
			continue
		}
		reportRoundRatios(b, perRound, i, name+"/"+names[0], name+"/"+names[0])
	}
}

// reportRoundRatios reports how much faster broker i was than broker 0,
// round by round (perRound[broker][round] is the time a round took): the
// median ratio as metric median, and with several rounds the lowest and
// highest as prefix_min and prefix_max.
func reportRoundRatios(b *testing.B, perRound [][]time.Duration, i int, median, prefix string) {
	ratios := make([]float64, len(perRound[0]))
	for r := range ratios {
		ratios[r] = perRound[0][r].Seconds() / perRound[i][r].Seconds()
	}
	slices.Sort(ratios)
	b.ReportMetric(ratios[len(ratios)/2], median)
	if len(ratios) > 1 {
		b.ReportMetric(ratios[0], prefix+"_min")
		b.ReportMetric(ratios[len(ratios)-1], prefix+"_max")
	}
}

// benchRates keeps every rate protection on, with publish rates above what
// the benchmark load reaches (the defaults, 100 messages/s per connection,
// would refuse it): the benchmarks measure the cost of the checks.
const benchRates = `rates:
  publish:
    per_connection: {messages: 100000000/s, bytes: 100GiB/s}
    per_username: {messages: 100000000/s, bytes: 100GiB/s}
    per_ip: {messages: 100000000/s, bytes: 100GiB/s}
`

// BenchmarkBrokerThroughput runs the same load through plain mochi and
// through the hardened broker (default policy), and reports both rates and
// their ratio. It is the baseline later protections report their overhead
// against. Run with a fixed count so runs compare:
//
//	go test -run '^$' -bench BrokerThroughput -benchtime 20000x -count 5 ./hooks/
func BenchmarkBrokerThroughput(b *testing.B) {
	compareBrokers(b, []string{"plain", "hardened"},
		[]string{startPlainBroker(b), startBroker(b, benchRates, brokerOpts{bench: true}).addr})
}

// BenchmarkBrokerState compares the hardened broker (the throughput
// benchmark's policy) with its state in memory and in a real redis-server
// on loopback (state.backend: redis: every rate counted locally and
// synced every 100 ms, bans and budgets shared), in one run:
//
//	flock /work/bench.lock go test -run '^$' -bench BrokerState -benchtime 40000x -count 5 ./hooks/
func BenchmarkBrokerState(b *testing.B) {
	srv := redistest.Start(b)
	shared := startBroker(b, benchRates+fmt.Sprintf("state: {backend: redis, redis: {address: %q}}\n", srv.Addr()), brokerOpts{bench: true})
	b.Cleanup(func() { _ = shared.waf.Stop() })
	for !shared.waf.State().Up {
		time.Sleep(10 * time.Millisecond)
	}
	compareBrokers(b, []string{"memory", "redis"}, []string{
		startBroker(b, benchRates, brokerOpts{bench: true}).addr,
		shared.addr,
	})
	if !shared.waf.State().Up {
		b.Fatal("redis went away during the benchmark")
	}
}

// BenchmarkBrokerSplit splits the default policy's cost in
// BenchmarkBrokerThroughput into its parts, all in one run: stock mochi;
// "tuned", mochi with the hardened broker's capabilities (write queue,
// in-flight and receive maximums) and no hook; the hardened broker with
// mochi reading the socket directly; and the hardened broker as it runs:
//
//	go test -run '^$' -bench BrokerSplit -benchtime 60000x -count 5 ./hooks/
func BenchmarkBrokerSplit(b *testing.B) {
	p, err := mqttwaf.ParsePolicy([]byte(benchRates), "bench")
	if err != nil {
		b.Fatal(err)
	}
	_, tuned := newPlainBroker(b, HardenedOptions(p))
	compareBrokers(b, []string{"plain", "tuned", "unvalidated", "hardened"}, []string{
		startPlainBroker(b), tuned,
		startBroker(b, benchRates, brokerOpts{bench: true, unvalidated: true}).addr,
		startBroker(b, benchRates, brokerOpts{bench: true}).addr,
	})
}

// BenchmarkBrokerFrames measures the frame validator: the hardened broker
// (default policy) with mochi reading the socket directly, and with every
// packet validated first (as NewListener always does):
//
//	go test -run '^$' -bench BrokerFrames -benchtime 40000x -count 5 ./hooks/
func BenchmarkBrokerFrames(b *testing.B) {
	compareBrokers(b, []string{"unvalidated", "validated"}, []string{
		startBroker(b, benchRates, brokerOpts{bench: true, unvalidated: true}).addr,
		startBroker(b, benchRates, brokerOpts{bench: true}).addr,
	})
}

// BenchmarkBrokerJSON compares the hardened broker with and without JSON
// normalisation on every topic (the seed message has whitespace, so every
// message is rewritten):
//
//	go test -run '^$' -bench BrokerJSON -benchtime 20000x -count 5 ./hooks/
func BenchmarkBrokerJSON(b *testing.B) {
	compareBrokers(b, []string{"hardened", "json"}, []string{
		startBroker(b, benchRates, brokerOpts{bench: true}).addr,
		startBroker(b, benchRates+"payloads: [{topics: ['#'], format: json}]\n", brokerOpts{bench: true}).addr,
	})
}

// BenchmarkBrokerRates compares the hardened broker with every rate
// protection off and on (limits above the load, so every check runs and
// none refuses):
//
//	go test -run '^$' -bench BrokerRates -benchtime 20000x -count 5 ./hooks/
func BenchmarkBrokerRates(b *testing.B) {
	compareBrokers(b, []string{"off", "rates"}, []string{
		startBroker(b, "rates: {off: true}\n", brokerOpts{bench: true}).addr,
		startBroker(b, benchRates, brokerOpts{bench: true}).addr,
	})
}

// benchRedactRules are the README's redaction rules for the seed message,
// as a payload entry's redact section lists them.
const benchRedactRules = `    redact:
      rules:
        - {path: DATA.USER_NAME, op: remove}
        - {path: DATA.USER_MOBILE, op: mask, keep_last: 4}
        - {path: DATA.USER_ID, op: pseudonym}
        - {paths: [DATA.LAT, DATA.LON], op: coarsen, cell_metres: 1000}
        - {path: DATA.NUMBER_PLATE, op: mask, keep_first: 3}
`

// benchRedaction is the README's redaction rule set for the seed message,
// on every topic.
const benchRedaction = `payloads:
  - topics: ["#"]
    format: json
` + benchRedactRules + `redaction: {pseudonym_key_env: MQTTWAF_BENCH_PSEUDONYM_KEY}
`

// BenchmarkBrokerRedact compares the hardened broker without payload rules,
// with JSON normalisation and redaction of every message, and with
// per-subscriber views (the subscriber gets the redacted view of a message
// stored raw):
//
//	go test -run '^$' -bench BrokerRedact -benchtime 20000x -count 5 ./hooks/
func BenchmarkBrokerRedact(b *testing.B) {
	b.Setenv("MQTTWAF_BENCH_PSEUDONYM_KEY", "benchmark-pseudonym-key-0123456789")
	views := strings.Replace(openAccess, "broad_wildcards: true}", "broad_wildcards: true}, raw: {subscribe: ['#'], view: raw}", 1)
	compareBrokers(b, []string{"hardened", "redact", "views"}, []string{
		startBroker(b, benchRates, brokerOpts{bench: true}).addr,
		startBroker(b, benchRates+benchRedaction, brokerOpts{bench: true}).addr,
		startBroker(b, views+benchRates+benchRedaction, brokerOpts{bench: true}).addr,
	})
}

// BenchmarkBrokerSchema compares the hardened broker without payload rules
// and with the seed's JSON Schema checked on every message:
//
//	go test -run '^$' -bench BrokerSchema -benchtime 20000x -count 5 ./hooks/
func BenchmarkBrokerSchema(b *testing.B) {
	schemaFile, err := filepath.Abs(filepath.Join("..", "mqttwaf", "schema", "testdata", "komdi-alarm.schema.json"))
	if err != nil {
		b.Fatal(err)
	}
	fields := "      - {path: DATA.LAT, required: true, type: number, min: -90, max: 90}\n" +
		"      - {path: DATA.LON, required: true, type: number, min: -180, max: 180}\n" +
		"      - {path: DATA.REPORT_TIME, required: true, type: string, pattern: '^[0-9]{14}$'}\n" +
		"      - {path: TYPE, required: true, enum: [MALARM_INFO, MALARM_CLEAR]}\n"
	compareBrokers(b, []string{"hardened", "schema", "fields"}, []string{
		startBroker(b, benchRates, brokerOpts{bench: true}).addr,
		startBroker(b, benchRates+"payloads: [{topics: ['#'], format: json, schema: "+schemaFile+"}]\n", brokerOpts{bench: true}).addr,
		startBroker(b, benchRates+"payloads:\n  - topics: ['#']\n    format: json\n    fields:\n"+fields, brokerOpts{bench: true}).addr,
	})
}

// benchStack is a policy with every protection at work on the benchmark's
// messages: JSON normalisation, field rules, redaction and provenance on
// top of the identity, rate, anti-flood and hardening defaults.
const benchStack = benchRates + openAccess + `
provenance: {user_property: publisher}
payloads:
  - topics: ["bench/#"]
    format: json
    fields: [{path: DATA.LAT, type: number}]
    redact:
      rules:
        - {path: DATA.NUMBER_PLATE, op: mask, keep_last: 2}
        - {paths: [DATA.LAT, DATA.LON], op: coarsen, decimals: 2}
`

// BenchmarkBrokerStacked runs the same load through the same protections,
// installed from a policy (hooks.Install) and stacked by hand (one
// server.AddHook per protection, each with its section of the same policy),
// and reports both rates and their ratio (stacked/policy):
//
//	go test -run '^$' -bench BrokerStacked -benchtime 40000x -count 5 ./hooks/
func BenchmarkBrokerStacked(b *testing.B) {
	p, err := mqttwaf.ParsePolicy([]byte(benchStack), "bench")
	if err != nil {
		b.Fatal(err)
	}
	installed := startBrokerWith(b, p, brokerOpts{bench: true})
	quiet := mqttwaf.SinkFunc(func(mqttwaf.Event) {})
	stacked := startStack(b, func(s *mqtt.Server, _ mqttwaf.Sink) []stacked { return stackOf(s, p, quiet) })
	if got, want := stacked.waf.Rules(), installed.waf.Rules(); !slices.Equal(got, want) {
		b.Fatalf("stacked rules %v, installed %v", got, want)
	}
	compareBrokers(b, []string{"policy", "stacked"}, []string{installed.addr, stacked.addr})
}

// stackOf is p's protections as hooks, each with its sections of p.
func stackOf(s *mqtt.Server, p *mqttwaf.Policy, sink mqttwaf.Sink) []stacked {
	r := p.Rates
	return []stacked{
		{new(Hardening), &HardeningOptions{Server: s, Shared: Shared{Sink: sink, Mode: p.Mode, Events: p.Events, Addresses: p.Addresses},
			Broker: p.Broker, Connections: p.Connections, Listeners: p.Listeners, Limits: p.Limits, Sessions: p.Sessions,
			Wills: p.Wills, Responses: p.Responses}},
		{new(AntiFlood), &AntiFloodOptions{Connect: r.Connect, Flapping: r.Flapping, NewClientIDs: r.NewClientIDs, NewTopics: r.NewTopics, MaxKeys: r.MaxKeys}},
		{new(RateLimit), &RateLimitOptions{Publish: r.Publish, Subscribe: r.Subscribe, Retained: r.Retained, Escalation: r.Escalation, MaxKeys: r.MaxKeys}},
		{new(Identity), &IdentityOptions{Server: s, Identity: p.Identity, Roles: p.Roles}},
		{new(Normalize), &NormalizeOptions{Payloads: p.Payloads}},
		{new(Schema), &SchemaOptions{Payloads: p.Payloads}},
		{new(Redact), &RedactOptions{Payloads: p.Payloads, Redaction: p.Redaction}},
		{new(Provenance), &ProvenanceOptions{UserProperty: p.Provenance.UserProperty}},
	}
}
