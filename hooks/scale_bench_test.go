//go:build linux

package hooks

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"runtime/debug"
	"runtime/pprof"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	mqtt "github.com/mochi-mqtt/server/v2"

	"github.com/mqttwaf/mqttwaf/mqttwaf"
)

// Memory and CPU at scale (issue 14). Each broker runs in a process of its
// own (this test binary, re-executed as TestScaleBroker), so its RSS and
// its CPU time are the broker's alone: the clients, in this process, use
// neither. The clients are raw MQTT 5 over net.Conn (a CONNECT and a check
// of its CONNACK; SUBSCRIBE and its SUBACK): paho's goroutines per
// connection would make 50,000 clients cost more than the brokers.
//
//	flock /work/bench.lock go test -run '^$' -bench ScaleMemory -benchtime 1x -timeout 30m ./hooks/
//	flock /work/bench.lock go test -run '^$' -bench ScaleCPU -benchtime 1x ./hooks/
//
// Linux only: RSS comes from /proc. Holding 50,000 connections needs
// RLIMIT_NOFILE above 50,000 in both processes; the benchmarks raise it,
// the hard limit too when the process may (CAP_SYS_RESOURCE), and skip a
// size that does not fit.

// scaleEnv, in a process's environment, makes TestScaleBroker run a broker
// of that kind (one of scaleKinds) instead of skipping.
const scaleEnv = "MQTTWAF_SCALE_BROKER"

// scaleKinds are the brokers measured: stock mochi as its README sets it up
// (default options, auth.AllowHook, mochi's TCP listener); "tuned", the same
// with the hardened broker's capabilities (HardenedOptions of scalePolicy:
// write queue, in-flight and receive maximums...), which tells what those
// cost apart from what the WAF's hooks and listener cost; and the hardened
// broker, as examples/hardened-broker builds it, running scalePolicy.
var scaleKinds = []string{"stock", "tuned", "hardened"}

// scaleProfilesEnv names a directory for heap profiles of the brokers at
// each stage of BenchmarkScaleMemory (optional).
const scaleProfilesEnv = "MQTTWAF_SCALE_PROFILES"

// scaleMemProfileEnv makes a broker process record every allocation.
const scaleMemProfileEnv = "MQTTWAF_SCALE_MEMPROFILE"

// scaleConnsEnv overrides the connection counts of BenchmarkScaleMemory
// (comma-separated; default 10000,50000).
const scaleConnsEnv = "MQTTWAF_SCALE_CONNS"

// scalePolicy is the default policy with what holding 50,000 clients, and
// connecting them as fast as one test process can, needs:
//   - broker.max_connections 60,000 (default 10,000): room for 50,000;
//   - rates.max_keys 60,000 (default 20,000): "every connected client fits",
//     as an operator sizing for 50,000 clients would set it;
//   - rates.connect per address, network and listener at 100,000/s
//     (defaults 20/s, 200/s and 1,000/s) and rates.new_client_ids at
//     1,000,000/min broker-wide and 100,000/min per address (defaults 5,000
//     and 100): the clients connect at thousands a second, 250 per loopback
//     address, which is the flood those limits refuse;
//   - rates.publish raised as in benchRates (defaults 100 msgs/s per
//     connection): BenchmarkScaleCPU publishes 100,000 messages a batch.
//
// Everything else is the default: 256 sockets per address (the clients use
// 250), keepalive, flapping, subscribe rates (10 filters/s, 8 per SUBSCRIBE,
// 50 per connection), anonymous guests from loopback with the guest role.
const scalePolicy = `broker: {max_connections: 60000}
rates:
  max_keys: 60000
  connect: {per_ip: 100000/s, per_network: 100000/s, per_listener: 100000/s}
  new_client_ids: {global: 1000000/min, per_ip: 100000/min}
  publish:
    per_connection: {messages: 1000000/s, bytes: 10GiB/s}
    per_username: {messages: 1000000/s, bytes: 10GiB/s}
    per_ip: {messages: 1000000/s, bytes: 10GiB/s}
`

// scalePerAddress is how many clients connect from one loopback address:
// under the default per-address socket cap (256), and far under the ~28,000
// ephemeral ports of one source address.
const scalePerAddress = 250

// scaleKeepalive (seconds) keeps idle clients connected for the whole
// measurement without a PINGREQ (under the hardened maximum of 20 minutes,
// so it is not clamped).
const scaleKeepalive = 900

