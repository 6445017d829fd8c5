package mileage_test

import (
	"fmt"
	"time"

	"github.com/csop/tbox/agent/mileage"
)

// A drive of 25 minutes at 72 km/h across three batches: the engine closes a
// span at each batch boundary. Every call that takes a time may return
// spans: the caller keeps them all.
func Example() {
	e := mileage.New(mileage.Config{HasSpeed: true}, nil)
	at := time.Date(2025, 3, 3, 7, 5, 0, 0, time.UTC)
	odo := 12_345_678.9 // meters
	e.Mode(at, "ECO")
	var spans []mileage.Span
	for range 25 * 60 {
		spans = append(spans, e.Speed(at, 72)...)
		spans = append(spans, e.Odometer(at, odo)...)
		at = at.Add(time.Second)
		odo += 20
	}
	spans = append(spans, e.Stop(at)...)
	for _, s := range spans {
		fmt.Printf("batch %d x%d: %d m %v flags 0x%02x\n", s.Batch, s.Batches, s.Meters, s.Modes, s.Flags)
	}
	// Output:
	// batch 2901642 x1: 5980 m [{ECO 5980}] flags 0x00
	// batch 2901643 x1: 12000 m [{ECO 12000}] flags 0x00
	// batch 2901644 x1: 12000 m [{ECO 12000}] flags 0x00
}
