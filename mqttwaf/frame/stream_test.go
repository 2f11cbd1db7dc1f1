package frame

import (
	"bytes"
	"errors"
	"io"
	"net"
	"sync"
	"testing"
	"time"
)

// memConn is a net.Conn that reads from data in chunks of the given sizes
// (cycling) and records what is written.
type memConn struct {
	data   []byte
	chunks []int
	k      int
	mu     sync.Mutex
	out    bytes.Buffer
	closed bool
}

func (m *memConn) Read(p []byte) (int, error) {
	if len(m.data) == 0 {
		return 0, io.EOF
	}
	n := len(p)
	if len(m.chunks) > 0 {
		n = min(n, m.chunks[m.k%len(m.chunks)])
		m.k++
	}
	n = copy(p[:n], m.data)
	m.data = m.data[n:]
	return n, nil
}

func (m *memConn) Write(p []byte) (int, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.out.Write(p)
}

func (m *memConn) written() []byte {
	m.mu.Lock()
	defer m.mu.Unlock()
	return append([]byte(nil), m.out.Bytes()...)
}

func (m *memConn) Close() error                       { m.closed = true; return nil }
func (m *memConn) LocalAddr() net.Addr                { return &net.TCPAddr{} }
func (m *memConn) RemoteAddr() net.Addr               { return &net.TCPAddr{} }
func (m *memConn) SetDeadline(t time.Time) error      { return nil }
func (m *memConn) SetReadDeadline(t time.Time) error  { return nil }
func (m *memConn) SetWriteDeadline(t time.Time) error { return nil }

// chunkedReader reads from data in chunks of the given sizes (cycling).
type chunkedReader struct {
	data   []byte
	chunks []int
	k      int
}

func (r *chunkedReader) Read(p []byte) (int, error) {
	if len(r.data) == 0 {
		return 0, io.EOF
	}
	n := min(len(p), r.chunks[r.k%len(r.chunks)], len(r.data))
	r.k++
	copy(p, r.data[:n])
	r.data = r.data[n:]
	return n, nil
}

func opening(ver byte, dir Direction) []byte {
	switch {
	case dir == FromServer && ver == 5:
		return connack5
	case dir == FromServer:
		return connack4
	case ver == 3:
		return connect3
	case ver == 4:
		return connect4
	}
	return connect5
}

// streamOf puts pkt after the opening packet of a ver connection in
// direction dir (unless pkt is itself that opening packet) and returns the
// stream and the length of the prefix.
func streamOf(ver byte, dir Direction, pkt []byte) ([]byte, int) {
	typ := pkt[0] >> 4
	if dir == FromClient && typ == TypeConnect || dir == FromServer && typ == TypeConnack {
		return pkt, 0
	}
	o := opening(ver, dir)
	return cat(o, pkt), len(o)
}

func sameError(a, b *Error) bool { return a == nil && b == nil || a != nil && b != nil && *a == *b }

// Read patterns for checkStream: chunk sizes of the source, buffer sizes
// of the Conn reader.
var (
	readerChunks = [][]int{{1 << 20}, {1}, {3, 1, 7}, {5000, 13}}
	connSizes    = [][]int{{1 << 16}, {1}, {600, 7, 4096}, {512}}
	connChunks   = [][]int{nil, {1}, {2, 9}}
)

// checkStream checks that Reader and (for FromClient) Conn give the verdict
// Validate gave (want) for the whole packet pkt, sent after the opening
// packet of its connection, whatever the read sizes.
func checkStream(t *testing.T, ver byte, dir Direction, pkt []byte, want *Error) {
	t.Helper()
	checkStreamWith(t, ver, dir, pkt, want, readerChunks, connSizes, connChunks)
}