// TestScaleBroker is the broker process of BenchmarkScaleMemory and
// BenchmarkScaleCPU; without scaleEnv it skips. It prints "scale-addr
// <address>", then answers each line on stdin with "scale-stat <json>":
// "stat" reads the figures as they are, "settle" first runs the collector
// (three times, so idle goroutines' stacks shrink as they do in a broker
// that has run a while) and returns freed memory to the OS, "heap <file>"
// writes a heap profile, "cpu <file>" starts a CPU profile and "cpu" stops
// it. It returns at EOF.
func TestScaleBroker(t *testing.T) {
	kind := os.Getenv(scaleEnv)
	if kind == "" {
		t.Skip("the broker process of BenchmarkScaleMemory and BenchmarkScaleCPU")
	}
	if os.Getenv(scaleMemProfileEnv) != "" {
		// Every allocation in the heap profiles, not a sample:
		// per-connection objects are small. (It costs memory and time: the
		// figures of a run with heap profiles are not the ones to quote.)
		runtime.MemProfileRate = 1
	}
	if _, err := raiseNoFile(200_000); err != nil {
		t.Log(err) // the parent checked what it needs
	}
	p, err := mqttwaf.ParsePolicy([]byte(scalePolicy), "scale")
	if err != nil {
		t.Fatal(err)
	}
	var server *mqtt.Server
	var addr string
	switch kind {
	case "stock":
		server, addr = newPlainBroker(t, &mqtt.Options{})
	case "tuned":
		server, addr = newPlainBroker(t, HardenedOptions(p))
	case "hardened":
		b := startBrokerWith(t, p, brokerOpts{bench: true})
		server, addr = b.server, b.addr
	default:
		t.Fatalf("%s=%q: want stock, tuned or hardened", scaleEnv, kind)
	}
	fmt.Printf("scale-addr %s\n", addr)
	in := bufio.NewScanner(os.Stdin)
	for in.Scan() {
		cmd, arg, _ := strings.Cut(in.Text(), " ")
		switch cmd {
		case "settle":
			for range 3 {
				runtime.GC()
			}
			debug.FreeOSMemory()
		case "heap":
			runtime.GC()
			if err := writeHeapProfile(arg); err != nil {
				t.Fatal(err)
			}
		case "cpu":
			if err := cpuProfile(arg); err != nil {
				t.Fatal(err)
			}
		}
		st := childStat(server)
		line, _ := json.Marshal(st)
		fmt.Printf("scale-stat %s\n", line)
	}
}

func writeHeapProfile(path string) error {
	f, err := os.Create(path)
	if err != nil {
		return err
	}
	if err := pprof.Lookup("heap").WriteTo(f, 0); err != nil {
		_ = f.Close()
		return err
	}
	return f.Close()
}

// cpuProfile starts a CPU profile into path, or with path "" stops the
// running one.
var cpuProfile = func() func(path string) error {
	var f *os.File
	return func(path string) error {
		if f != nil {
			pprof.StopCPUProfile()
			if err := f.Close(); err != nil {
				return err
			}
			f = nil
		}
		if path == "" {
			return nil
		}
		var err error
		if f, err = os.Create(path); err != nil {
			return err
		}
		return pprof.StartCPUProfile(f)
	}
}()

// scaleStat is a broker process's figures at one moment.
type scaleStat struct {
	RSS        int64         `json:"-"` // VmRSS, read by the parent from /proc/<pid>/status
	HeapInuse  int64         `json:"heap_inuse"`
	StackInuse int64         `json:"stack_inuse"`
	Mapped     int64         `json:"mapped"` // what the Go runtime holds from the OS: Sys - HeapReleased
	Goroutines int64         `json:"goroutines"`
	Clients    int64         `json:"clients"` // mochi's connected clients
	CPU        time.Duration `json:"cpu"`     // user + system time of the process
	SysCPU     time.Duration `json:"sys_cpu"` // of which system (the kernel's work for the process)
}

func childStat(server *mqtt.Server) scaleStat {
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	var ru syscall.Rusage
	_ = syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	return scaleStat{
		HeapInuse: int64(ms.HeapInuse), StackInuse: int64(ms.StackInuse), Mapped: int64(ms.Sys - ms.HeapReleased),
		Goroutines: int64(runtime.NumGoroutine()),
		Clients:    atomic.LoadInt64(&server.Info.ClientsConnected),
		CPU:        time.Duration(ru.Utime.Nano() + ru.Stime.Nano()),
		SysCPU:     time.Duration(ru.Stime.Nano()),
	}
}

// raiseNoFile raises RLIMIT_NOFILE to want (the hard limit too, which root
// may) and returns the soft limit in force. A process that sets the limit
// itself passes it on to the processes it starts (Go restores the limit it
// found at start-up only if the program never set it).
func raiseNoFile(want uint64) (uint64, error) {
	var lim syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &lim); err != nil {
		return 0, err
	}
	if lim.Cur >= want {
		return lim.Cur, nil
	}
	err := syscall.Setrlimit(syscall.RLIMIT_NOFILE, &syscall.Rlimit{Cur: want, Max: max(want, lim.Max)})
	if err != nil {
		// Not root: as far as the hard limit goes.
		err = fmt.Errorf("RLIMIT_NOFILE to %d: %w", want, err)
		_ = syscall.Setrlimit(syscall.RLIMIT_NOFILE, &syscall.Rlimit{Cur: lim.Max, Max: lim.Max})
	}
	_ = syscall.Getrlimit(syscall.RLIMIT_NOFILE, &lim)
	return lim.Cur, err
}

