//go:build race

package mqttwaf

// raceEnabled is true under the race detector. A test that skips or scales
// down when it is set must carry "NoRace" in its name: CI runs the suite
// with -race and then `go test -run NoRace ./...` without it, so that test
// also runs in full, at real speed and with real allocation counts.
const raceEnabled = true
