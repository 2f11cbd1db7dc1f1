// Package ratelimit is the bounded-memory engine behind mqttwaf's traffic
// protections: keyed token buckets, sliding-window counters, budgets on new
// identities and topics, distinct-topic estimates and a ban list. It takes
// keys and sizes in and gives decisions out; it knows nothing of MQTT packets,
// policy files or logging, which live in mqttwaf/ and hooks/.
//
// Every table here is keyed by strings a client chooses (client IDs,
// usernames, topics), so every table is bounded: a key cap with
// least-recently-used eviction, keys longer than 128 bytes stored as a
// digest, Bloom filters and sketches of fixed size. Memory stays the same
// whatever an attacker sends; see the package tests for the measured caps.
//
// Eviction is not a reset button. A key evicted while it still carries state
// (a drained bucket, a non-zero count) leaves a conservative trace in a small
// count-min style memory, and whoever comes back under that key starts from
// it. Well-behaved keys, whose buckets are full, lose nothing by eviction.
//
// The pieces:
//
//   - Limiter: token buckets per key, for messages per second or, with
//     n = message size, bytes per second. Each bucket is golang.org/x/time/rate's
//     arithmetic kept under the store's lock (one lock per decision, not two);
//     a differential fuzz target holds it to rate.Limiter's decisions.
//   - Counter: events per sliding window per key; flapping detection is a
//     Counter plus a BanList.
//   - Novelty: how many keys never seen recently appeared per group per
//     window, and budgets on them ("20 new client IDs per IP per minute").
//   - Distinct: HyperLogLog estimate of distinct items per group per window
//     ("10,000 distinct topics per tenant per hour"), with a quota breaker.
//   - BanList: bans by client ID, username, IP or network, with growing
//     durations for repeat offenders, behind the BanStore interface.
//   - Store: the generic bounded, sharded LRU map the others are built on.
//
// Time is always an argument (AllowN(now, ...)), as in x/time/rate: callers
// pass time.Now(), tests pass whatever they like and never sleep. Windows are
// aligned to the Unix epoch.
//
// All types are safe for concurrent use. Options structs have yaml and json
// tags; their zero values are safe defaults, and constructors validate them
// up front, returning an *OptionError that names the field and the fix.
package ratelimit