// needNoFile raises RLIMIT_NOFILE so that this process and the broker
// processes it starts can each hold n connections, or says why it cannot.
func needNoFile(n int) error {
	limit, err := raiseNoFile(uint64(n) + 1000)
	if limit >= uint64(n)+500 {
		return nil
	}
	return fmt.Errorf("RLIMIT_NOFILE is %d, too low for %d connections (%v): as root with CAP_SYS_RESOURCE "+
		"the benchmark raises it; elsewhere raise the hard limit (ulimit -Hn, LimitNOFILE) or set %s to sizes that fit",
		limit, n, err, scaleConnsEnv)
}

// scaleBroker is a broker process run by this one.
type scaleBroker struct {
	kind string
	addr string
	cmd  *exec.Cmd
	in   io.WriteCloser
	out  *bufio.Scanner
}

// startScaleBroker runs this test binary as a broker of kind, with env
// added to its environment.
func startScaleBroker(tb testing.TB, kind string, env ...string) *scaleBroker {
	tb.Helper()
	cmd := exec.Command(os.Args[0], "-test.run=^TestScaleBroker$")
	cmd.Env = append(append(os.Environ(), scaleEnv+"="+kind), env...)
	in, out := startChild(tb, cmd)
	s := &scaleBroker{kind: kind, cmd: cmd, in: in, out: bufio.NewScanner(out)}
	tb.Cleanup(s.stop)
	addr, err := s.reply("scale-addr ")
	if err != nil {
		tb.Fatal(err)
	}
	s.addr = addr
	return s
}

// reply returns the rest of the broker's next line that starts with
// prefix; other lines (the test framework's) are skipped.
func (s *scaleBroker) reply(prefix string) (string, error) {
	for s.out.Scan() {
		if rest, ok := strings.CutPrefix(s.out.Text(), prefix); ok {
			return rest, nil
		}
	}
	return "", fmt.Errorf("%s broker process ended: %v", s.kind, s.out.Err())
}

// stat sends cmd (see TestScaleBroker) and returns the broker's figures
// afterwards, with its RSS.
func (s *scaleBroker) stat(tb testing.TB, cmd string) scaleStat {
	tb.Helper()
	if _, err := fmt.Fprintln(s.in, cmd); err != nil {
		tb.Fatal(err)
	}
	line, err := s.reply("scale-stat ")
	if err != nil {
		tb.Fatal(err)
	}
	var st scaleStat
	if err := json.Unmarshal([]byte(line), &st); err != nil {
		tb.Fatal(err)
	}
	if st.RSS, err = vmRSS(s.cmd.Process.Pid); err != nil {
		tb.Fatal(err)
	}
	return st
}

// waitClients waits until the broker holds n connected clients, then lets
// the connections' last work (deferred clean-up after mochi's count
// changes) finish.
func (s *scaleBroker) waitClients(tb testing.TB, n int64) {
	tb.Helper()
	for deadline := time.Now().Add(2 * time.Minute); ; time.Sleep(20 * time.Millisecond) {
		st := s.stat(tb, "stat")
		if st.Clients == n {
			break
		}
		if time.Now().After(deadline) {
			tb.Fatalf("%s broker: %d clients, want %d", s.kind, st.Clients, n)
		}
	}
	time.Sleep(200 * time.Millisecond)
}

func (s *scaleBroker) stop() {
	if s.cmd.ProcessState != nil {
		return
	}
	_ = s.in.Close() // the broker returns at EOF
	done := make(chan struct{})
	go func() { _ = s.cmd.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(30 * time.Second):
		_ = s.cmd.Process.Kill()
		<-done
	}
}

// vmRSS reads a process's resident set size from /proc.
func vmRSS(pid int) (int64, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0, err
	}
	for line := range strings.SplitSeq(string(b), "\n") {
		if rest, ok := strings.CutPrefix(line, "VmRSS:"); ok {
			kb, err := strconv.ParseInt(strings.TrimSuffix(strings.TrimSpace(rest), " kB"), 10, 64)
			return kb << 10, err
		}
	}
	return 0, errors.New("no VmRSS in /proc/<pid>/status")
}

// scaleLocal is the loopback address client i of a group connects from:
// scalePerAddress clients per address, groups apart (127.<group>.x.y).
func scaleLocal(group, i int) *net.TCPAddr {
	a := i / scalePerAddress
	return &net.TCPAddr{IP: net.IPv4(127, byte(group), byte(a/250), byte(a%250+1))}
}

// parallel runs f(i) for i in [0, n) on 32 goroutines and returns the
// first error.
func parallel(n int, f func(i int) error) error {
	var next atomic.Int64
	var first error
	var once sync.Once
	var wg sync.WaitGroup
	for range 32 {
		wg.Go(func() {
			for i := int(next.Add(1) - 1); i < n; i = int(next.Add(1) - 1) {
				if err := f(i); err != nil {
					once.Do(func() { first = err })
					next.Store(int64(n)) // stop the others
					return
				}
			}
		})
	}
	wg.Wait()
	return first
}

