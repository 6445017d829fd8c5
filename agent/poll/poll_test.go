package poll

import (
	"context"
	"errors"
	"sync"
	"testing"
	"time"

	"github.com/csop/tbox/agent/profile"
	"github.com/csop/tbox/can"
	"github.com/csop/tbox/can/cantest"
	"github.com/csop/tbox/can/isotp"
)

const testdata = "../profile/testdata/"

func load(t *testing.T, name string) *profile.Profile {
	t.Helper()
	p, err := profile.Load(testdata + name)
	if err != nil {
		t.Fatal(err)
	}
	return p
}

// ecu is a scripted ECU on a cantest bus: answer maps the request's
// payload to the frames it sends back (after flow control for the rest of
// a multi-frame answer when fcWait).
type ecu struct {
	t      *testing.T
	port   *cantest.Port
	answer func(n int) [][]byte // n counts requests from 1
	fcWait bool
	resp   can.Key

	mu   sync.Mutex
	reqs int
	fcs  int
}

func (e *ecu) run(ctx context.Context) {
	var rest [][]byte
	for {
		f, err := e.port.ReadFrame(ctx)
		if err != nil {
			return
		}
		d := f.Data[:f.Len]
		if isotp.IsFlowControl(d) {
			e.mu.Lock()
			e.fcs++
			e.mu.Unlock()
			for _, r := range rest {
				e.send(r)
			}
			rest = nil
			continue
		}
		e.mu.Lock()
		e.reqs++
		n := e.reqs
		e.mu.Unlock()
		frames := e.answer(n)
		for i, r := range frames {
			if e.fcWait && i > 0 && r[0]>>4 == isotp.TypeConsecutive {
				rest = frames[i:]
				break
			}
			e.send(r)
		}
	}
}

func (e *ecu) send(d []byte) {
	f := can.Frame{ID: e.resp.ID, Len: uint8(len(d))}
	copy(f.Data[:], d)
	e.port.WriteFrame(&f)
}

func (e *ecu) counts() (reqs, fcs int) {
	e.mu.Lock()
	defer e.mu.Unlock()
	return e.reqs, e.fcs
}

// rig is a bus with the scripted ECU, the agent's raw transport, the
// agent's listening decoder (the profile's filter, as the CAN socket), and
// a recorder of every frame the agent writes.
type rig struct {
	p        *profile.Profile
	cfg      *profile.Poll
	ecu      *ecu
	tr       *RawTransport
	readings chan float64
	written  func() []can.Frame
}

func newRig(t *testing.T, name string, answer func(n int) [][]byte) *rig {
	t.Helper()
	p := load(t, name)
	cfg, _ := p.Poll()
	bus := cantest.NewBus()
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	t.Cleanup(func() { cancel(); bus.Close(); wg.Wait() })
	e := &ecu{t: t, port: bus.NewPort(cantest.WithFilter(can.NewFilter(cfg.Request))), answer: answer, fcWait: true, resp: cfg.Response}
	rec := &recordingPort{Port: bus.NewPort(cantest.WithFilter(can.NewFilter(cfg.Response)))}
	tr, err := NewRawTransport(rec, cfg)
	if err != nil {
		t.Fatal(err)
	}
	r := &rig{p: p, cfg: cfg, ecu: e, tr: tr, readings: make(chan float64, 100)}
	// Every frame the agent writes goes through its port.
	var mu sync.Mutex
	var written []can.Frame
	r.written = func() []can.Frame { mu.Lock(); defer mu.Unlock(); return append([]can.Frame(nil), written...) }
	rec.record = func(f can.Frame) { mu.Lock(); written = append(written, f); mu.Unlock() }
	listen := bus.NewReceiver(cantest.WithFilter(p.Filter("")), cantest.WithContext(ctx))
	wg.Add(2)
	go func() { defer wg.Done(); e.run(ctx) }()
	go func() {
		defer wg.Done()
		d := p.NewDecoder()
		for listen.Receive() {
			for _, rd := range d.Decode(listen.Frame(), nil) {
				if rd.Kind == profile.Odometer {
					r.readings <- rd.Value
				}
			}
		}
	}()
	return r
}

