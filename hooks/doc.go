// Package hooks puts a mqttwaf.WAF into the mochi-mqtt broker
// (github.com/mochi-mqtt/server/v2, v2.7.9).
//
//	server := mqtt.New(hooks.HardenedOptions(policy))     // capabilities mochi leaves open
//	err := hooks.Install(server, waf)                      // the WAF hook; the only auth/ACL provider
//	l, err := hooks.NewListener(waf, listeners.Config{ID: "tcp", Address: ":1883"})
//	err = server.AddListener(l)                            // CONNECT deadline, per-IP caps
//
// mochi fails open in several places: an ordinary error from OnPublish
// publishes the original message, authentication and ACL hooks are OR-ed,
// nothing times out a socket that never sends CONNECT, wills bypass every
// publish check. The WAF hook maps every verdict to the mochi result that
// really stops the packet (see the README's decision table), the Listener
// adds the deadlines and caps, and Install refuses servers where another hook
// could allow what the WAF denies. A panic inside the WAF refuses the packet
// and disconnects the client.
//
// Storage keeps sessions, queued and retained messages, bans and lockouts
// across restarts (OpenStorage before the WAF is built, for its ViewKey;
// Storage.Install after Install).
package hooks
