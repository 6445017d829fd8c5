package agent

import (
	"context"
	"path/filepath"
	"slices"
	"testing"
	"time"

	"github.com/csop/tbox/agent/mileage"
	"github.com/csop/tbox/agent/profile"
	"github.com/csop/tbox/can"
	"github.com/csop/tbox/can/cantest"
	"github.com/csop/tbox/signer"
)

// progressRig is an Attester on the sample car's profile with an outbox in
// memory.
type progressRig struct {
	p   *profile.Profile
	ob  *MemoryOutbox
	att *Attester
}

func newProgressRig(t testing.TB) *progressRig {
	t.Helper()
	p, err := profile.Load(filepath.Join("profile", "testdata", "ev.toml"))
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(t.TempDir(), "device.key")
	if _, err := signer.GenerateKeyFile(path); err != nil {
		t.Fatal(err)
	}
	key, err := signer.LoadKeyFile(path)
	if err != nil {
		t.Fatal(err)
	}
	ob := &MemoryOutbox{}
	att, err := NewAttester(AttesterConfig{ChainID: 20220807, Profile: p}, key, ob)
	if err != nil {
		t.Fatal(err)
	}
	return &progressRig{p: p, ob: ob, att: att}
}

// frame encodes a reading of kind k at time at.
func (r *progressRig) frame(t testing.TB, k profile.Kind, v float64, at time.Time) can.Frame {
	t.Helper()
	f, err := r.p.Encode(k, v)
	if err != nil {
		t.Fatal(err)
	}
	f.Time, f.Bus = at, "can0"
	return f
}

func (r *progressRig) mode(t testing.TB, name string, at time.Time) can.Frame {
	t.Helper()
	v, ok := r.p.ModeValue(name)
	if !ok {
		t.Fatalf("profile has no drive mode %q", name)
	}
	return r.frame(t, profile.DriveMode, float64(v), at)
}