// recordingPort records every frame written through it, stamped.
type recordingPort struct {
	*cantest.Port
	record func(can.Frame)
}

func (p *recordingPort) WriteFrame(f *can.Frame) error {
	c := *f
	c.Time = time.Now()
	p.record(c)
	return p.Port.WriteFrame(&c)
}

// checkWritten asserts that the agent wrote nothing but the request's
// single frame and flow control, to the request ID.
func (r *rig) checkWritten(t *testing.T) (requests, fcs int) {
	t.Helper()
	req, _ := isotp.SingleFrame(r.cfg.Request, r.cfg.Payload())
	fc := isotp.FlowControl(r.cfg.Request)
	for _, f := range r.written() {
		switch {
		case same(&f, &req):
			requests++
		case same(&f, &fc):
			fcs++
		default:
			t.Errorf("the agent wrote %s, neither its request %s nor flow control %s", &f, &req, &fc)
		}
	}
	return requests, fcs
}

func obdAnswer(raw uint32) []byte {
	return []byte{0x06, 0x41, 0xA6, byte(raw >> 24), byte(raw >> 16), byte(raw >> 8), byte(raw), 0xCC}
}

func TestPollOBD(t *testing.T) {
	r := newRig(t, "ev_obd.toml", func(n int) [][]byte { return [][]byte{obdAnswer(12345 + uint32(n))} })
	p := New(r.cfg, r.tr)
	for i := 1; i <= 3; i++ {
		if err := p.ask(context.Background()); err != nil {
			t.Fatalf("ask %d: %v", i, err)
		}
		select {
		case v := <-r.readings:
			if want := float64(12345+i) * 100; v != want {
				t.Errorf("reading %d = %v m, want %v", i, v, want)
			}
		case <-time.After(2 * time.Second):
			t.Fatalf("ask %d: the decoder read nothing", i)
		}
		time.Sleep(profile.MinPollPeriod)
	}
	if got := p.S.Answers.Load(); got != 3 {
		t.Errorf("answers = %d, want 3", got)
	}
	if reqs, fcs := r.checkWritten(t); reqs != 3 || fcs != 0 {
		t.Errorf("wrote %d requests and %d flow controls, want 3 and 0", reqs, fcs)
	}
}

func udsFrames(raw uint64) [][]byte {
	return [][]byte{
		{0x10, 0x0B, 0x62, 0xF1, 0xA0, byte(raw >> 56), byte(raw >> 48), byte(raw >> 40)},
		{0x21, byte(raw >> 32), byte(raw >> 24), byte(raw >> 16), byte(raw >> 8), byte(raw), 0xCC, 0xCC},
	}
}

func TestPollUDSMultiFrame(t *testing.T) {
	r := newRig(t, "ev_uds.toml", func(n int) [][]byte { return udsFrames(12345678) })
	p := New(r.cfg, r.tr)
	if err := p.ask(context.Background()); err != nil {
		t.Fatal(err)
	}
	select {
	case v := <-r.readings:
		if v != 12345678 {
			t.Errorf("reading = %v m, want 12345678", v)
		}
	case <-time.After(2 * time.Second):
		t.Fatal("the decoder read nothing")
	}
	if reqs, fcs := r.checkWritten(t); reqs != 1 || fcs != 1 {
		t.Errorf("wrote %d requests and %d flow controls, want 1 and 1", reqs, fcs)
	}
}

func TestPollPendingThenAnswer(t *testing.T) {
	r := newRig(t, "ev_uds.toml", func(n int) [][]byte {
		return append([][]byte{{0x03, 0x7F, 0x22, 0x78}, {0x03, 0x7F, 0x22, 0x78}}, udsFrames(7)...)
	})
	p := New(r.cfg, r.tr, WithTimeout(100*time.Millisecond, 300*time.Millisecond))
	if err := p.ask(context.Background()); err != nil {
		t.Fatal(err)
	}
	if p.S.Pending.Load() != 2 || p.S.Answers.Load() != 1 {
		t.Errorf("pending %d, answers %d; want 2 and 1", p.S.Pending.Load(), p.S.Answers.Load())
	}
}

