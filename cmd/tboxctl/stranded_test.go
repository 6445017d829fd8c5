package main

import (
	"bytes"
	"fmt"

	"strings"
	"testing"
	"time"

	"github.com/csop/tbox/hil/vehicle"
	"github.com/csop/tbox/signer"
)

// TestReplayGlitchFrame is issue 14 (a) at the agent: one frame
// 541#FFFFFFFFFFFFFFFF (what anything on the OBD port can send: the
// odometer's raw 0xFFFFFFFF, 42,949,672.95 km) injected in the middle of a
// recorded drive. The replay's meters equal the truth's in every batch; the
// glitch's span has JUMP; no span has ROLLBACK, and none after it is 0 m.
func TestReplayGlitchFrame(t *testing.T) {
	p := loadEV(t)
	key, _ := newKey(t)
	s := vehicle.Scenario{Seed: 14, Start: start, Duration: time.Hour, ModeChanges: true, StopAndGo: true}
	log, tr := driveLog(t, p, s)
	lines := strings.SplitAfter(string(log), "\n")
	mid := len(lines) / 2
	for !strings.Contains(lines[mid], " 541#") {
		mid++
	}
	stamp, _, _ := strings.Cut(lines[mid], " ")
	glitch := stamp + " can0 541#FFFFFFFFFFFFFFFF\n"
	var sec float64
	if _, err := fmt.Sscanf(stamp, "(%f)", &sec); err != nil {
		t.Fatalf("log line %q: %v", lines[mid], err)
	}
	glitchAt := time.Unix(int64(sec), 0)
	in := strings.Join(lines[:mid+1], "") + glitch + strings.Join(lines[mid+1:], "")

	var out, errb bytes.Buffer
	if code := run(t.Context(), []string{"replay", "--profile", evProfile, "--key", key}, strings.NewReader(in), &out, &errb); code != 0 {
		t.Fatalf("replay: exit %d: %s", code, errb.String())
	}
	atts := parseLines(t, out.String())
	checkTruth(t, atts, out.String(), tr)
	jumps := 0
	for _, a := range atts {
		if a.Flags&signer.FlagRollback != 0 {
			t.Errorf("seq %d (batch %d, %d m): ROLLBACK", a.Seq, a.Batch, a.Meters)
		}
		if a.Flags&signer.FlagJump != 0 {
			jumps++
			if int64(a.Batch) != vehicle.BatchOf(glitchAt) {
				t.Errorf("seq %d: JUMP in batch %d, the glitch is in %d", a.Seq, a.Batch, vehicle.BatchOf(glitchAt))
			}
		}
		if a.Meters > 1_000_000 {
			t.Errorf("seq %d: %d m", a.Seq, a.Meters)
		}
	}
	if jumps != 1 {
		t.Errorf("%d attestations with JUMP, want the glitch's one", jumps)
	}
	last := atts[len(atts)-1]
	if int64(last.Batch) <= vehicle.BatchOf(glitchAt) || last.Meters == 0 {
		t.Errorf("last attestation %+v: want distance after the glitch's batch", last)
	}
}

// TestReplayClockUnset is issue 14 (b) at the agent: a T-Box that never had
// a trusted clock (its log reads January 1970) drives 2 hours. It attests
// per batch of its best estimate of the time (the earliest time it
// accepts, plus the time elapsed), each one batch long and CLOCK, instead
// of one span of the whole drive; together they hold the truth's meters.
func TestReplayClockUnset(t *testing.T) {
	p := loadEV(t)
	key, _ := newKey(t)
	s := vehicle.Scenario{Seed: 15, Start: time.Unix(3600, 0), Duration: 2 * time.Hour}
	log, tr := driveLog(t, p, s)
	var out, errb bytes.Buffer
	if code := run(t.Context(), []string{"replay", "--profile", evProfile, "--key", key}, bytes.NewReader(log), &out, &errb); code != 0 {
		t.Fatalf("replay: exit %d: %s", code, errb.String())
	}
	atts := parseLines(t, out.String())
	if got := sumMeters(atts); got != tr.Meters || tr.Meters < 50_000 {
		t.Fatalf("sum of meters %d, truth %d (want a 2-hour drive of more than 50 km)", got, tr.Meters)
	}
	var most int64
	for _, b := range tr.Batches {
		most = max(most, b.Meters)
	}
	if n := len(atts); n < len(tr.Batches)-1 || n > len(tr.Batches)+1 {
		t.Errorf("%d attestations for a drive over %d batches: want one per batch", n, len(tr.Batches))
	}
	for i, a := range atts {
		if a.Batches != 1 || a.Flags != signer.FlagClock || float64(a.Meters) > float64(most)*1.05+100 {
			t.Errorf("seq %d: batch %d x%d, %d m, flags %v: want one batch, CLOCK, at most about the truth's largest batch (%d m)",
				a.Seq, a.Batch, a.Batches, a.Meters, signer.FlagNames(a.Flags), most)
		}
		if i > 0 && a.Batch != atts[i-1].Batch+1 {
			t.Errorf("seq %d: batch %d after %d: want consecutive estimated batches", a.Seq, a.Batch, atts[i-1].Batch)
		}
	}
	t.Logf("%d attestations of at most %d m (truth: %d m in %d batches, the largest %d m); first in batch %d",
		len(atts), maxMeters(atts), tr.Meters, len(tr.Batches), most, atts[0].Batch)
	if v := tboxctl(t, strings.NewReader(out.String()), "verify"); v.code != 0 {
		t.Errorf("verify: exit %d\n%s%s", v.code, v.stdout, v.stderr)
	}
}

// TestReplayClockUnsetResumes: a replay with --state of a log whose clock
// is unset, stopped halfway and restarted on the whole log, skips what it
// has accounted for and no more: the two runs hold the truth's meters.
func TestReplayClockUnsetResumes(t *testing.T) {
	p := loadEV(t)
	key, _ := newKey(t)
	s := vehicle.Scenario{Seed: 16, Start: time.Unix(3600, 0), Duration: time.Hour}
	log, tr := driveLog(t, p, s)
	state := t.TempDir()
	half := bytes.LastIndexByte(log[:len(log)/2], '\n') + 1
	var out bytes.Buffer
	for _, in := range [][]byte{log[:half], log} {
		var errb bytes.Buffer
		if code := run(t.Context(), []string{"replay", "--profile", evProfile, "--key", key, "--state", state}, bytes.NewReader(in), &out, &errb); code != 0 {
			t.Fatalf("replay: exit %d: %s", code, errb.String())
		}
	}
	atts := parseLines(t, out.String())
	if got := sumMeters(atts); got != tr.Meters {
		t.Errorf("two runs attest %d m, truth %d", got, tr.Meters)
	}
	if v := tboxctl(t, strings.NewReader(out.String()), "verify"); v.code != 0 {
		t.Errorf("verify: exit %d\n%s%s", v.code, v.stdout, v.stderr)
	}
}

func maxMeters(atts []*signer.Attestation) uint64 {
	var m uint64
	for _, a := range atts {
		m = max(m, a.Meters)
	}
	return m
}
