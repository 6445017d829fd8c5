package vehicle

import (
	"bytes"
	"context"
	"crypto/sha256"
	"errors"
	"math"
	"reflect"
	"testing"
	"time"

	"github.com/csop/tbox/agent/profile"
	"github.com/csop/tbox/can"
)

const testdata = "../../agent/profile/testdata/"

var start = time.Date(2026, 1, 1, 8, 0, 0, 0, time.UTC)

func load(t testing.TB, name string) *profile.Profile {
	t.Helper()
	p, err := profile.Load(testdata + name)
	if err != nil {
		t.Fatal(err)
	}
	return p
}

// play runs a scenario into a candump log and returns the log and the truth.
func play(t testing.TB, s Scenario, p *profile.Profile) ([]byte, Truth) {
	t.Helper()
	var buf bytes.Buffer
	sink := NewLogSink(&buf)
	tr, err := s.Frames(p, sink.WriteFrame)
	if err != nil {
		t.Fatal(err)
	}
	if err := sink.Flush(); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes(), tr
}

func everything(seed int64) Scenario {
	return Scenario{
		Seed: seed, Start: start, Duration: 3 * time.Hour,
		Parking: true, ModeChanges: true, StopAndGo: true, Noise: 5, Biometric: true,
		Rollbacks: 2, Jumps: 1, SecondDevice: true, Gaps: 3,
	}
}

func TestDeterminism(t *testing.T) {
	p := load(t, "ev.toml")
	log1, tr1 := play(t, everything(42), p)
	log2, tr2 := play(t, everything(42), p)
	if !bytes.Equal(log1, log2) {
		t.Errorf("same seed, different frames: %x vs %x", sha256.Sum256(log1), sha256.Sum256(log2))
	}
	if !reflect.DeepEqual(tr1, tr2) {
		t.Errorf("same seed, different truth")
	}
	log3, _ := play(t, everything(43), p)
	if bytes.Equal(log1, log3) {
		t.Errorf("seeds 42 and 43 gave the same frames")
	}
}

// recompute decodes a candump log with its own decoder and credits meters
// per batch and mode, independently of the simulator's bookkeeping.
func recompute(t *testing.T, p *profile.Profile, log []byte) (batches map[int64]map[string]int64, first, hwm float64) {
	t.Helper()
	r := can.NewReader(bytes.NewReader(log))
	d := p.NewDecoder(profile.WithDefaultBus("can0"))
	batches = map[int64]map[string]int64{}
	mode, seen := "UNKNOWN", false
	var buf []profile.Reading
	for r.Receive() {
		buf = d.Decode(r.Frame(), buf[:0])
		for _, rd := range buf {
			switch rd.Kind {
			case profile.DriveMode:
				mode = rd.Mode
			case profile.Odometer:
				if !seen {
					seen, first, hwm = true, rd.Value, rd.Value
					continue
				}
				if rd.Value > hwm {
					b := rd.Time.Unix() / 600
					if batches[b] == nil {
						batches[b] = map[string]int64{}
					}
					batches[b][mode] += int64(math.Floor(rd.Value)) - int64(math.Floor(hwm))
					hwm = rd.Value
				}
			}
		}
	}
	if err := r.Err(); err != nil {
		t.Fatal(err)
	}
	return batches, first, hwm
}

func TestTruthConsistency(t *testing.T) {
	for _, c := range []struct {
		name    string
		profile string
		s       Scenario
	}{
		{"plain", "ev.toml", Scenario{Seed: 1, Start: start, Duration: time.Hour}},
		{"everything", "ev.toml", everything(7)},
		{"multiplexed miles", "ev_mux.toml", everything(8)},
		{"29-bit and second bus", "ev_alt.toml", everything(9)},
		{"float", "ev_float.toml", everything(10)},
		{"public Motorola", "public/honda_civic_touring_2016.toml", everything(11)},
		{"public Intel", "public/hyundai_i30_2014.toml", everything(12)},
	} {
		t.Run(c.name, func(t *testing.T) {
			p := load(t, c.profile)
			log, tr := play(t, c.s, p)
			got, first, hwm := recompute(t, p, log)
			if want := SortBatches(got); !reflect.DeepEqual(tr.Batches, want) {
				t.Fatalf("truth batches differ from the log's:\n truth %v\n log   %v", tr.Batches, want)
			}
			var sum int64
			for _, b := range tr.Batches {
				var modes int64
				for _, m := range b.Modes {
					modes += m.Meters
				}
				if modes != b.Meters {
					t.Errorf("batch %d: modes sum %d != %d", b.Batch, modes, b.Meters)
				}
				sum += b.Meters
			}
			want := int64(math.Floor(hwm) - math.Floor(first))
			if tr.Meters != want || sum != want || tr.FirstOdometer != first || tr.HighWater != hwm {
				t.Errorf("truth meters %d, batches sum %d, first %v hwm %v; log gives %d, first %v hwm %v", tr.Meters, sum, tr.FirstOdometer, tr.HighWater, want, first, hwm)
			}
			if tr.Meters <= 0 || len(tr.Batches) < 2 {
				t.Errorf("a drive of %v credited %d m in %d batches", c.s.Duration, tr.Meters, len(tr.Batches))
			}
		})
	}
}

