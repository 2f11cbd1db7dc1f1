package frame

import (
	"bytes"
	"errors"
	"io"
	"testing"
)

func nextErr(t *testing.T, r *Reader) *Error {
	t.Helper()
	for {
		_, err := r.Next()
		if err == nil {
			continue
		}
		var e *Error
		if !errors.As(err, &e) {
			t.Fatalf("Next: %v, want an *Error", err)
		}
		return e
	}
}

// TestReaderState checks the connection state a Reader enforces.
func TestReaderState(t *testing.T) {
	pub4 := pk(0x30, str("a"), raw(1))
	pub5 := pk(0x30, str("a"), props(), raw(1))
	tests := []struct {
		name   string
		dir    Direction
		setVer byte
		stream []byte
		reason string
		ver    byte // Version() after the stream
	}{
		{name: "first not CONNECT", stream: pub4, reason: ReasonFirstNotConnect},
		{name: "first PINGREQ", stream: raw(0xC0, 0), reason: ReasonFirstNotConnect},
		{name: "second CONNECT", stream: cat(connect4, pub4, connect4), reason: ReasonSecondConnect, ver: 4},
		{name: "second CONNECT other version", stream: cat(connect5, connect4), reason: ReasonSecondConnect, ver: 5},
		{name: "version from CONNECT 4: v5 PUBACK refused", stream: cat(connect4, pk(0x40, u16(1), raw(0), props())), reason: ReasonMalformed, ver: 4},
		{name: "version from CONNECT 5: v4 PUBLISH refused", stream: cat(connect5, pub4), reason: ReasonMalformed, ver: 5},
		{name: "version 3", stream: cat(connect3, pk(0x8A, u16(1), str("a"), raw(0)), raw(0xF0, 0)), reason: ReasonProtocolError, ver: 3},
		{name: "refused CONNECT", stream: cat(pk(0x10, str("MQTT"), raw(9, 2), u16(0), str("c")), pub4), reason: ReasonUnsupportedVersion},
		{name: "picked up after CONNECT", setVer: 5, stream: cat(pub5, connect5), reason: ReasonSecondConnect, ver: 5},
		{name: "server without version", dir: FromServer, stream: connack4, reason: ReasonUnsupportedVersion},
		{name: "server first not CONNACK", dir: FromServer, setVer: 4, stream: pub4, reason: ReasonFirstNotConnack, ver: 4},
		{name: "server second CONNACK", dir: FromServer, setVer: 4, stream: cat(connack4, pub4, connack4), reason: ReasonSecondConnack, ver: 4},
		{name: "server AUTH before CONNACK", dir: FromServer, setVer: 5, stream: cat(pk(0xF0, raw(0x18), props(prop(0x15, str("m")))), connack5, raw(0xF0, 0), raw(0xE0, 0), connack5), reason: ReasonSecondConnack, ver: 5},
		{name: "server AUTH in v4", dir: FromServer, setVer: 4, stream: cat(raw(0xF0, 0)), reason: ReasonFirstNotConnack, ver: 4},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			r := NewReader(bytes.NewReader(tc.stream), tc.dir, Limits{})
			if tc.setVer != 0 {
				r.SetVersion(tc.setVer)
			}
			e := nextErr(t, r)
			if e.Reason != tc.reason || e.Code != codeOf(tc.reason) {
				t.Errorf("%v, want %s", e, tc.reason)
			}
			if r.Version() != tc.ver {
				t.Errorf("Version() = %d, want %d", r.Version(), tc.ver)
			}
		})
	}
}

// TestReaderTooLarge checks that a fixed header announcing more than the
// limit is refused before its body arrives, and that a big announced length
// within the limit allocates only for the bytes received.
func TestReaderTooLarge(t *testing.T) {
	hdr := raw(0x30, 0xFF, 0xFF, 0xFF, 0x7F) // PUBLISH of 268,435,455 bytes
	r := NewReader(io.MultiReader(bytes.NewReader(connect4), bytes.NewReader(hdr), blockingReader{t}), FromClient, Limits{MaxPacketSize: 1 << 20})
	if _, err := r.Next(); err != nil {
		t.Fatal(err)
	}
	e := nextErr(t, r)
	if e.Reason != ReasonTooLarge || e.Code != 0x95 || e.Offset != 1 || e.Type != TypePublish {
		t.Fatalf("%+v", e)
	}

	body := bytes.Repeat([]byte{'x'}, 100<<10)
	r = NewReader(io.MultiReader(bytes.NewReader(connect4), bytes.NewReader(hdr), bytes.NewReader(body)), FromClient, Limits{})
	if _, err := r.Next(); err != nil {
		t.Fatal(err)
	}
	if _, err := r.Next(); err != io.ErrUnexpectedEOF {
		t.Fatalf("%v, want unexpected EOF", err)
	}
	if n := len(r.b.buf); n > 2*len(body) {
		t.Fatalf("buffer %d bytes for %d received", n, len(body))
	}
}

