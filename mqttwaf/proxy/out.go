package proxy

import (
	"errors"
	"net"
	"sync"
	"sync/atomic"
	"time"
)

// outBuf is what the proxy has to write to one side of a connection.
// Packets relayed in a burst are gathered and written together when the
// relay has nothing more to read (see frame.Reader.Ready): one write, and
// one wake-up of the peer, per burst instead of per packet. Every write to
// the socket holds whole packets only, which frame.Conn needs so that a
// refusal never lands inside one.
type outBuf struct {
	mu   sync.Mutex
	conn net.Conn
	buf  []byte
	err  error
	// timeout bounds one write (broker.write_timeout for the client side):
	// a peer that takes nothing for that long is given up; stalled, if
	// set, reports it with the number of bytes that were waiting.
	timeout time.Duration
	stalled func(waiting int)
	sent    atomic.Int64 // when the last write ended (UnixNano)
}

// lastSent is when the last write to the socket ended.
func (o *outBuf) lastSent() time.Time { return time.Unix(0, o.sent.Load()) }

// outBufSize bounds what is gathered before it is written anyway.
const outBufSize = 16 << 10

// write queues pkt, and writes what is queued if flush is set or the
// buffer is full. The bytes of pkt are copied (or written) before it
// returns.
func (o *outBuf) write(pkt []byte, flush bool) error {
	o.mu.Lock()
	defer o.mu.Unlock()
	if o.err != nil {
		return o.err
	}
	if len(o.buf)+len(pkt) > outBufSize {
		if o.flushLocked(); o.err != nil {
			return o.err
		}
	}
	if len(pkt) > outBufSize { // a big packet goes alone, uncopied
		o.err = o.send(pkt)
		return o.err
	}
	if o.buf == nil {
		o.buf = make([]byte, 0, outBufSize)
	}
	o.buf = append(o.buf, pkt...)
	if flush {
		o.flushLocked()
	}
	return o.err
}

// flush writes what is queued.
func (o *outBuf) flush() error {
	o.mu.Lock()
	defer o.mu.Unlock()
	o.flushLocked()
	return o.err
}

func (o *outBuf) flushLocked() {
	if len(o.buf) == 0 || o.err != nil {
		return
	}
	o.err = o.send(o.buf)
	o.buf = o.buf[:0]
}

func (o *outBuf) send(b []byte) error {
	timeout := o.timeout
	if timeout <= 0 {
		timeout = writeTimeout
	}
	_ = o.conn.SetWriteDeadline(time.Now().Add(timeout))
	_, err := o.conn.Write(b)
	o.sent.Store(time.Now().UnixNano())
	var ne net.Error
	if err != nil && o.stalled != nil && errors.As(err, &ne) && ne.Timeout() {
		o.stalled(len(b))
	}
	return err
}
