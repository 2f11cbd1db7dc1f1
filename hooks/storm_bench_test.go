package hooks

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"maps"
	"math/rand/v2"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/eclipse/paho.golang/packets"
	"github.com/eclipse/paho.golang/paho"
	mqtt "github.com/mochi-mqtt/server/v2"
	"github.com/mochi-mqtt/server/v2/hooks/auth"
	"github.com/mochi-mqtt/server/v2/listeners"
	"golang.org/x/crypto/bcrypt"

	"github.com/mqttwaf/mqttwaf/mqttwaf"
)

// Reconnect storm (issue 14): a fleet of devices with credentials connects
// at once, as after a broker restart (cold: a fresh broker, nothing
// remembered) and after a network blip (warm: the same broker, every device
// disconnected and connecting again). Real paho.golang MQTT 5 clients, in
// a child process (see stormDialerEnv), on the same cores as the broker.
const (
	stormDevices = 10_000
	// stormBcryptDevices: a cold bcrypt storm runs at about 30 CONNECTs a
	// second on 2 cores, so 10,000 devices would take five minutes; the
	// rate is what matters and 1,000 show it.
	stormBcryptDevices = 1_000
	// stormInFlight bounds the CONNECTs in flight (dialled, CONNACK not yet
	// received): what a fleet's devices waking up together look like from
	// the broker, without 10,000 dials at the same instant (which would
	// measure the listen backlog dropping SYNs, not the broker).
	stormInFlight = 256
	// Devices share addresses 4 to one (small NATs, gateways) and the
	// addresses spread over stormNetworks /24 networks of 127/8 (Linux
	// routes all of it to loopback), so the per-address and per-network
	// rates and caps see a fleet, not one host.
	stormPerAddress = 4
	stormNetworks   = 40
)

// stormDevice is one device: its identity, the address it dials from, and
// its client while connected.
type stormDevice struct {
	ID     string `json:"id"` // client ID and user name
	Pass   string `json:"pass"`
	Local  string `json:"local"` // source address
	client *paho.Client
}

// stormFleet makes n devices with the given passwords (one per device,
// or one for all).
func stormFleet(n int, pass func(i int) string) []*stormDevice {
	devs := make([]*stormDevice, n)
	addrs := max(1, n/stormPerAddress)
	for i := range devs {
		a := i % addrs // consecutive devices come from different addresses and networks
		devs[i] = &stormDevice{ID: fmt.Sprintf("dev%05d", i), Pass: pass(i),
			Local: net.IPv4(127, 20, byte(a%stormNetworks), byte(1+a/stormNetworks)).String()}
	}
	return devs
}

// stormResult is one storm: how long until every device was connected,
// and how many CONNECTs were refused (and retried) on the way, by reason
// code (0xff: no CONNACK).
type stormResult struct {
	Elapsed time.Duration `json:"elapsed"`
	Refused map[byte]int  `json:"refused"`
	Err     string        `json:"error,omitempty"`
}

// codes writes refusal counts by reason code, lowest code first.
func codes(m map[byte]int) string {
	var b strings.Builder
	for _, c := range slices.Sorted(maps.Keys(m)) {
		fmt.Fprintf(&b, " 0x%02X:%d", c, m[c])
	}
	return "[" + strings.TrimSpace(b.String()) + "]"
}

func (r stormResult) refusals() int {
	n := 0
	for _, c := range r.Refused {
		n += c
	}
	return n
}

// The diallers run in a child process (this test binary, started with
// stormDialerEnv set): the fleet's 10,000 client sockets and the broker's
// 10,000 would not fit under one process's file limit (20,000 here), and
// a fleet is not in the broker's process anyway. The child reads
// "connect" and "disconnect" on stdin and answers each with a stormResult
// as a JSON line.
const stormDialerEnv = "MQTTWAF_STORM_DIALER" // devices file, then a space, then the broker's address

