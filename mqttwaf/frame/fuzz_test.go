package frame

import (
	"bytes"
	"testing"
)

// FuzzValidate checks, on arbitrary bytes: Validate never panics, is
// deterministic, and every refusal is a well-formed *Error (checkError); a
// packet it accepts has a canonical fixed header, so re-framing its body
// gives the same bytes. The input is also re-framed as a packet (first byte
// kept, remaining length rewritten to fit) so the fuzzer reaches the packet
// bodies, and that packet must get the same verdict from Reader and Conn
// as from Validate, whatever the read sizes (checkStreamWith).
func FuzzValidate(f *testing.F) {
	for _, sd := range seeds {
		f.Add(sd.ver, byte(sd.dir), sd.pkt)
		if len(sd.pkt) > 1 { // also as a first byte and body, to seed the re-framed path
			if _, hlen, st := header(sd.pkt); st == vbiOK {
				f.Add(sd.ver, byte(sd.dir)|2, append([]byte{sd.pkt[0]}, sd.pkt[hlen:]...))
			}
		}
	}
	f.Fuzz(func(t *testing.T, ver, d byte, data []byte) {
		dir := Direction(d & 1)
		e := validate(ver, dir, data)
		if e2 := validate(ver, dir, data); !sameError(e, e2) {
			t.Fatalf("not deterministic: %v, then %v", e, e2)
		}
		if e != nil {
			checkError(t, data, e)
		} else {
			_, hlen, _ := header(data)
			if re := pk(data[0], data[hlen:]); !bytes.Equal(re, data) {
				t.Fatalf("accepted % X, re-framed % X", data, re)
			}
		}
		if len(data) == 0 {
			return
		}
		v := 3 + ver%3
		framed := pk(data[0], data[1:])
		fe := validate(v, dir, framed)
		if fe != nil {
			checkError(t, framed, fe)
		}
		k := int(d >> 2)
		checkStreamWith(t, v, dir, framed, fe,
			readerChunks[k%len(readerChunks):][:1],
			connSizes[k%len(connSizes):][:1],
			connChunks[k%len(connChunks):][:1])
	})
}