// Hostile ECUs: none makes the poller wait without bound, write anything
// but its request and one flow control, or read a value.
func TestPollHostileECU(t *testing.T) {
	endless := make([][]byte, 50)
	for i := range endless {
		endless[i] = []byte{0x03, 0x7F, 0x22, 0x78}
	}
	manyFF := [][]byte{}
	for i := 0; i < 20; i++ {
		manyFF = append(manyFF, []byte{0x10, 0x0B, 0x62, 0xF1, 0xA0, 0, 0, 0})
	}
	cases := []struct {
		name   string
		frames [][]byte
		fcWait bool
		want   error
		maxFC  int
	}{
		{"endless response pending", endless, false, ErrTimeout, 0},
		{"oversized first frame", [][]byte{{0x1F, 0xFF, 0x62, 0xF1, 0xA0, 0, 0, 0}, {0x21, 1, 2, 3, 4, 5, 6, 7}}, false, ErrTimeout, 0},
		{"wrong sequence number", [][]byte{{0x10, 0x0B, 0x62, 0xF1, 0xA0, 0, 0, 0}, {0x22, 0, 0, 0, 0, 1, 0xCC, 0xCC}}, false, ErrTimeout, 1},
		{"first frames without end", manyFF, false, ErrTimeout, 1},
		{"flow control from the ECU", [][]byte{{0x30, 0, 0}, {0x31, 0, 0}, {0x32, 0, 0}}, false, ErrTimeout, 0},
		{"negative", [][]byte{{0x03, 0x7F, 0x22, 0x31}}, false, nil, 0},
		{"answer to another DID", [][]byte{{0x10, 0x0B, 0x62, 0xF1, 0xA1, 0, 0, 0}, {0x21, 0, 0, 0, 0, 1, 0xCC, 0xCC}}, true, ErrTimeout, 1},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			r := newRig(t, "ev_uds.toml", func(int) [][]byte { return c.frames })
			r.ecu.fcWait = c.fcWait
			p := New(r.cfg, r.tr, WithTimeout(100*time.Millisecond, 100*time.Millisecond))
			start := time.Now()
			err := p.ask(context.Background())
			if took := time.Since(start); took > time.Duration(MaxPending+2)*100*time.Millisecond+time.Second {
				t.Errorf("the exchange took %v", took)
			}
			if c.want != nil && !errors.Is(err, c.want) {
				t.Errorf("err = %v, want %v", err, c.want)
			}
			if c.want == nil && p.S.Negative.Load() != 1 {
				t.Errorf("err = %v, negative = %d; want one negative answer", err, p.S.Negative.Load())
			}
			select {
			case v := <-r.readings:
				t.Errorf("the decoder read %v m from a hostile ECU", v)
			case <-time.After(50 * time.Millisecond):
			}
			if reqs, fcs := r.checkWritten(t); reqs != 1 || fcs > c.maxFC {
				t.Errorf("wrote %d requests and %d flow controls, want 1 and at most %d", reqs, fcs, c.maxFC)
			}
		})
	}
}

func TestPollSilentECU(t *testing.T) {
	answering := make(chan bool, 1)
	answering <- false
	var mu sync.Mutex
	on := false
	r := newRig(t, "ev_obd.toml", func(n int) [][]byte {
		select {
		case v := <-answering:
			mu.Lock()
			on = v
			mu.Unlock()
		default:
		}
		mu.Lock()
		defer mu.Unlock()
		if !on {
			return nil
		}
		return [][]byte{obdAnswer(1)}
	})
	p := New(r.cfg, r.tr, WithTimeout(50*time.Millisecond, 50*time.Millisecond))
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- p.Run(ctx) }()
	deadline := time.Now().Add(5 * time.Second)
	for !p.S.Silent.Load() && time.Now().Before(deadline) {
		time.Sleep(20 * time.Millisecond)
	}
	if !p.S.Silent.Load() {
		t.Fatalf("not silent after %d timeouts", p.S.Timeouts.Load())
	}
	answering <- true
	for p.S.Silent.Load() && time.Now().Before(deadline) {
		time.Sleep(20 * time.Millisecond)
	}
	cancel()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	if p.S.Silent.Load() || p.S.Answers.Load() == 0 {
		t.Errorf("silent %v, answers %d after the ECU came back", p.S.Silent.Load(), p.S.Answers.Load())
	}
	// The rate bound held: the profile's period (200 ms) between requests.
	var prev time.Time
	for _, f := range r.written() {
		if !prev.IsZero() && f.Time.Sub(prev) < profile.MinPollPeriod {
			t.Errorf("two requests %v apart", f.Time.Sub(prev))
		}
		prev = f.Time
	}
	reqs, _ := r.checkWritten(t)
	if reqs < SilentAfter+1 {
		t.Errorf("%d requests", reqs)
	}
}

