//go:build race

package mqttwaf

const raceEnabled = true
