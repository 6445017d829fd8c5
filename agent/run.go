package agent

import (
	"context"
	"errors"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/sync/errgroup"

	"github.com/csop/tbox/can"
)

// FrameReceiver is a stream of frames: a SocketCAN socket or a candump log
// reader. Whoever opened it closes it.
type FrameReceiver interface {
	Receive() bool
	Frame() *can.Frame
	Err() error
}

// Source is one CAN input of the agent.
type Source struct {
	Name string // bus or log name, for logs and status
	Rx   FrameReceiver
	// Close unblocks a pending Receive at shutdown; nil if not needed.
	Close func() error
	// LogTime means the frames carry a log's time, not the wall clock's:
	// the agent then takes its time from the frames alone and trusts it
	// (a replay bench). A replay restarted on its log skips the frames
	// older than the Attester's ResumeTime, which it has accounted for.
	LogTime bool
}

// Uploader drains the outbox; Notify must never block.
type Uploader interface {
	Run(ctx context.Context) error
	Notify()
}

// Service is an optional part that runs beside the agent, such as the
// diagnostic shell.
type Service interface {
	Run(ctx context.Context) error
}

// Options configures Run.
type Options struct {
	Sources []Source
	Uplink  Uploader // nil: attestations stay in the outbox
	Shell   Service  // nil: no diagnostic shell
	Clock   *ClockCheck
	// Tick is how often the batch clock and the wall clock are checked on
	// a quiet bus; default 1 s.
	Tick time.Duration
	// ReadLag is how late a source may hand over a frame after its kernel
	// receive time (socketcan.WithCoalesce's interval, with a margin). A
	// tick moves the batch clock only up to now - ReadLag, so that such a
	// frame still counts in its own batch, not in the next one a tick
	// opened meanwhile.
	ReadLag time.Duration
	// Grace is how long, after a stop is asked, the uplink may go on
	// uploading the last span; default 5 s.
	Grace time.Duration
	// TimeScale, when above 1, compresses time for a bench or a demo: a
	// frame's time t counts as Epoch + (t-Epoch)*TimeScale, so a drive
	// simulated TimeScale times faster than real time keeps its speeds,
	// and its batches, in the mileage engine. Never set on a vehicle.
	TimeScale float64
	Epoch     time.Time
	// Drained, if set, reports that the uplink has nothing left to send,
	// which ends the Grace early.
	Drained func() bool
	Logger  *slog.Logger
}

// Counters are the agent's running totals, for the shell and health.
type Counters struct {
	_ [0]func() // not comparable: no generated equality function (tboxd size)

	Frames       atomic.Uint64 // frames handed to the engine
	SourceErrors atomic.Uint64 // sources that ended with an error
	LastFrame    atomic.Int64  // unix nanos of the last frame
	ClockBad     atomic.Bool   // wall clock untrustworthy at the last check
	// LoopBeat is the unix nanos at which the loop last finished a tick
	// (or started): a watchdog's liveness signal. A loop stuck, or a
	// source stuck with the attester (a durable write that never
	// returns), stops it.
	LoopBeat atomic.Int64
	Started  time.Time
}

// Agent is the running T-Box agent: CAN sources feeding the Attester, and
// the uplink draining the outbox.
type Agent struct {
	att  *Attester
	opts Options
	log  *slog.Logger
	C    Counters
	mu   sync.Mutex // serializes the Attester between the sources, the ticks and Stop

	resume  time.Time // a replay skips frames older than this; under mu
	skipped uint64    // frames so skipped; under mu

	progress atomic.Pointer[Progress] // the open span, published by the loop
	madeSeen uint64                   // Attester.Made at the last publish; under mu
}

// New returns an agent around att.
func New(att *Attester, opts Options) *Agent {
	if opts.Tick <= 0 {
		opts.Tick = time.Second
	}
	if opts.Grace <= 0 {
		opts.Grace = 5 * time.Second
	}
	log := opts.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	if opts.Epoch.IsZero() {
		opts.Epoch = time.Now()
	}
	a := &Agent{att: att, opts: opts, log: log}
	a.C.Started = time.Now()
	a.publishProgress()
	return a
}