// scaleDial opens n MQTT 5 connections to addr with client IDs prefix0,
// prefix1..., from the addresses of group; each counts once its CONNACK
// says success. The connections are never read again: idle clients.
func scaleDial(addr, prefix string, group, n int) ([]net.Conn, error) {
	conns := make([]net.Conn, n)
	err := parallel(n, func(i int) error {
		d := net.Dialer{Timeout: 10 * time.Second, LocalAddr: scaleLocal(group, i)}
		c, err := d.Dial("tcp", addr)
		if err != nil {
			return err
		}
		conns[i] = c
		_ = c.SetDeadline(time.Now().Add(30 * time.Second))
		if _, err := c.Write(rawConnectKeepalive(5, prefix+strconv.Itoa(i), scaleKeepalive)); err != nil {
			return err
		}
		ack, err := readPacketErr(c)
		if err != nil {
			return fmt.Errorf("CONNACK %d: %w", i, err)
		}
		if len(ack) < 4 || ack[0] != 0x20 || ack[3] != 0 {
			return fmt.Errorf("CONNACK %d: % x", i, ack)
		}
		return c.SetDeadline(time.Time{})
	})
	return conns, err
}

// rawSubscribeV5 is an MQTT 5 SUBSCRIBE of filters at QoS qos.
func rawSubscribeV5(id uint16, qos byte, filters ...string) []byte {
	b := []byte{byte(id >> 8), byte(id), 0} // no properties
	for _, f := range filters {
		b = append(b, byte(len(f)>>8), byte(len(f)))
		b = append(b, f...)
		b = append(b, qos)
	}
	return framePacket(0x82, b)
}

// subscribeV5 subscribes c to filters at QoS qos (8 per SUBSCRIBE, the
// hardened maximum) and checks that every one was granted. Nothing else may
// be reading c.
func subscribeV5(c net.Conn, qos byte, filters ...string) error {
	_ = c.SetDeadline(time.Now().Add(30 * time.Second))
	defer c.SetDeadline(time.Time{})
	for chunk := range slices.Chunk(filters, 8) {
		if _, err := c.Write(rawSubscribeV5(1, qos, chunk...)); err != nil {
			return err
		}
		ack, err := readPacketErr(c)
		if err != nil {
			return err
		}
		// SUBACK: 0x90, length, packet id, properties length (0), codes.
		if len(ack) != 5+len(chunk) || ack[0] != 0x90 || ack[4] != 0 || bytes.Count(ack[5:], []byte{qos}) != len(chunk) {
			return fmt.Errorf("SUBACK % x for %v", ack, chunk)
		}
	}
	return nil
}

// scaleSubscribe subscribes each connection (client ID prefix+i) to the
// filters guest/<client ID>/s<from>..s<to-1>: within the default guest
// role's guest/#, and none shared, as devices' own command topics are.
func scaleSubscribe(conns []net.Conn, prefix string, from, to int) error {
	return parallel(len(conns), func(i int) error {
		var filters []string
		for k := from; k < to; k++ {
			filters = append(filters, "guest/"+prefix+strconv.Itoa(i)+"/s"+strconv.Itoa(k))
		}
		return subscribeV5(conns[i], 0, filters...)
	})
}

func closeAll(conns []net.Conn) {
	for _, c := range conns {
		if c != nil {
			_, _ = c.Write([]byte{0xe0, 0}) // DISCONNECT, normal
			_ = c.Close()
		}
	}
}

// scaleMemory is one broker's figures at each stage of the measurement.
type scaleMemory struct {
	base, conns, sub1, sub10 scaleStat
}

// measureMemory runs a broker of kind, connects n idle clients, subscribes
// each to one filter and then to nine more, and returns the settled figures
// at each stage.
func measureMemory(b *testing.B, kind string, n int) scaleMemory {
	b.Helper()
	dir := os.Getenv(scaleProfilesEnv)
	var env []string
	if dir != "" {
		env = append(env, scaleMemProfileEnv+"=1")
	}
	s := startScaleBroker(b, kind, env...)
	defer s.stop()
	profile := func(stage string) {
		if dir != "" {
			s.stat(b, "heap "+filepath.Join(dir, fmt.Sprintf("heap-%s-%d-%s.pprof", kind, n, stage)))
		}
	}
	var m scaleMemory
	m.base = s.stat(b, "settle")
	profile("base")
	conns, err := scaleDial(s.addr, "idle-", 1, n)
	defer closeAll(conns)
	if err != nil {
		b.Fatalf("%s: %v", kind, err)
	}
	s.waitClients(b, int64(n))
	m.conns = s.stat(b, "settle")
	profile("conns")
	if err := scaleSubscribe(conns, "idle-", 0, 1); err != nil {
		b.Fatalf("%s: %v", kind, err)
	}
	m.sub1 = s.stat(b, "settle")
	profile("sub1")
	if err := scaleSubscribe(conns, "idle-", 1, 10); err != nil {
		b.Fatalf("%s: %v", kind, err)
	}
	m.sub10 = s.stat(b, "settle")
	return m
}

