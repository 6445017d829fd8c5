package agent_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/csop/tbox/agent"
	"github.com/csop/tbox/agent/profile"
	"github.com/csop/tbox/can"
	"github.com/csop/tbox/can/cantest"
	"github.com/csop/tbox/signer"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// runRig is an Attester on the sample car's profile, a fresh device key and an
// outbox in memory.
type runRig struct {
	p   *profile.Profile
	key signer.Signer
	ob  *agent.MemoryOutbox
	att *agent.Attester
}

func newRunRig(t *testing.T) *runRig {
	t.Helper()
	p, err := profile.Load("profile/testdata/ev.toml")
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
	r := &runRig{p: p, key: key, ob: &agent.MemoryOutbox{}}
	r.resume(t)
	return r
}

// resume makes a new Attester on the runRig's outbox, as after a restart.
func (r *runRig) resume(t *testing.T) {
	t.Helper()
	att, err := agent.NewAttester(agent.AttesterConfig{ChainID: 20220807, Profile: r.p}, r.key, r.ob)
	if err != nil {
		t.Fatal(err)
	}
	r.att = att
}

// odo is an odometer frame reading meters at time at.
func (r *runRig) odo(t *testing.T, meters float64, at time.Time) can.Frame {
	t.Helper()
	f, err := r.p.Encode(profile.Odometer, meters)
	if err != nil {
		t.Fatal(err)
	}
	f.Time, f.Bus = at, "can0"
	return f
}

// attestations parses every record of the outbox.
func (r *runRig) attestations(t *testing.T) []*signer.Attestation {
	t.Helper()
	var out []*signer.Attestation
	for _, rec := range r.ob.Records() {
		a, err := signer.ParseWire(rec.Wire)
		if err != nil {
			t.Fatalf("seq %d: %v", rec.Seq, err)
		}
		out = append(out, a)
	}
	return out
}

// metersPerBatch adds up the attested meters by batch.
func metersPerBatch(as []*signer.Attestation) map[uint64]uint64 {
	m := map[uint64]uint64{}
	for _, a := range as {
		m[a.Batch] += a.Meters
	}
	return m
}

func batchAt(t time.Time) uint64 { return uint64(t.Unix() / 600) }

// startRun starts a.Run and returns a function that stops it and returns its
// error.
func startRun(t *testing.T, a *agent.Agent) (stop func() error, done <-chan error) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	ch := make(chan error, 1)
	go func() { ch <- a.Run(ctx) }()
	var once sync.Once
	var err error
	stop = func() error {
		once.Do(func() {
			cancel()
			select {
			case err = <-ch:
			case <-time.After(10 * time.Second):
				t.Fatal("Run did not return within 10 s of its context ending")
			}
		})
		return err
	}
	t.Cleanup(func() { stop() })
	return stop, ch
}

// waitFrames waits until the agent has handed n frames to the engine.
func waitFrames(t *testing.T, a *agent.Agent, n uint64) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for a.C.Frames.Load() < n {
		if time.Now().After(deadline) {
			t.Fatalf("%d frames handled after 5 s, want %d", a.C.Frames.Load(), n)
		}
		time.Sleep(time.Millisecond)
	}
}

// awayFromBoundary waits, if need be, until the next batch boundary is at
// least d away, so that only the stop can close the span under test.
func awayFromBoundary(d time.Duration) {
	now := time.Now()
	next := now.Truncate(600 * time.Second).Add(600 * time.Second)
	if next.Sub(now) < d {
		time.Sleep(next.Sub(now) + 100*time.Millisecond)
	}
}

func busSource(bus *cantest.Bus, name string, logTime bool) agent.Source {
	rx := bus.NewReceiver()
	return agent.Source{Name: name, Rx: rx, Close: rx.Close, LogTime: logTime}
}

// TestRunStopClosesOpenSpan: the distance of a span still open when the
// agent is stopped is attested at the stop, in the batch it was driven in.
func TestRunStopClosesOpenSpan(t *testing.T) {
	r := newRunRig(t)
	bus := cantest.NewBus()
	defer bus.Close()
	a := agent.New(r.att, agent.Options{Sources: []agent.Source{busSource(bus, "can0", false)}, Tick: 20 * time.Millisecond})
	awayFromBoundary(5 * time.Second)
	stop, _ := startRun(t, a)
	at := time.Now()
	for i, m := range []float64{100_000, 100_010, 100_030} { // 180 and 360 km/h... within the 200 m a 5 Hz frame may advance
		bus.Send(r.odo(t, m, at.Add(time.Duration(i)*200*time.Millisecond)))
	}
	waitFrames(t, a, 3)
	time.Sleep(50 * time.Millisecond) // a few ticks: the span stays open
	if n := len(r.ob.Records()); n != 0 {
		t.Fatalf("%d attestations before the stop, want the span still open", n)
	}
	if err := stop(); err != nil {
		t.Fatalf("Run: %v", err)
	}
	as := r.attestations(t)
	if len(as) != 1 || as[0].Meters != 30 || as[0].Batch != batchAt(at) || as[0].Batches != 1 {
		t.Fatalf("attestations %+v, want one of 30 m in batch %d", as, batchAt(at))
	}
}

