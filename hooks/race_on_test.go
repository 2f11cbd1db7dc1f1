//go:build race

package hooks

// raceEnabled lets tests that hash passwords at bcrypt's default cost step
// down under the race detector, which makes bcrypt about 30 times slower.
const raceEnabled = true