// scaleLog prints a line of the scale benchmarks' tables to stdout: the
// testing package keeps only the first ten lines a benchmark logs.
func scaleLog(format string, args ...any) {
	fmt.Printf("    "+format+"\n", args...)
}

// per is the growth from a to b per unit of n, in bytes.
func per(a, b scaleStat, n int, field func(scaleStat) int64) float64 {
	return float64(field(b)-field(a)) / float64(n)
}

func memRSS(s scaleStat) int64   { return s.RSS }
func memHeap(s scaleStat) int64  { return s.HeapInuse }
func memStack(s scaleStat) int64 { return s.StackInuse }

// BenchmarkScaleMemory measures what idle connections and subscriptions
// cost in each of scaleKinds, each in a broker process of its own, with
// 10,000 and 50,000 MQTT 5 clients (250 per loopback address), each
// subscribed to 1 and then 10 filters of its own. Figures after a settle
// (the collector run three times, freed memory returned to the OS):
//
//	flock /work/bench.lock go test -run '^$' -bench ScaleMemory -benchtime 1x -timeout 30m ./hooks/
//
// With MQTTWAF_SCALE_PROFILES=<dir>, heap profiles of each broker before
// the connections, after them and after the first subscriptions are written
// there, with every allocation recorded (so the figures of that run are
// off): go tool pprof -top -sample_index=inuse_space -diff_base <before> <after>.
func BenchmarkScaleMemory(b *testing.B) {
	if raceEnabled {
		b.Skip("figures under the race detector mean nothing")
	}
	sizes := []int{10_000, 50_000}
	if env := os.Getenv(scaleConnsEnv); env != "" {
		sizes = nil
		for f := range strings.SplitSeq(env, ",") {
			n, err := strconv.Atoi(strings.TrimSpace(f))
			if err != nil || n < 1 {
				b.Fatalf("%s=%q: want connection counts, comma-separated", scaleConnsEnv, env)
			}
			sizes = append(sizes, n)
		}
	}
	for _, n := range sizes {
		b.Run(fmt.Sprintf("conns=%d", n), func(b *testing.B) {
			if err := needNoFile(n); err != nil {
				b.Skip(err)
			}
			b.ReportAllocs()
			ms := make([]scaleMemory, len(scaleKinds))
			for range b.N {
				for i, k := range scaleKinds {
					ms[i] = measureMemory(b, k, n)
				}
			}
			scaleLog("%d connections, then 1 and 10 subscriptions each; bytes per connection and per subscription", n)
			scaleLog("%-9s %9s | %8s %9s %9s | %8s %9s %9s", "broker", "base RSS",
				"RSS/conn", "heap/conn", "stack/conn", "RSS/sub", "heap/sub1", "heap/sub+9")
			for i, m := range ms {
				scaleLog("%-9s %8.1fM | %8.0f %9.0f %9.0f | %8.0f %9.0f %9.0f", scaleKinds[i], float64(m.base.RSS)/(1<<20),
					per(m.base, m.conns, n, memRSS), per(m.base, m.conns, n, memHeap), per(m.base, m.conns, n, memStack),
					per(m.conns, m.sub10, 10*n, memRSS), per(m.conns, m.sub1, n, memHeap), per(m.sub1, m.sub10, 9*n, memHeap))
				for _, st := range []scaleStat{m.base, m.conns, m.sub1, m.sub10} {
					scaleLog("  RSS %7.1fM mapped %7.1fM heap %7.1fM stack %7.1fM goroutines %d", float64(st.RSS)/(1<<20),
						float64(st.Mapped)/(1<<20), float64(st.HeapInuse)/(1<<20), float64(st.StackInuse)/(1<<20), st.Goroutines)
				}
				b.ReportMetric(per(m.base, m.conns, n, memRSS), scaleKinds[i]+"_B/conn")
				b.ReportMetric(per(m.conns, m.sub10, 10*n, memRSS), scaleKinds[i]+"_B/sub")
			}
			conn := func(m scaleMemory) float64 { return per(m.base, m.conns, n, memRSS) }
			b.ReportMetric(conn(ms[2])/conn(ms[0]), "hardened/stock_conn")
			b.ReportMetric(conn(ms[2])/conn(ms[1]), "hardened/tuned_conn")
		})
	}
}

// scaleClient is a raw MQTT 5 client whose packets a goroutine reads: it
// counts deliveries (acknowledging QoS 1 ones), PUBACKs and PINGRESPs, and
// signals notify after each.
type scaleClient struct {
	c                 net.Conn
	got, acked, pongs atomic.Int64
	notify            chan struct{}
	err               atomic.Pointer[error]
}

