// Package metrics exports a WAF's decisions and state, and the broker's
// own figures, as Prometheus metrics: a prometheus.Collector that a
// library user registers in their own registry.
//
//	reg := prometheus.NewRegistry()
//	reg.MustRegister(metrics.New(waf, metrics.Options{Broker: hooks.BrokerInfo(server)}))
//	http.Handle("/metrics", promhttp.HandlerFor(reg, promhttp.HandlerOpts{}))
//
// Every series is read when scraped, from what the WAF keeps anyway
// (WAF.Counters, the ban and lockout lists, PolicyInfo): nothing is added
// to the packet path. Labels never carry what clients choose (client IDs,
// user names, topics): rule ids and reasons come from the compiled policy
// and the rules' code, ban kinds from a fixed set.
package metrics

import (
	"strconv"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/mqttwaf/mqttwaf/mqttwaf"
	"github.com/mqttwaf/mqttwaf/ratelimit"
)

// Options configure a Collector. The zero value exports the WAF's metrics
// only.
type Options struct {
	// Broker returns the broker's own figures when scraped; nil leaves the
	// mqttwaf_broker_* series out. For mochi-mqtt: hooks.BrokerInfo(server).
	Broker func() BrokerInfo `json:"-" yaml:"-"`
	// Now is the clock for the ban and lockout lists (time.Now if nil).
	Now func() time.Time `json:"-" yaml:"-"`
}

// BrokerInfo is what a broker says about itself (mqttwaf.BrokerInfo; the
// hooks package fills it from mochi's server.Info).
type BrokerInfo = mqttwaf.BrokerInfo

// DeliveryDroppedRule is the rule id under which adapters count the
// deliveries the broker dropped.
const DeliveryDroppedRule = mqttwaf.RuleDeliveryDropped

// Collector is a prometheus.Collector over one WAF (and its broker).
type Collector struct {
	waf  *mqttwaf.WAF
	opts Options
}

// New returns a Collector for w.
func New(w *mqttwaf.WAF, o Options) *Collector {
	if o.Now == nil {
		o.Now = time.Now
	}
	return &Collector{waf: w, opts: o}
}

func desc(name, help string, labels ...string) *prometheus.Desc {
	return prometheus.NewDesc("mqttwaf_"+name, help, labels, nil)
}

var (
	decisions = desc("decisions_total",
		"Decisions other than a plain allow, by rule, action, reason and whether they were enforced (false in detection_only).",
		"rule", "action", "reason", "enforced")
	dropped = desc("deliveries_dropped_total",
		"Deliveries to subscribers the broker dropped, by reason (also counted in mqttwaf_decisions_total, rule broker.delivery_dropped).",
		"reason")
	connsOpen = desc("connections_open", "Sockets open (accepted by the WAF and not yet closed).")
	addrsOpen = desc("connection_addresses_open", "Distinct remote addresses (see the addresses section) with an open socket.")
	bans      = desc("bans_active", "Bans in force, by what they name: client, user or ip.", "kind")
	lockouts  = desc("lockouts_active", "Password lockouts in force (identity.lockout), by what they name: user or ip.", "kind")
	reloads   = desc("policy_reloads_total", "Policy reloads, by result: ok or failed (the running policy stays in force).", "result")
	polInfo   = desc("policy_info", "The running policy: always 1, its SHA-256 (canonical form) and mode as labels.", "sha256", "mode")
	polLoaded = desc("policy_loaded_timestamp_seconds", "When the running policy was loaded, in Unix seconds.")
	stateUp   = desc("state_backend_up", "1 while the state backend (state.backend: memory or redis) is reachable, 0 while Redis is not: each node then enforces on its own state alone.", "backend")
	stateSync = desc("state_last_sync_timestamp_seconds", "With state.backend redis: when this node's last completed exchange with Redis (counts sent, totals read back) started, in Unix seconds; alert when it falls seconds behind.")
)

// brokerMetric is one mqttwaf_broker_* series.
type brokerMetric struct {
	d   *prometheus.Desc
	typ prometheus.ValueType
	get func(*BrokerInfo) float64
}

func broker(name, help string, typ prometheus.ValueType, get func(*BrokerInfo) int64) brokerMetric {
	return brokerMetric{desc("broker_"+name, help), typ, func(b *BrokerInfo) float64 { return float64(get(b)) }}
}

