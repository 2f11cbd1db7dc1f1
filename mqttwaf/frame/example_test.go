package frame_test

import (
	"bytes"
	"errors"
	"fmt"
	"io"

	"github.com/mqttwaf/mqttwaf/mqttwaf/frame"
)

// Validate refuses the SUBSCRIBE that panics mochi-mqtt v2.7.9's decoder
// (issue #501): a topic filter with no subscription options byte.
func ExampleValidate() {
	pkt := []byte{0x82, 0x06, 0x00, 0x01, 0x00, 0x00, 0x01, 0x61}
	err := frame.Validate(5, frame.FromClient, pkt)
	var e *frame.Error
	if errors.As(err, &e) {
		fmt.Printf("%s at offset %d, reason code 0x%02X\n", e.Reason, e.Offset, e.Code)
		fmt.Println(e.Detail)
	}
	// Output:
	// malformed_packet at offset 8, reason code 0x81
	// SUBSCRIBE: filter 1 (offset 5) has no subscription options byte
}

// A Reader splits a client's byte stream into validated packets; the
// CONNECT fixes the protocol version of the rest.
func ExampleReader() {
	stream := []byte{
		0x10, 0x0F, 0x00, 0x04, 'M', 'Q', 'T', 'T', 0x04, 0x02, 0x00, 0x3C, 0x00, 0x03, 'd', 'e', 'v', // CONNECT 3.1.1
		0x30, 0x06, 0x00, 0x01, 't', 'h', 'i', '!', // PUBLISH t "hi!"
		0x82, 0x05, 0x00, 0x01, 0x00, 0x01, 'a', // SUBSCRIBE without its QoS byte
	}
	r := frame.NewReader(bytes.NewReader(stream), frame.FromClient, frame.Limits{MaxPacketSize: 64 << 10})
	for {
		pkt, err := r.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			fmt.Println(err)
			break
		}
		fmt.Printf("packet type %d, %d bytes, protocol version %d\n", pkt[0]>>4, len(pkt), r.Version())
	}
	// Output:
	// packet type 1, 17 bytes, protocol version 4
	// packet type 3, 8 bytes, protocol version 4
	// mqtt malformed_packet: SUBSCRIBE: filter 1 (offset 4) has no subscription options byte
}
