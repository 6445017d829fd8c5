package mileage

import (
	"encoding/binary"
	"math"
	"testing"
	"time"
)

// FuzzEngine feeds random sequences of readings, clock changes, restarts
// and outbox states, and checks after every step what must always hold:
// spans are well formed, the engine's state survives MarshalBinary, and no
// meter is lost or doubled: the spans returned plus the open span hold
// exactly floor(HWM) - floor(first reading).
//
// Each op is 4 bytes: kind, a signed time step in 100 ms, and a 16-bit
// value; ops after the 400th are ignored to keep runs short.
func FuzzEngine(f *testing.F) {
	f.Add([]byte{0, 10, 0, 50, 0, 10, 0, 60, 3, 10, 0, 90, 0, 10, 1, 0, 6, 0, 0, 0})
	f.Add([]byte{0, 1, 0, 1, 8, 0, 200, 0, 0, 1, 0, 5, 7, 0, 4, 0, 0, 1, 255, 255, 8, 0, 1, 0, 0, 1, 0, 9})
	f.Add([]byte{7, 0, 2, 0, 0, 127, 0, 100, 5, 127, 0, 0, 8, 0, 20, 0, 0, 5, 0, 100, 7, 0, 0, 0, 6, 0, 0, 0})
	f.Add([]byte{0, 1, 0, 0, 0, 200, 0, 7, 4, 1, 3, 0, 1, 1, 0, 9, 2, 1, 128, 0, 8, 0, 0, 3, 0, 1, 0, 30})
	f.Fuzz(fuzzEngine)
}

func fuzzEngine(t *testing.T, data []byte) {
	if len(data) > 1600 {
		data = data[:1600]
	}
	cfg := Config{HasSpeed: len(data)%2 == 0, Resolution: 100}
	e := New(cfg, nil)
	at := time.Date(2025, 3, 3, 7, 0, 0, 0, time.UTC)
	odo := 1e6 + 0.3
	var emitted uint64
	odoMax, seen := 0.0, false // the readings' maximum
	lastHWM := math.Inf(-1)
	reading := func(m float64) []Span {
		if m == m && math.Abs(m) <= 1<<53 {
			if !seen || m > odoMax {
				odoMax = m
			}
			seen = true
		}
		return e.Odometer(at, m)
	}
	modes := []string{"ECO", "", "SPORT", "MODE_9", "\xff\xfe bad utf-8"}
	for len(data) >= 4 {
		kind, step, v := data[0], int8(data[1]), binary.BigEndian.Uint16(data[2:4])
		data = data[4:]
		at = at.Add(time.Duration(step) * 100 * time.Millisecond)
		var spans []Span
		switch kind % 10 {
		case 0, 1:
			odo += float64(v) * 0.37
			spans = reading(odo)
		case 2:
			odo -= float64(v) * 0.37 // rollback
			spans = reading(odo)
		case 3:
			spans = e.Speed(at, float64(v)/100)
		case 4:
			spans = e.Mode(at, modes[int(v)%len(modes)])
		case 5:
			spans = e.Tick(at)
		case 6:
			spans = e.Stop(at)
		case 7:
			e.MarkClock(v&1 != 0)
			e.SetBlocked(v&2 != 0)
			if v&4 != 0 {
				b, err := e.State().MarshalBinary()
				if err != nil {
					t.Fatal(err)
				}
				var st State
				if err := st.UnmarshalBinary(b); err != nil {
					t.Fatalf("state the engine made is refused: %v", err)
				}
				e = New(cfg, &st)
				if v&8 != 0 {
					e.Restarted()
				}
			}
		case 8: // clock jumps: forward by minutes, back, or unset
			switch v % 3 {
			case 0:
				at = at.Add(time.Duration(v) * time.Minute)
			case 1:
				at = at.Add(-time.Duration(v) * time.Minute)
			case 2:
				at = time.Unix(int64(v), 0)
			}
			spans = e.Tick(at)
		case 9:
			spans = reading([]float64{math.NaN(), math.Inf(1), -1e300, odo}[v%4])
		}
		for _, s := range spans {
			checkSpan(t, s)
			emitted += s.Meters
		}
		st := e.State()
		b, err := st.MarshalBinary()
		if err != nil {
			t.Fatal(err)
		}
		if err := new(State).UnmarshalBinary(b); err != nil {
			t.Fatalf("state the engine made is refused: %v", err)
		}
		if st.Started {
			// A reading above the plausible course is a JUMP candidate,
			// not the HWM, until later readings confirm it: the HWM is
			// at most the readings' maximum and never goes down.
			if !seen || st.HWM > odoMax || st.HWM < lastHWM {
				t.Fatalf("HWM %v: the readings' maximum %v, the previous HWM %v", st.HWM, odoMax, lastHWM)
			}
			lastHWM = st.HWM
			want := uint64(int64(math.Floor(st.HWM)) - int64(math.Floor(st.First)))
			if emitted+st.Span.Meters != want {
				t.Fatalf("emitted %d + open %d != floor(HWM %v) - floor(first %v) = %d",
					emitted, st.Span.Meters, st.HWM, st.First, want)
			}
		}
	}
	e.SetBlocked(false)
	for _, s := range e.Stop(at) {
		checkSpan(t, s)
	}
	if st := e.State(); st.Span.Meters != 0 {
		t.Fatalf("open span holds %d meters after Stop", st.Span.Meters)
	}
}
