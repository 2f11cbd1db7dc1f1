package hooks

import (
	"errors"
	"net"
	"strconv"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	mqtt "github.com/mochi-mqtt/server/v2"

	"github.com/mqttwaf/mqttwaf/mqttwaf"
)

// writeQueue keeps a client that does not read from stalling anyone else.
//
// mochi writes a packet to a client's socket while holding that client's
// lock, and every QoS>0 delivery to the client takes the same lock first
// (Client.NextPacketID, in the publisher's read loop). A subscriber that
// stops reading fills its socket buffers, mochi's write blocks, and every
// publisher whose messages match its subscriptions blocks behind it: one
// client that subscribes and never reads freezes the publishers of its
// topics, for as long as mochi's deadline (1.5 x keepalive, which the
// client refreshes by sending PINGREQ).
//
// So once CONNECT is accepted a write to the socket never waits: what the
// kernel does not take at once waits here, in order, and a goroutine of
// the connection's own writes it when the socket drains. It is bounded:
//   - QoS 1 and 2 messages waiting here are held in mochi's in-flight
//     store too until acknowledged, so broker.max_inflight_bytes bounds
//     them (admitDelivery drops deliveries beyond it, reported);
//   - QoS 0 messages are dropped, and reported, once
//     broker.max_unsent_bytes wait (publishGate);
//   - a connection with more than both plus two packets waiting is closed
//     (broker.max_unsent_bytes), and so is one whose socket takes nothing
//     for broker.write_timeout.
//
// A client that keeps reading never waits here for long: the kernel's
// buffers take most bursts whole.
//
// Its zero value writes straight to the socket (blocking), as before
// CONNECT and on sockets without non-blocking writes.
type writeQueue struct {
	raw syscall.RawConn // the socket, for non-blocking writes; nil: none

	mu       sync.Mutex
	pending  []byte // bytes the socket has not taken, in order
	draining bool   // the drain goroutine runs; writes go to pending
	err      error  // the queue has given up: every write fails
	tryBuf   []byte // the non-blocking write's argument and results
	tryN     int
	tryErr   error
	try      func(fd uintptr) bool // made once: no allocation per write

	unsent atomic.Int64 // bytes written by mochi, not yet by the socket
}

// errStalled is what writes get once a client that does not read has been
// disconnected.
var errStalled = errors.New("client disconnected: its socket took nothing (broker.write_timeout) or too much waits for it (broker.max_unsent_bytes)")

// drainChunk is the most the drain goroutine writes at once, so
// broker.write_timeout measures a socket that takes nothing, not a slow
// link that takes a large write slowly.
const drainChunk = 64 << 10

// keepBuffer is the largest buffer kept for the next burst once drained;
// larger ones go back to the collector, so an idle connection holds none.
const keepBuffer = 16 << 10

// Unsent returns how many bytes wait for the socket.
func (q *writeQueue) Unsent() int64 { return q.unsent.Load() }

// write writes b for g: at once if the socket takes it, else queued.
func (q *writeQueue) write(g *guardConn, b []byte) (int, error) {
	q.mu.Lock()
	if q.err != nil {
		q.mu.Unlock()
		return 0, q.err
	}
	n := 0
	if !q.draining {
		var err error
		if n, err = q.tryWrite(b); err != nil || n == len(b) {
			q.mu.Unlock()
			return n, err
		}
	}
	rest := int64(len(b) - n)
	b1 := g.waf.Broker()
	if hard := unsentHardLimit(b1); q.unsent.Load()+rest > hard {
		q.err = errStalled
		q.mu.Unlock()
		g.stalled(mqttwaf.Verdict{Action: mqttwaf.Disconnect, Rule: "broker.max_unsent_bytes",
			Reason: "unsent_bytes_exceeded", Code: mqttwaf.CodeQuotaExceeded,
			Value: q.unsent.Load() + rest, Limit: hard,
			Detail: "the client does not read what is sent to it: bytes waiting for its socket over broker.max_unsent_bytes + broker.max_inflight_bytes + 2 x broker.max_packet_size (limit); raise broker.max_unsent_bytes for clients on slow links"})
		return n, errStalled
	}
	q.pending = append(q.pending, b[n:]...)
	q.unsent.Add(rest)
	if !q.draining {
		q.draining = true
		go q.drain(g, b1.WriteTimeout.D())
	}
	q.mu.Unlock()
	return len(b), nil
}

