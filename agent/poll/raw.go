package poll

import (
	"context"
	"errors"
	"sync"
	"sync/atomic"
	"time"

	"github.com/csop/tbox/agent/profile"
	"github.com/csop/tbox/can"
	"github.com/csop/tbox/can/isotp"
)

// ErrRefused reports a frame the Guard does not let onto the bus.
var ErrRefused = errors.New("frame refused: the agent writes only its request")

// FrameWriter writes frames on a bus: a SocketCAN socket.
type FrameWriter interface {
	WriteFrame(*can.Frame) error
}

// Port is a raw CAN socket: frames of the response ID in, frames out.
type Port interface {
	FrameWriter
	ReadFrame(ctx context.Context) (can.Frame, error)
}

// Guard is the last check before a vehicle bus: it passes the request's
// single frame to the request ID, never twice within
// profile.MinPollPeriod, and one flow control frame for each first frame
// of an answer (FirstFrame), and refuses anything else.
type Guard struct {
	_ [0]func() // not comparable: no generated equality function (tboxd size)

	w       FrameWriter
	key     can.Key
	request can.Frame
	Refused atomic.Uint64

	mu     sync.Mutex
	last   time.Time
	fcOwed bool // a first frame came since the request
	fcSent bool // the request's one flow control went out
}

// NewGuard returns the guard of the profile's request on w.
func NewGuard(w FrameWriter, cfg *profile.Poll) (*Guard, error) {
	f, err := isotp.SingleFrame(cfg.Request, cfg.Payload())
	if err != nil {
		return nil, errorf("request: %w", err)
	}
	return &Guard{w: w, key: cfg.Request, request: f}, nil
}

// FirstFrame records that an answer's first frame came: one flow control
// may follow, once per request however many first frames an ECU sends.
func (g *Guard) FirstFrame() {
	g.mu.Lock()
	g.fcOwed = !g.fcSent
	g.mu.Unlock()
}

// WriteFrame writes f when it is the request (rate-bounded) or an owed flow
// control, else refuses it with ErrRefused (or ErrRate).
func (g *Guard) WriteFrame(f *can.Frame) error {
	g.mu.Lock()
	defer g.mu.Unlock()
	fc := isotp.FlowControl(g.key)
	switch {
	case f.ID != g.key.ID || (f.Flags&can.Extended != 0) != g.key.Extended || f.Flags&^can.Extended != 0:
	case same(f, &g.request):
		now := time.Now()
		if !g.last.IsZero() && now.Sub(g.last) < profile.MinPollPeriod {
			g.Refused.Add(1)
			return ErrRate
		}
		g.last, g.fcOwed, g.fcSent = now, false, false
		return g.w.WriteFrame(&g.request)
	case same(f, &fc) && g.fcOwed:
		g.fcOwed, g.fcSent = false, true
		return g.w.WriteFrame(&fc)
	}
	g.Refused.Add(1)
	return errorf("%w: %s", ErrRefused, f)
}

func same(a, b *can.Frame) bool {
	n := min(int(a.Len), can.MaxFDDataLen)
	return a.ID == b.ID && a.Flags == b.Flags && a.Len == b.Len && string(a.Data[:n]) == string(b.Data[:n])
}

// RawTransport is ISO-TP in user space over a raw CAN socket: for kernels
// without can-isotp. The port should admit only the response ID (its
// kernel filter); other frames are skipped here too.
type RawTransport struct {
	port  Port
	guard *Guard
	resp  can.Key
	tp    *isotp.Reassembler
	out   []byte
	// Dropped counts the answer frames ISO-TP refused.
	Dropped atomic.Uint64
}

// NewRawTransport returns the userspace transport of the profile's poll.
func NewRawTransport(port Port, cfg *profile.Poll) (*RawTransport, error) {
	g, err := NewGuard(port, cfg)
	if err != nil {
		return nil, err
	}
	return &RawTransport{port: port, guard: g, resp: cfg.Response, tp: isotp.NewReassembler(cfg.Query.ResponseLen())}, nil
}

// Guard returns the transport's guard.
func (t *RawTransport) Guard() *Guard { return t.guard }

// Send writes the request's single frame.
func (t *RawTransport) Send(payload []byte) error {
	f, err := isotp.SingleFrame(t.guard.key, payload)
	if err != nil {
		return err
	}
	t.tp.Reset()
	return t.guard.WriteFrame(&f)
}

// Receive reassembles the next whole message from the response ID,
// sending the flow control after its first frame.
func (t *RawTransport) Receive(ctx context.Context) ([]byte, error) {
	for {
		f, err := t.port.ReadFrame(ctx)
		if err != nil {
			return nil, err
		}
		if f.ID != t.resp.ID || (f.Flags&can.Extended != 0) != t.resp.Extended || f.Flags&(can.Remote|can.ErrorFrame|can.FD) != 0 {
			continue
		}
		ev, p, _ := t.tp.Push(f.Data[:min(int(f.Len), can.MaxDataLen)])
		switch ev {
		case isotp.First:
			t.guard.FirstFrame()
			fc := isotp.FlowControl(t.guard.key)
			if err := t.guard.WriteFrame(&fc); err != nil {
				// One flow control per request: a first frame more
				// goes unanswered, and its message times out.
				t.Dropped.Add(1)
			}
		case isotp.Complete:
			t.out = append(t.out[:0], p...)
			return t.out, nil
		case isotp.Dropped:
			t.Dropped.Add(1)
		}
	}
}