func newScaleClient(tb testing.TB, addr, id string, notify chan struct{}) *scaleClient {
	tb.Helper()
	conns, err := scaleDial(addr, id, 1, 1)
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { closeAll(conns) })
	return &scaleClient{c: conns[0], notify: notify}
}

func (c *scaleClient) read() {
	r := bufio.NewReaderSize(c.c, 64<<10)
	w := bufio.NewWriter(c.c)
	for {
		pk, err := readPacketErr(r)
		if err != nil {
			c.err.Store(&err)
			c.signal()
			return
		}
		switch pk[0] >> 4 {
		case 3: // PUBLISH: acknowledge QoS 1
			if pk[0]>>1&3 == 1 {
				i := 1 // the remaining length's last byte
				for pk[i]&0x80 != 0 {
					i++
				}
				id := i + 3 + (int(pk[i+1])<<8 | int(pk[i+2])) // after the topic
				_, _ = w.Write([]byte{0x40, 2, pk[id], pk[id+1]})
			}
		}
		// Flush before counting, so a PINGREQ sent once the count is
		// reached follows the acknowledgements.
		if r.Buffered() == 0 {
			_ = w.Flush()
		}
		switch pk[0] >> 4 {
		case 3:
			c.got.Add(1)
		case 4:
			c.acked.Add(1)
		case 13:
			c.pongs.Add(1)
		}
		c.signal()
	}
}

func (c *scaleClient) signal() {
	select {
	case c.notify <- struct{}{}:
	default:
	}
}

// cpuRig is a publisher (client ID cpu-pub0: scaleDial numbers its clients)
// and a subscriber to its topics guest/cpu-pub0/t0 at QoS 0 and
// guest/cpu-pub0/t1 at QoS 1 (the guest role's own topics), on one broker.
type cpuRig struct {
	pub, sub *scaleClient
	notify   chan struct{}
	payload  []byte
}

// cpuWindow bounds the messages in flight: under the hardened receive
// maximum (128) and far under every write queue, so nothing is dropped.
const cpuWindow = 64

func newCPURig(tb testing.TB, addr string) *cpuRig {
	tb.Helper()
	r := &cpuRig{notify: make(chan struct{}, 1), payload: seedPayload(tb)}
	r.pub = newScaleClient(tb, addr, "cpu-pub", r.notify)
	r.sub = newScaleClient(tb, addr, "cpu-sub", r.notify)
	if err := subscribeV5(r.sub.c, 0, "guest/cpu-pub0/t0"); err != nil {
		tb.Fatal(err)
	}
	if err := subscribeV5(r.sub.c, 1, "guest/cpu-pub0/t1"); err != nil {
		tb.Fatal(err)
	}
	go r.pub.read()
	go r.sub.read()
	return r
}

// wait waits for the next packet either client reads.
func (r *cpuRig) wait(tb testing.TB, what string, done, want int64) {
	tb.Helper()
	select {
	case <-r.notify:
	case <-time.After(10 * time.Second):
		tb.Fatalf("stalled: %s %d of %d", what, done, want)
	}
	for _, c := range []*scaleClient{r.pub, r.sub} {
		if err := c.err.Load(); err != nil {
			tb.Fatal(*err)
		}
	}
}

// ping sends PINGREQ on c and waits for the PINGRESP: mochi handles one
// client's packets in order, so everything c sent before is done.
func (r *cpuRig) ping(tb testing.TB, c *scaleClient) {
	tb.Helper()
	want := c.pongs.Load() + 1
	if _, err := c.c.Write([]byte{0xc0, 0}); err != nil {
		tb.Fatal(err)
	}
	for c.pongs.Load() < want {
		r.wait(tb, "PINGRESP", 0, 1)
	}
}

// publish sends n PUBLISH packets of the seed message at qos to topic,
// with at most 2 x cpuWindow unconfirmed (confirmed: delivered when
// delivered is set, else acknowledged at QoS 1, else behind a PINGRESP), and
// returns once the broker has finished with all of them.
func (r *cpuRig) publish(tb testing.TB, qos byte, topic string, n int, delivered bool) {
	tb.Helper()
	var done func() int64
	var what string
	switch {
	case delivered:
		base := r.sub.got.Load()
		what, done = "delivered", func() int64 { return r.sub.got.Load() - base }
	case qos == 1:
		base := r.pub.acked.Load()
		what, done = "acknowledged", func() int64 { return r.pub.acked.Load() - base }
	default:
		base := r.pub.pongs.Load()
		what, done = "behind a PINGRESP", func() int64 { return (r.pub.pongs.Load() - base) * cpuWindow }
	}
	pings := qos == 0 && !delivered
	for i := range n {
		for int64(i)-done() >= 2*cpuWindow {
			r.wait(tb, what, done(), int64(n))
		}
		if _, err := r.pub.c.Write(rawPublishProps(qos, uint16(i%65535+1), topic, nil, r.payload)); err != nil {
			tb.Fatal(err)
		}
		if pings && (i+1)%cpuWindow == 0 {
			if _, err := r.pub.c.Write([]byte{0xc0, 0}); err != nil {
				tb.Fatal(err)
			}
		}
	}
	for !pings && done() < int64(n) {
		r.wait(tb, what, done(), int64(n))
	}
	r.ping(tb, r.pub)
	if delivered {
		r.ping(tb, r.sub) // its PUBACKs handled
	}
}

