package frame

import "io"

// maxEmptyReads bounds how often a source may return no bytes and no error
// in a row before the stream reports io.ErrNoProgress (as bufio does).
const maxEmptyReads = 100

// Reader splits a byte stream into whole, validated MQTT packets and tracks
// the connection state that Validate alone cannot: on a FromClient stream
// the first packet must be CONNECT, whose protocol level then fixes the
// version of every later packet, and a second CONNECT is refused; on a
// FromServer stream the caller gives the version (SetVersion, from the
// CONNECT it sent), the first packet must be CONNACK (or, MQTT 5, AUTH) and
// a second CONNACK is refused.
//
// A refused packet ends the stream: Next returns its *Error then and on
// every later call. Memory: the Reader buffers at most the packet being
// assembled plus what one read returned, allocates only for bytes received
// (a fixed header announcing 256 MB allocates nothing), and gives a big
// buffer back once the big packet has been consumed.
//
// A Reader is not safe for concurrent use.
type Reader struct {
	src   io.Reader
	f     framer
	b     buffer
	err   *Error
	ioErr error
}

// NewReader returns a Reader of the packets r carries in direction dir.
func NewReader(r io.Reader, dir Direction, lim Limits) *Reader {
	return &Reader{src: r, f: framer{dir: dir, max: lim.max()}}
}

// SetVersion sets the protocol version (3, 4 or 5) of the stream. A
// FromServer Reader needs it before its first Next: it is the level of the
// CONNECT the client sent. On a FromClient Reader it marks the CONNECT as
// already read, for a stream picked up after it.
func (r *Reader) SetVersion(v byte) {
	r.f.version = v
	if r.f.dir == FromClient {
		r.f.opened = true
	}
}

// Version returns the protocol version of the stream: the level of the
// accepted CONNECT (FromClient) or the one given to SetVersion; 0 before.
func (r *Reader) Version() byte { return r.f.version }

// Next returns the next packet, fixed header included. The slice is valid
// until the next call. Errors from the underlying reader are returned as
// they are, except that io.EOF inside a packet becomes io.ErrUnexpectedEOF;
// a refused packet yields its *Error, and so does every later call.
func (r *Reader) Next() ([]byte, error) {
	if r.err != nil {
		return nil, r.err
	}
	b := &r.b
	b.r = b.v // the previous packet is consumed
	if b.r == b.w && b.buf != nil {
		b.reset()
	}
	for empty := 0; ; {
		n, e := r.f.next(b.buf[b.v:b.w])
		if e != nil {
			r.err = e
			b.reset()
			return nil, e
		}
		if n > 0 {
			b.v += n
			return b.buf[b.r:b.v:b.v], nil
		}
		if r.ioErr != nil {
			err := r.ioErr
			r.ioErr = nil
			if err == io.EOF && b.w > b.v {
				err = io.ErrUnexpectedEOF
			}
			return nil, err
		}
		b.room()
		m, err := r.src.Read(b.buf[b.w:])
		b.w += m
		switch {
		case err != nil:
			r.ioErr = err
		case m == 0:
			if empty++; empty >= maxEmptyReads {
				r.ioErr = io.ErrNoProgress
			}
		default:
			empty = 0
		}
	}
}

// Ready reports whether the next packet has arrived whole, so that Next
// returns it (or its refusal) without reading. A relay flushes what it
// wrote when no packet is ready, so packets that came in one read leave in
// one write, and nothing waits behind a peer that is still sending.
func (r *Reader) Ready() bool {
	if r.err != nil {
		return true
	}
	b := &r.b
	rest := b.buf[b.v:b.w]
	n := announced(rest)
	return n > 0 && n <= len(rest)
}
