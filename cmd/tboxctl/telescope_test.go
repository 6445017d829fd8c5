package main

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/csop/tbox/agent/profile"
	"github.com/csop/tbox/can"
	"github.com/csop/tbox/hil/vehicle"
	"github.com/csop/tbox/signer"
)

// oracle reads the frames of a drive the way README §C1 defines the flags it
// can judge from the frames alone, independently of the mileage engine.
type oracle struct {
	dec      *profile.Decoder
	buf      []profile.Reading
	started  bool
	hwm, odo float64
	// rollback: batches where a reading differed from the previous one
	// while one of the two was below the high-water mark (ROLLBACK).
	rollback map[int64]bool
}

func newOracle(p *profile.Profile) *oracle {
	return &oracle{dec: p.NewDecoder(), rollback: map[int64]bool{}}
}

func (o *oracle) observe(f *can.Frame) {
	o.buf = o.dec.Decode(f, o.buf[:0])
	for _, r := range o.buf {
		switch r.Kind {
		case profile.Odometer:
			if o.started && r.Value != o.odo && min(r.Value, o.odo) < o.hwm {
				o.rollback[vehicle.BatchOf(r.Time)] = true
			}
			if !o.started || r.Value > o.hwm {
				o.hwm = r.Value
			}
			o.started, o.odo = true, r.Value
		}
	}
}

// replayDrive streams scenario s as a candump log through an io.Pipe into
// tboxctl replay (the log is never held in memory) and returns the
// attestations, their lines, the ground truth and the oracle's view.
func replayDrive(t *testing.T, key string, s vehicle.Scenario) ([]*signer.Attestation, string, vehicle.Truth, *oracle) {
	t.Helper()
	p := loadEV(t)
	o := newOracle(p)
	in, truth, stop := streamDrive(p, s, o.observe)
	defer stop()
	var out, errb bytes.Buffer
	code := run(context.Background(), []string{"replay", "--profile", evProfile, "--key", key}, in, &out, &errb)
	if code != 0 {
		t.Fatalf("replay: exit %d: %s", code, errb.String())
	}
	tr, err := truth()
	if err != nil {
		t.Fatalf("scenario: %v", err)
	}
	return parseLines(t, out.String()), out.String(), tr, o
}

// checkRollbacks: ROLLBACK is raised in exactly the batches where the
// frames show it.
func checkRollbacks(t *testing.T, atts []*signer.Attestation, o *oracle) {
	t.Helper()
	flagged := map[int64]bool{}
	for _, a := range atts {
		if a.Flags&signer.FlagRollback != 0 {
			flagged[int64(a.Batch)] = true
			if !o.rollback[int64(a.Batch)] {
				t.Errorf("seq %d: ROLLBACK in batch %d, where the odometer never went below its high-water mark", a.Seq, a.Batch)
			}
		}
	}
	for b := range o.rollback {
		if !flagged[b] {
			t.Errorf("batch %d: the odometer went below its high-water mark, no attestation says ROLLBACK", b)
		}
	}
}

// byBatch adds up the attestations of each batch: a batch can hold several
// (a span also ends at Stop), and the draw adds them up. A CATCHUP span
// (batches > 1) has no single batch and fails the test: a replay of one
// log never needs one.
func byBatch(t *testing.T, atts []*signer.Attestation) []vehicle.Batch {
	t.Helper()
	m := map[int64]map[string]int64{}
	for _, a := range atts {
		if a.Batches != 1 {
			t.Errorf("seq %d covers %d batches (flags %v)", a.Seq, a.Batches, signer.FlagNames(a.Flags))
			continue
		}
		b := m[int64(a.Batch)]
		if b == nil {
			b = map[string]int64{}
			m[int64(a.Batch)] = b
		}
		var sum uint64
		for _, mm := range a.Modes {
			b[mm.Mode] += int64(mm.Meters)
			sum += mm.Meters
		}
		if sum != a.Meters {
			t.Errorf("seq %d: modes sum to %d, meters %d", a.Seq, sum, a.Meters)
		}
	}
	return vehicle.SortBatches(m)
}