// Progress returns the open span as the agent's loop last published it:
// once per tick (Options.Tick) and after every attestation. It never waits
// for the loop; its Modes must not be modified.
func (a *Agent) Progress() Progress {
	if p := a.progress.Load(); p != nil {
		return *p
	}
	return Progress{}
}

// publishProgress snapshots the open span for Progress; the caller holds
// a.mu or owns the Attester.
func (a *Agent) publishProgress() {
	p := a.att.OpenSpan()
	a.progress.Store(&p)
	a.madeSeen = a.att.Made()
}

// Attester returns the agent's attester (read-only use by the shell).
func (a *Agent) Attester() *Attester { return a.att }

// Run reads every source until ctx is done, then closes the open span,
// gives the uplink Grace to send it, and returns. A source that fails does
// not stop the others; Run returns the first error of the engine or of a
// durable write, which are fatal.
func (a *Agent) Run(ctx context.Context) error {
	srcCtx, stopSources := context.WithCancel(ctx)
	defer stopSources()

	// Each source's goroutine feeds the attester itself, under a.mu: no
	// hand-off between goroutines per frame. While an attestation is made
	// durable (an fsync), the kernel's socket buffer holds the frames.
	var readers sync.WaitGroup
	fatal := make(chan error, len(a.opts.Sources))
	done := make(chan struct{})
	logTime := false
	for _, s := range a.opts.Sources {
		logTime = logTime || s.LogTime
	}
	if logTime {
		a.resume = a.att.ResumeTime()
	}
	for _, s := range a.opts.Sources {
		readers.Add(1)
		go func(s Source) {
			defer readers.Done()
			if err := a.read(srcCtx, s); err != nil {
				fatal <- err
			}
		}(s)
		if s.Close != nil {
			go func(s Source) {
				<-srcCtx.Done()
				s.Close()
			}(s)
		}
	}
	go func() {
		readers.Wait()
		close(done)
	}()

	upCtx, stopUplink := context.WithCancel(context.WithoutCancel(ctx))
	defer stopUplink()
	g, gctx := errgroup.WithContext(upCtx)
	if a.opts.Uplink != nil {
		g.Go(func() error { return a.opts.Uplink.Run(gctx) })
	}
	if a.opts.Shell != nil {
		g.Go(func() error {
			err := a.opts.Shell.Run(srcCtx)
			if err != nil && !errors.Is(err, context.Canceled) {
				a.log.Error("diagnostic shell stopped", "err", err)
			}
			return nil
		})
	}

	err := a.loop(ctx, done, fatal, logTime)
	stopSources()
	<-done // let the readers finish
	if err == nil {
		err = a.stop(logTime)
	}
	if a.opts.Uplink != nil {
		a.opts.Uplink.Notify()
		a.grace(gctx)
	}
	stopUplink()
	if gerr := g.Wait(); err == nil && gerr != nil && !errors.Is(gerr, context.Canceled) {
		err = gerr
	}
	return err
}

// read feeds the frames of one source to the attester until the source
// ends; it returns only an error of the attester (a durable write), which
// is fatal.
func (a *Agent) read(ctx context.Context, s Source) error {
	for s.Rx.Receive() {
		if ctx.Err() != nil {
			return nil
		}
		if err := a.handle(s.Rx.Frame()); err != nil {
			return err
		}
	}
	if err := s.Rx.Err(); errors.Is(err, can.ErrTruncated) {
		a.log.Warn("CAN log ends in a cut line (candump killed mid-line?); every frame before it was read", "source", s.Name, "err", err)
		return nil
	} else if err != nil && ctx.Err() == nil && !errors.Is(err, context.Canceled) {
		a.C.SourceErrors.Add(1)
		a.log.Error("CAN source stopped", "source", s.Name, "err", err)
		return nil
	}
	a.log.Info("CAN source ended", "source", s.Name)
	return nil
}

