//go:build race

package redisstate

// raceEnabled skips the memory measurement under the race detector (it
// measures Redis, not this code's races); CI runs it in its second, NoRace
// pass without -race.
const raceEnabled = true