func checkStreamWith(t *testing.T, ver byte, dir Direction, pkt []byte, want *Error, readerChunks, connSizes, connChunks [][]int) {
	t.Helper()
	stream, pre := streamOf(ver, dir, pkt)
	for _, chunks := range readerChunks {
		r := NewReader(&chunkedReader{data: stream, chunks: chunks}, dir, Limits{})
		if dir == FromServer {
			r.SetVersion(ver)
		}
		if pre > 0 {
			got, err := r.Next()
			if err != nil || !bytes.Equal(got, stream[:pre]) {
				t.Fatalf("Reader chunks %v: opening packet: % X, %v", chunks, got, err)
			}
		}
		got, err := r.Next()
		if want == nil {
			if err != nil || !bytes.Equal(got, pkt) {
				t.Fatalf("Reader chunks %v: % X, %v; want the packet", chunks, got, err)
			}
			if _, err := r.Next(); err != io.EOF {
				t.Fatalf("Reader chunks %v: after the packet: %v, want EOF", chunks, err)
			}
			continue
		}
		var e *Error
		if !errors.As(err, &e) || !sameError(e, want) {
			t.Fatalf("Reader chunks %v: % X, %v; want %v", chunks, got, err, want)
		}
		if _, err2 := r.Next(); err2 != err {
			t.Fatalf("Reader: later call: %v, want %v", err2, err)
		}
	}
	if dir != FromClient {
		return
	}
	for _, sizes := range connSizes {
		for _, chunks := range connChunks {
			mc := &memConn{data: stream, chunks: chunks}
			c := NewConn(mc, Limits{})
			var got []byte
			var err error
			for k := 0; err == nil; k++ {
				p := make([]byte, sizes[k%len(sizes)])
				var n int
				n, err = c.Read(p)
				got = append(got, p[:n]...)
				if n == 0 && err == nil {
					t.Fatalf("Conn: Read returned 0, nil")
				}
			}
			if want == nil {
				if err != io.EOF || !bytes.Equal(got, stream) {
					t.Fatalf("Conn sizes %v chunks %v: % X, %v; want the stream and EOF", sizes, chunks, got, err)
				}
				if w := mc.written(); len(w) > 0 || c.Err() != nil {
					t.Fatalf("Conn wrote % X for an accepted stream", w)
				}
				continue
			}
			var e *Error
			if !errors.As(err, &e) || !sameError(e, want) || !bytes.Equal(got, stream[:pre]) {
				t.Fatalf("Conn sizes %v chunks %v: % X, %v; want % X then %v", sizes, chunks, got, err, stream[:pre], want)
			}
			if c.Err() != e {
				t.Fatalf("Conn.Err() = %v", c.Err())
			}
			if n, err2 := c.Read(make([]byte, 100)); n != 0 || err2 != err {
				t.Fatalf("Conn: later Read: %d, %v", n, err2)
			}
			if _, err := c.Write([]byte{0xD0, 0}); !errors.Is(err, net.ErrClosed) {
				t.Fatalf("Conn: Write after refusal: %v", err)
			}
			// A CONNECT refused from its fixed header alone can be refused
			// before its protocol level arrives: then nothing is sent.
			w, r := mc.written(), refusalFor(ver, pkt, pre, e)
			if !bytes.Equal(w, r) && !(pre == 0 && e.Offset <= 1 && len(w) == 0) {
				t.Fatalf("Conn wrote % X, want % X for %v", w, r, e)
			}
		}
	}
}

// refusalFor is what Conn must write when pkt, after pre bytes of opening
// packet, is refused with e.
func refusalFor(ver byte, pkt []byte, pre int, e *Error) []byte {
	if pre > 0 {
		if ver == 5 {
			return []byte{0xE0, 2, e.Code, 0}
		}
		return nil
	}
	// The refused packet is the client's first.
	if pkt[0]>>4 != TypeConnect {
		return nil
	}
	_, hlen, st := header(pkt)
	if st != vbiOK {
		return nil
	}
	name, level, ok := protocolLevel(pkt, hlen)
	switch {
	case !ok:
		return nil
	case string(name) == "MQTT" && level == 5:
		return []byte{0x20, 3, 0, e.Code, 0}
	case e.Reason == ReasonUnsupportedVersion && (string(name) == "MQTT" || string(name) == "MQIsdp"):
		return []byte{0x20, 2, 0, 1}
	}
	return nil
}

// TestStreamsAgree runs every well-framed seed through Reader and Conn.
func TestStreamsAgree(t *testing.T) {
	for _, sd := range seeds {
		if len(sd.pkt) == 0 || sd.ver < 3 || sd.ver > 5 {
			continue
		}
		if rem, hlen, st := header(sd.pkt); st != vbiOK || hlen+rem != len(sd.pkt) {
			continue
		}
		t.Run(sd.name, func(t *testing.T) {
			checkStream(t, sd.ver, sd.dir, sd.pkt, validate(sd.ver, sd.dir, sd.pkt))
		})
	}
}
