//go:build race

package rest_test

// raceEnabled: the race detector multiplies memory use, so peak RSS is not
// measured under it.
const raceEnabled = true
