package mileage

import (
	"errors"
	"fmt"
	"math"
	"reflect"
	"strings"
	"testing"
	"time"
)

// TestFlagValuesMatchSpec pins the flag bits of README §C1, which the
// backend and every verifier read.
func TestFlagValuesMatchSpec(t *testing.T) {
	for _, c := range []struct {
		name       string
		ours, spec uint32
	}{
		{"ROLLBACK", FlagRollback, 0x01},
		{"JUMP", FlagJump, 0x02},
		{"SPEED_MISMATCH", FlagSpeedMismatch, 0x04},
		{"CLOCK", FlagClock, 0x08},
		{"CATCHUP", FlagCatchup, 0x10},
		{"GAP", FlagGap, 0x20},
	} {
		if c.ours != c.spec {
			t.Errorf("%s: 0x%02x, the README contract says 0x%02x", c.name, c.ours, c.spec)
		}
	}
}

// TestTelescoping drives simulated days and checks, exactly, that no meter
// is lost or doubled and that each batch gets its own meters, through
// crashes, graceful restarts and outbox-full periods.
func TestTelescoping(t *testing.T) {
	hours := 26.0
	if testing.Short() {
		hours = 6
	}
	for _, c := range []struct {
		name string
		opts simOptions
	}{
		{"float", simOptions{odo: odoFloat}},
		{"meter", simOptions{odo: odoMeter, restarts: true}},
		{"tenth-km", simOptions{odo: odoTenthKM, restarts: true, blocked: true}},
		{"tenth-km-float-noise", simOptions{odo: odoTenthKMfp, restarts: true, blocked: true}},
		{"float-restarts-blocked", simOptions{odo: odoFloat, restarts: true, blocked: true}},
		{"float-jitter", simOptions{odo: odoFloat, restarts: true, jitter: true}},
		{"tenth-km-jitter", simOptions{odo: odoTenthKM, jitter: true}},
	} {
		for seed := uint64(1); seed <= 2; seed++ {
			t.Run(fmt.Sprintf("%s/seed%d", c.name, seed), func(t *testing.T) {
				c.opts.hours = hours
				r := simulate(t, seed, c.opts)
				r.checkBatches()
				if r.total() < 20_000 {
					t.Fatalf("only %d meters in %v hours: the simulation does not drive", r.total(), hours)
				}
				var catchup, gap bool
				for _, s := range r.spans {
					catchup = catchup || s.Flags&FlagCatchup != 0
					gap = gap || s.Flags&FlagGap != 0
				}
				if c.opts.blocked && !catchup {
					t.Errorf("outbox-full periods made no CATCHUP span")
				}
				if c.opts.restarts && !gap {
					t.Errorf("restarts made no GAP span")
				}
				if f := flagsOf(r.spans) & (FlagRollback | FlagJump | FlagSpeedMismatch | FlagClock); f != 0 {
					t.Errorf("a drive with no rollback, jump, mismatch or clock problem raised flags 0x%02x", f)
				}
				if !c.opts.restarts && !c.opts.blocked {
					if f := flagsOf(r.spans); f != 0 {
						t.Errorf("clean drive raised flags 0x%02x", f)
					}
				}
			})
		}
	}
}

// TestExactResume checks that a State saved at any point and restored with
// New (no restart in between) gives exactly the spans of an engine that never
// stopped.
func TestExactResume(t *testing.T) {
	r := simulate(t, 7, simOptions{odo: odoTenthKMfp, hours: 3, log: true})
	cfg := r.cfg
	e := New(cfg, nil)
	var got []Span
	for i, ev := range r.log {
		if i%997 == 0 {
			b, err := e.State().MarshalBinary()
			if err != nil {
				t.Fatal(err)
			}
			var st State
			if err := st.UnmarshalBinary(b); err != nil {
				t.Fatal(err)
			}
			e = New(cfg, &st)
		}
		got = append(got, ev.feed(e)...)
	}
	if len(got) != len(r.spans) || len(got) < 10 {
		t.Fatalf("resumed engine made %d spans, uninterrupted %d", len(got), len(r.spans))
	}
	for i := range got {
		if !reflect.DeepEqual(got[i], r.spans[i]) {
			t.Fatalf("span %d: resumed %+v, uninterrupted %+v", i, got[i], r.spans[i])
		}
	}
}

