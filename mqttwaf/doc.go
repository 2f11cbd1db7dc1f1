// Package mqttwaf is the core of an MQTT firewall: the model of what a rule
// sees (a socket, a CONNECT, a subscription, a message, a delivery), the
// verdicts rules return, the declarative Policy, and the engine that runs
// the rules, applies the Mode and records one Event per decision.
//
// It does not import any broker. The hooks package plugs it into the
// mochi-mqtt broker; examples/wafcheck runs it on a message from the command
// line; tests run it without sockets.
//
// # Use
//
// Read a policy (YAML or JSON; an empty one is the secure default), build a
// WAF, and hand it to an adapter:
//
//	policy, err := mqttwaf.ReadPolicyFile("policy.yaml")
//	waf, err := mqttwaf.New(policy, mqttwaf.Options{})
//	err = hooks.Install(server, waf)
//
// An adapter calls the WAF's stage methods: Open and Close for sockets,
// Connect, Subscribe, Publish, Deliver and View for packets, and Record for
// what the broker did on its own.
//
// # Rules, verdicts, mode
//
// Each protection is a Rule implementing one or more stage interfaces
// (AcceptRule, ConnectRule, SubscribeRule, PublishRule, DeliverRule). Rules
// return a Verdict (allow, rewrite, drop, reject with a reason code,
// disconnect, ban) and never look at the Mode: in Enforce the engine stops at
// the first blocking verdict; in DetectionOnly it runs every rule, records
// what would have happened, and lets the traffic through unchanged. The
// built-in rules run in a fixed, documented order (docs/design.md); custom
// rules (Options.Rules) run after them.
//
// # State
//
// The compiled policy is immutable and swapped atomically by Reload. What
// outlives a policy (open connections, bans, rate-limit state, counters)
// lives in the WAF, and every table keyed by something a client controls
// is bounded.
package mqttwaf
