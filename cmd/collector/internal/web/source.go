package web

import (
	"time"

	"github.com/csop/tbox/signer"
)

// Source is what the status page reads from the ledger: a small read-only
// view, so that any ledger (bbolt, PostgreSQL) serves it through an
// adapter. Every method bounds what it returns.
type Source interface {
	// Devices returns the devices with anything stored, by address, from
	// offset on, at most limit of them, and how many there are in all.
	Devices(offset, limit int) (devs []Device, total int, err error)
	// Draws returns the last n recorded draws, newest first.
	Draws(n int) ([]Draw, error)
	// MetersPerBatch returns the eligible meters attested per batch (the
	// draw's tickets) for the n batches ending with last, oldest first,
	// one entry per batch (zero when nothing was attested).
	MetersPerBatch(last uint64, n int) ([]BatchMeters, error)
	// Totals returns the ledger's counts.
	Totals() (Totals, error)
}

// Device is one device's chain as the ledger holds it.
type Device struct {
	Address signer.Address
	// Head is the highest stored seq: every seq up to it is stored or in a
	// recorded chain break, and the collector's retained receipt names it.
	Head           uint64
	Attestations   uint64 // stored
	Ineligible     uint64 // stored with an ineligible verdict (no tickets)
	Meters         uint64 // of all stored attestations
	EligibleMeters uint64 // of the eligible ones
	Held           int    // seqs beyond a gap, waiting
	Breaks         uint64 // recorded chain breaks
	Forks          int    // recorded fork evidence
}

// Eligible is the number of stored attestations with an eligible verdict.
func (d Device) Eligible() uint64 { return d.Attestations - d.Ineligible }

// Draw is a recorded draw.
type Draw struct {
	Batch   uint64
	At      time.Time // when it was recorded
	Tickets uint64    // eligible meters in the batch at the draw
	Winners int       // winning tickets drawn
	Devices int       // devices awarded
	Micro   uint64    // the batch's drop, µStone
}

// BatchMeters is the eligible meters attested for one batch.
type BatchMeters struct {
	Batch  uint64
	Meters uint64
	Drawn  bool
}

// Totals are the ledger's counts.
type Totals struct {
	Devices int
	Forks   int
	Breaks  uint64
	Held    int
	Draws   int
	Undrawn int // batches with tickets waiting for their draw
}
