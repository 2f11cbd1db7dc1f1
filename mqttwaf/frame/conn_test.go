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

// readAll reads c with buffers of size until an error.
func readAll(c *Conn, size int) ([]byte, error) {
	var got []byte
	p := make([]byte, size)
	for {
		n, err := c.Read(p)
		got = append(got, p[:n]...)
		if err != nil {
			return got, err
		}
	}
}

// TestConnRealTCP is the mochi #501 scenario on a real socket: an MQTT 5
// client's CONNECT passes, its SUBSCRIBE without options byte is refused
// with a DISCONNECT 0x81 and never reaches the reader.
func TestConnRealTCP(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	type result struct {
		got []byte
		err error
		c   *Conn
	}
	done := make(chan result, 1)
	go func() {
		s, err := ln.Accept()
		if err != nil {
			done <- result{err: err}
			return
		}
		defer s.Close()
		c := NewConn(s, Limits{})
		got, err := readAll(c, 2048)
		done <- result{got, err, c}
	}()
	cl, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	bad := raw(0x82, 0x06, 0x00, 0x01, 0x00, 0x00, 0x01, 0x61)
	if _, err := cl.Write(cat(connect5, bad)); err != nil {
		t.Fatal(err)
	}
	r := <-done
	var e *Error
	if !errors.As(r.err, &e) || e.Reason != ReasonMalformed || e.Offset != 8 || e.Type != TypeSubscribe {
		t.Fatalf("server read: %v", r.err)
	}
	if !bytes.Equal(r.got, connect5) {
		t.Fatalf("server read % X, want only the CONNECT", r.got)
	}
	if r.c.Version() != 5 || r.c.Err() != e {
		t.Fatalf("Version %d, Err %v", r.c.Version(), r.c.Err())
	}
	_ = cl.SetReadDeadline(time.Now().Add(5 * time.Second))
	reply, _ := io.ReadAll(cl)
	if !bytes.Equal(reply, raw(0xE0, 2, 0x81, 0)) {
		t.Fatalf("client got % X, want DISCONNECT 0x81", reply)
	}
}

// TestConnRefusals checks what Conn writes for each kind of refusal.
func TestConnRefusals(t *testing.T) {
	tests := []struct {
		name   string
		stream []byte
		lim    Limits
		reason string
		reply  []byte
	}{
		{"v5 CONNECT malformed", pk(0x10, v5hdr, raw(3), u16(0), props(), str("c")), Limits{}, ReasonMalformed, raw(0x20, 3, 0, 0x81, 0)},
		{"v5 CONNECT bad flags", pk(0x11, v5hdr, raw(2), u16(0), props(), str("c")), Limits{}, ReasonMalformed, raw(0x20, 3, 0, 0x81, 0)},
		{"v5 CONNECT bad flags, level not arrived", pk(0x11, v5hdr, raw(2), u16(0), props(), str("c"))[:4], Limits{}, ReasonMalformed, nil},
		{"v5 CONNECT protocol error", pk(0x10, v5hdr, raw(2), u16(0), props(prop(0x21, u16(0))), str("c")), Limits{}, ReasonProtocolError, raw(0x20, 3, 0, 0x82, 0)},
		{"v5 CONNECT too large, level read", cat(raw(0x10, 0xFF, 0x7F), v5hdr), Limits{MaxPacketSize: 1000}, ReasonTooLarge, raw(0x20, 3, 0, 0x95, 0)},
		{"v5 CONNECT too large, level unread", raw(0x10, 0xFF, 0x7F, 0), Limits{MaxPacketSize: 1000}, ReasonTooLarge, nil},
		{"v4 CONNECT malformed", pk(0x10, v4hdr, raw(3), u16(0), str("c")), Limits{}, ReasonMalformed, nil},
		{"level 6", pk(0x10, str("MQTT"), raw(6, 2), u16(0), str("c")), Limits{}, ReasonUnsupportedVersion, raw(0x20, 2, 0, 1)},
		{"MQIsdp level 5", pk(0x10, str("MQIsdp"), raw(5, 2), u16(0), props(), str("c")), Limits{}, ReasonUnsupportedVersion, raw(0x20, 2, 0, 1)},
		{"unknown protocol", pk(0x10, str("MQTX"), raw(5, 2), u16(0), props(), str("c")), Limits{}, ReasonProtocolError, nil},
		{"first not CONNECT", raw(0xC0, 0), Limits{}, ReasonFirstNotConnect, nil},
		{"HTTP", []byte("GET / HTTP/1.1\r\n\r\n"), Limits{}, ReasonFirstNotConnect, nil},
		{"v5 second CONNECT", cat(connect5, connect5), Limits{}, ReasonSecondConnect, raw(0xE0, 2, 0x82, 0)},
		{"v4 second CONNECT", cat(connect4, connect4), Limits{}, ReasonSecondConnect, nil},
		{"v5 PUBLISH too large", cat(connect5, raw(0x30, 0xFF, 0xFF, 0xFF, 0x7F)), Limits{MaxPacketSize: 1 << 20}, ReasonTooLarge, raw(0xE0, 2, 0x95, 0)},
		{"v5 PUBLISH too large, protocol limit", cat(connect5, raw(0x30, 0xFF, 0xFF, 0xFF, 0x80)), Limits{}, ReasonMalformed, raw(0xE0, 2, 0x81, 0)},
		{"v5 AUTH bad", cat(connect5, pk(0xF0, raw(0x18))), Limits{}, ReasonMalformed, raw(0xE0, 2, 0x81, 0)},
		{"v3 SUBSCRIBE bad", cat(connect3, pk(0x82, u16(1), str("a"))), Limits{}, ReasonMalformed, nil},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			mc := &memConn{data: tc.stream}
			c := NewConn(mc, tc.lim)
			_, err := readAll(c, 4096)
			var e *Error
			if !errors.As(err, &e) || e.Reason != tc.reason {
				t.Fatalf("%v, want %s", err, tc.reason)
			}
			if w := mc.written(); !bytes.Equal(w, tc.reply) {
				t.Fatalf("wrote % X, want % X", w, tc.reply)
			}
			if mc.closed {
				t.Fatal("Conn closed the connection itself")
			}
		})
	}
}