// checkTruth compares the attestations with the ground truth: the
// telescoping sum, every batch's meters and its split by drive mode, and the
// chain (tboxctl verify, exit 0).
func checkTruth(t *testing.T, atts []*signer.Attestation, lines string, tr vehicle.Truth) {
	t.Helper()
	if got := sumMeters(atts); got != tr.Meters {
		t.Errorf("sum of meters %d, ground truth %d (floor(%v) - floor(%v))", got, tr.Meters, tr.HighWater, tr.FirstOdometer)
	}
	got := byBatch(t, atts)
	want := tr.Batches
	if len(got) != len(want) {
		t.Errorf("%d batches with meters, ground truth %d", len(got), len(want))
	}
	gm := map[int64]vehicle.Batch{}
	for _, b := range got {
		gm[b.Batch] = b
	}
	bad := 0
	for _, w := range want {
		g := gm[w.Batch]
		if fmt.Sprint(g) != fmt.Sprint(w) {
			if bad++; bad <= 5 {
				t.Errorf("batch %d: attested %v, ground truth %v", w.Batch, g, w)
			}
		}
	}
	if bad > 5 {
		t.Errorf("... %d batches differ in all", bad)
	}
	if v := tboxctl(t, strings.NewReader(lines), "verify"); v.code != 0 {
		t.Errorf("verify: exit %d\n%s%s", v.code, v.stdout, v.stderr)
	}
}

// TestTelescoping replays seeded 24-hour drives (parking, mode changes,
// stop-and-go, noise) and checks them against the simulator's ground truth
// exactly. One seed is new at each run (TBOX_DRIVE_SEED repeats one).
func TestTelescoping(t *testing.T) {
	seeds := []int64{1, 20220807}
	extra := time.Now().UnixNano() % 1e6
	if s := os.Getenv("TBOX_DRIVE_SEED"); s != "" {
		n, err := strconv.ParseInt(s, 10, 64)
		if err != nil {
			t.Fatalf("TBOX_DRIVE_SEED: %v", err)
		}
		extra = n
	}
	seeds = append(seeds, extra)
	if testing.Short() {
		seeds = seeds[:1]
	}
	key, _ := newKey(t)
	for i, seed := range seeds {
		t.Run(fmt.Sprint("seed=", seed), func(t *testing.T) {
			s := vehicle.Scenario{
				Seed: seed, Start: start.Add(time.Duration(i) * 37 * time.Hour), Duration: 24*time.Hour + time.Duration(seed%3600)*time.Second,
				Parking: true, ModeChanges: true, StopAndGo: true, Noise: 2,
			}
			atts, lines, tr, o := replayDrive(t, key, s)
			t.Logf("seed %d: %d frames, %d attestations, %d m (repeat with TBOX_DRIVE_SEED=%d)",
				seed, tr.Frames.Total, len(atts), tr.Meters, seed)
			if tr.Meters < 50_000 || len(atts) < 24 {
				t.Fatalf("a 24-hour drive of %d m in %d attestations is too little to test", tr.Meters, len(atts))
			}
			checkTruth(t, atts, lines, tr)
			// A clean drive raises no flag; its odometer never steps back.
			if len(o.rollback) > 0 {
				t.Errorf("the clean drive's odometer stepped back in batches %v", o.rollback)
			}
			checkRollbacks(t, atts, o)
			for _, a := range atts {
				if a.Flags != 0 {
					t.Errorf("seq %d: flags %v on a clean drive", a.Seq, signer.FlagNames(a.Flags))
				}
			}
			// More than one drive mode, an unnamed one (MODE_n) included
			// somewhere, and nothing UNKNOWN after the first mode frame.
			modes := map[string]bool{}
			for _, b := range tr.Batches {
				for _, m := range b.Modes {
					modes[m.Mode] = true
				}
			}
			if len(modes) < 3 {
				t.Errorf("drive modes %v: the drive changes mode too little to test the split", modes)
			}
		})
	}
}

// TestReplayFlags plays each injection of the simulator through replay: the
// flag it must raise is raised, no flag it cannot explain is, and the
// meters still match the ground truth batch by batch.
func TestReplayFlags(t *testing.T) {
	key, _ := newKey(t)
	const (
		rollback = signer.FlagRollback
		jump     = signer.FlagJump
		mismatch = signer.FlagSpeedMismatch
		gap      = signer.FlagGap
	)
	for _, tc := range []struct {
		name    string
		s       vehicle.Scenario
		need    uint32 // every flag here is raised somewhere
		needAny uint32 // one of these is raised somewhere
		allowed uint32 // no other flag is raised
	}{
		// The simulated odometer can step back 10 m while braking
		// (checkRollbacks holds ROLLBACK to what the frames show).
		{name: "clean", s: vehicle.Scenario{ModeChanges: true, StopAndGo: true}, allowed: rollback},
		// Distance below the high-water mark is not counted; the speed
		// signal then disagrees with the odometer, which may show.
		{name: "rollback", s: vehicle.Scenario{Rollbacks: 2, ModeChanges: true}, need: rollback, allowed: rollback | mismatch},
		{name: "jump", s: vehicle.Scenario{Jumps: 1}, need: jump, allowed: jump | mismatch},
		{name: "rollback and jump", s: vehicle.Scenario{Rollbacks: 1, Jumps: 1, StopAndGo: true}, need: rollback | jump, allowed: rollback | jump | mismatch},
		{name: "gaps", s: vehicle.Scenario{Gaps: 3}, need: gap, allowed: gap},
		// Another sender of the odometer message, some km off: its readings
		// and the car's alternate below and above the high-water mark.
		{name: "second device", s: vehicle.Scenario{SecondDevice: true, StopAndGo: true}, needAny: rollback | jump, allowed: rollback | jump | mismatch},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s := tc.s
			s.Seed, s.Start, s.Duration = 77, start, 3*time.Hour
			atts, lines, tr, o := replayDrive(t, key, s)
			if len(atts) < 18 {
				t.Fatalf("%d attestations in three hours of driving", len(atts))
			}
			checkTruth(t, atts, lines, tr)
			checkRollbacks(t, atts, o)
			var seen uint32
			for _, a := range atts {
				seen |= a.Flags
				if extra := a.Flags &^ tc.allowed; extra != 0 {
					t.Errorf("seq %d (batch %d, %d m): unexpected flags %v", a.Seq, a.Batch, a.Meters, signer.FlagNames(extra))
				}
			}
			if missing := tc.need &^ seen; missing != 0 {
				t.Errorf("flags %v never raised (seen %v)", signer.FlagNames(missing), signer.FlagNames(seen))
			}
			if tc.needAny != 0 && seen&tc.needAny == 0 {
				t.Errorf("none of %v raised (seen %v)", signer.FlagNames(tc.needAny), signer.FlagNames(seen))
			}
		})
	}
}

