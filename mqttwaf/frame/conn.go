package frame

import (
	"io"
	"net"
	"sync"
	"sync/atomic"
	"time"
)

// refusalWait bounds how long a refusal (CONNACK or DISCONNECT) may wait
// for a write in progress and take to send: a peer that stops reading must
// not hold the reading goroutine.
const refusalWait = time.Second

// Conn wraps the net.Conn a broker reads MQTT from (the accepted socket, or
// the TLS or WebSocket stream on it) so that Read returns only bytes of
// whole packets that passed Validate, in order, with the connection state of
// a FromClient Reader: CONNECT first, then packets of its protocol version,
// no second CONNECT. A broker's packet decoder reading from a Conn never
// sees a malformed packet, a truncated one, or one bigger than the limit.
//
// When a packet is refused, Read first returns the bytes of the accepted
// packets before it, then writes the refusal the protocol has and returns
// the *Error, on that call and every later one; no byte of the refused
// packet or after it is ever returned. The refusal: to an MQTT 5 client
// whose CONNECT is refused, a CONNACK with Error.Code (if the refusal came
// from the fixed header alone, only when the protocol level had already
// arrived: Conn does not wait for more bytes from a peer it is dropping);
// to an MQTT 5 client after its CONNECT, a DISCONNECT with Error.Code; to a
// CONNECT naming MQTT or MQIsdp with an unsupported level, the MQTT 3.1.1
// CONNACK "unacceptable protocol version" (0x01); otherwise (MQTT 3.1 and
// 3.1.1) nothing: the connection just closes. Writes are serialised with the
// refusal so it never lands inside another packet (a broker writes whole
// packets per Write call), and after it every Write fails with
// net.ErrClosed: nothing more goes to a peer being dropped. Conn does not
// close the connection; the broker does when Read fails.
//
// Memory: an idle Conn holds no buffer: when nothing is buffered, Read
// reads into the caller's buffer and returns the whole packets there. The
// start of a packet left over is kept in a pooled 8 KiB buffer, and while
// packets keep coming Conn reads the connection through that buffer, as
// much as it takes at once (which makes a busy connection cost fewer reads
// than the broker's own 2 KiB buffer would). A packet that does not fit
// grows the buffer only as its bytes arrive, up to the packet's size (at
// most Limits.MaxPacketSize), and the big buffer is dropped once the packet
// has been read. Per connection that is at most 8 KiB, or about twice the
// largest packet in flight.
//
// Conn is safe for concurrent use as a net.Conn: Reads are serialised with
// each other, Writes with each other and with the refusal.
type Conn struct {
	conn net.Conn

	rmu     sync.Mutex // guards the fields below it
	f       framer
	b       buffer
	ioErr   error
	refusal *Error
	reply   []byte // the refusal packet to send, if any
	refused bool   // the refusal was sent (or given up)

	wsem    chan struct{} // write lock; a channel so the refusal can give up waiting
	wclosed atomic.Bool
	version atomic.Uint32
	err     atomic.Pointer[Error]
}

// NewConn wraps c, the connection a broker reads client packets from.
func NewConn(c net.Conn, lim Limits) *Conn {
	return &Conn{conn: c, f: framer{dir: FromClient, max: lim.max()}, wsem: make(chan struct{}, 1)}
}

// Read reads validated packet bytes into p. See Conn for what happens on a
// refused packet. Errors of the wrapped connection are returned as they
// are, after the bytes of the packets completed before them.
func (c *Conn) Read(p []byte) (int, error) {
	c.rmu.Lock()
	defer c.rmu.Unlock()
	b := &c.b
	for empty := 0; ; {
		if b.r < b.v {
			n := copy(p, b.buf[b.r:b.v])
			b.r += n
			if b.r == b.w {
				b.reset()
			}
			return n, nil
		}
		if c.refusal != nil {
			c.refuse()
			return 0, c.refusal
		}
		if c.ioErr != nil {
			err := c.ioErr
			c.ioErr = nil
			return 0, err
		}
		if len(p) == 0 {
			return 0, nil
		}
		var m int
		var err error
		if b.w == b.v {
			// Nothing buffered: read into p and return the whole packets
			// there; keep the partial one at the end. An idle Conn blocks
			// here, holding no buffer.
			b.reset()
			m, err = c.conn.Read(p)
			k := c.scan(p[:m])
			if c.refusal == nil && k < m {
				b.stash(p[k:m])
			}
			if err != nil {
				c.ioErr = err
			}
			if k > 0 {
				return k, nil
			}
		} else {
			// A packet is being assembled: read as much as the buffer
			// takes, so a busy connection costs few reads.
			b.room()
			m, err = c.conn.Read(b.buf[b.w:])
			b.w += m
			b.v += c.scan(b.buf[b.v:b.w])
			if err != nil {
				c.ioErr = err
			}
			if b.r == b.w {
				b.reset()
			}
		}
		if m == 0 && err == nil {
			if empty++; empty >= maxEmptyReads {
				c.ioErr = io.ErrNoProgress
			}
		} else {
			empty = 0
		}
	}
}