// drive feeds speed and odometer frames at 5 Hz for dur at kmh from odo.
func (r *recorder) drive(from time.Time, dur time.Duration, odo, kmh float64) (time.Time, float64) {
	r.t.Helper()
	const step = 200 * time.Millisecond
	for t := from; t.Before(from.Add(dur)); t = t.Add(step) {
		if r.cfg.HasSpeed {
			r.speed(t, kmh)
		}
		odo += kmh / 3.6 * step.Seconds()
		r.odo(t, odo)
		if t.Sub(from)%time.Second == 0 {
			r.tick(t)
		}
	}
	return from.Add(dur), odo
}

// TestFlags raises each flag by a scenario made to raise it, and none by a
// clean drive.
func TestFlags(t *testing.T) {
	start := time.Date(2025, 3, 3, 7, 0, 30, 0, time.UTC) // 30 s into a batch
	odo0 := 123_456_789.0
	for _, c := range []struct {
		name     string
		cfg      Config
		scenario func(r *recorder)
		want     uint32 // union of the spans' flags
		stepBack bool   // the clock goes back: the truth's batches do not apply
	}{
		{name: "clean drive", cfg: Config{HasSpeed: true}, scenario: func(r *recorder) {
			r.drive(start, 35*time.Minute, odo0, 80)
		}, want: 0},
		{name: "ROLLBACK", cfg: Config{HasSpeed: true}, scenario: func(r *recorder) {
			t, odo := r.drive(start, 3*time.Minute, odo0, 60)
			r.drive(t, 3*time.Minute, odo-5000, 60)
		}, want: FlagRollback},
		{name: "JUMP", cfg: Config{HasSpeed: true}, scenario: func(r *recorder) {
			t, odo := r.drive(start, 3*time.Minute, odo0, 60)
			r.odo(t, odo+10_000) // 10 km in 200 ms
			r.drive(t.Add(200*time.Millisecond), time.Minute, odo+10_000, 60)
		}, want: FlagJump | FlagSpeedMismatch},
		{name: "JUMP without speed", cfg: Config{}, scenario: func(r *recorder) {
			t, odo := r.drive(start, 3*time.Minute, odo0, 60)
			r.odo(t, odo+1000) // 1 km in 200 ms, and the odometer goes on from there
			r.drive(t.Add(200*time.Millisecond), 10*time.Second, odo+1000, 60)
		}, want: FlagJump},
		{name: "JUMP: a lone glitch is not credited", cfg: Config{HasSpeed: true}, scenario: func(r *recorder) {
			t, odo := r.drive(start, 3*time.Minute, odo0, 60)
			r.glitch(t, 0xFFFFFFFF*100) // the injected frame
			r.drive(t.Add(200*time.Millisecond), 3*time.Minute, odo, 60)
		}, want: FlagJump},
		{name: "JUMP: a lone glitch at the end of a drive", cfg: Config{}, scenario: func(r *recorder) {
			_, odo := r.drive(start, 3*time.Minute, odo0, 60)
			r.glitch(r.now.Add(time.Second), odo+1000)
		}, want: FlagJump},
		{name: "SPEED_MISMATCH", cfg: Config{HasSpeed: true}, scenario: func(r *recorder) {
			t := start
			odo := odo0
			for range 5 * 60 * 5 { // speed says 100 km/h, odometer drives 50
				r.speed(t, 100)
				odo += 50 / 3.6 * 0.2
				r.odo(t, odo)
				t = t.Add(200 * time.Millisecond)
			}
		}, want: FlagSpeedMismatch},
		{name: "no SPEED_MISMATCH without speed signal", cfg: Config{HasSpeed: false}, scenario: func(r *recorder) {
			t := start
			odo := odo0
			for range 5 * 60 * 5 {
				r.speed(t, 100)
				odo += 50 / 3.6 * 0.2
				r.odo(t, odo)
				t = t.Add(200 * time.Millisecond)
			}
		}, want: 0},
		{name: "CLOCK", cfg: Config{HasSpeed: true}, scenario: func(r *recorder) {
			t, odo := r.drive(start, 3*time.Minute, odo0, 60)
			r.e.MarkClock(true)
			t, odo = r.drive(t, time.Minute, odo, 60)
			r.e.MarkClock(false)
			r.drive(t, 20*time.Minute, odo, 60)
		}, want: FlagClock},
		{name: "CLOCK by a step back", cfg: Config{HasSpeed: true}, scenario: func(r *recorder) {
			t, odo := r.drive(start, 3*time.Minute, odo0, 60)
			r.drive(t.Add(-time.Hour), 3*time.Minute, odo, 60)
		}, want: FlagClock, stepBack: true},
		{name: "CATCHUP by a full outbox", cfg: Config{HasSpeed: true}, scenario: func(r *recorder) {
			r.e.SetBlocked(true)
			t, odo := r.drive(start, 25*time.Minute, odo0, 60)
			r.e.SetBlocked(false)
			r.drive(t, 10*time.Minute, odo, 60)
		}, want: FlagCatchup},
		{name: "GAP: odometer silent while speed says moving", cfg: Config{HasSpeed: true}, scenario: func(r *recorder) {
			t, odo := r.drive(start, 3*time.Minute, odo0, 60)
			for i := range 50 { // 10 s of speed frames only
				r.speed(t.Add(time.Duration(i)*200*time.Millisecond), 60)
			}
			r.drive(t.Add(10*time.Second), time.Minute, odo+167, 60)
		}, want: FlagGap},
		{name: "GAP without speed: odometer resumes higher", cfg: Config{}, scenario: func(r *recorder) {
			t, odo := r.drive(start, 3*time.Minute, odo0, 60)
			r.drive(t.Add(10*time.Second), time.Minute, odo+167, 60)
		}, want: FlagGap},
		{name: "GAP and CATCHUP: crash while driving, back two batches later", cfg: Config{HasSpeed: true}, scenario: func(r *recorder) {
			t, odo := r.drive(start, 3*time.Minute, odo0, 60)
			r.restart(true)
			t, odo = t.Add(20*time.Minute), odo+20_000
			r.tick(t) // the agent ticks before the first frame
			r.drive(t, time.Minute, odo, 60)
		}, want: FlagGap | FlagCatchup},
		{name: "parked T-Box sleep and wake: nothing", cfg: Config{HasSpeed: true}, scenario: func(r *recorder) {
			t, odo := r.drive(start, 3*time.Minute, odo0, 0)
			r.stop(t)
			r.restart(true)
			r.drive(t.Add(8*time.Hour), 3*time.Minute, odo, 0)
		}, want: 0},
	} {
		t.Run(c.name, func(t *testing.T) {
			r := newRecorder(t, c.cfg)
			c.scenario(r)
			r.stop(r.now.Add(time.Second))
			r.checkTelescoping()
			if !c.stepBack {
				r.checkBatches()
			}
			if got := flagsOf(r.spans); got != c.want {
				t.Errorf("flags 0x%02x, want 0x%02x; spans %+v", got, c.want, r.spans)
			}
		})
	}
}