// Batch sizes of BenchmarkScaleCPU, and its rounds (per b.N).
const (
	cpuConnects  = 10_000
	cpuPublishes = 100_000
	cpuRounds    = 5
)

// scaleRoundsEnv overrides the rounds of BenchmarkScaleCPU.
const scaleRoundsEnv = "MQTTWAF_SCALE_ROUNDS"

// cpuColumns name the figures of BenchmarkScaleCPU: broker CPU time in µs
// per CONNECT (and the system part of it), per disconnection, per PUBLISH
// nobody receives, per delivery (msg - pub) and per message published and
// delivered once (msg), at QoS 0 and 1.
var cpuColumns = [...]string{"connect", "sys", "disconnect", "pub0", "deliver0", "msg0", "pub1", "deliver1", "msg1"}

// cpuCosts are one round's figures, in the order of cpuColumns.
type cpuCosts [len(cpuColumns)]float64

func usPer(a, b scaleStat, n int) float64 {
	return float64(b.CPU-a.CPU) / float64(time.Microsecond) / float64(n)
}

// machineBusy returns the CPU time all processes have used since boot:
// every non-idle tick of /proc/stat.
func machineBusy(tb testing.TB) time.Duration {
	tb.Helper()
	b, err := os.ReadFile("/proc/stat")
	if err != nil {
		tb.Fatal(err)
	}
	line, _, _ := strings.Cut(string(b), "\n")
	var busy int64
	for i, f := range strings.Fields(line)[1:] {
		n, err := strconv.ParseInt(f, 10, 64)
		if err != nil {
			tb.Fatal(err)
		}
		if i != 3 && i != 4 && i < 8 { // idle and iowait; guest time is counted in user already
			busy += n
		}
	}
	return time.Duration(busy) * time.Second / 100 // USER_HZ
}

// processCPU returns this process's CPU time so far, and its children's
// that have ended.
func processCPU(tb testing.TB) time.Duration {
	tb.Helper()
	var total time.Duration
	for _, who := range []int{syscall.RUSAGE_SELF, syscall.RUSAGE_CHILDREN} {
		var ru syscall.Rusage
		if err := syscall.Getrusage(who, &ru); err != nil {
			tb.Fatal(err)
		}
		total += time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
	}
	return total
}

// measureCPU runs one round of every batch on s. With
// MQTTWAF_SCALE_PROFILES set, the first round's batches are CPU-profiled.
func measureCPU(b *testing.B, s *scaleBroker, r *cpuRig, round int) cpuCosts {
	b.Helper()
	profile := func(batch string) { // "" stops
		dir := os.Getenv(scaleProfilesEnv)
		switch {
		case dir == "" || round > 0:
		case batch == "":
			s.stat(b, "cpu")
		default:
			s.stat(b, "cpu "+filepath.Join(dir, fmt.Sprintf("cpu-%s-%s.pprof", s.kind, batch)))
		}
	}
	defer profile("")
	var c cpuCosts
	// Each batch starts settled, so none pays for collecting and returning
	// to the OS what an earlier one left (the connect batch leaves 10,000
	// clients' worth).
	s.stat(b, "settle")
	profile("connect")
	st0 := s.stat(b, "stat")
	conns, err := scaleDial(s.addr, fmt.Sprintf("cpu-%d-", round), 2+round, cpuConnects)
	if err != nil {
		closeAll(conns)
		b.Fatalf("%s: %v", s.kind, err)
	}
	s.waitClients(b, st0.Clients+cpuConnects)
	st1 := s.stat(b, "stat")
	profile("disconnect")
	closeAll(conns)
	s.waitClients(b, st0.Clients)
	st2 := s.stat(b, "stat")
	c[0], c[2] = usPer(st0, st1, cpuConnects), usPer(st1, st2, cpuConnects)
	c[1] = float64(st1.SysCPU-st0.SysCPU) / float64(time.Microsecond) / cpuConnects
	batch := func(qos byte, topic string, delivered bool) float64 {
		runtime.GC() // this process's collector stays out of the batch
		s.stat(b, "settle")
		profile(fmt.Sprintf("q%d-%t", qos, delivered))
		a := s.stat(b, "stat")
		r.publish(b, qos, topic, cpuPublishes, delivered)
		return usPer(a, s.stat(b, "stat"), cpuPublishes)
	}
	for i, qos := range []byte{0, 1} {
		pub := batch(qos, "guest/cpu-pub0/none", false)
		msg := batch(qos, "guest/cpu-pub0/t"+strconv.Itoa(int(qos)), true)
		c[3+3*i], c[4+3*i], c[5+3*i] = pub, msg-pub, msg
	}
	return c
}

