package isotp

import (
	"bytes"
	"errors"
	"testing"

	"github.com/csop/tbox/can"
)

var key = can.Key{ID: 0x7E8}

func TestSegmentReassemble(t *testing.T) {
	for _, n := range []int{1, 6, 7, 8, 13, 14, 20, 111, 4095} {
		payload := make([]byte, n)
		for i := range payload {
			payload[i] = byte(i*7 + 1)
		}
		frames, err := Segment(key, payload)
		if err != nil {
			t.Fatalf("Segment(%d bytes): %v", n, err)
		}
		wantFrames := 1
		if n > 7 {
			wantFrames = 1 + (n-6+6)/7
		}
		if len(frames) != wantFrames {
			t.Errorf("%d bytes: %d frames, want %d", n, len(frames), wantFrames)
		}
		r := NewReassembler(n)
		var got []byte
		for i, f := range frames {
			if f.Len != 8 || f.ID != key.ID {
				t.Fatalf("frame %d: len %d ID %X, want 8 bytes on %X", i, f.Len, f.ID, key.ID)
			}
			ev, p, err := r.Push(f.Data[:f.Len])
			if err != nil {
				t.Fatalf("%d bytes, frame %d: %v", n, i, err)
			}
			if i == len(frames)-1 {
				if ev != Complete {
					t.Fatalf("%d bytes: last frame gives %v, want Complete", n, ev)
				}
				got = p
			} else if ev == Complete {
				t.Fatalf("%d bytes: complete at frame %d of %d", n, i, len(frames))
			}
		}
		if !bytes.Equal(got, payload) {
			t.Errorf("%d bytes: reassembled % X, want % X", n, got, payload)
		}
	}
}

func TestReassemblerRefuses(t *testing.T) {
	ff := func(n int) []byte { return []byte{0x10 | byte(n>>8), byte(n), 1, 2, 3, 4, 5, 6} }
	cases := []struct {
		name   string
		limit  int
		frames [][]byte
		want   error // of the last frame
	}{
		{"first frame over the limit", 11, [][]byte{ff(12)}, ErrTooLong},
		{"first frame of 4095 over a small limit", 11, [][]byte{ff(4095)}, ErrTooLong},
		{"32-bit length escape", 4095, [][]byte{{0x10, 0x00, 0xFF, 0xFF, 0xFF, 0xFF, 1, 2}}, ErrTooLong},
		{"first frame shorter than 8", 100, [][]byte{ff(7)}, ErrMalformed},
		{"short first frame", 100, [][]byte{{0x10, 20, 1}}, ErrMalformed},
		{"wrong sequence number", 100, [][]byte{ff(20), {0x22, 1, 2, 3, 4, 5, 6, 7}}, ErrSequence},
		{"repeated sequence number", 100, [][]byte{ff(20), {0x21, 1, 2, 3, 4, 5, 6, 7}, {0x21, 1, 2, 3, 4, 5, 6, 7}}, ErrSequence},
		{"consecutive without first", 100, [][]byte{{0x21, 1, 2, 3, 4, 5, 6, 7}}, ErrUnexpected},
		{"consecutive after completion", 100, [][]byte{ff(13), {0x21, 1, 2, 3, 4, 5, 6, 7}, {0x22, 1}}, ErrUnexpected},
		{"single frame length 0", 100, [][]byte{{0x00, 1, 2}}, ErrMalformed},
		{"single frame longer than its bytes", 100, [][]byte{{0x07, 1, 2}}, ErrMalformed},
		{"single frame length 8+ (FD form)", 100, [][]byte{{0x08, 1, 2, 3, 4, 5, 6, 7}}, ErrMalformed},
		{"single frame over the limit", 7, [][]byte{{0x07, 1, 2, 3, 4, 5, 6, 7}}, nil},
		{"empty consecutive frame", 100, [][]byte{ff(20), {0x21}}, ErrMalformed},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			r := NewReassembler(c.limit)
			var err error
			var ev Event
			for _, f := range c.frames {
				ev, _, err = r.Push(f)
			}
			if c.want == nil {
				if err != nil || ev != Complete {
					t.Fatalf("got %v, %v; want Complete", ev, err)
				}
				return
			}
			if ev != Dropped || !errors.Is(err, c.want) {
				t.Fatalf("got %v, %v; want Dropped with %v", ev, err, c.want)
			}
			if r.Active() {
				t.Error("a refused frame left a message in progress")
			}
		})
	}
}

