//go:build race

package ratelimit

// raceEnabled lets the million-key memory tests step down to 100,000 keys
// under the race detector, which is about ten times slower.
const raceEnabled = true