// TestConnTooLargeAllocatesNothing: a fixed header announcing 256 MB makes
// nothing allocate beyond the bytes that arrive.
func TestConnTooLargeAllocatesNothing(t *testing.T) {
	body := bytes.Repeat([]byte{'x'}, 10000)
	mc := &memConn{data: cat(connect4, raw(0x30, 0xFF, 0xFF, 0xFF, 0x7F), body)}
	c := NewConn(mc, Limits{})
	got, err := readAll(c, 2048)
	if err != io.EOF || !bytes.Equal(got, connect4) {
		t.Fatalf("% X, %v", got, err)
	}
	if n := len(c.b.buf); n > 2*len(body) {
		t.Fatalf("buffer %d bytes for %d received", n, len(body))
	}
}

// TestConnBigPacket checks that a big packet split over many reads comes
// out whole and that Conn gives its big buffer back afterwards.
func TestConnBigPacket(t *testing.T) {
	big := pk(0x32, str("a"), u16(1), bytes.Repeat([]byte{'x'}, 3<<20))
	small := pk(0x30, str("b"), raw(1))
	stream := cat(connect4, small, big, small, small)
	for _, size := range []int{100, 2048, 1 << 16} {
		mc := &memConn{data: stream, chunks: []int{1500, 65536, 7}}
		c := NewConn(mc, Limits{})
		var got []byte
		p := make([]byte, size)
		for len(got) < len(stream)-len(small) {
			n, err := c.Read(p)
			if err != nil {
				t.Fatal(err)
			}
			got = append(got, p[:n]...)
		}
		if len(c.b.buf) > smallBuf {
			t.Fatalf("size %d: buffer still %d bytes", size, len(c.b.buf))
		}
		rest, err := readAll(c, size)
		if err != io.EOF || !bytes.Equal(append(got, rest...), stream) {
			t.Fatalf("size %d: stream differs, %v", size, err)
		}
		if c.b.buf != nil {
			t.Fatalf("size %d: idle Conn holds %d bytes", size, len(c.b.buf))
		}
	}
}

// TestConnIOError checks that an I/O error comes after the packets
// completed before it.
func TestConnIOError(t *testing.T) {
	boom := errors.New("boom")
	for _, size := range []int{64, 4096} {
		c := NewConn(&errConn{memConn: memConn{}, r: &errAfter{data: cat(connect4, raw(0xC0, 0), raw(0xC0)), err: boom}}, Limits{})
		got, err := readAll(c, size)
		if err != boom || !bytes.Equal(got, cat(connect4, raw(0xC0, 0))) {
			t.Fatalf("size %d: % X, %v", size, got, err)
		}
	}
}