func TestReassemblerIgnoresFlowControl(t *testing.T) {
	r := NewReassembler(100)
	r.Push([]byte{0x10, 14, 1, 2, 3, 4, 5, 6})
	for _, fc := range [][]byte{{0x30, 0, 0}, {0x31, 0, 0}, {0x32, 0, 0}, {}, {0x40}, {0xF0}} {
		if ev, _, err := r.Push(fc); ev != Ignored || err != nil {
			t.Errorf("Push(% X) = %v, %v; want Ignored", fc, ev, err)
		}
	}
	ev, p, err := r.Push([]byte{0x21, 7, 8, 9, 10, 11, 12, 13})
	if ev != Partial || err != nil {
		t.Fatalf("CF1 = %v, %v", ev, err)
	}
	ev, p, err = r.Push([]byte{0x22, 14, 0xCC, 0xCC, 0xCC, 0xCC, 0xCC, 0xCC})
	if ev != Complete || err != nil || len(p) != 14 || p[13] != 14 {
		t.Fatalf("CF2 = %v, % X, %v; want 14 bytes ending 0E", ev, p, err)
	}
}

// A message of more than 16 consecutive frames wraps the sequence number
// from 15 to 0.
func TestSequenceWraps(t *testing.T) {
	payload := bytes.Repeat([]byte{0xAB}, 200)
	frames, _ := Segment(key, payload)
	if frames[16].Data[0] != 0x20 {
		t.Fatalf("the 16th consecutive frame starts %02X, want 20", frames[16].Data[0])
	}
	r := NewReassembler(200)
	var ev Event
	var err error
	for _, f := range frames {
		if ev, _, err = r.Push(f.Data[:8]); err != nil {
			t.Fatal(err)
		}
	}
	if ev != Complete {
		t.Fatalf("last = %v", ev)
	}
}

func TestRequestFrames(t *testing.T) {
	f, err := SingleFrame(can.Key{ID: 0x7DF}, []byte{0x01, 0xA6})
	if err != nil {
		t.Fatal(err)
	}
	if want := [8]byte{0x02, 0x01, 0xA6, Pad, Pad, Pad, Pad, Pad}; [8]byte(f.Data[:8]) != want || f.Len != 8 || f.ID != 0x7DF {
		t.Errorf("single frame = %X#% X, want 7DF#% X", f.ID, f.Data[:f.Len], want)
	}
	ext := FlowControl(can.Key{ID: 0x18DA10F1, Extended: true})
	if ext.Flags&can.Extended == 0 || ext.Data[0] != 0x30 || !IsFlowControl(ext.Data[:8]) {
		t.Errorf("flow control = %+v", ext)
	}
	for _, n := range []int{0, 8} {
		if _, err := SingleFrame(key, make([]byte, n)); !errors.Is(err, ErrMalformed) {
			t.Errorf("SingleFrame(%d bytes) err = %v, want ErrMalformed", n, err)
		}
	}
	if _, err := Segment(key, make([]byte, MaxPayload+1)); !errors.Is(err, ErrTooLong) {
		t.Errorf("Segment(4096 bytes) err = %v, want ErrTooLong", err)
	}
}

// FuzzReassembler feeds hostile frames: whatever they claim, the
// reassembler keeps at most its limit, never panics, and a completed
// payload is never longer than the limit.
func FuzzReassembler(f *testing.F) {
	f.Add([]byte{0x10, 0x0B, 0x62, 0xF1, 0xA0, 0, 0, 0, 0x21, 0, 0x12, 0xD6, 0x87, 0xCC, 0xCC, 0xCC}, uint8(11))
	f.Add([]byte{0x1F, 0xFF, 1, 2, 3, 4, 5, 6, 0x21, 1, 2, 3, 4, 5, 6, 7}, uint8(200))
	f.Add([]byte{0x06, 0x41, 0xA6, 0, 0, 0x30, 0x39, 0xCC, 0xCC}, uint8(6))
	f.Add([]byte{0x10, 0x00, 0, 0, 0x10, 0, 1, 2}, uint8(255))
	f.Fuzz(func(t *testing.T, data []byte, limit uint8) {
		r := NewReassembler(int(limit))
		capBefore := cap(r.buf)
		for len(data) > 0 {
			n := min(len(data), 8)
			ev, p, err := r.Push(data[:n])
			data = data[n:]
			if (ev == Dropped) != (err != nil) {
				t.Fatalf("event %v with error %v", ev, err)
			}
			if ev == Complete && (len(p) == 0 || len(p) > capBefore) {
				t.Fatalf("complete payload of %d bytes, limit %d", len(p), capBefore)
			}
			if cap(r.buf) != capBefore {
				t.Fatalf("buffer grew from %d to %d", capBefore, cap(r.buf))
			}
		}
	})
}