var brokerMetrics = []brokerMetric{
	{desc("broker_start_time_seconds", "When the broker started, in Unix seconds."), prometheus.GaugeValue,
		func(b *BrokerInfo) float64 { return float64(b.Started.UnixNano()) / 1e9 }},
	broker("clients_connected", "Clients connected.", prometheus.GaugeValue, func(b *BrokerInfo) int64 { return b.ClientsConnected }),
	broker("clients_disconnected", "Persistent sessions whose client is not connected.", prometheus.GaugeValue, func(b *BrokerInfo) int64 { return b.ClientsDisconnected }),
	broker("clients_maximum", "Most clients connected at once since the broker started.", prometheus.GaugeValue, func(b *BrokerInfo) int64 { return b.ClientsMaximum }),
	broker("messages_received_total", "PUBLISH packets received.", prometheus.CounterValue, func(b *BrokerInfo) int64 { return b.MessagesReceived }),
	broker("messages_sent_total", "PUBLISH packets sent.", prometheus.CounterValue, func(b *BrokerInfo) int64 { return b.MessagesSent }),
	broker("messages_dropped_total", "Deliveries the broker dropped because a subscriber's write queue was full.", prometheus.CounterValue, func(b *BrokerInfo) int64 { return b.MessagesDropped }),
	broker("inflight_dropped_total", "Deliveries the broker dropped because a subscriber's in-flight store was full.", prometheus.CounterValue, func(b *BrokerInfo) int64 { return b.InflightDropped }),
	broker("messages_retained", "Retained messages held.", prometheus.GaugeValue, func(b *BrokerInfo) int64 { return b.Retained }),
	broker("messages_inflight", "QoS 1 and 2 messages in flight.", prometheus.GaugeValue, func(b *BrokerInfo) int64 { return b.Inflight }),
	broker("subscriptions", "Subscriptions.", prometheus.GaugeValue, func(b *BrokerInfo) int64 { return b.Subscriptions }),
	broker("received_bytes_total", "Bytes received from clients.", prometheus.CounterValue, func(b *BrokerInfo) int64 { return b.BytesReceived }),
	broker("sent_bytes_total", "Bytes sent to clients.", prometheus.CounterValue, func(b *BrokerInfo) int64 { return b.BytesSent }),
	broker("packets_received_total", "MQTT packets received.", prometheus.CounterValue, func(b *BrokerInfo) int64 { return b.PacketsReceived }),
	broker("packets_sent_total", "MQTT packets sent.", prometheus.CounterValue, func(b *BrokerInfo) int64 { return b.PacketsSent }),
}

// Describe implements prometheus.Collector.
func (c *Collector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{decisions, dropped, connsOpen, addrsOpen, bans, lockouts, reloads, polInfo, polLoaded, stateUp, stateSync} {
		ch <- d
	}
	if c.opts.Broker != nil {
		for _, m := range brokerMetrics {
			ch <- m.d
		}
	}
}

// Collect implements prometheus.Collector.
func (c *Collector) Collect(ch chan<- prometheus.Metric) {
	w := c.waf
	drops := map[string]uint64{}
	for _, n := range w.Counters() {
		ch <- prometheus.MustNewConstMetric(decisions, prometheus.CounterValue, float64(n.N),
			n.Rule, n.Action.String(), n.Reason, strconv.FormatBool(n.Enforced))
		if n.Rule == DeliveryDroppedRule {
			drops[n.Reason] += n.N
		}
	}
	for reason, n := range drops {
		ch <- prometheus.MustNewConstMetric(dropped, prometheus.CounterValue, float64(n), reason)
	}
	sockets, addrs := w.OpenConnections()
	ch <- prometheus.MustNewConstMetric(connsOpen, prometheus.GaugeValue, float64(sockets))
	ch <- prometheus.MustNewConstMetric(addrsOpen, prometheus.GaugeValue, float64(addrs))
	now := c.opts.Now()
	c.banKinds(ch, bans, w.Bans(), now, ratelimit.KindClientID, ratelimit.KindUsername, ratelimit.KindIP)
	c.banKinds(ch, lockouts, w.Lockouts(), now, ratelimit.KindUsername, ratelimit.KindIP)
	pi := w.PolicyInfo()
	ch <- prometheus.MustNewConstMetric(reloads, prometheus.CounterValue, float64(pi.ReloadsOK), "ok")
	ch <- prometheus.MustNewConstMetric(reloads, prometheus.CounterValue, float64(pi.ReloadsFailed), "failed")
	ch <- prometheus.MustNewConstMetric(polInfo, prometheus.GaugeValue, 1, pi.SHA256, string(w.Policy().Mode))
	ch <- prometheus.MustNewConstMetric(polLoaded, prometheus.GaugeValue, float64(pi.LoadedAt.UnixNano())/1e9)
	st, up := w.State(), 0.0
	if st.Up {
		up = 1
	}
	ch <- prometheus.MustNewConstMetric(stateUp, prometheus.GaugeValue, up, st.Backend)
	if !st.LastSync.IsZero() {
		ch <- prometheus.MustNewConstMetric(stateSync, prometheus.GaugeValue, float64(st.LastSync.UnixNano())/1e9)
	}
	if c.opts.Broker != nil {
		b := c.opts.Broker()
		for _, m := range brokerMetrics {
			ch <- prometheus.MustNewConstMetric(m.d, m.typ, m.get(&b))
		}
	}
}

// banKinds exports how many entries of s are in force, per kind; every
// kind listed gets a series, zero included, so dashboards and alerts see
// 0 rather than no data. A store that cannot be listed (a shared store
// that is down) reports an invalid metric: the scrape shows the error.
func (c *Collector) banKinds(ch chan<- prometheus.Metric, d *prometheus.Desc, s ratelimit.BanStore, now time.Time, kinds ...ratelimit.Kind) {
	list, err := s.List(now)
	if err != nil {
		ch <- prometheus.NewInvalidMetric(d, err)
		return
	}
	for _, k := range kinds {
		n := 0
		for _, b := range list {
			if b.Target.Kind == k && b.Active(now) {
				n++
			}
		}
		ch <- prometheus.MustNewConstMetric(d, prometheus.GaugeValue, float64(n), k.String())
	}
}