func TestCatchupSpanCoversTheHeldBatches(t *testing.T) {
	start := time.Date(2025, 3, 3, 7, 0, 30, 0, time.UTC)
	r := newRecorder(t, Config{HasSpeed: true})
	r.e.SetBlocked(true)
	end, odo := r.drive(start, 25*time.Minute, 1e6, 60) // batches b, b+1, b+2
	r.e.SetBlocked(false)
	if len(r.spans) != 0 {
		t.Fatalf("spans while the outbox is full: %+v", r.spans)
	}
	end, _ = r.drive(end, 10*time.Minute, odo, 60)
	r.stop(end)
	b := batchOf(start)
	if len(r.spans) < 1 || r.spans[0].Batch != b || r.spans[0].Batches != 3 {
		t.Fatalf("first span after unblocking: %+v, want batch %d, batches 3", r.spans, b)
	}
	r.checkBatches()
}

func TestRestartCreditsDowntimeToFirstReading(t *testing.T) {
	start := time.Date(2025, 3, 3, 7, 0, 30, 0, time.UTC)
	r := newRecorder(t, Config{HasSpeed: true})
	t1, odo := r.drive(start, 2*time.Minute, 5e6, 90)
	before := r.e.State().Span.Meters
	r.restart(true)
	t2 := t1.Add(30 * time.Minute)
	r.tick(t2)
	if len(r.spans) != 0 {
		t.Fatalf("span closed before the first reading after the restart: %+v", r.spans)
	}
	r.odo(t2, odo+45_000)
	r.stop(t2.Add(time.Second))
	if len(r.spans) != 1 {
		t.Fatalf("spans %+v, want one", r.spans)
	}
	s := r.spans[0]
	wantBatches := uint32(batchOf(t2) - batchOf(start) + 1)
	if s.Batch != batchOf(start) || s.Batches != wantBatches || s.Meters != before+45_000 ||
		s.Flags != FlagGap|FlagCatchup {
		t.Errorf("span %+v, want batch %d, batches %d, %d meters, GAP|CATCHUP", s, batchOf(start), wantBatches, before+45_000)
	}
}

