package mileage

import (
	"encoding/binary"
	"errors"
	"math"
	"reflect"
	"testing"
	"time"
)

// busyState returns the state of an engine in the middle of a drive, with
// every kind of field set.
func busyState(t testing.TB) State {
	r := newRecorder(t, Config{HasSpeed: true})
	start := time.Date(2025, 3, 3, 7, 1, 0, 0, time.UTC)
	r.setMode(start, "ECO")
	t1, odo := r.drive(start, time.Minute, 1234.5, 50)
	r.setMode(t1, "SPORT")
	t1, odo = r.drive(t1, time.Minute, odo, 50)
	r.odo(t1, odo-10) // ROLLBACK
	r.e.MarkClock(true)
	r.e.SetBlocked(true)
	r.e.Restarted()
	return r.e.State()
}

func TestStateRoundTrip(t *testing.T) {
	for _, c := range []struct {
		name string
		st   State
	}{
		{"fresh", State{}},
		{"fresh engine", New(Config{}, nil).State()},
		{"busy", busyState(t)},
	} {
		t.Run(c.name, func(t *testing.T) {
			b, err := c.st.MarshalBinary()
			if err != nil {
				t.Fatal(err)
			}
			var got State
			if err := got.UnmarshalBinary(b); err != nil {
				t.Fatalf("UnmarshalBinary: %v", err)
			}
			if len(c.st.Span.Modes) == 0 {
				c.st.Span.Modes = nil
			}
			if !reflect.DeepEqual(got, c.st) {
				t.Errorf("round trip:\n got %+v\nwant %+v", got, c.st)
			}
		})
	}
	if st := busyState(t); len(st.Span.Modes) != 2 || st.Span.Flags != FlagRollback|FlagGap || !st.Span.Clock || !st.Resumed {
		t.Fatalf("busyState does not exercise the fields: %+v", st)
	}
}

func TestStateUnmarshalErrors(t *testing.T) {
	good, err := busyState(t).MarshalBinary()
	if err != nil {
		t.Fatal(err)
	}
	// set returns a copy of good with b written at off.
	set := func(off int, b ...byte) []byte {
		c := append([]byte(nil), good...)
		copy(c[off:], b)
		return c
	}
	f64 := func(f float64) []byte { return binary.BigEndian.AppendUint64(nil, math.Float64bits(f)) }
	for _, c := range []struct {
		name  string
		data  []byte
		err   error
		field string
	}{
		{"empty", nil, ErrStateVersion, "version"},
		{"version 3", set(0, 3), ErrStateVersion, "version"},
		{"truncated", good[:50], ErrStateCorrupt, "Span.SpeedMeters"},
		{"trailing byte", append(append([]byte(nil), good...), 0), ErrStateCorrupt, "end"},
		{"unknown boolean bit", set(1, 0x80), ErrStateCorrupt, "booleans"},
		{"NaN HWM", set(11, f64(math.NaN())...), ErrStateCorrupt, "HWM"},
		{"infinite first", set(3, f64(math.Inf(-1))...), ErrStateCorrupt, "First"},
		{"negative speed", set(27, f64(-1)...), ErrStateCorrupt, "Speed"},
		{"negative time", set(59, 0xff), ErrStateCorrupt, "JumpTime"},
		{"span last before batch", set(131, 0, 0, 0, 0, 0, 0, 0, 0), ErrStateCorrupt, "Span.Batch/Last"},
		{"CATCHUP is not stored", set(147, 0, 0, 0, 0x10), ErrStateCorrupt, "Span.Flags"},
		{"modes do not sum to meters", set(139, 0xff), ErrStateCorrupt, "Span.Modes"},
	} {
		t.Run(c.name, func(t *testing.T) {
			st := State{Mode: "kept"}
			err := st.UnmarshalBinary(c.data)
			if !errors.Is(err, c.err) {
				t.Fatalf("error %v, want %v", err, c.err)
			}
			var se *StateError
			if !errors.As(err, &se) || se.Field != c.field {
				t.Errorf("error %v names field %q, want %q", err, se.Field, c.field)
			}
			if st.Mode != "kept" {
				t.Errorf("a failed UnmarshalBinary changed the state")
			}
		})
	}
}

// FuzzStateUnmarshal: no input panics; an accepted state marshals to bytes
// that decode to the same state, and an engine resumed from it runs.
func FuzzStateUnmarshal(f *testing.F) {
	for _, st := range []State{{}, busyState(f)} {
		b, _ := st.MarshalBinary()
		f.Add(b)
	}
	f.Add([]byte{1})
	f.Add([]byte{})
	f.Fuzz(func(t *testing.T, data []byte) {
		var st State
		if err := st.UnmarshalBinary(data); err != nil {
			var se *StateError
			if !errors.As(err, &se) || !(errors.Is(err, ErrStateCorrupt) || errors.Is(err, ErrStateVersion)) {
				t.Fatalf("error %v is not a *StateError wrapping a sentinel", err)
			}
			return
		}
		b, err := st.MarshalBinary()
		if err != nil {
			t.Fatal(err)
		}
		var again State
		if err := again.UnmarshalBinary(b); err != nil || !reflect.DeepEqual(again, st) {
			t.Fatalf("re-marshalled state: %v\n got %+v\nwant %+v", err, again, st)
		}
		e := New(Config{HasSpeed: true}, &st)
		e.Restarted()
		at := time.Date(2025, 3, 3, 7, 0, 0, 0, time.UTC)
		for i := range 100 {
			at = at.Add(time.Second)
			spans := e.Speed(at, 50)
			spans = append(spans, e.Odometer(at, st.HWM+float64(i)*14)...)
			for _, s := range spans {
				checkSpan(t, s)
			}
		}
		for _, s := range e.Stop(at) {
			checkSpan(t, s)
		}
	})
}