// Without injections the frames report the distance the car drove.
func TestTruthMatchesPhysics(t *testing.T) {
	p := load(t, "ev.toml")
	for seed := int64(1); seed <= 3; seed++ {
		s := Scenario{Seed: seed, Start: start, Duration: 2 * time.Hour, Parking: true, StopAndGo: true, ModeChanges: true}
		_, tr := play(t, s, p)
		res := p.Resolution(profile.Odometer)
		if d := math.Abs(float64(tr.Meters) - tr.TrueDistance); d > 2*res+10 {
			t.Errorf("seed %d: credited %d m, drove %.1f m", seed, tr.Meters, tr.TrueDistance)
		}
		if tr.TrueDistance < 10e3 {
			t.Errorf("seed %d: only %.0f m in two hours", seed, tr.TrueDistance)
		}
		modes := map[string]bool{}
		for _, b := range tr.Batches {
			for _, m := range b.Modes {
				modes[m.Mode] = true
			}
		}
		if len(modes) < 2 {
			t.Errorf("seed %d: mode changes gave modes %v", seed, modes)
		}
	}
}

func TestInjections(t *testing.T) {
	p := load(t, "ev.toml")
	base := Scenario{Seed: 5, Start: start, Duration: 4 * time.Hour}
	_, plain := play(t, base, p)
	jump := base
	jump.Jumps = 1
	_, tj := play(t, jump, p)
	if tj.Meters < plain.Meters+50e3 {
		t.Errorf("a 50-500 km jump credited %d m against %d m without", tj.Meters, plain.Meters)
	}
	rb := base
	rb.Rollbacks = 1
	_, tr := play(t, rb, p)
	if tr.Meters > plain.Meters-1000 {
		t.Errorf("a 1-5 km rollback credited %d m against %d m without", tr.Meters, plain.Meters)
	}
	gaps := base
	gaps.Gaps = 3
	_, tg := play(t, gaps, p)
	if tg.Frames.Odometer >= plain.Frames.Odometer-3*6*9 {
		t.Errorf("3 gaps of >= 6 s left %d odometer frames of %d", tg.Frames.Odometer, plain.Frames.Odometer)
	}
	sd := base
	sd.SecondDevice = true
	_, ts := play(t, sd, p)
	if ts.Frames.Second < 4*3600-60 || ts.Frames.Second > 4*3600+60 {
		t.Errorf("second device sent %d frames in 4 h at 1 Hz", ts.Frames.Second)
	}
}

func TestBiometricFrames(t *testing.T) {
	p := load(t, "ev.toml")
	bio := map[can.Key]bool{}
	for _, k := range p.BiometricKeys() {
		bio[k] = true
	}
	for _, on := range []bool{false, true} {
		s := Scenario{Seed: 3, Start: start, Duration: 10 * time.Minute, Biometric: on, Noise: 3}
		n := 0
		tr, err := s.Frames(p, func(f *can.Frame) error {
			if !bio[can.KeyOf(f)] {
				return nil
			}
			n++
			if string(f.Data[:8]) != BiometricMarker {
				t.Errorf("biometric frame % X without the marker", f.Data[:8])
			}
			if p.Filter("").Match(f) {
				t.Errorf("the profile filter passes biometric frame %X", f.ID)
			}
			return nil
		})
		if err != nil {
			t.Fatal(err)
		}
		if on && (n == 0 || n != tr.Frames.Biometric) {
			t.Errorf("Biometric on: %d biometric frames, truth counts %d", n, tr.Frames.Biometric)
		}
		if !on && n != 0 {
			t.Errorf("Biometric off: %d biometric frames", n)
		}
	}
}

