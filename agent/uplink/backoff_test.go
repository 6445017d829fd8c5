package uplink

import (
	"context"
	"math"
	"net"
	"sync"
	"testing"
	"time"

	"github.com/csop/tbox/signer"
)

func TestBackoffCeiling(t *testing.T) {
	ms := time.Millisecond
	def := Backoff{Min: DefaultBackoffMin, Max: DefaultBackoffMax}
	tests := []struct {
		name    string
		b       Backoff
		attempt int
		want    time.Duration
	}{
		{"first retry is Min", def, 0, 100 * ms},
		{"doubles", def, 1, 200 * ms},
		{"doubles again", def, 2, 400 * ms},
		{"below the cap", def, 3, 800 * ms},
		{"capped at Max", def, 4, 1500 * ms},
		{"stays capped", def, 40, 1500 * ms},
		{"no overflow at huge attempts", def, math.MaxInt, 1500 * ms},
		{"negative attempt counts as 0", def, -3, 100 * ms},
		{"Min above Max gives Max", Backoff{Min: time.Second, Max: 10 * ms}, 0, 10 * ms},
		{"zero Min gives Max", Backoff{Max: 300 * ms}, 5, 300 * ms},
		{"huge Max, huge attempt, no overflow", Backoff{Min: time.Nanosecond, Max: math.MaxInt64}, 200, 1 << 62},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := tt.b.Ceiling(tt.attempt); got != tt.want {
				t.Fatalf("Ceiling(%d) = %v, want %v", tt.attempt, got, tt.want)
			}
		})
	}
}

func TestBackoffDelayIsFullJitter(t *testing.T) {
	for attempt := range 8 {
		var asked int64
		top := Backoff{Min: DefaultBackoffMin, Max: DefaultBackoffMax, Rand: func(n int64) int64 { asked = n; return n - 1 }}
		ceil := top.Ceiling(attempt)
		if got := top.Delay(attempt); got != ceil {
			t.Errorf("attempt %d: Delay with the largest random draw = %v, want the ceiling %v", attempt, got, ceil)
		}
		if asked != int64(ceil)+1 {
			t.Errorf("attempt %d: drew from [0, %d), want [0, %d]: the ceiling itself must be reachable", attempt, asked, ceil)
		}
		bottom := Backoff{Min: DefaultBackoffMin, Max: DefaultBackoffMax, Rand: func(int64) int64 { return 0 }}
		if got := bottom.Delay(attempt); got != 0 {
			t.Errorf("attempt %d: Delay with the smallest draw = %v, want 0", attempt, got)
		}
	}
}

// TestBackoffDefaultsMeetResumeTarget checks with the real random source
// that the capped delay stays within [0, 1.5 s] and averages 0.75 s: the
// reconnect latency the fleet trade-off in doc.go is computed from.
func TestBackoffDefaultsMeetResumeTarget(t *testing.T) {
	b := Backoff{Min: DefaultBackoffMin, Max: DefaultBackoffMax}
	const n = 20000
	var sum time.Duration
	for range n {
		d := b.Delay(10)
		if d < 0 || d > DefaultBackoffMax {
			t.Fatalf("Delay = %v, outside [0, %v]", d, DefaultBackoffMax)
		}
		sum += d
	}
	mean := sum / n
	if mean < 700*time.Millisecond || mean > 800*time.Millisecond {
		t.Fatalf("mean capped delay %v, want about 750ms", mean)
	}
	if DefaultBackoffMax >= 2*time.Second {
		t.Fatalf("DefaultBackoffMax %v: the worst-case resume must stay under 2 s", DefaultBackoffMax)
	}
}

// recordingClock fires every After at once and records what was asked.
type recordingClock struct {
	mu    sync.Mutex
	waits []time.Duration
	n     chan struct{}
}

func (c *recordingClock) Now() time.Time { return time.Now() }
func (c *recordingClock) After(d time.Duration) <-chan time.Time {
	c.mu.Lock()
	c.waits = append(c.waits, d)
	c.mu.Unlock()
	select {
	case c.n <- struct{}{}:
	default:
	}
	ch := make(chan time.Time, 1)
	ch <- time.Now()
	return ch
}

type nopOutbox struct{}

func (nopOutbox) Pending(uint64, int) ([]Message, error) { return nil, nil }
func (nopOutbox) Ack(signer.Receipt) error               { return nil }
func (nopOutbox) Nack(uint64, string) error              { return nil }

