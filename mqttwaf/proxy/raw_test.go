package proxy

import (
	"net"
	"testing"
	"time"

	"github.com/mqttwaf/mqttwaf/mqttwaf/frame"
)

// raw is an MQTT client that sends and reads packets as bytes, for tests
// that compare bytes or send what no library would.
type raw struct {
	c   net.Conn
	r   *frame.Reader
	ver byte
}

// rawClient connects with a clean CONNECT of version ver (4 or 5) and
// reads the CONNACK, which must accept.
func rawClient(t testing.TB, addr string, ver byte, id string) *raw {
	t.Helper()
	r := rawDial(t, addr, ver)
	cp := connect{protoName: "MQTT", level: ver, clean: true, keepalive: 30, clientID: id}
	r.send(t, cp.encode())
	pk := r.next(t)
	if pk[0]>>4 != frame.TypeConnack || pk[3] != 0 {
		t.Fatalf("CONNACK %x, want success", pk)
	}
	return r
}

// rawDial opens a TCP connection for a client of version ver.
func rawDial(t testing.TB, addr string, ver byte) *raw {
	t.Helper()
	nc, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = nc.Close() })
	r := &raw{c: nc, r: frame.NewReader(nc, frame.FromServer, frame.Limits{}), ver: ver}
	r.r.SetVersion(ver)
	return r
}

func (r *raw) send(t testing.TB, pkt []byte) {
	t.Helper()
	if _, err := r.c.Write(pkt); err != nil {
		t.Fatal(err)
	}
}

// next reads the next packet within 5 seconds.
func (r *raw) next(t testing.TB) []byte {
	t.Helper()
	_ = r.c.SetReadDeadline(time.Now().Add(5 * time.Second))
	pk, err := r.r.Next()
	if err != nil {
		t.Fatalf("read: %v", err)
	}
	return append([]byte(nil), pk...)
}

// rawSubscribe encodes a SUBSCRIBE of one filter.
func rawSubscribe(ver byte, id uint16, topic string, qos byte) []byte {
	s := subscribe{id: id, filters: []filter{{topic: topic, opts: qos}}}
	return s.encode(ver, []bool{true})
}

// encodeAliased encodes an MQTT 5 PUBLISH carrying p.alias (encode never
// writes one: the proxy forwards none).
func encodeAliased(p publish) []byte {
	b := appendString(nil, p.topic)
	if p.qos > 0 {
		b = appendU16(b, p.id)
	}
	b = appendProps(b, []prop{{propTopicAlias, appendU16(nil, p.alias)}})
	b = append(b, p.payload...)
	return packet(frame.TypePublish<<4|p.qos<<1, b)
}