// Nothing but the request gets past the guard, and not faster than the
// rate bound.
func TestGuardRefuses(t *testing.T) {
	p := load(t, "ev_uds.toml")
	cfg, _ := p.Poll()
	var got []can.Frame
	g, err := NewGuard(writerFunc(func(f *can.Frame) error { got = append(got, *f); return nil }), cfg)
	if err != nil {
		t.Fatal(err)
	}
	req, _ := isotp.SingleFrame(cfg.Request, cfg.Payload())
	fc := isotp.FlowControl(cfg.Request)
	other := func(mod func(*can.Frame)) *can.Frame { f := req; mod(&f); return &f }
	for _, f := range []*can.Frame{
		&fc, // no first frame came
		other(func(f *can.Frame) { f.ID = 0x7DF }),
		other(func(f *can.Frame) { f.Data[3] = 0xA1 }),                             // another DID
		other(func(f *can.Frame) { f.Data[1] = 0x2E }),                             // WriteDataByIdentifier
		other(func(f *can.Frame) { f.Data[0], f.Data[1], f.Data[2] = 2, 0x11, 1 }), // ECU reset
		other(func(f *can.Frame) { f.Flags = can.Extended }),
		other(func(f *can.Frame) { f.Flags = can.FD }),
		other(func(f *can.Frame) { f.Len = 4 }),
	} {
		if err := g.WriteFrame(f); !errors.Is(err, ErrRefused) {
			t.Errorf("WriteFrame(%s) = %v, want ErrRefused", f, err)
		}
	}
	if err := g.WriteFrame(&req); err != nil {
		t.Fatal(err)
	}
	if err := g.WriteFrame(&req); !errors.Is(err, ErrRate) {
		t.Errorf("a second request at once: %v, want ErrRate", err)
	}
	g.FirstFrame()
	if err := g.WriteFrame(&fc); err != nil {
		t.Errorf("owed flow control: %v", err)
	}
	g.FirstFrame()
	if err := g.WriteFrame(&fc); !errors.Is(err, ErrRefused) {
		t.Errorf("a second flow control for one request: %v, want ErrRefused", err)
	}
	if len(got) != 2 || !same(&got[0], &req) || !same(&got[1], &fc) {
		t.Errorf("passed %v, want the request and one flow control", got)
	}
	if g.Refused.Load() != 10 {
		t.Errorf("refused %d, want 10", g.Refused.Load())
	}
}

type writerFunc func(*can.Frame) error

func (f writerFunc) WriteFrame(fr *can.Frame) error { return f(fr) }

// The poller's own rate bound holds whatever its caller does.
func TestPollerRateBound(t *testing.T) {
	r := newRig(t, "ev_obd.toml", func(n int) [][]byte { return [][]byte{obdAnswer(1)} })
	p := New(r.cfg, r.tr)
	if err := p.ask(context.Background()); err != nil {
		t.Fatal(err)
	}
	if err := p.ask(context.Background()); !errors.Is(err, ErrRate) {
		t.Errorf("second ask at once: %v, want ErrRate", err)
	}
	if reqs, _ := r.checkWritten(t); reqs != 1 {
		t.Errorf("%d requests written, want 1", reqs)
	}
}