type errConn struct {
	memConn
	r io.Reader
}

func (e *errConn) Read(p []byte) (int, error) { return e.r.Read(p) }

// TestConnWritesNotInterleaved checks that the refusal lands between whole
// writes while other goroutines write, and that writes stop after it.
func TestConnWritesNotInterleaved(t *testing.T) {
	mc := &slowConn{memConn: memConn{data: cat(connect5, raw(0xC0, 0), raw(0xC1, 0))}}
	c := NewConn(mc, Limits{})
	pkt := pk(0x30, str("t"), props(), bytes.Repeat([]byte{'y'}, 100))
	var wg sync.WaitGroup
	stop := make(chan struct{})
	for range 4 {
		wg.Go(func() {
			for {
				select {
				case <-stop:
					return
				default:
				}
				if _, err := c.Write(pkt); err != nil {
					if !errors.Is(err, net.ErrClosed) {
						t.Error(err)
					}
					return
				}
			}
		})
	}
	time.Sleep(5 * time.Millisecond)
	_, err := readAll(c, 4096)
	close(stop)
	wg.Wait()
	var e *Error
	if !errors.As(err, &e) {
		t.Fatal(err)
	}
	out := mc.written()
	refusal := raw(0xE0, 2, 0x81, 0)
	if !bytes.HasSuffix(out, refusal) {
		t.Fatalf("output does not end with the refusal")
	}
	out = out[:len(out)-len(refusal)]
	if len(out)%len(pkt) != 0 || !bytes.Equal(out, bytes.Repeat(pkt, len(out)/len(pkt))) {
		t.Fatalf("writes interleaved: %d bytes", len(out))
	}
}

// slowConn makes every Write take a while, byte by byte.
type slowConn struct{ memConn }

func (s *slowConn) Write(p []byte) (int, error) {
	for i := range p {
		if i%50 == 0 {
			time.Sleep(10 * time.Microsecond)
		}
		if _, err := s.memConn.Write(p[i : i+1]); err != nil {
			return i, err
		}
	}
	return len(p), nil
}

// TestConnStuckWrite checks that a Write blocked on a peer that does not
// read cannot hold the reading goroutine: the refusal gives up after
// refusalWait and later Writes fail.
func TestConnStuckWrite(t *testing.T) {
	mc := &stuckConn{memConn: memConn{data: cat(connect5, raw(0xC1, 0))}, release: make(chan struct{})}
	c := NewConn(mc, Limits{})
	started := make(chan struct{})
	go func() {
		close(started)
		_, _ = c.Write([]byte{0xD0, 0})
	}()
	<-started
	time.Sleep(10 * time.Millisecond)
	t0 := time.Now()
	_, err := readAll(c, 4096)
	if d := time.Since(t0); d > refusalWait+time.Second {
		t.Fatalf("Read took %v with a stuck write", d)
	}
	if c.Err() == nil || err != c.Err() {
		t.Fatalf("%v", err)
	}
	close(mc.release)
	if _, err := c.Write([]byte{0xD0, 0}); !errors.Is(err, net.ErrClosed) {
		t.Fatalf("Write after refusal: %v", err)
	}
}

type stuckConn struct {
	memConn
	release chan struct{}
}

func (s *stuckConn) Write(p []byte) (int, error) {
	<-s.release
	return 0, net.ErrClosed
}

// TestConnNetConn checks the net.Conn plumbing.
func TestConnNetConn(t *testing.T) {
	mc := &memConn{}
	c := NewConn(mc, Limits{})
	if c.NetConn() != mc || c.Version() != 0 || c.Err() != nil {
		t.Fatal("fresh Conn")
	}
	if n, err := c.Read(nil); n != 0 || err != nil {
		t.Fatalf("Read(nil) = %d, %v", n, err)
	}
	if _, err := c.Write(raw(0xD0, 0)); err != nil || !bytes.Equal(mc.written(), raw(0xD0, 0)) {
		t.Fatal("Write did not pass through")
	}
	_ = c.Close()
	if !mc.closed {
		t.Fatal("Close did not pass through")
	}
}
