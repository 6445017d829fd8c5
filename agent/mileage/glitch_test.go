package mileage

import (
	"fmt"
	"math"
	"math/rand/v2"
	"reflect"
	"testing"
	"time"
)

// issueGlitch is the reading of issue 14's injected frame 541#FFFFFFFF: the
// raw value 0xFFFFFFFF of a 0.1 km signal, 429,496,729.5 km.
const issueGlitch = 0xFFFFFFFF * 100.0

// TestJumpCandidateRule pins the numbers of the rule in doc.go: a reading
// above the plausible course is a candidate; ConfirmReadings readings on
// its course over ConfirmTime confirm it; a reading back on the earlier
// course before that makes it a glitch.
func TestJumpCandidateRule(t *testing.T) {
	start := time.Date(2025, 3, 3, 7, 0, 30, 0, time.UTC)
	const odo0 = 50_000_000.0
	for _, c := range []struct {
		name string
		// after a 2-minute drive at 60 km/h (5 Hz), the odometer readings
		// at these offsets from the candidate (the first), in meters above
		// the course the car is really on.
		offsets []time.Duration
		above   []float64
		credit  bool // the jump is credited
	}{
		{"lone glitch", []time.Duration{0}, []float64{issueGlitch}, false},
		{"glitch then back on course", []time.Duration{0, 200 * time.Millisecond}, []float64{1e6, 0}, false},
		{"confirmed: three readings over 5 s",
			[]time.Duration{0, 2500 * time.Millisecond, 5 * time.Second}, []float64{10_000, 10_000, 10_000}, true},
		{"not yet: three readings over 4.8 s, then back",
			[]time.Duration{0, 2400 * time.Millisecond, 4800 * time.Millisecond, 5 * time.Second}, []float64{10_000, 10_000, 10_000, 0}, false},
		{"not yet: two readings over 6 s, then back",
			[]time.Duration{0, 6 * time.Second, 6200 * time.Millisecond}, []float64{10_000, 10_000, 0}, false},
		{"a second, different glitch replaces the first",
			[]time.Duration{0, 2500 * time.Millisecond, 5 * time.Second, 5200 * time.Millisecond}, []float64{10_000, 90_000, 10_000, 0}, false},
	} {
		t.Run(c.name, func(t *testing.T) {
			r := newRecorder(t, Config{HasSpeed: true})
			t1, odo := r.drive(start, 2*time.Minute, odo0, 60)
			hwm := r.e.State().HWM
			for i, off := range c.offsets {
				at := t1.Add(off)
				real := odo + 60/3.6*off.Seconds()
				r.speed(at, 60)
				if c.credit {
					r.odo(at, real+c.above[i]) // the car's odometer really jumped
				} else if c.above[i] != 0 {
					r.glitch(at, real+c.above[i])
				} else {
					r.odo(at, real)
				}
			}
			st := r.e.State()
			switch {
			case c.credit && (st.Cand || st.HWM < hwm+10_000):
				t.Fatalf("confirmed jump not credited: HWM %v (was %v), candidate pending %v", st.HWM, hwm, st.Cand)
			case !c.credit && st.HWM != r.hwm:
				t.Fatalf("glitch credited: HWM %v, the car's %v, candidate pending %v", st.HWM, r.hwm, st.Cand)
			}
			end := r.now.Add(time.Second)
			r.stop(end)
			r.checkTelescoping()
			r.checkBatches()
			if f := flagsOf(r.spans); f&FlagJump == 0 || f&FlagRollback != 0 {
				t.Errorf("flags 0x%02x, want JUMP and no ROLLBACK; spans %+v", f, r.spans)
			}
		})
	}
}

// TestIssue14Glitch replays issue 14 (a): one injected 0xFFFFFFFF frame in
// the middle of a drive. It is not the HWM, only its span has JUMP, and
// the spans after it have their meters and no ROLLBACK.
func TestIssue14Glitch(t *testing.T) {
	start := time.Date(2025, 3, 3, 7, 0, 30, 0, time.UTC)
	r := newRecorder(t, Config{HasSpeed: true, Resolution: 100})
	t1, odo := r.drive(start, 12*time.Minute, 4_280_305_300, 90) // 0.1 km odometer
	r.glitch(t1, issueGlitch)
	end, _ := r.drive(t1.Add(200*time.Millisecond), 40*time.Minute, odo, 90)
	r.stop(end)
	r.checkTelescoping()
	r.checkBatches()
	var jumps int
	for i, s := range r.spans {
		if s.Flags&FlagRollback != 0 {
			t.Errorf("span %d %+v: ROLLBACK", i, s)
		}
		if s.Flags&FlagJump != 0 {
			jumps++
			if s.Batch != batchOf(t1) {
				t.Errorf("span %d %+v: JUMP outside the glitch's batch %d", i, s, batchOf(t1))
			}
		}
		if s.Batches == 1 && s.Batch > batchOf(t1) && s.Batch < batchOf(end) && s.Meters < 14_000 {
			t.Errorf("span %d %+v: a full batch at 90 km/h credits 15 km", i, s)
		}
	}
	if jumps != 1 {
		t.Errorf("%d spans with JUMP, want 1: %+v", jumps, r.spans)
	}
}