func TestParkedCarMakesNone(t *testing.T) {
	for _, c := range []struct {
		name string
		cfg  Config
	}{{"with speed", Config{HasSpeed: true}}, {"without speed", Config{}}} {
		t.Run(c.name, func(t *testing.T) {
			r := newRecorder(t, c.cfg)
			start := time.Date(2025, 3, 3, 7, 0, 30, 0, time.UTC)
			r.setMode(start, "PARK")
			// Ignition on for 5 hours, then ticks alone for 5 hours, then a
			// sleep and wake with the same odometer, a restart and a stop.
			t1, odo := r.drive(start, 5*time.Hour, 42_000_000.5, 0)
			for i := range 5 * 3600 {
				r.tick(t1.Add(time.Duration(i) * time.Second))
			}
			r.stop(t1.Add(5 * time.Hour))
			r.restart(true)
			t2, _ := r.drive(t1.Add(12*time.Hour), time.Hour, odo, 0)
			r.stop(t2)
			if len(r.spans) != 0 {
				t.Fatalf("parked car made attestations: %+v", r.spans)
			}
		})
	}
}

func TestStopEmitsTail(t *testing.T) {
	start := time.Date(2025, 3, 3, 7, 1, 0, 0, time.UTC)
	r := newRecorder(t, Config{HasSpeed: true})
	r.setMode(start, "ECO")
	t1, odo := r.drive(start, 2*time.Minute, 1000.25, 72) // 2400 m
	r.setMode(t1, "SPORT")
	t2, _ := r.drive(t1, time.Minute, odo, 72) // 1200 m
	if len(r.spans) != 0 {
		t.Fatalf("spans before Stop: %+v", r.spans)
	}
	r.stop(t2)
	if len(r.spans) != 1 {
		t.Fatalf("Stop returned %d spans, want 1", len(r.spans))
	}
	s := r.spans[0]
	want := uint64(math.Floor(r.hwm) - math.Floor(r.first))
	if s.Meters != want || s.Batch != batchOf(start) || s.Batches != 1 || s.Flags != 0 {
		t.Errorf("tail %+v, want %d meters in batch %d", s, want, batchOf(start))
	}
	if len(s.Modes) != 2 || s.Modes[0].Mode != "ECO" || s.Modes[1].Mode != "SPORT" ||
		s.Modes[0].Meters < 2390 || s.Modes[0].Meters > 2410 {
		t.Errorf("modes %+v, want ECO ~2400 then SPORT ~1200", s.Modes)
	}
	if !s.End.Equal(t2) {
		t.Errorf("End %v, want %v", s.End, t2)
	}
	r.stop(t2.Add(time.Second))
	if len(r.spans) != 1 {
		t.Errorf("a second Stop made another span: %+v", r.spans[1:])
	}
}

