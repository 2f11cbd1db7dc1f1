package frame

import (
	"bufio"
	"io"
	"net"
	"strings"
	"testing"
	"time"
)

// BenchmarkValidate measures Validate on every seed (valid and refused),
// and on the hot packet types by name.
func BenchmarkValidate(b *testing.B) {
	hot := map[string]bool{
		"v4 PUBLISH qos0": true, "v5 PUBLISH qos0": true, "v4 PUBLISH qos0 1KiB": true, "v5 PUBLISH qos0 1KiB": true, "v4 PUBLISH qos1 1KiB": true, "v5 PUBLISH qos1 1KiB": true,
		"v5 PUBLISH props": true, "v4 SUBSCRIBE": true, "v5 SUBSCRIBE": true, "v4 PUBACK": true, "v5 PUBACK reason props": true,
		"v5 CONNECT full": true, "mochi #501 SUBSCRIBE without options byte": true,
	}
	for _, sd := range seeds {
		if !hot[sd.name] && !testing.Verbose() {
			continue
		}
		b.Run(strings.ReplaceAll(sd.name, " ", "_"), func(b *testing.B) {
			b.ReportAllocs()
			b.SetBytes(int64(len(sd.pkt)))
			for b.Loop() {
				_ = Validate(sd.ver, sd.dir, sd.pkt)
			}
		})
	}
}

// loopConn is an endless stream: open once, then body over and over, served
// in reads of at most chunk bytes. Writes are discarded.
type loopConn struct {
	open, body []byte
	pos        int
	chunk      int
}

func (l *loopConn) Read(p []byte) (int, error) {
	if len(l.open) > 0 {
		n := copy(p, l.open)
		l.open = l.open[n:]
		return n, nil
	}
	if len(p) > l.chunk {
		p = p[:l.chunk]
	}
	n := 0
	for n < len(p) {
		k := copy(p[n:], l.body[l.pos:])
		n += k
		l.pos = (l.pos + k) % len(l.body)
	}
	return n, nil
}

func (l *loopConn) Write(p []byte) (int, error)        { return len(p), nil }
func (l *loopConn) Close() error                       { return nil }
func (l *loopConn) LocalAddr() net.Addr                { return &net.TCPAddr{} }
func (l *loopConn) RemoteAddr() net.Addr               { return &net.TCPAddr{} }
func (l *loopConn) SetDeadline(t time.Time) error      { return nil }
func (l *loopConn) SetReadDeadline(t time.Time) error  { return nil }
func (l *loopConn) SetWriteDeadline(t time.Time) error { return nil }

// BenchmarkConnRead reads a stream of 1 KiB QoS 1 PUBLISH packets the way
// mochi does (a 2 KiB bufio.Reader: fixed header byte by byte, then the
// body with io.ReadFull), from the raw connection (baseline) and through
// Conn. The source is in memory (reads of at most 16 KiB, like a busy
// socket: the overhead of Conn alone) or a 127.0.0.1 TCP socket fed by
// another goroutine (what a broker sees).
func BenchmarkConnRead(b *testing.B) {
	b.Run("mem", func(b *testing.B) { benchConnRead(b, false) })
	b.Run("tcp", func(b *testing.B) { benchConnRead(b, true) })
}

func benchConnRead(b *testing.B, tcp bool) {
	for _, v := range []struct {
		name string
		ver  byte
		open []byte
		pkt  []byte
	}{
		{"v4", 4, connect4, pk(0x32, str("sensors/42/temp"), u16(7), payload1K)},
		{"v5", 5, connect5, pk(0x32, str("sensors/42/temp"), u16(7), props(), payload1K)},
	} {
		for _, wrap := range []string{"raw", "Conn"} {
			b.Run(v.name+"/"+wrap, func(b *testing.B) {
				var src net.Conn = &loopConn{open: v.open, body: v.pkt, chunk: 16 << 10}
				if tcp {
					src = tcpStream(b, v.open, v.pkt)
				}
				benchRead(b, src, wrap == "Conn", len(v.pkt))
			})
		}
	}
}

// benchRead reads packets from src (through a Conn if wrap) as mochi does.
func benchRead(b *testing.B, src net.Conn, wrap bool, size int) {
	c := src
	if wrap {
		c = NewConn(src, Limits{MaxPacketSize: 1 << 20})
	}
	br := bufio.NewReaderSize(c, 2048)
	body := make([]byte, 4096)
	read := func() {
		if _, err := br.ReadByte(); err != nil {
			b.Fatal(err)
		}
		n, mul := 0, 1
		for {
			c, err := br.ReadByte()
			if err != nil {
				b.Fatal(err)
			}
			n += int(c&127) * mul
			mul *= 128
			if c < 128 {
				break
			}
		}
		if _, err := io.ReadFull(br, body[:n]); err != nil {
			b.Fatal(err)
		}
	}
	read() // CONNECT
	b.ReportAllocs()
	b.SetBytes(int64(size))
	for b.Loop() {
		read()
	}
}

// tcpStream returns the server side of a 127.0.0.1 TCP connection whose
// client writes open, then pkt over and over, until the test ends.
func tcpStream(b *testing.B, open, pkt []byte) net.Conn {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		b.Fatal(err)
	}
	defer ln.Close()
	cl, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		b.Fatal(err)
	}
	srv, err := ln.Accept()
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { _ = cl.Close(); _ = srv.Close() })
	batch := append([]byte(nil), open...)
	for len(batch) < 64<<10 {
		batch = append(batch, pkt...)
	}
	go func() {
		if _, err := cl.Write(batch); err != nil {
			return
		}
		batch = batch[len(open):]
		for {
			if _, err := cl.Write(batch); err != nil {
				return
			}
		}
	}()
	return srv
}