// TestCandidateSurvivesPowerCut: a candidate pending at a power cut is
// resumed exactly from the binary state, and an engine restarted in the
// middle of a candidate's confirmation confirms it as one that never
// stopped.
func TestCandidateSurvivesPowerCut(t *testing.T) {
	start := time.Date(2025, 3, 3, 7, 0, 30, 0, time.UTC)
	for _, glitch := range []bool{false, true} {
		t.Run(fmt.Sprintf("glitch=%v", glitch), func(t *testing.T) {
			feed := func(cut bool) *recorder {
				r := newRecorder(t, Config{HasSpeed: true})
				t1, odo := r.drive(start, 2*time.Minute, 1e6, 60)
				if glitch {
					r.glitch(t1, odo+20_000)
				} else {
					r.odo(t1, odo+20_000)
					odo += 20_000
				}
				if cut {
					if !r.e.State().Cand {
						t.Fatal("no candidate pending")
					}
					r.restart(false)
					if !r.e.State().Cand {
						t.Fatal("the candidate did not survive MarshalBinary")
					}
				}
				end, _ := r.drive(t1.Add(200*time.Millisecond), 10*time.Minute, odo, 60)
				r.stop(end)
				r.checkTelescoping()
				r.checkBatches()
				return r
			}
			a, b := feed(false), feed(true)
			if !reflect.DeepEqual(a.spans, b.spans) {
				t.Fatalf("with a power cut:\n%+v\nwithout:\n%+v", b.spans, a.spans)
			}
			if flagsOf(a.spans)&FlagJump == 0 {
				t.Errorf("no JUMP: %+v", a.spans)
			}
		})
	}
}

// TestStateV1Migrates: a version-1 state (an agent before the candidate
// rule) is read as the same state with no candidate pending.
func TestStateV1Migrates(t *testing.T) {
	st := busyState(t)
	b, err := st.MarshalBinary()
	if err != nil {
		t.Fatal(err)
	}
	v1 := append([]byte(nil), b[:len(b)-37]...) // without the candidate (28 bytes) and its mode split (9 bytes, none set)
	v1[0] = 1
	var got State
	if err := got.UnmarshalBinary(v1); err != nil {
		t.Fatalf("version 1: %v", err)
	}
	if !reflect.DeepEqual(got, st) {
		t.Errorf("version 1:\n got %+v\nwant %+v", got, st)
	}
	v1[1] |= 1 << 2 // bit 10: Cand, unknown to version 1
	if err := new(State).UnmarshalBinary(v1); err == nil {
		t.Errorf("version 1 with the Cand bit accepted")
	}
}

// TestTelescopingWithGlitches is the property of issue 14: simulated days
// (crashes, outbox-full periods, frame jitter) with up to K injected
// glitch frames per drive, each a reading off the car's course, give the
// truth's meters in the truth's batches, and never a lasting ROLLBACK.
func TestTelescopingWithGlitches(t *testing.T) {
	hours := 12.0
	if testing.Short() {
		hours = 4
	}
	for _, c := range []struct {
		name string
		opts simOptions
	}{
		{"float", simOptions{odo: odoFloat, glitches: 3}},
		{"tenth-km-restarts-blocked", simOptions{odo: odoTenthKM, restarts: true, blocked: true, glitches: 2}},
		{"meter-jitter-restarts", simOptions{odo: odoMeter, restarts: true, jitter: true, glitches: 4}},
		{"high-only", simOptions{odo: odoTenthKMfp, glitches: 5, highOnly: true}},
	} {
		for seed := uint64(1); seed <= 3; seed++ {
			t.Run(fmt.Sprintf("%s/seed%d", c.name, seed), func(t *testing.T) {
				c.opts.hours = hours
				r := simulate(t, seed, c.opts)
				r.checkBatches()
				if r.glitchesLow+r.glitchesHigh < 5 {
					t.Fatalf("only %d glitches injected", r.glitchesLow+r.glitchesHigh)
				}
				var rollbacks, jumps int
				for _, s := range r.spans {
					if s.Flags&FlagRollback != 0 {
						rollbacks++
					}
					if s.Flags&FlagJump != 0 {
						jumps++
					}
				}
				// A low glitch flags its span and, across a batch boundary,
				// the one of the next reading; a high one flags JUMP alike.
				if rollbacks > 2*r.glitchesLow || jumps > 2*r.glitchesHigh || jumps == 0 {
					t.Errorf("%d spans with ROLLBACK for %d low glitches, %d with JUMP for %d high ones",
						rollbacks, r.glitchesLow, jumps, r.glitchesHigh)
				}
				if c.opts.highOnly && rollbacks > 0 {
					t.Errorf("%d spans with ROLLBACK, no glitch below the course", rollbacks)
				}
			})
		}
	}
}

