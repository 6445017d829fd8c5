package main

import "time"

// fromNanos is time.Unix(0, n), not inlined: each inlined copy is a run of
// 64-bit arithmetic on 32-bit arm.
//
//go:noinline
func fromNanos(n int64) time.Time { return time.Unix(0, n) }

// nanos is t.UnixNano(), not inlined for the same reason.
//
//go:noinline
func nanos(t time.Time) int64 { return t.UnixNano() }
