package main

import (
	"log/slog"

	"github.com/csop/tbox/store"
)

// lostReport is the "maybe_lost" member of the health report's agent part:
// the seqs a re-seed of the outbox from its sidecar may have lost (the
// outbox database was damaged and moved aside). The collector may never
// receive them; it records the range as a chain break (README §C7).
type lostReport struct {
	From uint64 `json:"from"` // first seq, inclusive
	To   uint64 `json:"to"`   // last seq, inclusive
	At   int64  `json:"at"`   // unix seconds of the re-seed, the T-Box's clock
}

// logLost says at every start which seqs a past re-seed may have lost.
func logLost(log *slog.Logger, l store.LostRange) {
	if l.Empty() {
		return
	}
	log.Error("outbox re-seeded from its sidecar: these seqs may be lost; the collector records them as a chain break",
		"seqs_maybe_lost", l.String(), "from", l.From, "to", l.To, "reseeded_at", l.At.UTC())
}