// failingRx is a source that fails at once.
type failingRx struct{ err error }

func (f failingRx) Receive() bool     { return false }
func (f failingRx) Frame() *can.Frame { return nil }
func (f failingRx) Err() error        { return f.err }

var errBusGone = errors.New("bus gone")

// TestRunSourceErrorKeepsOthers: a source that fails is counted and logged;
// the other sources go on, and Run goes on until it is stopped.
func TestRunSourceErrorKeepsOthers(t *testing.T) {
	r := newRunRig(t)
	bus := cantest.NewBus()
	defer bus.Close()
	a := agent.New(r.att, agent.Options{Sources: []agent.Source{
		{Name: "can1", Rx: failingRx{errBusGone}},
		busSource(bus, "can0", false),
	}})
	awayFromBoundary(5 * time.Second)
	stop, done := startRun(t, a)
	deadline := time.Now().Add(5 * time.Second)
	for a.C.SourceErrors.Load() == 0 {
		if time.Now().After(deadline) {
			t.Fatal("the failed source was not counted")
		}
		time.Sleep(time.Millisecond)
	}
	at := time.Now()
	bus.Send(r.odo(t, 5_000, at))
	bus.Send(r.odo(t, 5_080, at.Add(time.Second)))
	waitFrames(t, a, 2)
	select {
	case err := <-done:
		t.Fatalf("Run returned %v after one source failed", err)
	case <-time.After(100 * time.Millisecond):
	}
	if err := stop(); err != nil {
		t.Fatalf("Run: %v", err)
	}
	if n := a.C.SourceErrors.Load(); n != 1 {
		t.Errorf("source errors %d, want 1", n)
	}
	if got := metersPerBatch(r.attestations(t)); !maps.Equal(got, map[uint64]uint64{batchAt(at): 80}) {
		t.Errorf("meters per batch %v, want 80 in batch %d", got, batchAt(at))
	}
}

// TestRunTimeScale: with TimeScale, a frame's time counts TimeScale times
// further from Epoch, so a compressed drive keeps its batches.
func TestRunTimeScale(t *testing.T) {
	for _, scale := range []float64{0, 600} {
		t.Run(fmt.Sprintf("scale %v", scale), func(t *testing.T) {
			r := newRunRig(t)
			bus := cantest.NewBus()
			defer bus.Close()
			// The frames are in the past, so that the stop (at the scaled
			// wall clock) comes after them; no tick runs meanwhile.
			epoch := time.Now().Add(-2 * time.Second)
			a := agent.New(r.att, agent.Options{
				Sources: []agent.Source{busSource(bus, "can0", false)},
				Tick:    time.Hour, TimeScale: scale, Epoch: epoch,
			})
			stop, _ := startRun(t, a)
			want := map[uint64]uint64{}
			factor := max(scale, 1)
			for i := range 4 {
				at := epoch.Add(time.Duration(i) * 500 * time.Millisecond)
				bus.Send(r.odo(t, 20_000+50*float64(i), at))
				if i > 0 {
					want[batchAt(epoch.Add(time.Duration(float64(at.Sub(epoch))*factor)))] += 50
				}
			}
			waitFrames(t, a, 4)
			if err := stop(); err != nil {
				t.Fatalf("Run: %v", err)
			}
			if got := metersPerBatch(r.attestations(t)); !maps.Equal(got, want) {
				t.Errorf("time scale %v: meters per batch %v, want %v", scale, got, want)
			}
			if scale > 1 && len(want) < 2 {
				t.Errorf("the scaled drive covers %d batches: the test proves nothing", len(want))
			}
		})
	}
}

