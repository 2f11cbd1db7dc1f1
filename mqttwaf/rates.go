package mqttwaf

import (
	"fmt"
	"time"

	"github.com/mqttwaf/mqttwaf/ratelimit"
)

// Rate is an amount per period written as people say it: "100/s",
// "512KiB/s", "20/min", "15/10m". The zero Rate means the default.
type Rate = ratelimit.Rate

// RatesPolicy limits how fast and how much clients may do, and how many new
// identities and topics may appear: the flood and "millions of sensors that
// each publish once" protections. Every table is bounded (MaxKeys).
type RatesPolicy struct {
	Publish   PublishRates   `yaml:"publish" json:"publish"`
	Subscribe SubscribeRates `yaml:"subscribe" json:"subscribe"`
	Connect   ConnectRates   `yaml:"connect" json:"connect"`
	// Flapping bans client IDs, user names and IPs that connect too often.
	Flapping FlappingPolicy `yaml:"flapping" json:"flapping"`
	// NewClientIDs budgets client IDs not seen in the last window or two.
	NewClientIDs NoveltyBudget `yaml:"new_client_ids" json:"new_client_ids"`
	// NewTopics budgets topics an identity has not published to recently.
	NewTopics TopicBudget `yaml:"new_topics" json:"new_topics"`
	// Retained budgets the retained store.
	Retained RetainedBudget `yaml:"retained" json:"retained"`
	// Escalation turns repeated refusals into a DISCONNECT, and repeated
	// disconnects into a ban.
	Escalation EscalationPolicy `yaml:"escalation" json:"escalation"`
	// MaxKeys bounds every per-key table (default 20000: twice the default
	// broker.max_connections, so every connected client, address and
	// identity fits, with room for churn; least recently used keys are
	// evicted, and an evicted key's debt is remembered, so eviction never
	// refills a bucket). With the defaults all rate state stays under 64 MiB
	// whatever clients send (28 MiB measured after 1,000,000 client IDs).
	MaxKeys int `yaml:"max_keys" json:"max_keys"`
	// Off turns every rate protection off (for a broker behind another rate
	// limiter, or to measure their cost). Bans already made still apply.
	Off bool `yaml:"off" json:"off"`
}

// MessageRate is a message rate and a byte rate, with bursts.
type MessageRate struct {
	Messages Rate     `yaml:"messages" json:"messages"`
	Bytes    Rate     `yaml:"bytes" json:"bytes"`
	Burst    int      `yaml:"burst" json:"burst"`             // messages; default: the rate's count
	BurstB   ByteSize `yaml:"burst_bytes" json:"burst_bytes"` // default: the byte rate's count
}

// PublishRates limit PUBLISH.
type PublishRates struct {
	// PerConnection: default 100/s and 512KiB/s (AWS IoT's limits), keyed by
	// client ID so a reconnect does not refill the bucket.
	PerConnection MessageRate `yaml:"per_connection" json:"per_connection"`
	// PerUsername: across all of an identity's connections (default 1000/s,
	// 5MiB/s). Anonymous clients are limited per IP instead.
	PerUsername MessageRate `yaml:"per_username" json:"per_username"`
	// PerIP: across all connections from one address (default 5000/s,
	// 20MiB/s; fleets behind carrier-grade NAT share one).
	PerIP MessageRate `yaml:"per_ip" json:"per_ip"`
	// Topics are per-device limits on topic filters, e.g. one message per
	// second per device on telemetry. Every entry whose topics cover the
	// message's topic applies.
	Topics []TopicRate `yaml:"topics" json:"topics"`
}

// TopicRate limits each client on some topics.
type TopicRate struct {
	Topics   []string `yaml:"topics" json:"topics"`
	Messages Rate     `yaml:"messages" json:"messages"`
	Burst    int      `yaml:"burst" json:"burst"`
}

// SubscribeRates limit SUBSCRIBE.
type SubscribeRates struct {
	PerConnection    Rate `yaml:"per_connection" json:"per_connection"`       // filters per second, default 10/s
	MaxSubscriptions int  `yaml:"max_subscriptions" json:"max_subscriptions"` // per connection, default 50
	MaxFilters       int  `yaml:"max_filters" json:"max_filters"`             // per SUBSCRIBE packet, default 8
}

