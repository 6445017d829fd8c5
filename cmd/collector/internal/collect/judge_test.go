package collect

import (
	"strings"
	"testing"

	"github.com/csop/tbox/cmd/collector/internal/ledger"
	"github.com/csop/tbox/signer"
)

// TestJudge: the eligibility rules at their boundaries.
func TestJudge(t *testing.T) {
	const now = 3_000_000
	tail := ledger.Head{Seq: 9, TailSeq: 7, Batch: now - 10, Batches: 2, Credited: 20_000} // ends in now-9
	att := func(batch uint64, batches uint32, meters uint64, flags uint32) *signer.Attestation {
		return &signer.Attestation{Seq: 10, Batch: batch, Batches: batches, Meters: meters, Flags: flags}
	}
	tests := []struct {
		name   string
		h      ledger.Head
		a      *signer.Attestation
		want   string
		reason string
	}{
		{"first span at the limit", ledger.Head{}, att(now, 1, 50_000, 0), Eligible, ""},
		{"first span 1 m over", ledger.Head{}, att(now, 1, 50_001, 0), IneligibleImpossible, "impossible meters: 50001 m in 1 batch; at most 50000 m per batch at 300 km/h"},
		{"issue 14 (a) glitch", tail, att(now-9, 1, 42_803_053_630, signer.FlagJump), IneligibleImpossible, "42803053630 m in 1 batch"},
		{"issue 14 (b) clock unset", ledger.Head{}, att(now, 1, 68_440, signer.FlagClock), IneligibleImpossible, "68440 m in 1 batch; at most 50000 m per batch at 300 km/h; clock untrusted"},
		{"clock unset, plausible", ledger.Head{}, att(now-100, 1, 20_000, signer.FlagClock), Eligible, ""},
		{"clock unset, as catch-up over the batches it can bound", ledger.Head{}, att(now-3, 2, 68_440, signer.FlagClock|signer.FlagCatchup), Eligible, ""},
		{"sharing the tail's last batch, within", tail, att(now-9, 1, 30_000, 0), Eligible, ""},
		{"sharing the tail's last batch, over", tail, att(now-9, 1, 30_001, 0), IneligibleImpossible, "which already has 20000 m from earlier spans"},
		{"starts before the tail ended", tail, att(now-10, 1, 100, 0), IneligibleOrder, "batch order: span starts in batch 2999990, before batch 2999991 where seq 7's span"},
		{"starts in the next batch", tail, att(now+1, 1, 100, 0), Eligible, ""},
		{"catch-up ending in the next batch", tail, att(now, 2, 100, signer.FlagCatchup), Eligible, ""},
		{"catch-up ending two batches ahead", tail, att(now, 3, 100, signer.FlagCatchup), IneligibleFuture, "batch in the future"},
		{"far future, clock untrusted", tail, att(now+1000, 1, 100, signer.FlagClock), IneligibleFuture, "; clock untrusted"},
		{"rollback and jump flags do not change the verdict", tail, att(now-5, 1, 0, signer.FlagRollback|signer.FlagJump|signer.FlagGap|signer.FlagSpeedMismatch), Eligible, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			v := Judge(tt.h, tt.a, now, 300)
			if v.Code != tt.want || v.Eligible != (tt.want == Eligible) || !strings.Contains(v.Reason, tt.reason) {
				t.Errorf("verdict %+v, want %q with %q", v, tt.want, tt.reason)
			}
			if !v.Eligible && !strings.HasPrefix(v.Reason, v.Code+": ") {
				t.Errorf("reason %q does not start with its code %q", v.Reason, v.Code)
			}
		})
	}
}
