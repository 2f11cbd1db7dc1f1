//go:build race

package ratelimit

// raceEnabled lets the million-key memory tests step down to 100,000 keys
// under the race detector, which is about ten times slower.
//
// A test that skips or scales down when it is set must carry "NoRace" in its
// name: CI runs the suite with -race and then `go test -run NoRace ./...`
// without it, so that test also runs in full.
const raceEnabled = true
