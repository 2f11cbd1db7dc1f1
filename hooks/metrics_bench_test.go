package hooks

import (
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"runtime"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/mqttwaf/mqttwaf/mqttwaf"
	"github.com/mqttwaf/mqttwaf/mqttwaf/metrics"
	"github.com/mqttwaf/mqttwaf/ratelimit"
)

// metricsHandler is what the hardened broker serves at /metrics: the
// collector (with mochi's figures) in its own registry.
func metricsHandler(tb testing.TB, b *testBroker) http.Handler {
	tb.Helper()
	reg := prometheus.NewRegistry()
	reg.MustRegister(metrics.New(b.waf, metrics.Options{Broker: BrokerInfo(b.server)}))
	return promhttp.HandlerFor(reg, promhttp.HandlerOpts{})
}

// scrapeEverySecond serves b's metrics on a loopback HTTP listener and
// scrapes them once a second, as Prometheus would, until the benchmark
// ends. It returns the number of scrapes so far and the time spent
// answering them (wall time in the handler: an upper bound on its CPU).
func scrapeEverySecond(tb testing.TB, b *testBroker) func() (int64, time.Duration) {
	tb.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		tb.Fatal(err)
	}
	var spent atomic.Int64
	h := metricsHandler(tb, b)
	timed := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		start := time.Now()
		h.ServeHTTP(w, r)
		spent.Add(int64(time.Since(start)))
	})
	srv := &http.Server{Handler: timed, ReadHeaderTimeout: 5 * time.Second}
	go func() { _ = srv.Serve(ln) }()
	var n atomic.Int64
	done := make(chan struct{})
	stopped := make(chan struct{})
	go func() {
		defer close(stopped)
		tick := time.NewTicker(time.Second)
		defer tick.Stop()
		for {
			select {
			case <-done:
				return
			case <-tick.C:
				resp, err := http.Get("http://" + ln.Addr().String() + "/metrics")
				if err != nil {
					continue
				}
				_, _ = io.Copy(io.Discard, resp.Body)
				_ = resp.Body.Close()
				n.Add(1)
			}
		}
	}()
	tb.Cleanup(func() {
		close(done)
		<-stopped
		_ = srv.Close()
	})
	return func() (int64, time.Duration) { return n.Load(), time.Duration(spent.Load()) }
}

// BenchmarkMetricsCost is the cost of metrics on broker throughput: two
// brokers running the fleet policy (BenchmarkFleetScenario's load), one
// with the collector registered and scraped over HTTP every second, one
// without. It reports both rates and scraped/unscraped (median of per-round
// ratios, with its range), how many scrapes happened, and the share of the
// machine's CPU time (GOMAXPROCS x the run's wall time) spent answering
// them, an upper bound on what metrics take from the broker that per-round
// ratios on a shared machine cannot resolve:
//
//	go test -run '^$' -bench MetricsCost -benchtime 40000x -count 3 ./hooks/
func BenchmarkMetricsCost(b *testing.B) {
	unscraped := startFleet(b)
	scraped := startFleet(b)
	scrapes := scrapeEverySecond(b, scraped)
	start := time.Now()
	compareLoads(b, fleetLoad, []string{"unscraped", "scraped"}, []string{unscraped.addr, scraped.addr})
	n, spent := scrapes()
	b.ReportMetric(float64(n), "scrapes")
	b.ReportMetric(100*spent.Seconds()/(time.Since(start).Seconds()*float64(runtime.GOMAXPROCS(0))), "scrape_cpu_%")
}

// BenchmarkMetricsScrape is the cost of one scrape of a busy broker's
// metrics (gather and text encoding, as /metrics answers): the fleet
// broker after traffic, with 1000 bans and 100 lockouts in force.
//
//	go test -run '^$' -bench MetricsScrape -benchmem ./hooks/
func BenchmarkMetricsScrape(b *testing.B) {
	fleet := startFleet(b)
	newRig(b, fleet.addr, fleetLoad).run(b, 2000, seedPayload(b)) // counters and state of a broker at work
	now := time.Now()
	for i := range 1000 {
		t := ratelimit.ClientIDTarget("banned-" + string(rune('a'+i%26)) + time.Duration(i).String())
		if err := fleet.waf.Bans().Add(now, ratelimit.Ban{Target: t, Until: now.Add(time.Hour)}); err != nil {
			b.Fatal(err)
		}
	}
	for i := range 100 {
		t := ratelimit.UsernameTarget("user-" + time.Duration(i).String())
		if err := fleet.waf.Lockouts().Add(now, ratelimit.Ban{Target: t, Until: now.Add(time.Hour)}); err != nil {
			b.Fatal(err)
		}
	}
	fleet.waf.Record(mqttwaf.StageBroker, nil, "", "", "", 0, mqttwaf.Verdict{Action: mqttwaf.Drop, Rule: ruleDeliveryDropped, Reason: dropQueueFull})
	h := metricsHandler(b, fleet)
	req := httptest.NewRequest("GET", "/metrics", nil)
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, req)
	if rec.Code != 200 || rec.Body.Len() < 1000 {
		b.Fatalf("scrape: %d, %d bytes", rec.Code, rec.Body.Len())
	}
	b.ReportMetric(float64(len(fleet.waf.Counters())), "decision_series")
	b.ReportAllocs()
	for b.Loop() {
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, req)
	}
}
