package hooks

import (
	"errors"
	"strconv"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

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
// the read ACL check drops deliveries (and reports them) while
// broker.max_unsent_bytes wait (admitDelivery), a connection with twice
// that plus one packet waiting is closed (broker.max_unsent_bytes: only
// deliveries racing the check get there), and so is one whose socket takes
// nothing for broker.write_timeout. A client that keeps reading never
// waits here for long: the kernel's buffers take most bursts whole.
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
	if hard := 2*int64(b1.MaxUnsentBytes) + int64(b1.MaxPacketSize); q.unsent.Load()+rest > hard {
		q.err = errStalled
		q.mu.Unlock()
		g.stalled(mqttwaf.Verdict{Action: mqttwaf.Disconnect, Rule: "broker.max_unsent_bytes",
			Reason: "unsent_bytes_exceeded", Code: mqttwaf.CodeQuotaExceeded,
			Value: q.unsent.Load() + rest, Limit: hard,
			Detail: "the client does not read what is sent to it: bytes waiting for its socket over twice broker.max_unsent_bytes plus broker.max_packet_size (limit); raise broker.max_unsent_bytes for clients on slow links"})
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
