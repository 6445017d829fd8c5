package can

import (
	"bytes"
	"errors"
	"strings"
	"testing"
	"time"
)

// FuzzReader: any input either reads or stops with a *LineError (never a
// panic), and every frame read is valid and survives Write then Read.
func FuzzReader(f *testing.F) {
	for _, s := range []string{
		"(1700000000.123456) can0 1A3#0011223344556677\n",
		"(1700000000.123456) can0 18FEF100#R5\n(1700000000.123457) can1 123##1001122\n",
		"(1700000000.123456)  can0 123#1122334455667788_C T\r\n",
		"(1700000000.123456) can0 20000004#0000080000000000\n",
		"(1.5) can0 123#11.22.33\nDROPCOUNT: dropped 1 CAN frame\n\n(2.0) x 7FF#",
		"(1700000000.123456) can0 123##0" + strings.Repeat("AB", 64) + "\n",
		"(1700000000.123456) can0 00123#80:00:11223344#0011\n",
		"\x00\xff(\n",
		"(1700000000.123456)  can0  RX B -  123  [12]  00 11 22 33 44 55 66 77 88 99 AA BB\n",
		"(1700000000.123456)  can0  20000004   [8]  00 04 00 00 00 00 00 00   ERRORFRAME\n\tbus-off\n",
		"(1700000000.123456)  can0  123   [2]  41 42    'AB'\n(1700000000.123457)  can0  123   [3]  remote request\n",
		"  can0  123   [8]  00 11 22 33 44 55 66 77\n",
		" (1700000000.123456)  can0  123   [8]  00 11 22 33 44 55 66 77\n (000.000100)  can0  123   [0] \n",
		"(1700000000.1",
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, in []byte) {
		r := NewReader(bytes.NewReader(in))
		var frames []Frame
		for r.Receive() {
			fr := *r.Frame()
			if err := fr.Validate(); err != nil {
				t.Fatalf("line %d: read an invalid frame %+v: %v", r.Line(), fr, err)
			}
			frames = append(frames, fr)
		}
		if err := r.Err(); err != nil {
			var le *LineError
			if !errors.As(err, &le) || (!errors.Is(err, ErrSyntax) && !errors.Is(err, ErrLineTooLong) && !errors.Is(err, ErrNoTimestamp)) {
				t.Fatalf("Err() = %v, want a *LineError wrapping ErrSyntax, ErrLineTooLong or ErrNoTimestamp", err)
			}
		}
		var out bytes.Buffer
		w := NewWriter(&out)
		for i := range frames {
			if err := w.Write(&frames[i]); err != nil {
				t.Fatalf("Write(%+v) = %v", frames[i], err)
			}
		}
		if err := w.Flush(); err != nil {
			t.Fatal(err)
		}
		r2 := NewReader(&out)
		for i := 0; r2.Receive(); i++ {
			if i >= len(frames) || !sameFrame(r2.Frame(), &frames[i]) {
				t.Fatalf("rewritten line %d reads %+v, want %+v", r2.Line(), *r2.Frame(), frames[i])
			}
		}
		if r2.Err() != nil || r2.Line() != len(frames) {
			t.Fatalf("re-read %d of %d lines, Err() = %v\n%s", r2.Line(), len(frames), r2.Err(), out.Bytes())
		}
	})
}

// FuzzWriterRoundTrip: any frame the Writer accepts reads back equal, and
// its line is exactly what String and the Reader agree on.
func FuzzWriterRoundTrip(f *testing.F) {
	f.Add(int64(1700000000), int64(123456789), "can0", uint32(0x1A3), uint8(0), uint8(8), []byte{1, 2, 3, 4, 5, 6, 7, 8})
	f.Add(int64(0), int64(0), "vcan1", uint32(0x18FEF100), uint8(Extended|Remote), uint8(5), []byte{})
	f.Add(int64(42), int64(1), "x", uint32(0x123), uint8(FD|BRS|ESI), uint8(12), bytes.Repeat([]byte{0xAB}, 12))
	f.Add(int64(42), int64(1), "can0", uint32(0x4), uint8(ErrorFrame), uint8(8), make([]byte, 8))
	f.Fuzz(func(t *testing.T, sec, nsec int64, bus string, id uint32, flags, n uint8, payload []byte) {
		fr := Frame{Time: time.Unix(sec, nsec), Bus: bus, ID: id, Flags: Flags(flags), Len: n}
		copy(fr.Data[:], payload)
		var out bytes.Buffer
		w := NewWriter(&out)
		if err := w.Write(&fr); err != nil {
			if !errors.Is(err, ErrInvalidFrame) {
				t.Fatalf("Write() = %v, want nil or ErrInvalidFrame", err)
			}
			return
		}
		if err := w.Flush(); err != nil {
			t.Fatal(err)
		}
		line := out.String()
		if !strings.HasSuffix(line, " "+fr.String()+"\n") || strings.Count(line, "\n") != 1 {
			t.Fatalf("wrote %q, want one line ending in %q", line, fr.String())
		}
		r := NewReader(&out)
		if !r.Receive() {
			t.Fatalf("wrote %q, reading it: %v", line, r.Err())
		}
		if !sameFrame(r.Frame(), &fr) {
			t.Fatalf("wrote %+v as %q, read %+v", fr, line, *r.Frame())
		}
		if r.Receive() || r.Err() != nil {
			t.Fatalf("more than one frame in %q, Err() = %v", line, r.Err())
		}
	})
}
