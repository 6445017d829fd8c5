package main

import (
	"io"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"testing"
	"time"

	"github.com/csop/tbox/hil/vehicle"
)

var reOlder = regexp.MustCompile(`msg="outbox state older than the collector's retained receipt: chain resumed from the receipt".* local_head=(\d+) .*receipted_seq=(\d+) .*next_seq=(\d+)`)

// TestOlderStateResumesFromReceipt: a device's state dir is restored from
// a backup taken after its first drive, after a second drive whose
// attestations the real collector stored and receipted. At its next start
// the outbox's head is behind the collector's retained receipt: tboxd
// says so (the local head, the receipted seq, the next seq), continues the
// chain at receipt + 1 with prev = its digest instead of re-using seqs the
// collector holds, and the collector stores every seq once, refuses
// nothing, records no fork; the first reading after it is the new base,
// so the collector's meters are the three drives' truth (the third
// drive's start, where the lost state's odometer had gone, is its base:
// the second drive is not credited twice).
func TestOlderStateResumesFromReceipt(t *testing.T) {
	r := newRig(t)
	// One car: each drive starts where the one before ended.
	var logs []string
	var truth int64
	odo := 20_000_000.0
	for i, sc := range []vehicle.Scenario{
		{Seed: 31, Start: pastStart(5 * time.Hour), Duration: 40 * time.Minute, Noise: 3, SpeedHz: 10},
		{Seed: 32, Start: pastStart(3 * time.Hour), Duration: 40 * time.Minute, Noise: 3, SpeedHz: 10},
		{Seed: 33, Start: pastStart(time.Hour), Duration: 30 * time.Minute, Noise: 3, SpeedHz: 10},
	} {
		d := filepath.Join(r.dir, "d"+strconv.Itoa(i))
		if err := os.MkdirAll(d, 0o700); err != nil {
			t.Fatal(err)
		}
		sc.StartOdometer = odo
		l, tr := writeDrive(t, d, sc)
		logs = append(logs, l)
		truth += tr.Meters
		if i == 1 {
			// The second life goes on from the first's state: the step
			// from the first drive's last reading to the second's first
			// is credited too.
			truth += max(0, int64(tr.FirstOdometer)-int64(odo))
		}
		odo = tr.HighWater
	}
	r.col.start()
	life := func(n int) {
		t.Helper()
		a := r.startAgent(r.writeConfig(agentConf{Replay: logs[n]}))
		if code := a.wait(60 * time.Second); code != 0 {
			t.Fatalf("life %d: tboxd exit status %d", n+1, code)
		}
		if n == 2 {
			l, ok := a.waitLine(reOlder, time.Time{}, time.Second)
			if !ok {
				t.Fatal("tboxd did not say its state was older than the retained receipt")
			}
			m := reOlder.FindStringSubmatch(l.text)
			t.Logf("tboxd: local head %s, receipted seq %s, next seq %s", m[1], m[2], m[3])
		}
	}

	life(0)
	first := outboxStats(t, r.stateDir())
	backup := filepath.Join(r.dir, "backup")
	copyDir(t, r.stateDir(), backup)
	life(1)
	second := outboxStats(t, r.stateDir())
	if second.Head <= first.Head || second.AckedThrough != second.Head {
		t.Fatalf("second life: head %d (first %d), acked through %d; want the chain advanced and receipted", second.Head, first.Head, second.AckedThrough)
	}
	if err := os.RemoveAll(r.stateDir()); err != nil {
		t.Fatal(err)
	}
	copyDir(t, backup, r.stateDir()) // the old backup restored
	if st := outboxStats(t, r.stateDir()); st.Head != first.Head {
		t.Fatalf("restored state: head %d, want the backup's %d", st.Head, first.Head)
	}
	life(2)
	third := outboxStats(t, r.stateDir())
	if third.Head <= second.Head || third.AckedThrough != third.Head || third.Depth != 0 {
		t.Fatalf("after the restore: head %d (collector's receipt %d), acked through %d, depth %d; want the chain continued after the receipt and receipted",
			third.Head, second.Head, third.AckedThrough, third.Depth)
	}
	for _, e := range r.col.events() {
		if e.kind == "refused" {
			t.Errorf("collector refused seq %d: %s", e.seq, e.reason)
		}
	}
	storedChain(t, r.col.events(), third.Head)
	s := r.col.stats()
	if s.Forks != 0 {
		t.Errorf("collector recorded %d forks", s.Forks)
	}
	if len(s.Devices) != 1 || s.Devices[0].Attestations != third.Head {
		t.Fatalf("collector devices %+v, want one with %d attestations", s.Devices, third.Head)
	}
	if got := s.Devices[0].Meters; got != uint64(truth) {
		t.Errorf("collector meters %d, the three drives' truth %d", got, truth)
	}
	t.Logf("seqs 1..%d (backup), %d..%d (lost state), after the restore %d..%d; %d m", first.Head, first.Head+1, second.Head, second.Head+1, third.Head, s.Devices[0].Meters)
}

// copyDir copies the regular files of src into dst (made).
func copyDir(t *testing.T, src, dst string) {
	t.Helper()
	if err := os.MkdirAll(dst, 0o700); err != nil {
		t.Fatal(err)
	}
	ents, err := os.ReadDir(src)
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range ents {
		if !e.Type().IsRegular() {
			continue
		}
		in, err := os.Open(filepath.Join(src, e.Name()))
		if err != nil {
			t.Fatal(err)
		}
		out, err := os.OpenFile(filepath.Join(dst, e.Name()), os.O_CREATE|os.O_WRONLY|os.O_TRUNC, 0o600)
		if err != nil {
			in.Close()
			t.Fatal(err)
		}
		_, err = io.Copy(out, in)
		in.Close()
		if cerr := out.Close(); err == nil {
			err = cerr
		}
		if err != nil {
			t.Fatal(err)
		}
	}
}