// TestRunReplayEndsAtLastFrame: a log source ends Run by itself, and the
// last span closes at the log's last frame time, not at the wall clock's.
func TestRunReplayEndsAtLastFrame(t *testing.T) {
	r := newRunRig(t)
	bus := cantest.NewBus()
	src := busSource(bus, "drive.log", true)
	t0 := time.Date(2024, 3, 4, 5, 6, 0, 0, time.UTC)
	for i := range 30 {
		bus.Send(r.odo(t, 1_000_000+float64(i*30), t0.Add(time.Duration(i)*time.Second)))
	}
	bus.Close() // the end of the log
	a := agent.New(r.att, agent.Options{Sources: []agent.Source{src}})
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := a.Run(ctx); err != nil {
		t.Fatalf("Run: %v", err)
	}
	if ctx.Err() != nil {
		t.Fatal("Run waited for its context at the end of the log")
	}
	as := r.attestations(t)
	if len(as) != 1 || as[0].Meters != 29*30 || as[0].Batch != batchAt(t0) || as[0].Batches != 1 {
		t.Fatalf("attestations %+v, want one of %d m in batch %d", as, 29*30, batchAt(t0))
	}
}

// TestRunReplayResumes: a replay restarted on the same log skips what the
// first run accounted for: the chain goes on in time order and counts each
// meter once.
func TestRunReplayResumes(t *testing.T) {
	r := newRunRig(t)
	t0 := time.Date(2024, 3, 4, 5, 0, 0, 0, time.UTC)
	var frames []can.Frame
	for i := range 40 { // 20 km/h, one frame a minute, over 4 batches
		frames = append(frames, r.odo(t, 50_000+float64(i*330), t0.Add(time.Duration(i)*time.Minute)))
	}
	replay := func(upto int) {
		bus := cantest.NewBus()
		src := busSource(bus, "drive.log", true)
		for _, f := range frames[:upto] {
			bus.Send(f)
		}
		bus.Close()
		if err := agent.New(r.att, agent.Options{Sources: []agent.Source{src}}).Run(context.Background()); err != nil {
			t.Fatalf("Run: %v", err)
		}
	}
	replay(25) // stopped after 25 frames
	made := len(r.ob.Records())
	r.resume(t)
	replay(len(frames)) // restarted on the whole log
	as := r.attestations(t)
	if len(as) <= made {
		t.Fatalf("%d attestations after the restart, %d before", len(as), made)
	}
	var total uint64
	for i, a := range as {
		total += a.Meters
		if a.Flags&0x01 != 0 {
			t.Errorf("seq %d: ROLLBACK: frames from before the restart were fed again", a.Seq)
		}
		if i > 0 && a.Batch < as[i-1].Batch+uint64(as[i-1].Batches)-1 {
			t.Errorf("seq %d starts in batch %d, before seq %d ended (batch %d)", a.Seq, a.Batch, as[i-1].Seq, as[i-1].Batch)
		}
	}
	if want := uint64(39 * 330); total != want {
		t.Errorf("attested %d m in all, want %d", total, want)
	}
}

// fakeUplink is an Uploader that runs until its context ends.
type fakeUplink struct {
	notified atomic.Int32
	stopped  chan struct{}
}

func (u *fakeUplink) Run(ctx context.Context) error {
	<-ctx.Done()
	close(u.stopped)
	return nil
}

func (u *fakeUplink) Notify() { u.notified.Add(1) }

// TestRunGrace: after a stop the uplink gets Grace to send the last span;
// Drained ends the wait as soon as the outbox is empty.
func TestRunGrace(t *testing.T) {
	tests := []struct {
		name       string
		grace      time.Duration
		drainAfter time.Duration // after the stop; 0: never
		min, max   time.Duration // of the stop
	}{
		{"drained at once", 10 * time.Second, time.Nanosecond, 0, time.Second},
		{"drained after 300ms", 10 * time.Second, 300 * time.Millisecond, 300 * time.Millisecond, 2 * time.Second},
		{"never drained", 400 * time.Millisecond, 0, 400 * time.Millisecond, 3 * time.Second},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := newRunRig(t)
			bus := cantest.NewBus()
			defer bus.Close()
			up := &fakeUplink{stopped: make(chan struct{})}
			var stoppedAt atomic.Int64
			a := agent.New(r.att, agent.Options{
				Sources: []agent.Source{busSource(bus, "can0", false)},
				Uplink:  up,
				Grace:   tt.grace,
				Drained: func() bool {
					at := stoppedAt.Load()
					return tt.drainAfter > 0 && at != 0 && time.Since(time.Unix(0, at)) >= tt.drainAfter
				},
			})
			stop, _ := startRun(t, a)
			at := time.Now()
			bus.Send(r.odo(t, 7_000, at))
			bus.Send(r.odo(t, 7_100, at.Add(time.Second)))
			waitFrames(t, a, 2)
			before := up.notified.Load()
			stoppedAt.Store(time.Now().UnixNano())
			begin := time.Now()
			if err := stop(); err != nil {
				t.Fatalf("Run: %v", err)
			}
			took := time.Since(begin)
			if took < tt.min || took > tt.max {
				t.Errorf("stop took %v, want %v to %v", took, tt.min, tt.max)
			}
			select {
			case <-up.stopped:
			default:
				t.Error("the uplink still runs after Run returned")
			}
			if up.notified.Load() <= before {
				t.Error("the uplink was not notified of the last span")
			}
			if n := len(r.ob.Records()); n == 0 {
				t.Error("no attestation of the open span")
			}
		})
	}
}

