package hooks

import (
	"context"
	"io"
	"log/slog"
	"os"
	"time"

	mqtt "github.com/mochi-mqtt/server/v2"

	"github.com/mqttwaf/mqttwaf/mqttwaf"
)

// HardenedOptions returns mochi server options with the broker section of
// p applied (nil p means the default policy): a maximum packet size, so an
// oversized fixed header is refused before mochi allocates its body; caps on
// clients, topic aliases, session and message expiry, per-client write
// queues and in-flight messages. mochi's own defaults are unlimited or huge
// for all of these. Listeners are added separately with NewListener, which
// adds the CONNECT deadline and the per-IP caps.
//
// Options.Logger is set to MochiLogger(os.Stderr, slog.LevelWarn); replace
// it if you like, but keep packet contents out of your logs.
func HardenedOptions(p *mqttwaf.Policy) *mqtt.Options {
	opts := &mqtt.Options{Capabilities: mqtt.NewDefaultServerCapabilities()}
	applyCapabilities(opts.Capabilities, p)
	opts.Logger = MochiLogger(os.Stderr, slog.LevelWarn)
	return opts
}

// MochiLogger returns a JSON logger for mochi's own log lines that drops the
// packets mochi attaches to them: mochi logs whole packets (payloads and
// will messages included) on errors, and payloads are what the WAF protects.
// It also drops mochi's "publish packet error" lines about the WAF's own
// refusals, which the WAF already reports as events.
func MochiLogger(w io.Writer, level slog.Level) *slog.Logger {
	h := slog.NewJSONHandler(w, &slog.HandlerOptions{
		Level: level,
		ReplaceAttr: func(_ []string, a slog.Attr) slog.Attr {
			switch a.Key {
			case "packet", "pk", "will", "payload":
				return slog.Attr{}
			}
			return a
		},
	})
	return slog.New(quietHandler{h}).With("component", "mochi")
}

// quietHandler drops mochi's log line for a publish the WAF refused.
type quietHandler struct{ slog.Handler }

func (q quietHandler) Handle(ctx context.Context, r slog.Record) error {
	if r.Message == "publish packet error" {
		ours := false
		r.Attrs(func(a slog.Attr) bool {
			ours = a.Key == "hook" && a.Value.String() == "mqttwaf"
			return !ours
		})
		if ours {
			return nil
		}
	}
	return q.Handler.Handle(ctx, r)
}

func (q quietHandler) WithAttrs(as []slog.Attr) slog.Handler {
	return quietHandler{q.Handler.WithAttrs(as)}
}
func (q quietHandler) WithGroup(n string) slog.Handler { return quietHandler{q.Handler.WithGroup(n)} }

// applyCapabilities writes the broker section of p into caps. mochi reads
// capabilities through a shared pointer, so this also works on an existing
// server, as long as it has not started serving yet.
func applyCapabilities(caps *mqtt.Capabilities, p *mqttwaf.Policy) {
	if p == nil {
		p = &mqttwaf.Policy{}
	}
	if err := p.Validate(); err != nil {
		// An invalid policy never reaches a running WAF (New validates);
		// fall back to the defaults rather than to mochi's open ones.
		p = &mqttwaf.Policy{}
	}
	b := p.WithDefaults().Broker
	caps.MaximumPacketSize = uint32(b.MaxPacketSize)
	caps.MaximumClients = int64(b.MaxConnections)
	caps.TopicAliasMaximum = uint16(b.TopicAliasMaximum)
	caps.MaximumSessionExpiryInterval = uint32(b.MaxSessionExpiry.D() / time.Second)
	caps.MaximumMessageExpiryInterval = int64(b.MaxMessageExpiry.D() / time.Second)
	caps.MaximumClientWritesPending = int32(b.ClientWriteQueue)
	caps.ReceiveMaximum = uint16(b.ReceiveMaximum)
	caps.MaximumInflight = uint16(b.MaxInflight)
	if st := stackFor(caps, false); st != nil {
		st.mu.Lock()
		if st.identity != nil {
			ownInflight(caps)
		}
		st.mu.Unlock()
	}
	// mochi copies a PUBLISH's properties (user properties included, and
	// those the WAF added) into its PUBACK or PUBREC, and then also writes
	// the success reason code as the QoS (0x01), which is not a PUBACK code:
	// the publisher would get its own properties back, and strict clients
	// reject the packet. Acknowledgements carry no inherited properties.
	caps.Compatibilities.NoInheritedPropertiesOnAck = true
}