// ConnectRates limit CONNECTs (CONNACK 0x9F), checked in this order: per
// address, per network, per listener. A CONNECT refused for its address or
// network spends nothing of the listener's budget, so one address (or one
// network) cannot use up the capacity of everyone else.
type ConnectRates struct {
	PerIP Rate `yaml:"per_ip" json:"per_ip"` // default 20/s, per address (see addresses)
	// PerNetwork is per /NetworkPrefixV4 or /NetworkPrefixV6 (default
	// 200/s per /24 and per /48): a host that rotates through its
	// addresses is one network.
	PerNetwork      Rate `yaml:"per_network" json:"per_network"`
	NetworkPrefixV4 int  `yaml:"network_prefix_v4" json:"network_prefix_v4"` // default 24
	NetworkPrefixV6 int  `yaml:"network_prefix_v6" json:"network_prefix_v6"` // default 48
	// PerListener (default 5000/s) keeps CONNECT work from crowding out
	// everything else on the listener. It is not what stops guessing (the
	// lockouts, the slow-hash slots and the secrets' entropy do), so it
	// sits above what a broker admits in a reconnect storm: below that, it
	// sets the pace of a fleet's restart and every refusal is a CONNECT
	// the device sends again (1000/s let 10,000 devices back at 780/s
	// with 24,000 refusals on 2 cores; BENCHMARKS.md).
	PerListener Rate `yaml:"per_listener" json:"per_listener"`
	// BanAfter CONNECTs refused for the address's or network's rate within
	// a minute ban the address (rates.flapping.ban, doubling per repeat;
	// default 100): a flood ends at the ban check, the cheapest one.
	BanAfter int `yaml:"ban_after" json:"ban_after"`
}

// FlappingPolicy bans what connects too often (EMQX's flapping detection,
// keyed by client ID, user name and IP alike).
type FlappingPolicy struct {
	Connects    Rate     `yaml:"connects" json:"connects"` // default 15/min
	Ban         Duration `yaml:"ban" json:"ban"`           // first ban, default 5m, doubling per repeat
	MaxBan      Duration `yaml:"max_ban" json:"max_ban"`   // default 1h
	PerIP       Rate     `yaml:"per_ip" json:"per_ip"`     // connects per IP, default 300/min (NAT)
	MaxBanCount int      `yaml:"max_bans" json:"max_bans"` // default 20000
	Off         bool     `yaml:"off" json:"off"`           // turn flapping bans off
}

// NoveltyBudget caps how many new client IDs may appear per window. All
// rates share one period (the window).
type NoveltyBudget struct {
	// Global: default 20000/min, twice broker.max_connections' default per
	// window. After a broker restart every device is new, so a fleet as
	// large as the broker must fit in one window: with 5000/min, 10,000
	// devices were refused 56,000 times, and 69 s in, with 8,045 back, the
	// ones still retrying began to be banned for flapping. Size it for your
	// fleet's reconnect storm.
	Global      Rate `yaml:"global" json:"global"`
	PerIP       Rate `yaml:"per_ip" json:"per_ip"`             // default 100/min
	PerUsername Rate `yaml:"per_username" json:"per_username"` // default 20/min
	// PerPrefix budgets client IDs by their first PrefixLength bytes (off
	// unless set): "sensor-0001", "sensor-0002"... share "sensor-0".
	PerPrefix    Rate `yaml:"per_prefix" json:"per_prefix"`
	PrefixLength int  `yaml:"prefix_length" json:"prefix_length"` // default 8
}

// TopicBudget caps new topics per identity per window: the downstream
// database's series count.
type TopicBudget struct {
	PerIdentity Rate `yaml:"per_identity" json:"per_identity"` // default 10000/h
}

// RetainedBudget caps the retained store per identity and in total.
type RetainedBudget struct {
	PerIdentity RetainedCap `yaml:"per_identity" json:"per_identity"` // default 1000 topics, 16MiB
	Total       RetainedCap `yaml:"total" json:"total"`               // default 100000 topics, 1GiB
}

// RetainedCap is a number of retained topics and their bytes.
type RetainedCap struct {
	Topics int      `yaml:"topics" json:"topics"`
	Bytes  ByteSize `yaml:"bytes" json:"bytes"`
}

// EscalationPolicy escalates repeated violations of rate limits.
type EscalationPolicy struct {
	// DisconnectAfter refusals by rate limits within a minute disconnect the
	// client with 0x96 (default 50). Counted per connection's node.
	DisconnectAfter int `yaml:"disconnect_after" json:"disconnect_after"`
	// BanAfter such disconnects within 10 minutes ban the client ID (and
	// its user name) for the flapping ban duration (default 3). With
	// state.backend redis they are counted across nodes.
	BanAfter int `yaml:"ban_after" json:"ban_after"`
}

func rateDefault(r *Rate, s string) {
	if r.IsZero() {
		*r, _ = ratelimit.ParseRate(s)
	}
}