func TestFrameStream(t *testing.T) {
	p := load(t, "ev.toml")
	s := Scenario{Seed: 4, Start: start, Duration: 20 * time.Minute, Noise: 2}
	var last time.Time
	counts := map[uint32]int{}
	tr, err := s.Frames(p, func(f *can.Frame) error {
		if f.Time.Before(last) || f.Time.Before(s.Start) || !f.Time.Before(s.Start.Add(s.Duration)) {
			t.Fatalf("frame at %v after %v, outside the scenario", f.Time, last)
		}
		if f.Bus != "can0" {
			t.Fatalf("frame on bus %q", f.Bus)
		}
		if err := f.Validate(); err != nil {
			t.Fatal(err)
		}
		last = f.Time
		counts[f.ID]++
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	secs := s.Duration.Seconds()
	for id, hz := range map[uint32]float64{0x541: 10, 0x220: 50, 0x542: 5} {
		if got := float64(counts[id]) / secs; math.Abs(got-hz) > 0.05*hz {
			t.Errorf("message %X at %.2f Hz, want %v", id, got, hz)
		}
	}
	if tr.Frames.Total != sumCounts(counts) || tr.Frames.Noise == 0 {
		t.Errorf("truth counts %+v, stream had %d frames", tr.Frames, sumCounts(counts))
	}
	stop := errors.New("stop")
	if _, err := s.Frames(p, func(*can.Frame) error { return stop }); !errors.Is(err, stop) {
		t.Errorf("sink error: %v, want stop", err)
	}
}

func sumCounts(m map[uint32]int) int {
	n := 0
	for _, v := range m {
		n += v
	}
	return n
}

func TestScenarioErrors(t *testing.T) {
	p := load(t, "ev.toml")
	for _, s := range []Scenario{{Start: start}, {Duration: time.Hour}} {
		if _, err := s.Frames(p, func(*can.Frame) error { return nil }); !errors.Is(err, ErrScenario) {
			t.Errorf("Frames(%+v) = %v, want ErrScenario", s, err)
		}
	}
}

type fakeClock struct {
	now   time.Time
	waits []time.Duration
}

func (c *fakeClock) Now() time.Time { return c.now }
func (c *fakeClock) After(d time.Duration) <-chan time.Time {
	c.waits = append(c.waits, d)
	c.now = c.now.Add(d)
	ch := make(chan time.Time, 1)
	ch <- c.now
	return ch
}

func TestPacedSink(t *testing.T) {
	clk := &fakeClock{now: time.Unix(0, 0)}
	var got []time.Time
	ps := NewPacedSink(context.Background(), SinkFunc(func(f *can.Frame) error { got = append(got, f.Time); return nil }), 10, clk)
	for i := 0; i < 4; i++ {
		f := can.Frame{Time: start.Add(time.Duration(i) * time.Second)}
		if err := ps.WriteFrame(&f); err != nil {
			t.Fatal(err)
		}
	}
	want := []time.Duration{100 * time.Millisecond, 100 * time.Millisecond, 100 * time.Millisecond}
	if !reflect.DeepEqual(clk.waits, want) || len(got) != 4 {
		t.Errorf("waits %v, frames %d; want %v, 4", clk.waits, len(got), want)
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	ps = NewPacedSink(ctx, SinkFunc(func(*can.Frame) error { return nil }), 1, nil)
	if err := ps.WriteFrame(&can.Frame{Time: start}); !errors.Is(err, context.Canceled) {
		t.Errorf("cancelled sink: %v", err)
	}
}

func TestBatchOf(t *testing.T) {
	for _, c := range []struct {
		t    time.Time
		want int64
	}{
		{time.Unix(1659801600, 0), 2766336}, // 2022-08-07 00:00 China: genesis
		{time.Unix(1659801599, 0), 2766335},
		{time.Unix(1659802199, 999), 2766336},
		{time.Unix(-1, 0), -1},
	} {
		if got := BatchOf(c.t); got != c.want {
			t.Errorf("BatchOf(%v) = %d, want %d", c.t.Unix(), got, c.want)
		}
	}
}