// FuzzGlitches: a drive at plausible speeds whose odometer frames are
// interleaved with glitch frames (never two without a real reading
// between), through restarts and stops, credits exactly the real
// odometer's distance, and its last span after a clean tail has no
// ROLLBACK or JUMP.
//
// Each op is 3 bytes: kind, a time step in 20 ms units, a value.
func FuzzGlitches(f *testing.F) {
	f.Add([]byte{0, 10, 80, 1, 1, 0, 0, 10, 80, 1, 1, 3, 0, 10, 80})
	f.Add([]byte{0, 50, 200, 1, 1, 1, 2, 0, 0, 0, 50, 200, 1, 0, 2, 0, 1, 0, 3, 0, 1})
	f.Add([]byte{0, 255, 250, 1, 0, 4, 4, 0, 0, 0, 255, 250, 1, 0, 0, 4, 255, 3, 0, 10, 10})
	f.Fuzz(func(t *testing.T, data []byte) {
		if len(data) > 900 {
			data = data[:900]
		}
		cfg := Config{HasSpeed: true, Resolution: 1}
		r := newRecorder(t, cfg)
		at := time.Date(2025, 3, 3, 7, 0, 0, 0, time.UTC)
		odo, kmh := 7_000_000.0, 50.0
		r.speed(at, kmh)
		r.odo(at, odo)
		lastReal := true
		for ; len(data) >= 3; data = data[3:] {
			kind, step, v := data[0]%6, time.Duration(data[1])*20*time.Millisecond, data[2]
			at = at.Add(step)
			odo += kmh / 3.6 * step.Seconds()
			switch kind {
			case 0:
				r.odo(at, odo)
				lastReal = true
			case 1:
				if !lastReal {
					continue
				}
				hwm := r.e.State().HWM
				vals := []float64{issueGlitch, hwm + 1e3 + float64(v)*1e4, 0, hwm - 1e3 - float64(v), hwm*2 + 1e6}
				r.glitch(at, vals[int(v)%len(vals)])
				lastReal = false
			case 2:
				kmh = float64(v) // up to 255 km/h: plausible
				r.speed(at, kmh)
			case 3:
				r.restart(v&1 == 0)
			case 4:
				r.stop(at)
			case 5:
				r.tick(at)
			}
		}
		// A clean tail across two batch boundaries.
		kmh = 50
		end, _ := r.drive(at.Add(200*time.Millisecond), 25*time.Minute, odo+50/3.6*0.2, kmh)
		r.stop(end)
		r.checkTelescoping()
		if st := r.e.State(); st.Cand {
			t.Fatalf("candidate still pending after a clean tail: %+v", st)
		}
		if n := len(r.spans); n == 0 || r.spans[n-1].Flags&(FlagRollback|FlagJump) != 0 {
			t.Fatalf("last span after a clean tail: %+v", r.spans[max(n-1, 0):])
		}
	})
}

// glitchValue returns a reading off the car's course at hwm: far above
// (the issue's frame, a random high value) or, unless highOnly, far below.
func glitchValue(rng *rand.Rand, hwm float64, highOnly bool) (float64, bool) {
	switch n := rng.IntN(4); {
	case n == 0:
		return issueGlitch, true
	case n == 1 || highOnly:
		return hwm + 5_000 + rng.Float64()*1e9, true
	case n == 2:
		return 0, false
	}
	return math.Max(0, hwm-1_000-rng.Float64()*1e7), false
}

