package vehicle

import (
	"context"
	"io"
	"time"

	"github.com/csop/tbox/can"
)

// LogSink writes frames as a candump -l log. Call Flush at the end.
type LogSink struct{ w *can.Writer }

var _ Sink = (*LogSink)(nil)

// NewLogSink returns a sink writing a candump log to w.
func NewLogSink(w io.Writer) *LogSink { return &LogSink{w: can.NewWriter(w)} }

// WriteFrame writes one log line.
func (s *LogSink) WriteFrame(f *can.Frame) error { return s.w.Write(f) }

// Flush writes buffered lines.
func (s *LogSink) Flush() error { return s.w.Flush() }

// Clock is the time source of a PacedSink.
type Clock interface {
	Now() time.Time
	After(d time.Duration) <-chan time.Time
}

type systemClock struct{}

func (systemClock) Now() time.Time                         { return time.Now() }
func (systemClock) After(d time.Duration) <-chan time.Time { return time.After(d) }

// PacedSink passes frames to another sink at their recorded pace, speeded up
// by a factor: with Speedup 60, an hour of frames takes a minute. The first
// frame goes at once.
type PacedSink struct {
	ctx     context.Context
	next    Sink
	clock   Clock
	speedup float64
	t0      time.Time // first frame's time
	w0      time.Time // wall time of the first frame
}

var _ Sink = (*PacedSink)(nil)

// NewPacedSink returns a sink that paces frames into next until ctx is done.
// A nil clock is the system clock; speedup <= 0 means 1.
func NewPacedSink(ctx context.Context, next Sink, speedup float64, clock Clock) *PacedSink {
	if clock == nil {
		clock = systemClock{}
	}
	if speedup <= 0 {
		speedup = 1
	}
	return &PacedSink{ctx: ctx, next: next, clock: clock, speedup: speedup}
}

// WriteFrame waits until the frame is due, then passes it on. It returns
// ctx.Err() when the context ends first.
func (s *PacedSink) WriteFrame(f *can.Frame) error {
	if s.t0.IsZero() {
		s.t0, s.w0 = f.Time, s.clock.Now()
	} else {
		due := s.w0.Add(time.Duration(float64(f.Time.Sub(s.t0)) / s.speedup))
		if d := due.Sub(s.clock.Now()); d > 0 {
			select {
			case <-s.ctx.Done():
				return s.ctx.Err()
			case <-s.clock.After(d):
			}
		}
	}
	if err := s.ctx.Err(); err != nil {
		return err
	}
	return s.next.WriteFrame(f)
}
