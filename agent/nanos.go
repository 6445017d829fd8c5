package agent

import "time"

// fromNanos and utcNanos are time.Unix(0, n) and its UTC form, not inlined:
// each inlined copy is a run of 64-bit arithmetic on 32-bit arm.
//
//go:noinline
func fromNanos(n int64) time.Time { return time.Unix(0, n) }

//go:noinline
func utcNanos(n int64) time.Time { return time.Unix(0, n).UTC() }

// nowNanos is time.Now().UnixNano(), not inlined for the same reason.
//
//go:noinline
func nowNanos() int64 { return time.Now().UnixNano() }