// BenchmarkScaleCPU measures the broker's CPU time (user + system, from
// getrusage in the broker process) per CONNECT (TCP accept to CONNACK, of
// 10,000 new clients), per disconnection (DISCONNECT and close), per
// PUBLISH (100,000 of the seed message, 600 bytes, to a topic nobody
// subscribes to) and per delivery (the same to one subscriber, minus the
// publish), at QoS 0 and 1, for each of scaleKinds. Each round runs every
// batch on every broker, in rotating order; the figures are the medians of
// cpuRounds rounds (MQTTWAF_SCALE_ROUNDS to change). Nothing is dropped:
// every delivery is counted before a batch ends.
//
//	flock /work/bench.lock go test -run '^$' -bench ScaleCPU -benchtime 1x ./hooks/
//
// With MQTTWAF_SCALE_PROFILES=<dir>, the first round's batches are
// CPU-profiled there (cpu-<broker>-<batch>.pprof).
func BenchmarkScaleCPU(b *testing.B) {
	if raceEnabled {
		b.Skip("figures under the race detector mean nothing")
	}
	if err := needNoFile(cpuConnects); err != nil {
		b.Skip(err)
	}
	kinds := scaleKinds
	brokers := make([]*scaleBroker, len(kinds))
	rigs := make([]*cpuRig, len(kinds))
	for i, k := range kinds {
		brokers[i] = startScaleBroker(b, k)
		rigs[i] = newCPURig(b, brokers[i].addr)
		rigs[i].publish(b, 1, "guest/cpu-pub0/t1", 1000, true) // warm up
	}
	rounds := cpuRounds * b.N
	if env := os.Getenv(scaleRoundsEnv); env != "" {
		n, err := strconv.Atoi(env)
		if err != nil || n < 1 || n > 200 {
			b.Fatalf("%s=%q: want 1 to 200 rounds", scaleRoundsEnv, env)
		}
		rounds = n
	}
	costs := make([][]cpuCosts, len(kinds))
	b.ReportAllocs()
	busy0, self0, start := machineBusy(b), processCPU(b), time.Now()
	var brokers0 time.Duration
	for _, s := range brokers {
		brokers0 += s.stat(b, "stat").CPU
	}
	for round := range rounds {
		for k := range kinds {
			i := (k + round) % len(kinds)
			costs[i] = append(costs[i], measureCPU(b, brokers[i], rigs[i], round))
		}
	}
	// CPU time is less sensitive to a busy machine than wall time, but not
	// immune (caches, context switches): say how busy the rest of it was.
	others := machineBusy(b) - busy0 - (processCPU(b) - self0) + brokers0
	for _, s := range brokers {
		others -= s.stat(b, "stat").CPU
	}
	wall := time.Since(start)
	scaleLog("other processes (and interrupt work) used %.1f of the machine's %d cores on average over %s", others.Seconds()/wall.Seconds(),
		runtime.NumCPU(), wall.Round(time.Second))
	scaleLog("broker CPU time per operation, µs: median of %d rounds (min-max)", rounds)
	head := fmt.Sprintf("%-9s", "broker")
	for _, c := range cpuColumns {
		head += fmt.Sprintf(" %19s", c)
	}
	scaleLog("%s", head)
	row := func(name string, rounds []cpuCosts) cpuCosts {
		var med cpuCosts
		line := fmt.Sprintf("%-9s", name)
		for j := range cpuColumns {
			v := make([]float64, len(rounds))
			for r, c := range rounds {
				v[r] = c[j]
			}
			slices.Sort(v)
			med[j] = v[len(v)/2]
			cell := fmt.Sprintf("%.1f (%.1f..%.1f)", med[j], v[0], v[len(v)-1])
			if math.Abs(med[j]) >= 100 {
				cell = fmt.Sprintf("%.0f (%.0f..%.0f)", med[j], v[0], v[len(v)-1])
			}
			line += fmt.Sprintf(" %19s", cell)
		}
		scaleLog("%s", line)
		return med
	}
	for i, k := range kinds {
		med := row(k, costs[i])
		for j, c := range cpuColumns {
			b.ReportMetric(med[j], k+"_us/"+c)
		}
	}
	// The hardened broker's extra, round by round (the brokers of one round
	// ran back to back), over stock mochi and over mochi tuned alike:
	// rows h-stock and h-tuned.
	for base := range len(kinds) - 1 {
		diff := make([]cpuCosts, rounds)
		for r := range diff {
			for j := range cpuColumns {
				diff[r][j] = costs[len(kinds)-1][r][j] - costs[base][r][j]
			}
		}
		row("h-"+kinds[base], diff)
	}
}