// giveUp makes every later write fail (errStalled).
func (q *writeQueue) giveUp() {
	q.mu.Lock()
	q.err, q.pending = errStalled, nil
	q.mu.Unlock()
}

// drain writes what waits until nothing does, then ends.
func (q *writeQueue) drain(g *guardConn, timeout time.Duration) {
	var spare []byte
	for {
		q.mu.Lock()
		if q.err != nil || len(q.pending) == 0 {
			q.draining = false
			if q.err != nil {
				q.pending = nil
			}
			q.mu.Unlock()
			return
		}
		chunk := q.pending
		q.pending = spare[:0]
		q.mu.Unlock()
		for off := 0; off < len(chunk); {
			_ = g.Conn.SetWriteDeadline(time.Now().Add(timeout))
			n, err := g.Conn.Write(chunk[off:min(len(chunk), off+drainChunk)])
			off += n
			q.unsent.Add(-int64(n))
			if err != nil {
				q.fail(g, err, timeout, int64(len(chunk)-off))
				return
			}
		}
		spare = nil
		if cap(chunk) <= keepBuffer {
			spare = chunk
		}
	}
}

// fail ends the queue after the drain goroutine's write failed: a
// timeout is a client that stopped reading (reported, disconnected); any
// other error is a socket closed already, by either side.
func (q *writeQueue) fail(g *guardConn, err error, timeout time.Duration, left int64) {
	q.mu.Lock()
	q.err = errStalled
	waiting := left + int64(len(q.pending))
	q.pending = nil
	q.mu.Unlock()
	var ne interface{ Timeout() bool }
	if errors.As(err, &ne) && ne.Timeout() {
		g.stalled(mqttwaf.Verdict{Action: mqttwaf.Disconnect, Rule: "broker.write_timeout",
			Reason: "write_timeout", Code: mqttwaf.CodeKeepAliveTimeout,
			Value: waiting, Limit: int64(timeout / time.Millisecond),
			Detail: "the client's socket took nothing for broker.write_timeout (limit, ms) with " +
				strconv.FormatInt(waiting, 10) + " bytes waiting (value): it stopped reading"})
		return
	}
	_ = g.Conn.Close()
}

// unsentHardLimit is what may wait for one client's socket before it is
// disconnected: its QoS 0 allowance, its in-flight store (QoS 1 and 2
// messages not yet written are held there too) and two packets racing the
// checks.
func unsentHardLimit(b mqttwaf.BrokerPolicy) int64 {
	return int64(b.MaxUnsentBytes) + int64(b.MaxInflightBytes) + 2*int64(b.MaxPacketSize)
}

// publishGate sits between mochi and the connection (above TLS and
// WebSocket framing, where packets are plain MQTT) and drops the QoS 0
// PUBLISH packets mochi writes to a client while broker.max_unsent_bytes
// wait for its socket: QoS 0 is fire-and-forget, so a client that does
// not keep up loses the newest ones, each reported (broker.delivery_dropped,
// subscriber_unsent_bytes), instead of growing the queue. Everything else
// passes: acknowledgements, and QoS 1 and 2 messages, which mochi holds
// until they are acknowledged and which its in-flight limits bound.
type publishGate struct {
	net.Conn
	g *guardConn
	// window, for an MQTT 5 client that set a Receive Maximum, holds back
	// QoS>0 PUBLISH packets beyond it (sendwindow.go).
	window atomic.Pointer[sendWindow]
}

