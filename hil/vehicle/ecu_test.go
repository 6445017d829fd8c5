package vehicle

import (
	"bytes"
	"context"
	"testing"
	"time"

	"github.com/csop/tbox/can"
	"github.com/csop/tbox/can/cantest"
	"github.com/csop/tbox/can/isotp"
)

// tester is the other end of the ECU's bus.
type tester struct {
	t    *testing.T
	port *cantest.Port
}

func (ts tester) send(id uint32, data ...byte) {
	f := can.Frame{ID: id, Len: uint8(len(data))}
	copy(f.Data[:], data)
	ts.port.WriteFrame(&f)
}

func (ts tester) expect(want ...string) {
	ts.t.Helper()
	for _, w := range want {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		f, err := ts.port.ReadFrame(ctx)
		cancel()
		if err != nil {
			ts.t.Fatalf("waiting for %s: %v", w, err)
		}
		if got := f.String(); got != w {
			ts.t.Fatalf("ECU sent %s, want %s", got, w)
		}
	}
}

func (ts tester) quiet() {
	ts.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
	defer cancel()
	if f, err := ts.port.ReadFrame(ctx); err == nil {
		ts.t.Fatalf("ECU sent %s, want nothing", f.String())
	}
}

func runECU(t *testing.T, profileName string) (*ECU, tester) {
	t.Helper()
	p := load(t, profileName)
	e, err := NewECU(p)
	if err != nil {
		t.Fatal(err)
	}
	e.FlowTimeout = 200 * time.Millisecond
	bus := cantest.NewBus()
	po, _ := p.Poll()
	ecuPort := bus.NewPort(cantest.WithFilter(can.NewFilter(po.Request)))
	ts := tester{t, bus.NewPort(cantest.WithFilter(can.NewFilter(po.Response)))}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- e.Run(ctx, ecuPort) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Error(err)
		}
		bus.Close()
	})
	return e, ts
}

func TestECUAnswersOBD(t *testing.T) {
	e, ts := runECU(t, "ev_obd.toml")
	ts.send(0x7DF, 0x02, 0x01, 0xA6, 0xCC, 0xCC, 0xCC, 0xCC, 0xCC)
	ts.quiet() // no odometer yet: silent
	e.Set(1234567.8, false)
	ts.send(0x7DF, 0x02, 0x01, 0xA6, 0xCC, 0xCC, 0xCC, 0xCC, 0xCC)
	ts.expect("7E8#0641A600003039CC")                              // 1234.5 km, floored to 0.1 km
	ts.send(0x7DF, 0x02, 0x01, 0x0D, 0xCC, 0xCC, 0xCC, 0xCC, 0xCC) // another PID: not answered
	ts.quiet()
	e.Set(1234667.8, true)
	ts.send(0x7DF, 0x02, 0x01, 0xA6)
	ts.quiet()
	e.Set(1234667.8, false)
	ts.send(0x7DF, 0x02, 0x01, 0xA6)
	ts.expect("7E8#0641A60000303ACC")
	tr := e.Truth()
	want := PolledTruth{Requests: 4, Answers: 2, Unasked: 1, Silent: 1, Early: 1, FirstOdometer: 1234500, HighWater: 1234600, Meters: 100}
	if tr != want {
		t.Errorf("truth %+v, want %+v", tr, want)
	}
}

func TestECUAnswersUDSMultiFrame(t *testing.T) {
	e, ts := runECU(t, "ev_uds.toml")
	e.Set(12345678, false)
	ts.send(0x7E0, 0x03, 0x22, 0xF1, 0xA0, 0xCC, 0xCC, 0xCC, 0xCC)
	ts.expect("7E8#100B62F1A0000000")
	ts.quiet() // the rest waits for flow control
	fc := isotp.FlowControl(can.Key{ID: 0x7E0})
	ts.port.WriteFrame(&fc)
	ts.expect("7E8#210000BC614ECCCC")
	// A tester that never sends flow control: the answer is abandoned.
	ts.send(0x7E0, 0x03, 0x22, 0xF1, 0xA0)
	ts.expect("7E8#100B62F1A0000000")
	time.Sleep(300 * time.Millisecond)
	ts.port.WriteFrame(&fc)
	ts.quiet()
	if tr := e.Truth(); tr.Abandoned != 1 || tr.Answers != 2 {
		t.Errorf("truth %+v, want 2 answers, 1 abandoned", tr)
	}
}

// A recorded polling (no ECU on a bus) plays the tester's requests and the
// answers; the truth credits what the answers carry, and the ECU's silence
// leaves requests unanswered.
func TestPolledLog(t *testing.T) {
	for _, name := range []string{"ev_obd.toml", "ev_uds.toml"} {
		p := load(t, name)
		s := Scenario{Seed: 3, Start: start, Duration: 20 * time.Minute, OdometerHz: 5, SilentAt: 5 * time.Minute, SilentFor: 30 * time.Second}
		log, tr := play(t, s, p)
		if tr.Meters <= 0 || float64(tr.Meters) > tr.TrueDistance+100 || float64(tr.Meters) < tr.TrueDistance-200 {
			t.Errorf("%s: credited %d m of %.0f m driven", name, tr.Meters, tr.TrueDistance)
		}
		reqs := bytes.Count(log, []byte(" 7DF#0201A6")) + bytes.Count(log, []byte(" 7E0#0322F1A0"))
		answers := bytes.Count(log, []byte(" 7E8#0641A6")) + bytes.Count(log, []byte(" 7E8#100B62F1A0"))
		fcs := bytes.Count(log, []byte(" 7E0#30"))
		if silent := reqs - answers; silent < 140 || silent > 160 {
			t.Errorf("%s: %d requests, %d answers: want about 150 unanswered in 30 s at 5 Hz", name, reqs, answers)
		}
		if name == "ev_uds.toml" && fcs != answers {
			t.Errorf("%s: %d flow controls for %d multi-frame answers", name, fcs, answers)
		}
	}
}