// blockingReader fails the test if read: the stream must not need it.
type blockingReader struct{ t *testing.T }

func (b blockingReader) Read([]byte) (int, error) {
	b.t.Error("read past the fixed header of a packet that is too large")
	return 0, io.EOF
}

// TestReaderGivesBackBigBuffer checks that after a big packet the Reader
// holds a small buffer again.
func TestReaderGivesBackBigBuffer(t *testing.T) {
	big := pk(0x30, str("a"), bytes.Repeat([]byte{'x'}, 1<<20))
	small := pk(0x30, str("a"), raw(1))
	stream := cat(connect4, big, small, small)
	r := NewReader(&chunkedReader{data: stream, chunks: []int{1000, 70000}}, FromClient, Limits{})
	for _, want := range [][]byte{connect4, big, small} {
		got, err := r.Next()
		if err != nil || !bytes.Equal(got, want) {
			t.Fatalf("% .20X..., %v", got, err)
		}
	}
	if n := len(r.b.buf); n > smallBuf {
		t.Fatalf("buffer still %d bytes after the big packet", n)
	}
}

// TestReaderIOErrors checks that I/O errors come after the packets
// completed before them and are not sticky.
func TestReaderIOErrors(t *testing.T) {
	boom := errors.New("boom")
	src := &errAfter{data: cat(connect4, raw(0xC0, 0), raw(0xC0)), err: boom}
	r := NewReader(src, FromClient, Limits{})
	for range 2 {
		if _, err := r.Next(); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := r.Next(); err != boom {
		t.Fatalf("%v, want boom", err)
	}
	src.data, src.err = raw(0), nil // the PINGREQ completes after the error
	if got, err := r.Next(); err != nil || !bytes.Equal(got, raw(0xC0, 0)) {
		t.Fatalf("% X, %v", got, err)
	}
	if _, err := r.Next(); err != io.EOF {
		t.Fatalf("%v, want EOF", err)
	}
}

// errAfter returns data with err in the same call, then EOF.
type errAfter struct {
	data []byte
	err  error
}

func (e *errAfter) Read(p []byte) (int, error) {
	if len(e.data) == 0 && e.err == nil {
		return 0, io.EOF
	}
	n := copy(p, e.data)
	e.data = e.data[n:]
	err := e.err
	e.err = nil
	return n, err
}

// TestReaderNoProgress checks that a source returning 0, nil forever ends
// with io.ErrNoProgress rather than spinning.
func TestReaderNoProgress(t *testing.T) {
	r := NewReader(zeroReader{}, FromClient, Limits{})
	if _, err := r.Next(); err != io.ErrNoProgress {
		t.Fatalf("%v", err)
	}
}

type zeroReader struct{}

func (zeroReader) Read([]byte) (int, error) { return 0, nil }

// TestReaderReady: Ready says whether the next packet is whole in the
// buffer, whatever the read boundaries.
func TestReaderReady(t *testing.T) {
	ping := raw(0xC0, 0)
	pub := pk(0x30, str("a"), raw(1))
	tests := []struct {
		name  string
		reads [][]byte // what each Read of the source returns
		ready []bool   // Ready after each Next
	}{
		{"two packets in one read", [][]byte{cat(connect4, ping, pub)}, []bool{true, true, false}},
		{"one packet per read", [][]byte{connect4, ping, pub}, []bool{false, false, false}},
		{"half a packet behind", [][]byte{cat(connect4, ping, pub[:2]), pub[2:]}, []bool{true, false, false}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			r := NewReader(&chunks{parts: tc.reads}, FromClient, Limits{})
			for i, want := range tc.ready {
				if _, err := r.Next(); err != nil {
					t.Fatalf("Next %d: %v", i, err)
				}
				if got := r.Ready(); got != want {
					t.Fatalf("Ready after packet %d: %v, want %v", i, got, want)
				}
			}
		})
	}
}

// chunks returns its parts one Read at a time, then io.EOF.
type chunks struct{ parts [][]byte }

func (c *chunks) Read(p []byte) (int, error) {
	if len(c.parts) == 0 {
		return 0, io.EOF
	}
	n := copy(p, c.parts[0])
	if c.parts[0] = c.parts[0][n:]; len(c.parts[0]) == 0 {
		c.parts = c.parts[1:]
	}
	return n, nil
}
