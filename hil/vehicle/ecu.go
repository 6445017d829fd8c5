package vehicle

import (
	"context"
	"errors"
	"fmt"
	"math"
	"sync"
	"sync/atomic"
	"time"

	"github.com/csop/tbox/agent/profile"
	"github.com/csop/tbox/can"
	"github.com/csop/tbox/can/isotp"
)

// PolledTruth is what the ECU of a polled odometer answered: the truth of a
// drive whose odometer the agent asks for on a live bus.
type PolledTruth struct {
	Requests  int `json:"requests"`  // requests received (exactly the profile's)
	Answers   int `json:"answers"`   // positive responses sent
	Unasked   int `json:"foreign"`   // frames on the request ID that were not the request (nor flow control)
	Silent    int `json:"silent"`    // requests left unanswered: the ECU was silent
	Early     int `json:"early"`     // requests before the drive's first odometer: unanswered
	Abandoned int `json:"abandoned"` // multi-frame answers whose flow control never came
	// FirstOdometer and HighWater are the first and highest odometer
	// answered, meters; Meters is floor(HighWater) - floor(FirstOdometer).
	FirstOdometer float64 `json:"first_odometer_m"`
	HighWater     float64 `json:"high_water_m"`
	Meters        int64   `json:"meters"`
}

// ECU answers the requests of a polled odometer (profile source "obd" or
// "uds") as the car's ECU would: a single frame, or a first frame, then
// the consecutive frames once the tester's flow control has come. The
// scenario sets the odometer it reports and when it is silent.
type ECU struct {
	poll   *profile.Poll
	odo    atomic.Uint64 // float64 bits, meters
	set    atomic.Bool
	silent atomic.Bool
	// FlowTimeout is how long a multi-frame answer waits for flow control
	// (ISO 15765-2 N_Bs, 1 s).
	FlowTimeout time.Duration

	mu    sync.Mutex
	truth PolledTruth
}

// NewECU returns the ECU of p's polled odometer.
func NewECU(p *profile.Profile) (*ECU, error) {
	po, ok := p.Poll()
	if !ok {
		return nil, fmt.Errorf("%w: the profile's odometer is broadcast, not asked for", ErrScenario)
	}
	return &ECU{poll: po, FlowTimeout: time.Second}, nil
}

// Set makes the ECU report meters (floored to the value's unit), or keep
// silent.
func (e *ECU) Set(meters float64, silent bool) {
	e.odo.Store(math.Float64bits(meters))
	e.set.Store(true)
	e.silent.Store(silent)
}

// Truth returns what the ECU has answered so far.
func (e *ECU) Truth() PolledTruth {
	e.mu.Lock()
	defer e.mu.Unlock()
	return e.truth
}

// Port is the ECU's side of the bus: frames of the request ID in, frames of
// the response ID out.
type Port interface {
	ReadFrame(ctx context.Context) (can.Frame, error)
	WriteFrame(*can.Frame) error
}

// Run answers requests on port until ctx is done.
func (e *ECU) Run(ctx context.Context, port Port) error {
	var pending []can.Frame // consecutive frames waiting for flow control
	var deadline time.Time
	req := e.poll.Payload()
	for {
		rctx, cancel := ctx, context.CancelFunc(func() {})
		if pending != nil {
			rctx, cancel = context.WithDeadline(ctx, deadline)
		}
		f, err := port.ReadFrame(rctx)
		cancel()
		if err != nil {
			if ctx.Err() != nil {
				return nil
			}
			if pending != nil && errors.Is(err, context.DeadlineExceeded) {
				e.count(func(t *PolledTruth) { t.Abandoned++ })
				pending = nil
				continue
			}
			return fmt.Errorf("ECU read: %w", err)
		}
		if f.ID != e.poll.Request.ID || (f.Flags&can.Extended != 0) != e.poll.Request.Extended {
			continue
		}
		data := f.Data[:min(int(f.Len), 8)]
		if isotp.IsFlowControl(data) {
			if pending != nil && data[0] == isotp.TypeFlowControl<<4 {
				for i := range pending {
					if err := port.WriteFrame(&pending[i]); err != nil {
						return fmt.Errorf("ECU write: %w", err)
					}
				}
				pending = nil
			}
			continue
		}
		if len(data) < 1+len(req) || int(data[0]) != len(req) || string(data[1:1+len(req)]) != string(req) {
			e.count(func(t *PolledTruth) { t.Unasked++ })
			continue
		}
		e.count(func(t *PolledTruth) { t.Requests++ })
		if !e.set.Load() {
			e.count(func(t *PolledTruth) { t.Early++ })
			continue
		}
		if e.silent.Load() {
			e.count(func(t *PolledTruth) { t.Silent++ })
			continue
		}
		meters := math.Float64frombits(e.odo.Load())
		raw, err := e.poll.Raw(meters)
		if err != nil {
			return fmt.Errorf("ECU: %w", err)
		}
		frames, err := isotp.Segment(e.poll.Response, e.poll.Query.Response(raw))
		if err != nil {
			return fmt.Errorf("ECU: %w", err)
		}
		if err := port.WriteFrame(&frames[0]); err != nil {
			return fmt.Errorf("ECU write: %w", err)
		}
		if len(frames) > 1 {
			pending, deadline = frames[1:], time.Now().Add(e.FlowTimeout)
		}
		e.answered(e.poll.Meters(raw))
	}
}

func (e *ECU) count(f func(*PolledTruth)) {
	e.mu.Lock()
	f(&e.truth)
	e.mu.Unlock()
}

func (e *ECU) answered(v float64) {
	e.mu.Lock()
	defer e.mu.Unlock()
	t := &e.truth
	if t.Answers == 0 {
		t.FirstOdometer, t.HighWater = v, v
	}
	t.Answers++
	t.HighWater = math.Max(t.HighWater, v)
	t.Meters = int64(math.Floor(t.HighWater) - math.Floor(t.FirstOdometer))
}