func TestMain(m *testing.M) {
	if v := os.Getenv(stormDialerEnv); v != "" {
		os.Exit(stormDialerMain(v))
	}
	os.Exit(m.Run())
}

func stormDialerMain(arg string) int {
	path, addr, _ := strings.Cut(arg, " ")
	data, err := os.ReadFile(path)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	var devs []*stormDevice
	if err := json.Unmarshal(data, &devs); err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	enc := json.NewEncoder(os.Stdout)
	sc := bufio.NewScanner(os.Stdin)
	for sc.Scan() {
		var r stormResult
		switch sc.Text() {
		case "connect":
			r = storm(addr, devs)
		case "disconnect":
			disconnectAll(devs)
		default:
			r.Err = "unknown command " + sc.Text()
		}
		if err := enc.Encode(r); err != nil {
			return 1
		}
	}
	return 0
}

// stormDialer is the child process holding a fleet's clients.
type stormDialer struct {
	in    io.Writer
	out   *bufio.Scanner
	close func() // ends the child and waits for it
}

// startChild starts cmd (this test binary in another role) with its
// standard input and output piped to the caller and its errors to ours.
func startChild(tb testing.TB, cmd *exec.Cmd) (io.WriteCloser, io.ReadCloser) {
	tb.Helper()
	cmd.Stderr = os.Stderr
	in, err := cmd.StdinPipe()
	if err != nil {
		tb.Fatal(err)
	}
	out, err := cmd.StdoutPipe()
	if err != nil {
		tb.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		tb.Fatal(err)
	}
	return in, out
}

func startStormDialer(tb testing.TB, addr string, devs []*stormDevice) *stormDialer {
	tb.Helper()
	data, err := json.Marshal(devs)
	if err != nil {
		tb.Fatal(err)
	}
	path := filepath.Join(tb.TempDir(), "fleet.json")
	if err := os.WriteFile(path, data, 0o600); err != nil {
		tb.Fatal(err)
	}
	cmd := exec.Command(os.Args[0])
	cmd.Env = append(os.Environ(), stormDialerEnv+"="+path+" "+addr)
	in, out := startChild(tb, cmd)
	end := sync.OnceFunc(func() {
		_ = in.Close() // the child exits at the end of its input
		if err := cmd.Wait(); err != nil {
			tb.Errorf("storm dialer: %v", err)
		}
	})
	tb.Cleanup(end)
	return &stormDialer{in: in, out: bufio.NewScanner(out), close: end}
}

// do runs one command in the child and returns its result.
func (d *stormDialer) do(tb testing.TB, command string) stormResult {
	tb.Helper()
	if _, err := fmt.Fprintln(d.in, command); err != nil {
		tb.Fatal(err)
	}
	if !d.out.Scan() {
		tb.Fatalf("storm dialer: no answer to %s: %v", command, d.out.Err())
	}
	var r stormResult
	if err := json.Unmarshal(d.out.Bytes(), &r); err != nil {
		tb.Fatal(err)
	}
	if r.Err != "" {
		tb.Fatalf("storm dialer, %s: %s", command, r.Err)
	}
	return r
}