// TestRunLogsFirstFrame: the first frame handed to the engine is logged
// once, with its bus and the time since the agent started; make bench
// times a cold start by this line.
func TestRunLogsFirstFrame(t *testing.T) {
	r := newRunRig(t)
	bus := cantest.NewBus()
	src := busSource(bus, "drive.log", true)
	t0 := time.Date(2024, 3, 4, 5, 6, 0, 0, time.UTC)
	for i := range 3 {
		bus.Send(r.odo(t, 1_000_000+float64(i*30), t0.Add(time.Duration(i)*time.Second)))
	}
	bus.Close()
	var logs bytes.Buffer
	a := agent.New(r.att, agent.Options{Sources: []agent.Source{src}, Logger: slog.New(slog.NewTextHandler(&logs, nil))})
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := a.Run(ctx); err != nil {
		t.Fatalf("Run: %v", err)
	}
	var lines []string
	for _, l := range strings.Split(logs.String(), "\n") {
		if strings.Contains(l, `msg="first frame"`) {
			lines = append(lines, l)
		}
	}
	if len(lines) != 1 || !strings.Contains(lines[0], "bus=can0") || !strings.Contains(lines[0], "since_start=") {
		t.Fatalf("first-frame log lines %q, want one with bus=can0 and since_start\nlog:\n%s", lines, logs.String())
	}
}

// TestRunReadLag: a frame handed over late by its source (a coalescing
// socket) counts in the batch of its kernel time when ReadLag covers the
// delay, even though ticks ran past the batch's end meanwhile; without it,
// the tick already opened the next batch and the frame lands there.
func TestRunReadLag(t *testing.T) {
	const scale = 600 // a batch of 10 minutes passes in a second
	for _, tc := range []struct {
		lag      time.Duration
		ownBatch bool
		name     string
	}{
		{0, false, "no lag"},
		{100 * time.Millisecond, true, "lag 100ms"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := newRunRig(t)
			bus := cantest.NewBus()
			defer bus.Close()
			epoch := time.Now()
			a := agent.New(r.att, agent.Options{
				Sources: []agent.Source{busSource(bus, "can0", false)},
				Tick:    5 * time.Millisecond, ReadLag: tc.lag, TimeScale: scale, Epoch: epoch,
			})
			scaled := func(w time.Time) time.Time { return epoch.Add(time.Duration(float64(w.Sub(epoch)) * scale)) }
			wall := func(s time.Time) time.Time { return epoch.Add(time.Duration(float64(s.Sub(epoch)) / scale)) }
			// The next batch boundary at least 200 ms of wall time away.
			boundary := scaled(time.Now()).Truncate(10 * time.Minute).Add(10 * time.Minute)
			if wall(boundary).Sub(time.Now()) < 200*time.Millisecond {
				boundary = boundary.Add(10 * time.Minute)
			}
			wb := wall(boundary)
			stop, _ := startRun(t, a)
			bus.Send(r.odo(t, 10_000, time.Now()))
			waitFrames(t, a, 1)
			time.Sleep(time.Until(wb.Add(30 * time.Millisecond)))
			// Received 20 ms before the boundary, handed over 30 ms after it.
			bus.Send(r.odo(t, 10_500, wb.Add(-20*time.Millisecond)))
			waitFrames(t, a, 2)
			if err := stop(); err != nil {
				t.Fatalf("Run: %v", err)
			}
			before, after := uint64(boundary.Unix()/600)-1, uint64(boundary.Unix()/600)
			want := map[uint64]uint64{after: 500}
			if tc.ownBatch {
				want = map[uint64]uint64{before: 500}
			}
			if got := metersPerBatch(r.attestations(t)); !maps.Equal(got, want) {
				t.Errorf("meters per batch %v, want %v", got, want)
			}
		})
	}
}