// NetConn returns the wrapped connection, for callers that walk NetConn
// chains (findGuard, findTLS).
func (pg *publishGate) NetConn() net.Conn { return pg.Conn }

// gateOf returns cl's publishGate, if its connection has one.
func gateOf(cl *mqtt.Client) *publishGate {
	pg, _ := cl.Net.Conn.(*publishGate)
	return pg
}

func (pg *publishGate) Write(p []byte) (int, error) {
	w := pg.window.Load()
	if w == nil {
		return pg.write(p)
	}
	w.mu.Lock()
	defer w.mu.Unlock()
	q := w.filter(p)
	if hard := unsentHardLimit(pg.g.waf.Broker()); int64(w.heldBytes()) > hard {
		// mochi's in-flight limits keep this from happening; if they ever
		// did not, the client is cut loose rather than grow the window.
		pg.g.out.giveUp()
		pg.g.stalled(mqttwaf.Verdict{Action: mqttwaf.Disconnect, Rule: "broker.max_inflight_bytes",
			Reason: "unsent_bytes_exceeded", Code: mqttwaf.CodeQuotaExceeded,
			Value: int64(w.heldBytes()), Limit: hard,
			Detail: "messages waiting for the client's Receive Maximum over broker.max_unsent_bytes + broker.max_inflight_bytes + 2 x broker.max_packet_size (limit)"})
		return 0, errStalled
	}
	if len(q) > 0 {
		if _, err := pg.write(q); err != nil {
			return 0, err
		}
	}
	return len(p), nil
}

// acked makes room in the window for the delivery the client acknowledged
// (packet id) and writes what waited for it.
func (pg *publishGate) acked(id uint16) {
	w := pg.window.Load()
	if w == nil {
		return
	}
	w.mu.Lock()
	defer w.mu.Unlock()
	if out := w.acked(id); len(out) > 0 {
		_, _ = pg.write(out) // a failed write ends the connection; mochi sees it
	}
}

// write drops QoS 0 PUBLISH packets while broker.max_unsent_bytes wait
// for the socket, and writes the rest.
func (pg *publishGate) write(p []byte) (int, error) {
	g := pg.g
	if !g.queued.Load() || g.out.Unsent() == 0 { // the usual case: nothing waits
		return pg.Conn.Write(p)
	}
	limit := int64(g.waf.Broker().MaxUnsentBytes)
	if g.out.Unsent() < limit {
		return pg.Conn.Write(p)
	}
	// mochi may write several packets at once (its write buffer): keep
	// all but the QoS 0 PUBLISH packets.
	kept := make([]byte, 0, len(p))
	for i := 0; i < len(p); {
		rem, hlen, ok := packetHeader(p[i:])
		if !ok || i+hlen+rem > len(p) {
			kept = append(kept, p[i:]...) // not whole packets: pass through
			break
		}
		pkt := p[i : i+hlen+rem]
		if pkt[0]>>4 == 3 && pkt[0]&0x06 == 0 {
			topic := ""
			if vh := pkt[hlen:]; len(vh) >= 2 {
				if n := int(vh[0])<<8 | int(vh[1]); 2+n <= len(vh) {
					topic = string(vh[2 : 2+n])
				}
			}
			if f := g.onDrop.Load(); f != nil {
				(*f)(topic, len(pkt), limit)
			}
		} else {
			kept = append(kept, pkt...)
		}
		i += len(pkt)
	}
	if len(kept) > 0 {
		if _, err := pg.Conn.Write(kept); err != nil {
			return 0, err
		}
	}
	return len(p), nil
}

// packetHeader reads an MQTT fixed header: the remaining length and the
// header's own length.
func packetHeader(b []byte) (rem, hlen int, ok bool) {
	mult := 1
	for i := 1; i < len(b) && i <= 4; i++ {
		rem += int(b[i]&0x7f) * mult
		if b[i]&0x80 == 0 {
			return rem, i + 1, true
		}
		mult <<= 7
	}
	return 0, 0, false
}