// storm connects every device, at most stormInFlight at a time. A refused
// device retries as devices do: after a randomised backoff that starts at
// 250 ms and doubles up to 4 s, and stops taking a dialler's place while it
// waits. A refusal no retry can cure (bad credentials, banned) is an error.
func storm(addr string, devs []*stormDevice) stormResult {
	ready := make(chan int, len(devs))
	for i := range devs {
		ready <- i
	}
	var (
		mu      sync.Mutex
		res     = stormResult{Refused: map[byte]int{}}
		left    atomic.Int64
		backoff = make([]time.Duration, len(devs))
	)
	left.Store(int64(len(devs)))
	done := make(chan struct{})
	stop := sync.OnceFunc(func() { close(done) })
	start := time.Now()
	var wg sync.WaitGroup
	for range stormInFlight {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				var i int
				select {
				case i = <-ready:
				case <-done:
					return
				}
				code, err := devs[i].connect(addr)
				if err == nil {
					if left.Add(-1) == 0 {
						stop()
					}
					continue
				}
				mu.Lock()
				res.Refused[code]++
				switch code {
				case 0x85, 0x86, 0x87, 0x8A, 0x8C:
					if res.Err == "" {
						res.Err = fmt.Sprintf("%s refused with 0x%02X after %s, %d devices in; refusals so far %s",
							devs[i].ID, code, time.Since(start).Round(time.Millisecond), len(devs)-int(left.Load()), codes(res.Refused))
						stop()
					}
				}
				mu.Unlock()
				backoff[i] = min(4*time.Second, max(250*time.Millisecond, 2*backoff[i]))
				time.AfterFunc(backoff[i]/2+rand.N(backoff[i]), func() { ready <- i })
			}
		}()
	}
	select {
	case <-done:
		res.Elapsed = time.Since(start)
	case <-time.After(10 * time.Minute):
		stop()
		mu.Lock()
		res.Err = fmt.Sprintf("%d of %d devices connected within 10 minutes; refusals %s", len(devs)-int(left.Load()), len(devs), codes(res.Refused))
		mu.Unlock()
	}
	wg.Wait()
	mu.Lock()
	defer mu.Unlock()
	return res
}

// connect dials from the device's address and sends its CONNECT. It
// returns the CONNACK's reason code when refused (0xff: no CONNACK).
func (d *stormDevice) connect(addr string) (byte, error) {
	dialer := net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP(d.Local)}, Timeout: 10 * time.Second}
	conn, err := dialer.Dial("tcp", addr)
	if err != nil {
		return 0xff, err
	}
	c := paho.NewClient(paho.ClientConfig{Conn: packets.NewThreadSafeConn(conn), PacketTimeout: 10 * time.Second})
	receiveMax := uint16(16) // paho sizes a queue by it: 64 Ki entries per client otherwise
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
	defer cancel()
	ca, err := c.Connect(ctx, &paho.Connect{ClientID: d.ID, Username: d.ID, UsernameFlag: true,
		Password: []byte(d.Pass), PasswordFlag: true, KeepAlive: 120, CleanStart: true,
		Properties: &paho.ConnectProperties{ReceiveMaximum: &receiveMax}})
	if err != nil {
		_ = conn.Close()
		if ca != nil {
			return ca.ReasonCode, err
		}
		return 0xff, err
	}
	d.client = c
	return 0, nil
}

// disconnectAll disconnects every connected device.
func disconnectAll(devs []*stormDevice) {
	var wg sync.WaitGroup
	work := make(chan *stormDevice)
	for range stormInFlight {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for d := range work {
				_ = d.client.Disconnect(&paho.Disconnect{})
				d.client = nil
			}
		}()
	}
	for _, d := range devs {
		if d.client != nil {
			work <- d
		}
	}
	close(work)
	wg.Wait()
}

// waitEmpty waits until the broker holds no client any more.
func waitEmpty(tb testing.TB, clients func() int) {
	tb.Helper()
	for deadline := time.Now().Add(time.Minute); clients() > 0; time.Sleep(10 * time.Millisecond) {
		if time.Now().After(deadline) {
			tb.Fatalf("%d clients still on the broker a minute after every device disconnected", clients())
		}
	}
}