// TestOpenSpanIsTheNextAttestation: what OpenSpan shows of the open span
// (batch, meters, modes, flags) is what the attestation says when the span
// closes at the batch boundary. (Odometer frames come at most 5 s apart:
// longer silences flag GAP, which OpenSpan shows too.)
func TestOpenSpanIsTheNextAttestation(t *testing.T) {
	const batch = 2833333
	t0 := time.Unix(batch*600+60, 0)
	at := func(s int) time.Time { return t0.Add(time.Duration(s) * time.Second) }
	tests := []struct {
		name     string
		clockBad bool
		events   func(r *progressRig, t *testing.T) []can.Frame
		want     Progress
	}{
		{
			name: "two drive modes",
			events: func(r *progressRig, t *testing.T) []can.Frame {
				return []can.Frame{
					r.mode(t, "SPORT", at(0)),
					r.frame(t, profile.Odometer, 100_000, at(0)),
					r.frame(t, profile.Odometer, 100_250, at(4)),
					r.mode(t, "ECO", at(5)),
					r.frame(t, profile.Odometer, 100_400, at(8)),
				}
			},
			want: Progress{Open: true, Batch: batch, Batches: 1, Meters: 400,
				Modes: []mileage.ModeMeters{{Mode: "ECO", Meters: 150}, {Mode: "SPORT", Meters: 250}}},
		},
		{
			name: "odometer rolled back",
			events: func(r *progressRig, t *testing.T) []can.Frame {
				return []can.Frame{
					r.frame(t, profile.Odometer, 100_000, at(0)),
					r.frame(t, profile.Odometer, 100_200, at(3)),
					r.frame(t, profile.Odometer, 100_100, at(6)),
				}
			},
			want: Progress{Open: true, Batch: batch, Batches: 1, Meters: 200,
				Modes: []mileage.ModeMeters{{Mode: mileage.UnknownMode, Meters: 200}}, Flags: signer.FlagRollback},
		},
		{
			name: "odometer jumped",
			events: func(r *progressRig, t *testing.T) []can.Frame {
				return []can.Frame{
					r.frame(t, profile.Odometer, 100_000, at(0)),
					r.frame(t, profile.Odometer, 110_000, at(1)),
					r.frame(t, profile.Odometer, 110_020, at(3)),
					r.frame(t, profile.Odometer, 110_050, at(6)),
				}
			},
			// A JUMP candidate, confirmed by the readings after it.
			want: Progress{Open: true, Batch: batch, Batches: 1, Meters: 10_050,
				Modes: []mileage.ModeMeters{{Mode: mileage.UnknownMode, Meters: 10_050}}, Flags: signer.FlagJump},
		},
		{
			name: "odometer glitch",
			events: func(r *progressRig, t *testing.T) []can.Frame {
				return []can.Frame{
					r.frame(t, profile.Odometer, 100_000, at(0)),
					r.frame(t, profile.Odometer, 110_000, at(1)),
					r.frame(t, profile.Odometer, 100_020, at(2)),
				}
			},
			// A JUMP candidate that the next reading did not continue:
			// not credited.
			want: Progress{Open: true, Batch: batch, Batches: 1, Meters: 20,
				Modes: []mileage.ModeMeters{{Mode: mileage.UnknownMode, Meters: 20}}, Flags: signer.FlagJump},
		},
		{
			name: "odometer silent while moving",
			events: func(r *progressRig, t *testing.T) []can.Frame {
				return []can.Frame{
					r.frame(t, profile.Odometer, 100_000, at(0)),
					r.frame(t, profile.Odometer, 100_300, at(20)),
				}
			},
			want: Progress{Open: true, Batch: batch, Batches: 1, Meters: 300,
				Modes: []mileage.ModeMeters{{Mode: mileage.UnknownMode, Meters: 300}}, Flags: signer.FlagGap},
		},
		{
			name:     "clock untrusted",
			clockBad: true,
			events: func(r *progressRig, t *testing.T) []can.Frame {
				return []can.Frame{
					r.frame(t, profile.Odometer, 100_000, at(0)),
					r.frame(t, profile.Odometer, 100_150, at(3)),
				}
			},
			want: Progress{Open: true, Batch: batch, Batches: 1, Meters: 150,
				Modes: []mileage.ModeMeters{{Mode: mileage.UnknownMode, Meters: 150}}, Flags: signer.FlagClock},
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			r := newProgressRig(t)
			if got := r.att.OpenSpan(); got.Open || got.Meters != 0 {
				t.Fatalf("fresh device: OpenSpan = %+v, want nothing open", got)
			}
			r.att.MarkClock(tc.clockBad)
			for _, f := range tc.events(r, t) {
				if err := r.att.Frame(&f); err != nil {
					t.Fatal(err)
				}
			}
			got := r.att.OpenSpan()
			if got.Open != tc.want.Open || got.Batch != tc.want.Batch || got.Batches != tc.want.Batches ||
				got.Meters != tc.want.Meters || got.Flags != tc.want.Flags || !slices.Equal(got.Modes, tc.want.Modes) {
				t.Fatalf("OpenSpan = %+v, want %+v", got, tc.want)
			}
			if n := len(r.ob.Records()); n != 0 {
				t.Fatalf("%d attestations inside the batch, want the span open", n)
			}

			if err := r.att.Tick(time.Unix((batch+1)*600+1, 0)); err != nil {
				t.Fatal(err)
			}
			recs := r.ob.Records()
			if len(recs) != 1 {
				t.Fatalf("%d attestations after the boundary, want 1", len(recs))
			}
			a, err := signer.ParseWire(recs[0].Wire)
			if err != nil {
				t.Fatal(err)
			}
			var modes []mileage.ModeMeters
			for _, m := range a.Modes {
				modes = append(modes, mileage.ModeMeters{Mode: m.Mode, Meters: m.Meters})
			}
			if a.Batch != got.Batch || uint32(a.Batches) != got.Batches || a.Meters != got.Meters ||
				a.Flags != got.Flags || !slices.Equal(modes, got.Modes) {
				t.Fatalf("attestation batch %d×%d, %d m %v, flags %#x; OpenSpan showed %+v",
					a.Batch, a.Batches, a.Meters, a.Modes, a.Flags, got)
			}
			if after := r.att.OpenSpan(); after.Meters != 0 || after.Flags&^signer.FlagClock != 0 {
				t.Fatalf("OpenSpan after the boundary = %+v, want a new empty span", after)
			}
		})
	}
}