// TestLateReadingsAfterTick: readings handed over late, after a Tick moved
// the clock past their frame times (a busy T-Box), keep their own
// intervals: no JUMP, nothing held as a candidate, the meters exact.
func TestLateReadingsAfterTick(t *testing.T) {
	start := time.Date(2025, 3, 3, 7, 0, 30, 0, time.UTC)
	// The sample car's profile: 250 km/h, 10 m steps, so 79 m may come
	// at once.
	r := newRecorder(t, Config{HasSpeed: true, MaxSpeedKMH: 250, Resolution: 10})
	at, odo := r.drive(start, time.Minute, 1e6, 100)
	for range 20 {
		// The tick runs 4 s ahead; then 4 s of readings (20 at 5 Hz,
		// 111 m at 100 km/h) arrive at once, stamped with their own times.
		r.tick(at.Add(4 * time.Second))
		for range 20 {
			at = at.Add(200 * time.Millisecond)
			odo += 100 / 3.6 * 0.2
			r.speed(at, 100)
			r.odo(at, odo)
		}
	}
	if st := r.e.State(); st.Cand {
		t.Fatalf("a candidate pending: %+v", st)
	}
	r.stop(at.Add(time.Second))
	r.checkTelescoping()
	r.checkBatches()
	if f := flagsOf(r.spans); f&FlagJump != 0 {
		t.Errorf("flags 0x%02x: JUMP from readings handed over late", f)
	}
}

// TestFasterThanMaxSpeed: a car driving steadily above the profile's
// maximum speed (here twice 100 km/h, 10 m steps at 5 Hz) has its distance
// confirmed candidate after candidate and credited, with JUMP: the
// candidate's course is judged step by step, not against its first
// reading, so a steady excess does not hold it for ever.
func TestFasterThanMaxSpeed(t *testing.T) {
	start := time.Date(2025, 3, 3, 7, 0, 30, 0, time.UTC)
	r := newRecorder(t, Config{HasSpeed: true, MaxSpeedKMH: 100, Resolution: 10})
	at, odo := r.drive(start, time.Minute, 1e6, 80)
	at, _ = r.drive(at, 2*time.Minute, odo, 200)
	st := r.e.State()
	if behind := r.hwm - st.HWM; behind > 200/3.6*ConfirmTime.Seconds()+100 {
		t.Fatalf("HWM %v is %v m behind the odometer after 2 minutes at 200 km/h", st.HWM, behind)
	}
	r.stop(at.Add(10 * time.Second))
	if flagsOf(r.spans)&FlagJump == 0 {
		t.Errorf("no JUMP at twice the maximum speed: %+v", r.spans)
	}
}

// TestCandidateModeSplit: a jump confirmed after the drive mode changed
// credits each part of the candidate's course to the mode current at the
// reading that revealed it, also across a power cut: the jump itself to
// the mode before the change, what the later readings add to the new one.
func TestCandidateModeSplit(t *testing.T) {
	start := time.Date(2025, 3, 3, 7, 0, 30, 0, time.UTC)
	for _, cut := range []bool{false, true} {
		t.Run(fmt.Sprintf("power cut=%v", cut), func(t *testing.T) {
			r := newRecorder(t, Config{HasSpeed: true})
			r.setMode(start, "ECO")
			t1, odo := r.drive(start, 2*time.Minute, 1e6, 60)
			r.speed(t1, 60)
			r.odo(t1, odo+10_000) // the car's odometer really jumped, in ECO
			r.setMode(t1.Add(time.Second), "SPORT")
			if cut {
				r.restart(false)
			}
			if st := r.e.State(); !st.Cand || st.CandSplitMode != "ECO" {
				t.Fatalf("candidate %v, split mode %q: want a pending candidate split at ECO", st.Cand, st.CandSplitMode)
			}
			for _, off := range []time.Duration{2500 * time.Millisecond, 5 * time.Second} {
				at := t1.Add(off)
				r.speed(at, 60)
				r.odo(at, odo+10_000+60/3.6*off.Seconds())
			}
			if st := r.e.State(); st.Cand || st.CandSplitMode != "" {
				t.Fatalf("candidate still pending (%v) or split kept (%q) after confirmation", st.Cand, st.CandSplitMode)
			}
			r.stop(t1.Add(6 * time.Second))
			r.checkTelescoping()
			r.checkBatches() // meters and modes per batch equal the truth's
		})
	}
}
