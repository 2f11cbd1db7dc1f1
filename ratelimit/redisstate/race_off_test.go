//go:build !race

package redisstate

const raceEnabled = false