func TestUnknownModeBeforeFirstModeReading(t *testing.T) {
	r := newRecorder(t, Config{})
	start := time.Date(2025, 3, 3, 7, 1, 0, 0, time.UTC)
	t1, odo := r.drive(start, time.Minute, 0, 60)
	r.setMode(t1, "MODE_3")
	t2, _ := r.drive(t1, time.Minute, odo, 60)
	r.stop(t2)
	if len(r.spans) != 1 || len(r.spans[0].Modes) != 2 ||
		r.spans[0].Modes[0].Mode != "MODE_3" || r.spans[0].Modes[1].Mode != UnknownMode {
		t.Fatalf("spans %+v, want modes MODE_3 and UNKNOWN", r.spans)
	}
	r.checkBatches()
}

// TestClockUnset is issue 14 (b): a T-Box that never had a trusted clock
// (it reads 1970) drives 2 hours. It attests per batch of its best
// estimate of the time, the build time (here MinTime's default, the
// genesis batch) plus the time elapsed, each span one batch with CLOCK,
// never one span of the whole drive; once the clock is set, the spans are
// in the true batches and have no flag.
func TestClockUnset(t *testing.T) {
	r := newRecorder(t, Config{HasSpeed: true})
	boot := time.Unix(1000, 0)
	_, odo := r.drive(boot, 2*time.Hour, 7e6, 60)
	unset := len(r.spans)
	if unset < 11 || unset > 13 {
		t.Fatalf("%d spans over 2 hours with the clock unset, want one per batch (11..13): %+v", unset, r.spans)
	}
	for i, s := range r.spans {
		if s.Batches != 1 || s.Flags != FlagClock || s.Batch != genesisBatch+uint64(i) || s.Meters > 10_010 {
			t.Errorf("span %d %+v: want batch %d (estimated), one batch, CLOCK, at most the 10 km of a batch at 60 km/h",
				i, s, genesisBatch+uint64(i))
		}
	}
	set := time.Date(2025, 3, 3, 7, 1, 0, 0, time.UTC)
	end, _ := r.drive(set, 12*time.Minute, odo, 60)
	r.stop(end)
	r.checkTelescoping()
	after := r.spans[unset:]
	if len(after) < 2 || after[0].Flags != FlagClock || after[0].Batch != genesisBatch+uint64(unset) {
		t.Fatalf("spans after the clock was set: %+v; want first the rest of the unset time, CLOCK", after)
	}
	for _, s := range after[1:] {
		if s.Flags != 0 || s.Batch < batchOf(set) {
			t.Errorf("span %+v after the clock was set: want no flag, batch >= %d", s, batchOf(set))
		}
	}
}

// TestClockUnsetAfterReboot: the T-Box reboots with its clock lost; until
// it is set again, spans are per batch of the last good time plus the time
// elapsed since the reboot, with CLOCK, in order with the spans before.
func TestClockUnsetAfterReboot(t *testing.T) {
	r := newRecorder(t, Config{HasSpeed: true})
	start := time.Date(2025, 3, 3, 7, 1, 0, 0, time.UTC)
	t1, odo := r.drive(start, 3*time.Minute, 7e6, 60)
	r.restart(true)
	_, odo = r.drive(time.Unix(50, 0), 30*time.Minute, odo, 60)
	t2 := t1.Add(2 * time.Hour)
	t3, _ := r.drive(t2, 3*time.Minute, odo, 60)
	r.stop(t3)
	r.checkTelescoping()
	last := uint64(0)
	for i, s := range r.spans {
		switch {
		case s.Batches != 1:
			t.Errorf("span %d %+v: want one batch", i, s)
		case s.Batch < last:
			t.Errorf("span %d %+v: batch before the previous span's %d", i, s, last)
		case s.Batch <= batchOf(t1.Add(30*time.Minute)) && s.Flags&FlagClock == 0:
			t.Errorf("span %d %+v: within the unset time, want CLOCK", i, s)
		case s.Batch >= batchOf(t2) && s.Flags != 0:
			t.Errorf("span %d %+v: after the clock was set, want no flag", i, s)
		}
		last = s.Batch
	}
	if len(r.spans) < 4 || r.spans[0].Batch != batchOf(start) {
		t.Errorf("spans %+v: want one per batch from %d", r.spans, batchOf(start))
	}
}

