package collect

import (
	"fmt"

	"github.com/csop/tbox/cmd/collector/internal/draw"
	"github.com/csop/tbox/cmd/collector/internal/ledger"
	"github.com/csop/tbox/signer"
)

// Verdict codes: the first eligibility rule an attestation fails, or
// [Eligible]. A verdict's reason starts with its code.
const (
	Eligible             = "eligible"
	IneligibleOrder      = "batch order"
	IneligibleFuture     = "batch in the future"
	IneligibleImpossible = "impossible meters"
)

// Judge returns the verdict on a, the device's next attestation, given
// its head h, at the collector's batch now (package doc, "Eligibility").
// It never refuses: the attestation is stored whatever it says.
func Judge(h ledger.Head, a *signer.Attestation, now, maxSpeedKmh uint64) ledger.Verdict {
	clock := ""
	if a.Flags&signer.FlagClock != 0 {
		clock = "; clock untrusted"
	}
	no := func(code, format string, args ...any) ledger.Verdict {
		return ledger.Verdict{Code: code, Reason: code + ": " + fmt.Sprintf(format, args...) + clock}
	}
	if h.TailSeq > 0 && a.Batch < h.LastBatch() {
		return no(IneligibleOrder, "span starts in batch %d, before batch %d where seq %d's span (batch %d, %d batches) ended",
			a.Batch, h.LastBatch(), h.TailSeq, h.Batch, h.Batches)
	}
	if a.Batch > now+1 || uint64(a.Batches)-1 > now+1-a.Batch {
		return no(IneligibleFuture, "span batch %d + %d batches ends after batch %d (the collector's batch is %d)", a.Batch, a.Batches, now+1, now)
	}
	limit := maxSpeedKmh * 1000 / 6 // meters in 600 s
	first := draw.Share(a.Batch, a.Batches, a.Meters, a.Batch)
	credited := h.CreditedIn(a.Batch)
	if first > limit || credited > limit-first {
		unit := "batch"
		if a.Batches != 1 {
			unit = "batches"
		}
		if credited > 0 {
			return no(IneligibleImpossible, "%d m in %d %s puts %d m in batch %d, which already has %d m from earlier spans; at most %d m per batch at %d km/h",
				a.Meters, a.Batches, unit, first, a.Batch, credited, limit, maxSpeedKmh)
		}
		return no(IneligibleImpossible, "%d m in %d %s; at most %d m per batch at %d km/h", a.Meters, a.Batches, unit, limit, maxSpeedKmh)
	}
	return ledger.Verdict{Eligible: true, Code: Eligible}
}