// handle feeds one frame to the attester. f belongs to the source and may
// be changed (its time, under TimeScale).
func (a *Agent) handle(f *can.Frame) error {
	if a.opts.TimeScale > 1 {
		f.Time = a.scale(f.Time)
	}
	a.mu.Lock()
	if !a.resume.IsZero() {
		// A replay restarted on its log skips the frames the restored
		// state has accounted for: fed again, they would go back in time.
		if f.Time.Before(a.resume) {
			a.skipped++
			a.mu.Unlock()
			return nil
		}
		a.log.Info("replay resumed after the frames accounted for before the restart", "skipped", a.skipped)
		a.resume = time.Time{}
	}
	err := a.att.Frame(f)
	if err == nil && a.att.Made() != a.madeSeen {
		a.publishProgress() // the frame closed a span
	}
	a.mu.Unlock()
	if err != nil {
		return err
	}
	if a.C.Frames.Add(1) == 1 {
		a.log.Info("first frame", "bus", f.Bus, "since_start", time.Since(a.C.Started))
	}
	a.C.LastFrame.Store(f.Time.UnixNano())
	return nil
}

// loop ticks the batch clock until ctx is done, a source fails fatally,
// or, for log sources, every log has ended.
func (a *Agent) loop(ctx context.Context, done <-chan struct{}, fatal <-chan error, logTime bool) error {
	tick := time.NewTicker(a.opts.Tick)
	defer tick.Stop()
	a.C.LoopBeat.Store(nowNanos())
	for {
		select {
		case <-ctx.Done():
			return nil
		case err := <-fatal:
			return err
		case <-done:
			select {
			case err := <-fatal:
				return err
			default:
			}
			if logTime {
				return nil // the logs are done: close the last span
			}
			done = nil // every bus is gone: wait to be stopped
		case now := <-tick.C:
			if logTime {
				a.mu.Lock()
				a.publishProgress()
				a.mu.Unlock()
				a.C.LoopBeat.Store(nowNanos())
				continue // a replay's clock is its frames
			}
			if err := a.tick(now); err != nil {
				return err
			}
			a.C.LoopBeat.Store(nowNanos())
		}
	}
}

func (a *Agent) tick(now time.Time) error {
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.opts.Clock != nil {
		why := a.opts.Clock.Untrusted(now)
		if bad := why != ""; bad != a.C.ClockBad.Load() {
			a.C.ClockBad.Store(bad)
			if bad {
				a.log.Warn("wall clock untrustworthy: attestations get CLOCK", "why", why)
			} else {
				a.log.Info("wall clock trustworthy again")
			}
		}
		a.att.MarkClock(why != "")
	}
	now = now.Add(-a.opts.ReadLag)
	if a.opts.TimeScale > 1 {
		now = a.scale(now)
	}
	if err := a.att.Tick(now); err != nil {
		return errorf("tick: %w", err)
	}
	a.publishProgress()
	return nil
}

// stop closes the open span at the agent's current time.
func (a *Agent) stop(logTime bool) error {
	a.mu.Lock()
	defer a.mu.Unlock()
	now := time.Now()
	if a.opts.TimeScale > 1 {
		now = a.scale(now)
	}
	if logTime {
		last := a.C.LastFrame.Load()
		if last == 0 {
			return nil
		}
		now = fromNanos(last)
	}
	if err := a.att.Stop(now); err != nil {
		return errorf("stop: %w", err)
	}
	a.publishProgress()
	a.log.Info("open span closed at stop", "made", a.att.Made())
	return nil
}

// grace waits up to Grace for the uplink to drain the outbox.
func (a *Agent) grace(ctx context.Context) {
	deadline := time.NewTimer(a.opts.Grace)
	defer deadline.Stop()
	poll := time.NewTicker(100 * time.Millisecond)
	defer poll.Stop()
	for {
		if a.opts.Drained != nil && a.opts.Drained() {
			return
		}
		select {
		case <-deadline.C:
			a.log.Warn("stopping with attestations not yet acked; they stay in the outbox")
			return
		case <-ctx.Done():
			return
		case <-poll.C:
		}
	}
}

// scale maps a real time to the compressed time of a bench (TimeScale).
func (a *Agent) scale(t time.Time) time.Time {
	d := float64(t.Sub(a.opts.Epoch)) * a.opts.TimeScale
	return a.opts.Epoch.Add(time.Duration(d))
}
