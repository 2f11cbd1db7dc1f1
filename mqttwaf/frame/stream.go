package frame

import "sync"

// Limits bounds what a Reader or Conn accepts. The zero value accepts
// every packet the protocol can frame.
type Limits struct {
	// MaxPacketSize is the largest packet accepted, fixed header included.
	// 0 (or less) means the protocol maximum, MaxPacketSize (268,435,460
	// bytes). A bigger packet is refused as packet_too_large as soon as its
	// fixed header is read, before its body is buffered. Memory is only
	// allocated for bytes actually received, whatever the header announces.
	MaxPacketSize int `yaml:"max_packet_size" json:"max_packet_size"`
}

func (l Limits) max() int {
	if l.MaxPacketSize <= 0 || l.MaxPacketSize > MaxPacketSize {
		return MaxPacketSize
	}
	return l.MaxPacketSize
}

// framer is the connection state of one direction of a stream: the
// protocol version and whether the opening packet (CONNECT from a client,
// CONNACK from a server) was accepted.
type framer struct {
	dir     Direction
	max     int
	version byte
	opened  bool
}

// next examines the packet at the start of b. It returns the packet's size
// if b holds all of it and it is valid; 0 if b ends inside it (only its
// first byte and fixed header are checked so far); or the refusal. State
// advances only over accepted packets.
func (f *framer) next(b []byte) (int, *Error) {
	if len(b) == 0 {
		return 0, nil
	}
	typ := b[0] >> 4
	if f.dir == FromClient {
		switch {
		case !f.opened && typ != TypeConnect:
			return 0, newError(typ, 0, ReasonFirstNotConnect, "the first packet of a connection must be CONNECT [MQTT-3.1.0-1]")
		case f.opened && typ == TypeConnect:
			return 0, newError(typ, 0, ReasonSecondConnect, "a second CONNECT on the connection [MQTT-3.1.0-2]")
		}
	} else {
		switch {
		case f.version < 3 || f.version > 5:
			return 0, newError(typ, 0, ReasonUnsupportedVersion, "protocol version %d: call SetVersion with the level of the CONNECT sent", f.version)
		case !f.opened && typ != TypeConnack && !(typ == TypeAuth && f.version == 5):
			return 0, newError(typ, 0, ReasonFirstNotConnack, "the first packet from a server must be CONNACK [MQTT-3.2.0-1]")
		case f.opened && typ == TypeConnack:
			return 0, newError(typ, 0, ReasonSecondConnack, "a second CONNACK on the connection [MQTT-3.2.0-2]")
		}
	}
	if e := checkFirstByte(f.version, f.dir, b[0]); e != nil {
		return 0, e
	}
	rem, hlen, st := header(b)
	switch st {
	case vbiShort:
		return 0, nil
	case vbiBad:
		return 0, newError(typ, 1, ReasonMalformed, "remaining length: not a minimally encoded Variable Byte Integer of at most 4 bytes [MQTT-1.5.5-1]")
	}
	size := hlen + rem
	if size > f.max {
		return 0, newError(typ, 1, ReasonTooLarge, "the fixed header announces %d bytes, more than the %d-byte limit", size, f.max)
	}
	if len(b) < size {
		return 0, nil
	}
	if e := validate(f.version, f.dir, b[:size]); e != nil {
		return 0, e
	}
	switch {
	case f.dir == FromClient && typ == TypeConnect:
		_, f.version, _ = protocolLevel(b, hlen)
		f.opened = true
	case f.dir == FromServer && typ == TypeConnack:
		f.opened = true
	}
	return size, nil
}

// announced returns the size of the packet at the start of b, or 0 if its
// fixed header is not complete.
func announced(b []byte) int {
	rem, hlen, st := header(b)
	if st != vbiOK {
		return 0
	}
	return hlen + rem
}

// smallBuf is the size of the pooled buffer a stream reads through while
// packets are coming. 8 KiB holds several typical packets per read; a
// packet that does not fit grows the buffer, which is dropped once the big
// packet has been read.
const smallBuf = 8 << 10

var smallPool = sync.Pool{New: func() any { b := make([]byte, smallBuf); return &b }}

// buffer holds bytes read from the peer: buf[r:v] validated, not yet
// handed out; buf[v:w] read, not yet validated (the start of a packet).
// An empty buffer holds no memory: idle connections cost nothing.
type buffer struct {
	buf     []byte
	small   *[]byte // buf came from smallPool
	r, v, w int
}

// setSmall replaces buf by a pooled small buffer holding data.
func (s *buffer) setSmall(data []byte) {
	bp := smallPool.Get().(*[]byte)
	n := copy(*bp, data)
	s.put()
	s.buf, s.small, s.r, s.v, s.w = *bp, bp, 0, 0, n
}

// put gives a pooled buffer back.
func (s *buffer) put() {
	if s.small != nil {
		smallPool.Put(s.small)
		s.small = nil
	}
}

// reset empties the buffer and gives its memory back.
func (s *buffer) reset() {
	s.put()
	s.buf, s.r, s.v, s.w = nil, 0, 0, 0
}

// room makes space to read after buf[w] for the packet being assembled in
// buf[v:w] (r == v). It moves that partial packet to the front of the
// buffer when little room is left, and when the buffer is full grows it,
// doubling up to the size the fixed header announces: memory follows the
// bytes received, never the announced length alone. A big buffer is
// swapped for a small one once the data left fits.
func (s *buffer) room() {
	pending := s.w - s.v
	switch {
	case s.buf == nil || len(s.buf) > smallBuf && pending <= smallBuf/2:
		s.setSmall(s.buf[s.v:s.w])
		return
	case s.v > 0 && len(s.buf)-s.w < len(s.buf)/4:
		copy(s.buf, s.buf[s.v:s.w])
		s.r, s.v, s.w = 0, 0, pending
	}
	if s.w < len(s.buf) {
		return
	}
	// Full of one partial packet (v == 0): grow.
	size := 2 * len(s.buf)
	if a := announced(s.buf[:s.w]); a > 0 && a < size {
		size = a
	}
	nb := make([]byte, size)
	copy(nb, s.buf[:s.w])
	s.put()
	s.buf = nb
}

// stash keeps b, the start of a packet, for the next read. The buffer must
// be empty.
func (s *buffer) stash(b []byte) {
	if len(b) <= smallBuf {
		s.setSmall(b)
		return
	}
	s.put()
	s.buf = make([]byte, len(b)+len(b)/2)
	s.r, s.v, s.w = 0, 0, copy(s.buf, b)
}
