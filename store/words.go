package store

import (
	"encoding/binary"
	"time"
)

// The 64-bit reads and appends of the record, sidecar and bbolt formats,
// not inlined: on 32-bit arm each inlined copy is a long byte shuffle, and
// the store has dozens of them.

//go:noinline
func be64(b []byte) uint64 { return binary.BigEndian.Uint64(b) }

//go:noinline
func appendBE64(b []byte, v uint64) []byte { return binary.BigEndian.AppendUint64(b, v) }

//go:noinline
func ne64(b []byte) uint64 { return ne.Uint64(b) }

// fromNanos and nanos are time.Unix(0, n) and t.UnixNano(), not inlined
// for the same reason.
//
//go:noinline
func fromNanos(n int64) time.Time { return time.Unix(0, n) }

//go:noinline
func nanos(t time.Time) int64 { return t.UnixNano() }

// unlock is s.mu.Unlock for the deferred unlocks, not inlined: a deferred
// call is copied to each of the function's returns.
//
//go:noinline
func (s *Store) unlock() { s.mu.Unlock() }