func (r *RatesPolicy) applyDefaults() {
	p := &r.Publish
	rateDefault(&p.PerConnection.Messages, "100/s")
	rateDefault(&p.PerConnection.Bytes, "512KiB/s")
	rateDefault(&p.PerUsername.Messages, "1000/s")
	rateDefault(&p.PerUsername.Bytes, "5MiB/s")
	rateDefault(&p.PerIP.Messages, "5000/s")
	rateDefault(&p.PerIP.Bytes, "20MiB/s")
	rateDefault(&r.Subscribe.PerConnection, "10/s")
	setDefault(&r.Subscribe.MaxSubscriptions, 50)
	setDefault(&r.Subscribe.MaxFilters, 8)
	rateDefault(&r.Connect.PerIP, "20/s")
	rateDefault(&r.Connect.PerListener, "5000/s")
	rateDefault(&r.Connect.PerNetwork, "200/s")
	setDefault(&r.Connect.NetworkPrefixV4, 24)
	setDefault(&r.Connect.NetworkPrefixV6, 48)
	setDefault(&r.Connect.BanAfter, 100)
	f := &r.Flapping
	rateDefault(&f.Connects, "15/min")
	rateDefault(&f.PerIP, "300/min")
	setDefault(&f.Ban, Duration(5*time.Minute))
	setDefault(&f.MaxBan, Duration(time.Hour))
	setDefault(&f.MaxBanCount, 20000)
	n := &r.NewClientIDs
	rateDefault(&n.Global, "20000/min")
	rateDefault(&n.PerIP, "100/min")
	rateDefault(&n.PerUsername, "20/min")
	setDefault(&n.PrefixLength, 8)
	rateDefault(&r.NewTopics.PerIdentity, "10000/h")
	setDefault(&r.Retained.PerIdentity.Topics, 1000)
	setDefault(&r.Retained.PerIdentity.Bytes, 16<<20)
	setDefault(&r.Retained.Total.Topics, 100000)
	setDefault(&r.Retained.Total.Bytes, 1<<30)
	setDefault(&r.Escalation.DisconnectAfter, 50)
	setDefault(&r.Escalation.BanAfter, 3)
	setDefault(&r.MaxKeys, 20000)
}

func (r *RatesPolicy) validate(fe *fieldErrors) {
	fe.intRange("rates.max_keys", int64(r.MaxKeys), 100, 16_000_000)
	fe.intRange("rates.subscribe.max_subscriptions", int64(r.Subscribe.MaxSubscriptions), 1, 100000)
	fe.intRange("rates.subscribe.max_filters", int64(r.Subscribe.MaxFilters), 1, 1000)
	fe.intRange("rates.connect.network_prefix_v4", int64(r.Connect.NetworkPrefixV4), 8, 32)
	fe.intRange("rates.connect.network_prefix_v6", int64(r.Connect.NetworkPrefixV6), 16, 128)
	fe.intRange("rates.connect.ban_after", int64(r.Connect.BanAfter), 1, 1_000_000)
	for i, t := range r.Publish.Topics {
		at := fmt.Sprintf("rates.publish.topics[%d]", i)
		if len(t.Topics) == 0 || t.Messages.IsZero() {
			fe.add(at, "set topics and messages, e.g. {topics: [fleet/+/telemetry], messages: 1/s}")
		}
		for j, s := range t.Topics {
			if _, err := CompileTemplate(s); err != nil {
				fe.add(fmt.Sprintf("%s.topics[%d]", at, j), "%v", err)
			}
		}
	}
	n := r.NewClientIDs
	for _, x := range []struct {
		name string
		r    Rate
	}{{"per_ip", n.PerIP}, {"per_username", n.PerUsername}, {"per_prefix", n.PerPrefix}} {
		if !x.r.IsZero() && x.r.Per != n.Global.Per {
			fe.add("rates.new_client_ids."+x.name, "all new_client_ids budgets share one period; write it per %s like global (%s)", Duration(n.Global.Per), n.Global)
		}
	}
	fe.intRange("rates.new_client_ids.prefix_length", int64(n.PrefixLength), 1, 128)
	fe.durRange("rates.flapping.ban", r.Flapping.Ban, time.Second, 30*24*time.Hour)
	fe.durRange("rates.flapping.max_ban", r.Flapping.MaxBan, r.Flapping.Ban.D(), 365*24*time.Hour)
	fe.intRange("rates.flapping.max_bans", int64(r.Flapping.MaxBanCount), 10, 10_000_000)
	fe.intRange("rates.escalation.disconnect_after", int64(r.Escalation.DisconnectAfter), 1, 1_000_000)
	fe.intRange("rates.escalation.ban_after", int64(r.Escalation.BanAfter), 1, 1000)
	fe.intRange("rates.retained.per_identity.topics", int64(r.Retained.PerIdentity.Topics), 1, int64(r.Retained.Total.Topics))
	fe.intRange("rates.retained.total.topics", int64(r.Retained.Total.Topics), 1, 100_000_000)
}