// TestJitterNeverDoubleCounts feeds the same readings in shuffled order
// within small windows and twice over; the meters stay exact.
func TestJitterNeverDoubleCounts(t *testing.T) {
	r := newRecorder(t, Config{HasSpeed: true})
	start := time.Date(2025, 3, 3, 7, 9, 0, 0, time.UTC)
	odo := 9_999.9
	for i := range 5000 {
		at := start.Add(time.Duration(i) * 100 * time.Millisecond)
		odo += 2.5
		r.odo(at, odo)
		r.odo(at.Add(-150*time.Millisecond), odo-5) // a late frame from another bus
		r.odo(at.Add(-50*time.Millisecond), odo)    // a duplicate
		r.speed(at.Add(-time.Duration(i%3)*time.Millisecond), 90)
	}
	r.stop(start.Add(10 * time.Minute))
	r.checkTelescoping()
	r.checkBatches()
}

func TestModeNames(t *testing.T) {
	long := strings.Repeat("é", 100) // 200 bytes
	for _, c := range []struct {
		name, want string
	}{
		{"ECO", "ECO"},
		{"", UnknownMode},
		{"\xffSPORT", "\uFFFDSPORT"},
		{long, long[:MaxModeNameLen]},
		{"x" + long, "x" + long[:MaxModeNameLen-2]}, // cut at a rune boundary
	} {
		e := New(Config{}, nil)
		at := time.Date(2025, 3, 3, 7, 1, 0, 0, time.UTC)
		e.Odometer(at, 0)
		e.Mode(at, c.name)
		e.Odometer(at.Add(time.Second), 10)
		spans := e.Stop(at.Add(2 * time.Second))
		if len(spans) != 1 || len(spans[0].Modes) != 1 || spans[0].Modes[0].Mode != c.want {
			t.Errorf("mode %q: spans %+v, want one mode %q", c.name, spans, c.want)
		}
	}
}

// TestManyModes: a span never holds more modes than a verifier accepts;
// the excess goes to UNKNOWN and the sum stays exact.
func TestManyModes(t *testing.T) {
	r := newRecorder(t, Config{})
	at := time.Date(2025, 3, 3, 7, 1, 0, 0, time.UTC)
	odo := 0.0
	for i := range 100 {
		r.setMode(at, fmt.Sprintf("MODE_%d", i))
		odo += 3
		r.odo(at, odo)
		at = at.Add(time.Second)
	}
	r.stop(at)
	if len(r.spans) != 1 || len(r.spans[0].Modes) != MaxModes || r.spans[0].Meters != 297 {
		t.Fatalf("spans %+v, want one of 297 m in %d modes", r.spans, MaxModes)
	}
}

// TestStateErrorNamesTheProblem: the error says which field, where, what
// was expected and what was found.
func TestStateErrorNamesTheProblem(t *testing.T) {
	err := new(State).UnmarshalBinary([]byte{1, 0})
	var se *StateError
	if !errors.As(err, &se) || !errors.Is(err, ErrStateCorrupt) {
		t.Fatalf("error %v, want a *StateError wrapping ErrStateCorrupt", err)
	}
	want := StateError{Field: "booleans", Offset: 1, Expected: "2 bytes", Found: "1 bytes left", Err: ErrStateCorrupt}
	if *se != want {
		t.Errorf("error %+v, want %+v", *se, want)
	}
}