// stockAuthBroker is stock mochi with its own auth hook: a ledger of user
// names and plaintext passwords, compared once per CONNECT. writeQueue,
// if not 0, replaces mochi's outbound queue of 8192 packets per client
// (64 KiB allocated at every CONNECT) with the hardened broker's. It
// returns the address and a count of connected clients.
func stockAuthBroker(tb testing.TB, devs []*stormDevice, writeQueue int32) (string, func() int) {
	tb.Helper()
	users := auth.Users{}
	for _, d := range devs {
		users[d.ID] = auth.UserRule{Username: auth.RString(d.ID), Password: auth.RString(d.Pass)}
	}
	opts := &mqtt.Options{Logger: slog.New(slog.NewTextHandler(io.Discard, nil))}
	if writeQueue != 0 {
		opts.Capabilities = mqtt.NewDefaultServerCapabilities()
		opts.Capabilities.MaximumClientWritesPending = writeQueue
	}
	server := mqtt.New(opts)
	if err := server.AddHook(new(auth.Hook), &auth.Options{Ledger: &auth.Ledger{Users: users}}); err != nil {
		tb.Fatal(err)
	}
	l := listeners.NewTCP(listeners.Config{ID: "t", Address: "127.0.0.1:0"})
	if err := server.AddListener(l); err != nil {
		tb.Fatal(err)
	}
	if err := server.Serve(); err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { _ = server.Close() })
	return l.Address(), server.Clients.Len
}

// stormPolicy is the hardened broker for a fleet: its credentials, one
// device role, and the default rates and caps, unless the environment
// variable stormRatesEnv holds a rates section (in YAML flow style) to
// measure instead, such as the defaults before issue 14:
//
//	MQTTWAF_STORM_RATES='{connect: {per_listener: 1000/s}, new_client_ids: {global: 5000/min}}'
const stormPolicy = `identity: {credentials_file: %s, anonymous: {allow: never}}
roles: {device: {publish: ["fleet/{username}/#"], subscribe: ["fleet/{username}/cmd"]}}
rates: %s
`

const stormRatesEnv = "MQTTWAF_STORM_RATES"

// hardenedStormBroker starts the hardened broker with hashes[i] as
// device i's credential.
func hardenedStormBroker(tb testing.TB, devs []*stormDevice, hashes func(i int) string) (string, func() int) {
	tb.Helper()
	var creds strings.Builder
	for i, d := range devs {
		fmt.Fprintf(&creds, "%s:device:%s\n", d.ID, hashes(i))
	}
	path := filepath.Join(tb.TempDir(), "fleet.creds")
	if err := os.WriteFile(path, []byte(creds.String()), 0o600); err != nil {
		tb.Fatal(err)
	}
	rates := os.Getenv(stormRatesEnv)
	if rates == "" {
		rates = "{}"
	}
	b := startBroker(tb, fmt.Sprintf(stormPolicy, path, rates), brokerOpts{bench: true})
	return b.addr, b.server.Clients.Len
}

// stormKind is one broker under the storm.
type stormKind struct {
	name  string // metric prefix
	n     int    // devices
	start func(testing.TB, []*stormDevice) (string, func() int)
	pass  func(i int) string
}

// run starts a fresh broker and connects the fleet to it cold, then warm.
func (k stormKind) run(b *testing.B) (cold, warm stormResult) {
	b.Helper()
	devs := stormFleet(k.n, k.pass)
	addr, clients := k.start(b, devs)
	fleet := startStormDialer(b, addr, devs)
	cold = fleet.do(b, "connect")
	if n := clients(); n != len(devs) {
		b.Fatalf("%s: %d clients on the broker after the storm, want %d", k.name, n, len(devs))
	}
	fleet.do(b, "disconnect")
	waitEmpty(b, clients)
	warm = fleet.do(b, "connect")
	fleet.do(b, "disconnect")
	fleet.close()
	waitEmpty(b, clients)
	if len(cold.Refused)+len(warm.Refused) > 0 {
		b.Logf("%s: refusals by CONNACK code (0xFF: none): cold %s, warm %s", k.name, codes(cold.Refused), codes(warm.Refused))
	}
	return cold, warm
}

// stormRounds counts the rounds run in this process, so that each round,
// in one benchmark run or across -count, starts with another broker.
var stormRounds int