// scan validates the whole packets at the start of b and returns their
// length. It records a refusal if one is refused.
func (c *Conn) scan(b []byte) int {
	k := 0
	for {
		n, e := c.f.next(b[k:])
		if e != nil {
			c.setRefusal(e, b[k:])
			break
		}
		if n == 0 {
			break
		}
		k += n
	}
	if c.f.opened {
		c.version.Store(uint32(c.f.version))
	}
	return k
}

// setRefusal records e, the refusal of the packet at the start of pkt
// (perhaps only its beginning), and chooses the packet that tells the peer.
func (c *Conn) setRefusal(e *Error, pkt []byte) {
	c.refusal = e
	c.err.Store(e)
	if c.f.opened {
		if c.f.version == 5 {
			c.reply = []byte{TypeDisconnect << 4, 2, e.Code, 0}
		}
		return
	}
	if e.Type != TypeConnect {
		return
	}
	_, hlen, st := header(pkt)
	if st != vbiOK {
		return
	}
	name, level, ok := protocolLevel(pkt, hlen)
	switch {
	case !ok:
	case level == 5 && supported(name, level):
		c.reply = []byte{TypeConnack << 4, 3, 0, e.Code, 0}
	case e.Reason == ReasonUnsupportedVersion && knownName(name):
		c.reply = []byte{TypeConnack << 4, 2, 0, 1}
	}
}

// refuse sends the refusal once and closes the write side.
func (c *Conn) refuse() {
	if c.refused {
		return
	}
	c.refused = true
	c.b.reset()
	t := time.NewTimer(refusalWait)
	defer t.Stop()
	select {
	case c.wsem <- struct{}{}:
		c.wclosed.Store(true)
		if c.reply != nil {
			_ = c.conn.SetWriteDeadline(time.Now().Add(refusalWait))
			_, _ = c.conn.Write(c.reply)
		}
		<-c.wsem
	case <-t.C:
		c.wclosed.Store(true) // a write is stuck; the broker closes the connection next
	}
}

// Write writes p to the wrapped connection, whole, between refusals: it
// fails with net.ErrClosed once a packet has been refused.
func (c *Conn) Write(p []byte) (int, error) {
	c.wsem <- struct{}{}
	if c.wclosed.Load() {
		<-c.wsem
		return 0, net.ErrClosed
	}
	n, err := c.conn.Write(p)
	<-c.wsem
	return n, err
}

// Version returns the protocol version of the client (3, 4 or 5) once its
// CONNECT has been accepted, 0 before.
func (c *Conn) Version() byte { return byte(c.version.Load()) }

// Err returns the refusal, or nil if no packet has been refused.
func (c *Conn) Err() *Error { return c.err.Load() }

// NetConn returns the wrapped connection, for callers that walk NetConn
// chains (to find the TLS state, for instance).
func (c *Conn) NetConn() net.Conn { return c.conn }

// Close closes the wrapped connection.
func (c *Conn) Close() error { return c.conn.Close() }

// LocalAddr returns the wrapped connection's local address.
func (c *Conn) LocalAddr() net.Addr { return c.conn.LocalAddr() }

// RemoteAddr returns the wrapped connection's remote address.
func (c *Conn) RemoteAddr() net.Addr { return c.conn.RemoteAddr() }

// SetDeadline sets the wrapped connection's deadlines.
func (c *Conn) SetDeadline(t time.Time) error { return c.conn.SetDeadline(t) }

// SetReadDeadline sets the wrapped connection's read deadline.
func (c *Conn) SetReadDeadline(t time.Time) error { return c.conn.SetReadDeadline(t) }

// SetWriteDeadline sets the wrapped connection's write deadline.
func (c *Conn) SetWriteDeadline(t time.Time) error { return c.conn.SetWriteDeadline(t) }

var _ net.Conn = (*Conn)(nil)
