package mileage

import (
	"testing"
	"time"
)

// TestGapAfterSilence: after hours of silence, an odometer one step higher
// than before is the rounding of the reading taken before the silence (and
// the few meters driven since the car moved off), not unseen driving; an
// advance beyond that is unseen driving and raises GAP, with or without a
// speed signal.
func TestGapAfterSilence(t *testing.T) {
	t0 := time.Unix(1767304800, 0) // a batch boundary
	for _, c := range []struct {
		name     string
		hasSpeed bool
		advance  float64 // meters between the last reading before and the first after
		want     bool
	}{
		{"one step, speed signal", true, 10, false},
		{"one step, no speed signal", false, 10, false},
		{"unseen drive, speed signal", true, 800, true},
		{"unseen drive, no speed signal", false, 800, true},
	} {
		t.Run(c.name, func(t *testing.T) {
			e := New(Config{HasSpeed: c.hasSpeed, Resolution: 10}, nil)
			var flags uint32
			collect := func(s []Span) {
				for _, sp := range s {
					flags |= sp.Flags
				}
			}
			odo := 1e6
			at := t0.Add(10 * time.Second)
			collect(e.Odometer(at, odo))
			if c.hasSpeed {
				collect(e.Speed(at, 0)) // parked
			}
			at = at.Add(2 * time.Minute) // silence, inside the batch
			if c.hasSpeed {
				collect(e.Speed(at, 3)) // moves off
			}
			at = at.Add(500 * time.Millisecond)
			collect(e.Odometer(at, odo+c.advance))
			collect(e.Stop(at.Add(time.Second)))
			if got := flags&FlagGap != 0; got != c.want {
				t.Errorf("GAP %v, want %v (flags %#x)", got, c.want, flags)
			}
		})
	}
}
