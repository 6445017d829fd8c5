package mileage

import (
	"testing"
	"time"
)

// BenchmarkOdometerUpdate measures the per-frame cost of an odometer reading
// at 10 Hz and 90 km/h, batch boundaries (where spans are allocated) included.
func BenchmarkOdometerUpdate(b *testing.B) {
	e := New(Config{HasSpeed: true}, nil)
	at := time.Date(2025, 3, 3, 7, 0, 0, 0, time.UTC)
	e.Mode(at, "ECO")
	e.Speed(at, 90)
	const step = 100 * time.Millisecond
	odo := 1e6
	spans := 0
	b.ReportAllocs()
	b.ResetTimer()
	for range b.N {
		at = at.Add(step)
		odo += 2.5
		spans += len(e.Odometer(at, odo))
	}
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "frames/s")
	if b.N > 6000 && spans == 0 {
		b.Fatal("no span closed")
	}
}

// TestOdometerUpdateAllocs pins the benchmark's promise: within a batch, a
// reading allocates nothing.
func TestOdometerUpdateAllocs(t *testing.T) {
	e := New(Config{HasSpeed: true}, nil)
	at := time.Date(2025, 3, 3, 7, 0, 0, 0, time.UTC)
	e.Mode(at, "ECO")
	odo := 1e6
	allocs := testing.AllocsPerRun(1000, func() {
		at = at.Add(100 * time.Microsecond) // 1000 runs stay in one batch
		odo += 0.7
		e.Speed(at, 90)
		e.Odometer(at, odo)
		e.Tick(at)
	})
	if allocs != 0 {
		t.Errorf("%v allocations per reading, want 0", allocs)
	}
}