// BenchmarkReconnectStorm connects a fleet cold (fresh broker) and warm
// (every device disconnected and back), through:
//
//   - stock: stock mochi with its auth hook;
//   - stock1024: the same with the hardened broker's outbound queue of 1024
//     packets per client instead of mochi's 8192 (64 KiB allocated at every
//     CONNECT), so that the difference to it is the WAF's cost;
//   - secrets: the hardened broker with device secrets (10,000 different);
//   - bcrypt: the hardened broker with bcrypt cost 10 (one hash shared by
//     1,000 devices: each CONNECT pays one bcrypt check, as with a hash per
//     device; the verified-password cache serves the warm storm).
//
// The hardened brokers run the default policy's rates and caps. Each round
// (one per b.N; use -benchtime 1x and -count) runs every broker once, in
// rotating order, so that drift on a shared machine hits them alike, and
// the ratios pair runs of one round. It reports, per broker, the median
// CONNECTs per second until the last device was in (name_cold_conn/s,
// name_warm_conn/s), the mean refusals devices retried per storm, and the
// median of the per-round ratios to stock (name_cold/stock):
//
//	flock /work/bench.lock go test -run '^$' -bench ReconnectStorm -benchtime 1x -count 3 -timeout 30m ./hooks/
func BenchmarkReconnectStorm(b *testing.B) {
	secrets := make([]string, stormDevices)
	hashes := make([]string, stormDevices)
	for i := range secrets {
		s, h, err := mqttwaf.NewDeviceSecret()
		if err != nil {
			b.Fatal(err)
		}
		secrets[i], hashes[i] = s, h
	}
	bcryptHash, err := bcrypt.GenerateFromPassword([]byte("fleet-password-1"), bcrypt.DefaultCost)
	if err != nil {
		b.Fatal(err)
	}
	secret := func(i int) string { return secrets[i] }
	kinds := []stormKind{
		{"stock", stormDevices, func(tb testing.TB, devs []*stormDevice) (string, func() int) {
			return stockAuthBroker(tb, devs, 0)
		}, secret},
		{"stock1024", stormDevices, func(tb testing.TB, devs []*stormDevice) (string, func() int) {
			return stockAuthBroker(tb, devs, 1024)
		}, secret},
		{"secrets", stormDevices, func(tb testing.TB, devs []*stormDevice) (string, func() int) {
			return hardenedStormBroker(tb, devs, func(i int) string { return hashes[i] })
		}, secret},
		{"bcrypt", stormBcryptDevices, func(tb testing.TB, devs []*stormDevice) (string, func() int) {
			return hardenedStormBroker(tb, devs, func(int) string { return string(bcryptHash) })
		}, func(int) string { return "fleet-password-1" }},
	}
	// rates[kind][0 cold, 1 warm][round]
	rates := make([][2][]float64, len(kinds))
	refused := make([][2]int, len(kinds))
	b.ReportAllocs()
	b.ResetTimer()
	for range b.N {
		round := stormRounds
		stormRounds++
		for j := range kinds {
			i := (j + round) % len(kinds)
			runtime.GC()
			cold, warm := kinds[i].run(b)
			for w, r := range []stormResult{cold, warm} {
				rates[i][w] = append(rates[i][w], float64(kinds[i].n)/r.Elapsed.Seconds())
				refused[i][w] += r.refusals()
			}
		}
	}
	b.StopTimer()
	median := func(v []float64) float64 {
		v = slices.Clone(v)
		slices.Sort(v)
		return v[len(v)/2]
	}
	for i, k := range kinds {
		for w, when := range []string{"cold", "warm"} {
			b.ReportMetric(median(rates[i][w]), k.name+"_"+when+"_conn/s")
			b.ReportMetric(float64(refused[i][w])/float64(b.N), k.name+"_"+when+"_refused")
			if i == 0 {
				continue
			}
			ratios := make([]float64, b.N)
			for r := range ratios {
				ratios[r] = rates[i][w][r] / rates[0][w][r]
			}
			b.ReportMetric(median(ratios), k.name+"_"+when+"/stock")
		}
	}
}
