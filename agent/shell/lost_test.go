package shell

import (
	"strings"
	"testing"
	"time"

	"github.com/csop/tbox/store"
)

// TestStatusShowsLostSeqs: after the outbox was re-seeded from its sidecar,
// status names the seqs that may be lost (issue 14 c); otherwise it says
// nothing about them.
func TestStatusShowsLostSeqs(t *testing.T) {
	now := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	st := Status{Outbox: OutboxStatus{Head: 90, AckedThrough: 90}}
	if out := formatStatus(st, now, "v", "locked"); strings.Contains(out, "lost") {
		t.Errorf("status without a re-seed mentions lost seqs:\n%s", out)
	}
	st.Outbox.Lost = store.LostRange{From: 2, To: 89, At: now.Add(-time.Hour)}
	out := formatStatus(st, now, "v", "locked")
	want := "lost      seqs 2..89 may be lost: the outbox was re-seeded from its sidecar 1h0m0s ago; the collector records a chain break"
	if !strings.Contains(out, want) {
		t.Errorf("status:\n%s\nwant the line %q", out, want)
	}
}

// TestStatusShowsJumpCandidate: a pending JUMP candidate is shown with its
// distance above the high-water mark.
func TestStatusShowsJumpCandidate(t *testing.T) {
	now := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	st := Status{Batch: BatchStatus{Known: true, Batch: 2945000, Batches: 1, Meters: 120, Flags: 0x02, Candidate: 42949560180}}
	out := formatStatus(st, now, "v", "locked")
	if want := "open span from batch 2945000 over 1 batches: 120 m [JUMP]; JUMP candidate pending, 42949560180 m above the high-water mark"; !strings.Contains(out, want) {
		t.Errorf("status:\n%s\nwant %q", out, want)
	}
	st.Batch.Candidate = 0
	if out := formatStatus(st, now, "v", "locked"); strings.Contains(out, "candidate") {
		t.Errorf("status without a candidate mentions one:\n%s", out)
	}
}