// TestRunWaitsTheBackoff runs against a closed port and checks that Run
// sleeps Backoff.Delay(0), Delay(1), ... between attempts.
func TestRunWaitsTheBackoff(t *testing.T) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	l.Close()

	u, err := New(Config{Broker: "tcp://" + addr, Device: "0x" + "ab" + "00112233445566778899aabbccddeeff001122", ConnectTimeout: time.Second, Collectors: []signer.Address{{1}}}, nopOutbox{})
	if err != nil {
		t.Fatal(err)
	}
	clk := &recordingClock{n: make(chan struct{}, 1)}
	u.clock = clk
	u.backoff.Rand = func(n int64) int64 { return n - 1 } // always the ceiling

	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- u.Run(ctx) }()
	want := []time.Duration{100, 200, 400, 800, 1500, 1500, 1500}
	deadline := time.After(10 * time.Second)
	for {
		clk.mu.Lock()
		n := len(clk.waits)
		clk.mu.Unlock()
		if n >= len(want) {
			break
		}
		select {
		case <-clk.n:
		case <-deadline:
			t.Fatalf("only %d reconnect waits in 10 s", n)
		}
	}
	cancel()
	if err := <-done; err != nil {
		t.Fatalf("Run = %v, want nil after cancel", err)
	}
	clk.mu.Lock()
	defer clk.mu.Unlock()
	for i, w := range want {
		if clk.waits[i] != w*time.Millisecond {
			t.Fatalf("waits %v, want %v ms", clk.waits[:len(want)], want)
		}
	}
	st := u.Stats()
	if st.Connected || st.LastConnectError == nil || st.Attempts < uint64(len(want)) {
		t.Fatalf("Stats = %+v, want not connected, %d+ attempts and the connect error", st, len(want))
	}
}

// blockingClock records every After and never fires, so Run stays in its
// first backoff wait until something else wakes it.
type blockingClock struct{ recordingClock }

func (c *blockingClock) After(d time.Duration) <-chan time.Time {
	c.recordingClock.After(d)
	return make(chan time.Time)
}

// TestReconnectCutsTheBackoff: Reconnect during a backoff wait makes the
// next attempt at once, and the attempt count starts again from 0.
func TestReconnectCutsTheBackoff(t *testing.T) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	l.Close()

	u, err := New(Config{Broker: "tcp://" + addr, Device: "0x" + "ab" + "00112233445566778899aabbccddeeff001122", ConnectTimeout: time.Second, Collectors: []signer.Address{{1}}}, nopOutbox{})
	if err != nil {
		t.Fatal(err)
	}
	clk := &blockingClock{recordingClock{n: make(chan struct{}, 8)}}
	u.clock = clk
	u.backoff.Rand = func(n int64) int64 { return n - 1 } // always the ceiling

	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- u.Run(ctx) }()
	waits := func() []time.Duration {
		clk.mu.Lock()
		defer clk.mu.Unlock()
		return append([]time.Duration(nil), clk.waits...)
	}
	deadline := time.Now().Add(10 * time.Second)
	for len(waits()) < 1 {
		if time.Now().After(deadline) {
			t.Fatal("no backoff wait in 10 s")
		}
		time.Sleep(time.Millisecond)
	}
	time.Sleep(100 * time.Millisecond) // the clock never fires: Run stays waiting
	if n := u.Stats().Attempts; n != 1 {
		t.Fatalf("%d attempts while waiting, want 1", n)
	}
	u.Reconnect()
	for len(waits()) < 2 {
		if time.Now().After(deadline) {
			t.Fatalf("Reconnect did not end the backoff wait: waits %v, %d attempts", waits(), u.Stats().Attempts)
		}
		time.Sleep(time.Millisecond)
	}
	cancel()
	if err := <-done; err != nil {
		t.Fatalf("Run = %v, want nil after cancel", err)
	}
	// Without the reset the second wait would be Delay(1) = 200 ms.
	if w := waits(); w[0] != 100*time.Millisecond || w[1] != 100*time.Millisecond {
		t.Fatalf("waits %v, want 100ms twice: the backoff starts again after Reconnect", w)
	}
	if n := u.Stats().Attempts; n != 2 {
		t.Fatalf("%d attempts, want 2", n)
	}
}