// TestAgentProgress: the agent's loop publishes the open span once per
// tick; Progress reads it without the agent's mutex, and after the stop it
// shows the span closed.
func TestAgentProgress(t *testing.T) {
	r := newProgressRig(t)
	bus := cantest.NewBus()
	defer bus.Close()
	rx := bus.NewReceiver()
	a := New(r.att, Options{Sources: []Source{{Name: "can0", Rx: rx, Close: rx.Close}}, Tick: 20 * time.Millisecond})
	if p := a.Progress(); p.Open || p.Meters != 0 {
		t.Fatalf("Progress before Run = %+v, want nothing open", p)
	}
	// Stay clear of a batch boundary: only the stop may close the span.
	if now := time.Now(); now.Unix()%600 > 590 {
		time.Sleep(time.Duration(601-now.Unix()%600) * time.Second)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- a.Run(ctx) }()
	defer func() {
		cancel()
		<-done
	}()

	now := time.Now()
	for i, m := range []float64{100_000, 100_010, 100_030} { // 72-144 km/h
		bus.Send(r.frame(t, profile.Odometer, m, now.Add(time.Duration(i)*500*time.Millisecond)))
	}
	deadline := time.Now().Add(5 * time.Second)
	for a.Progress().Meters != 30 {
		if time.Now().After(deadline) {
			t.Fatalf("Progress = %+v after 5 s, want 30 m", a.Progress())
		}
		time.Sleep(5 * time.Millisecond)
	}
	if p := a.Progress(); !p.Open || p.Batch != uint64(now.Unix()/600) || p.Batches != 1 {
		t.Fatalf("Progress = %+v, want the span open in batch %d", p, now.Unix()/600)
	}

	// The shell's read never waits for the agent, even while it is busy.
	a.mu.Lock()
	got := make(chan Progress, 1)
	go func() { got <- a.Progress() }()
	select {
	case p := <-got:
		if p.Meters != 30 {
			t.Errorf("Progress under the agent's lock = %+v, want 30 m", p)
		}
	case <-time.After(time.Second):
		t.Error("Progress waited for the agent's mutex")
	}
	a.mu.Unlock()

	cancel()
	if err := <-done; err != nil {
		t.Fatalf("Run: %v", err)
	}
	done <- nil // for the deferred receive
	if p := a.Progress(); p.Meters != 0 {
		t.Fatalf("Progress after the stop = %+v, want the span closed", p)
	}
	if recs := r.ob.Records(); len(recs) != 1 {
		t.Fatalf("%d attestations after the stop, want 1", len(recs))
	}
}

// BenchmarkOpenSpan is the cost of one status snapshot (once a second).
func BenchmarkOpenSpan(b *testing.B) {
	r := newProgressRig(b)
	t0 := time.Unix(2833333*600+60, 0)
	for i, m := range []string{"ECO", "SPORT", "NORMAL"} {
		f := r.mode(b, m, t0.Add(time.Duration(i)*3*time.Second))
		o := r.frame(b, profile.Odometer, 100_000+float64(i)*100, t0.Add(time.Duration(i)*3*time.Second))
		for _, fr := range []*can.Frame{&f, &o} {
			if err := r.att.Frame(fr); err != nil {
				b.Fatal(err)
			}
		}
	}
	b.ReportAllocs()
	for b.Loop() {
		if p := r.att.OpenSpan(); p.Meters != 200 {
			b.Fatalf("OpenSpan = %+v", p)
		}
	}
}

// TestOpenSpanShowsCandidate: a pending JUMP candidate shows in the open
// span with its distance above the high-water mark, and no longer once a
// reading back on the course made it a glitch.
func TestOpenSpanShowsCandidate(t *testing.T) {
	r := newProgressRig(t)
	t0 := time.Date(2025, 5, 5, 5, 0, 30, 0, time.UTC)
	for i, m := range []float64{100_000, 100_020, 150_020} {
		f := r.frame(t, profile.Odometer, m, t0.Add(time.Duration(i)*time.Second))
		if err := r.att.Frame(&f); err != nil {
			t.Fatal(err)
		}
	}
	if p := r.att.OpenSpan(); p.Candidate != 50_000 || p.Meters != 20 || p.Flags != signer.FlagJump {
		t.Fatalf("OpenSpan = %+v, want a candidate 50000 m above, 20 m credited, JUMP", p)
	}
	f := r.frame(t, profile.Odometer, 100_040, t0.Add(3*time.Second))
	if err := r.att.Frame(&f); err != nil {
		t.Fatal(err)
	}
	if p := r.att.OpenSpan(); p.Candidate != 0 || p.Meters != 40 {
		t.Fatalf("OpenSpan = %+v, want no candidate, 40 m credited", p)
	}
}