// TestGapAfterWake: GAP means "no odometer frame for more than 5 s while
// moving" (README §C1). A car parked for an hour with a silent bus, which wakes
// and reports a speed above 0 a few milliseconds before its first odometer
// frame, was not moving while the odometer was silent: no GAP. The same
// silence of 10 s with the speed frames going on at 36 km/h is a GAP.
func TestGapAfterWake(t *testing.T) {
	p := loadEV(t)
	key, _ := newKey(t)
	type reading struct {
		at    time.Duration
		kind  profile.Kind
		value float64
	}
	// drive returns readings at 10 Hz over [from, to): the odometer
	// (unless skipOdo), the speed and the drive mode, moving at kmh from
	// odometer odo0 meters.
	drive := func(from, to time.Duration, odo0, kmh float64, skipOdo func(time.Duration) bool) []reading {
		var rs []reading
		for at := from; at < to; at += 100 * time.Millisecond {
			rs = append(rs, reading{at, profile.Speed, kmh}, reading{at + time.Millisecond, profile.DriveMode, 0})
			if skipOdo == nil || !skipOdo(at) {
				odo := odo0 + kmh/3.6*(at-from).Seconds()
				rs = append(rs, reading{at + 50*time.Millisecond, profile.Odometer, float64(int64(odo/10) * 10)})
			}
		}
		return rs
	}
	t0 := time.Duration(vehicle.BatchSeconds*(start.Unix()/vehicle.BatchSeconds+1))*time.Second - time.Duration(start.Unix())*time.Second
	for _, tc := range []struct {
		name     string
		readings []reading
		wantGap  bool
	}{
		{"wake after parking", append(
			drive(t0+time.Minute, t0+2*time.Minute, 1e6, 0, nil),          // at rest, then the bus sleeps for an hour
			drive(t0+62*time.Minute, t0+63*time.Minute, 1e6, 36, nil)...), // wakes, moving at once
			false},
		{"odometer silent while moving", drive(t0+time.Minute, t0+3*time.Minute, 1e6, 36,
			func(at time.Duration) bool { return at > t0+90*time.Second && at < t0+100*time.Second }), true},
		{"moving, no silence", drive(t0+time.Minute, t0+3*time.Minute, 1e6, 36, nil), false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var log bytes.Buffer
			w := can.NewWriter(&log)
			for _, r := range tc.readings {
				f, err := p.Encode(r.kind, r.value)
				if err != nil {
					t.Fatal(err)
				}
				f.Time, f.Bus = start.Add(r.at), "can0"
				if err := w.Write(&f); err != nil {
					t.Fatal(err)
				}
			}
			if err := w.Flush(); err != nil {
				t.Fatal(err)
			}
			res := tboxctl(t, &log, "replay", "--profile", evProfile, "--key", key)
			if res.code != 0 {
				t.Fatalf("replay: exit %d: %s", res.code, res.stderr)
			}
			atts := parseLines(t, res.stdout)
			if len(atts) == 0 {
				t.Fatal("no attestation")
			}
			gap := false
			for _, a := range atts {
				gap = gap || a.Flags&signer.FlagGap != 0
			}
			if gap != tc.wantGap {
				t.Errorf("GAP raised: %v, want %v\n%s", gap, tc.wantGap, res.stdout)
			}
		})
	}
}
