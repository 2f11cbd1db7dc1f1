package hooks

import (
	"sync"

	mqtt "github.com/mochi-mqtt/server/v2"
	"github.com/mochi-mqtt/server/v2/packets"
)

// sendWindow keeps an MQTT 5 client's Receive Maximum (3.1.2.11.3: at most
// that many QoS 1 and 2 PUBLISH packets unacknowledged at once) in the
// connection's write path, in place of mochi's own flow control.
//
// mochi v2.7.9's flow control can deadlock a broker. After every packet
// from a client with messages in flight it calls Inflight.NextImmediate,
// which takes the in-flight store's read lock twice (NextImmediate, then
// GetAll inside it). If a publisher's delivery to that client asks for the
// write lock (Inflight.Set) between the two, the second read lock waits
// for the writer and the writer for the first read lock: the client's read
// loop and every publisher delivering to it stop for good
// (TestViewsUnderReloadChurn hung that way; TestInflightLockStressNoRace reproduces it in seconds). A client can make it likely by
// sending PINGREQs while QoS 1 messages flood towards it, so it is a denial
// of service, not only a rare hang.
//
// mochi calls NextImmediate only while the client's send quota is above
// zero, and holds messages back only while its maximum is above zero. So
// for a connection whose writes pass through publishGate the hook sets both
// to zero (disable), and the window here does the job instead: a QoS>0
// PUBLISH that would exceed the client's Receive Maximum waits, in order,
// until an acknowledgement (PUBACK; PUBCOMP; PUBREC with an error code)
// makes room. mochi holds every waiting message in its in-flight store
// until it is acknowledged, so broker.max_inflight and
// broker.max_inflight_bytes bound what waits here; a resumed session's
// messages are resent by mochi at reconnect and wait here the same way.
// MQTT 3.1.1 has no Receive Maximum, nor does an MQTT 5 client that sends
// none: mochi never limits those, and no window is made.
//
// A sendWindow is safe for concurrent use: mochi writes from the client's
// writer goroutine and acknowledgements arrive on its reader goroutine.
type sendWindow struct {
	mu   sync.Mutex
	max  int
	open map[uint16]struct{} // packet IDs written and not acknowledged
	held []byte              // whole QoS>0 PUBLISH packets waiting, in order
}

func newSendWindow(max int) *sendWindow {
	return &sendWindow{max: max, open: make(map[uint16]struct{}, min(max, 64))}
}

// disableMochiQuota stops mochi's own flow control for cl (see sendWindow);
// it is called whenever mochi may have reset it (CONNECT, session
// takeover).
func disableMochiQuota(cl *mqtt.Client) {
	cl.State.Inflight.ResetSendQuota(0)
}

// filter returns the part of p (whole MQTT packets, or a tail that is not
// whole) to write now and keeps the QoS>0 PUBLISH packets that must wait.
// w.mu is held. It allocates only when something waits.
func (w *sendWindow) filter(p []byte) []byte {
	var pass []byte // nil: all of p so far passes
	for i := 0; i < len(p); {
		rem, hlen, ok := packetHeader(p[i:])
		if !ok || i+hlen+rem > len(p) {
			if pass != nil {
				pass = append(pass, p[i:]...)
			}
			break
		}
		pkt := p[i : i+hlen+rem]
		wait := false
		if id, ok := qosPublishID(pkt, hlen); ok {
			_, resent := w.open[id]
			switch {
			case resent && len(w.held) == 0: // a resend of one counted already
			case len(w.held) == 0 && len(w.open) < w.max:
				w.open[id] = struct{}{}
			default:
				wait = true
			}
		}
		if wait {
			if pass == nil {
				pass = append(make([]byte, 0, len(p)), p[:i]...)
			}
			w.held = append(w.held, pkt...)
		} else if pass != nil {
			pass = append(pass, pkt...)
		}
		i += len(pkt)
	}
	if pass == nil {
		return p
	}
	return pass
}

// acked ends the delivery of packet id and returns the packets that may
// now be written (nil if none). w.mu is held.
func (w *sendWindow) acked(id uint16) []byte {
	if _, ok := w.open[id]; !ok {
		return nil // not one of ours, or acknowledged twice
	}
	delete(w.open, id)
	var out []byte
	for len(w.held) > 0 && len(w.open) < w.max {
		rem, hlen, _ := packetHeader(w.held)
		pkt := w.held[:hlen+rem]
		id, _ := qosPublishID(pkt, hlen)
		w.open[id] = struct{}{}
		out = append(out, pkt...)
		w.held = w.held[len(pkt):]
	}
	if len(w.held) == 0 {
		w.held = nil // give the buffer back
	}
	return out
}

// heldBytes is how much waits for the window. w.mu is held.
func (w *sendWindow) heldBytes() int { return len(w.held) }

// qosPublishID returns the packet identifier of a QoS 1 or 2 PUBLISH
// packet pkt (fixed header of hlen bytes included).
func qosPublishID(pkt []byte, hlen int) (uint16, bool) {
	if pkt[0]>>4 != 3 || pkt[0]&0x06 == 0 {
		return 0, false
	}
	vh := pkt[hlen:]
	if len(vh) < 2 {
		return 0, false
	}
	n := 2 + (int(vh[0])<<8 | int(vh[1]))
	if n+2 > len(vh) {
		return 0, false
	}
	return uint16(vh[n])<<8 | uint16(vh[n+1]), true
}

// endsDelivery reports whether an acknowledgement from the client ends a
// QoS>0 delivery to it: PUBACK, PUBCOMP, or a PUBREC with an error code
// (MQTT 5, 4.9).
func endsDelivery(pk *packets.Packet) bool {
	switch pk.FixedHeader.Type {
	case packets.Puback, packets.Pubcomp:
		return true
	case packets.Pubrec:
		return pk.ReasonCode >= packets.ErrUnspecifiedError.Code
	}
	return false
}
