package main

import (
	"os"
	"path/filepath"
	"regexp"
	"testing"
	"time"

	"github.com/csop/tbox/hil/vehicle"
)

var reResumed = regexp.MustCompile(`msg="reflashed device: chain resumed from the collector's retained receipt"`)

// TestReflashContinuesChain: a device keeps its key but loses its state
// dir mid-life (a reflash). At its next start it reads the collector's
// retained receipt, verifies it and continues the chain at head + 1: the
// collector stores every seq once, in order, refuses nothing and records
// no fork; the first odometer reading after the reflash is the new base,
// so the collector's meters are the two drives' truth, nothing twice.
func TestReflashContinuesChain(t *testing.T) {
	r := newRig(t)
	d1, d2 := filepath.Join(r.dir, "d1"), filepath.Join(r.dir, "d2")
	for _, d := range []string{d1, d2} {
		if err := os.MkdirAll(d, 0o700); err != nil {
			t.Fatal(err)
		}
	}
	log1, truth1 := writeDrive(t, d1, vehicle.Scenario{Seed: 21, Start: pastStart(3 * time.Hour), Duration: time.Hour, Noise: 3, SpeedHz: 10})
	log2, truth2 := writeDrive(t, d2, vehicle.Scenario{Seed: 22, Start: pastStart(time.Hour), Duration: 40 * time.Minute, Noise: 3, SpeedHz: 10})
	r.col.start()

	a := r.startAgent(r.writeConfig(agentConf{Replay: log1}))
	if code := a.wait(60 * time.Second); code != 0 {
		t.Fatalf("first life: tboxd exit status %d", code)
	}
	first := outboxStats(t, r.stateDir())
	if first.Head == 0 || first.AckedThrough != first.Head {
		t.Fatalf("first life: head %d, acked through %d; want every attestation receipted", first.Head, first.AckedThrough)
	}

	if err := os.RemoveAll(r.stateDir()); err != nil { // the reflash
		t.Fatal(err)
	}
	a = r.startAgent(r.writeConfig(agentConf{Replay: log2}))
	if code := a.wait(60 * time.Second); code != 0 {
		t.Fatalf("after the reflash: tboxd exit status %d", code)
	}
	if _, ok := a.waitLine(reResumed, time.Time{}, time.Second); !ok {
		t.Error("tboxd did not say it resumed from the retained receipt")
	}
	second := outboxStats(t, r.stateDir())
	if second.Head <= first.Head || second.AckedThrough != second.Head || second.Depth != 0 {
		t.Fatalf("after the reflash: head %d (first life %d), acked through %d, depth %d; want the chain continued and receipted",
			second.Head, first.Head, second.AckedThrough, second.Depth)
	}
	for _, e := range r.col.events() {
		if e.kind == "refused" {
			t.Errorf("collector refused seq %d: %s", e.seq, e.reason)
		}
	}
	storedChain(t, r.col.events(), second.Head)
	s := r.col.stats()
	if s.Forks != 0 {
		t.Errorf("collector recorded %d forks", s.Forks)
	}
	if len(s.Devices) != 1 || s.Devices[0].Attestations != second.Head {
		t.Fatalf("collector devices %+v, want one with %d attestations", s.Devices, second.Head)
	}
	if got, want := s.Devices[0].Meters, uint64(truth1.Meters+truth2.Meters); got != want {
		t.Errorf("collector meters %d, the two drives' truth %d (%d + %d)", got, want, truth1.Meters, truth2.Meters)
	}
	t.Logf("first life seqs 1..%d, after the reflash %d..%d, %d m", first.Head, first.Head+1, second.Head, s.Devices[0].Meters)
}
