package can

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"os"
	"strings"
	"sync"
	"testing"
	"time"
	"unsafe"
)

func unsafeStringData(s string) *byte { return unsafe.StringData(s) }

// ts is the timestamp of the test lines "(1700000000.123456)".
var ts = time.Unix(1700000000, 123456000)

func data(b ...byte) (d [MaxFDDataLen]byte) {
	copy(d[:], b)
	return d
}

func seq(n int) []byte {
	b := make([]byte, n)
	for i := range b {
		b[i] = byte(i)
	}
	return b
}

// readAll reads every frame of log, returning copies and the final error.
func readAll(t *testing.T, log string, opts ...ReaderOption) ([]Frame, error) {
	t.Helper()
	r := NewReader(strings.NewReader(log), opts...)
	var out []Frame
	for r.Receive() {
		out = append(out, *r.Frame())
	}
	return out, r.Err()
}

// sameFrame compares two frames as the candump format can carry them: time
// to the microsecond, bus, id, flags and payload.
func sameFrame(a, b *Frame) bool {
	return a.Time.Truncate(time.Microsecond).Equal(b.Time.Truncate(time.Microsecond)) &&
		a.Bus == b.Bus && a.ID == b.ID && a.Flags == b.Flags && a.Len == b.Len &&
		bytes.Equal(a.Payload(), b.Payload())
}

func TestReaderLineForms(t *testing.T) {
	for _, tc := range []struct {
		name string
		line string
		want Frame
	}{
		{"standard 8 bytes", "(1700000000.123456) can0 1A3#0011223344556677",
			Frame{Time: ts, Bus: "can0", ID: 0x1A3, Len: 8, Data: data(0, 0x11, 0x22, 0x33, 0x44, 0x55, 0x66, 0x77)}},
		{"standard no data", "(1700000000.123456) can0 7FF#",
			Frame{Time: ts, Bus: "can0", ID: 0x7FF}},
		{"lowercase hex", "(1700000000.123456) can0 1a3#deadbeef",
			Frame{Time: ts, Bus: "can0", ID: 0x1A3, Len: 4, Data: data(0xDE, 0xAD, 0xBE, 0xEF)}},
		{"extended", "(1700000000.123456) can0 18FEF100#0102",
			Frame{Time: ts, Bus: "can0", ID: 0x18FEF100, Flags: Extended, Len: 2, Data: data(1, 2)}},
		{"extended with small id", "(1700000000.123456) can0 00000123#01",
			Frame{Time: ts, Bus: "can0", ID: 0x123, Flags: Extended, Len: 1, Data: data(1)}},
		{"largest extended id", "(1700000000.123456) can0 1FFFFFFF#",
			Frame{Time: ts, Bus: "can0", ID: 0x1FFFFFFF, Flags: Extended}},
		{"remote", "(1700000000.123456) can0 123#R",
			Frame{Time: ts, Bus: "can0", ID: 0x123, Flags: Remote}},
		{"remote lowercase", "(1700000000.123456) can0 123#r",
			Frame{Time: ts, Bus: "can0", ID: 0x123, Flags: Remote}},
		{"remote with length", "(1700000000.123456) can0 123#R5",
			Frame{Time: ts, Bus: "can0", ID: 0x123, Flags: Remote, Len: 5}},
		{"remote extended", "(1700000000.123456) can0 12345678#R0",
			Frame{Time: ts, Bus: "can0", ID: 0x12345678, Flags: Extended | Remote}},
		{"remote with raw DLC", "(1700000000.123456) can0 123#R8_F",
			Frame{Time: ts, Bus: "can0", ID: 0x123, Flags: Remote, Len: 8}},
		{"classic with raw DLC", "(1700000000.123456) can0 123#1122334455667788_C",
			Frame{Time: ts, Bus: "can0", ID: 0x123, Len: 8, Data: data(0x11, 0x22, 0x33, 0x44, 0x55, 0x66, 0x77, 0x88)}},
		{"FD no flags", "(1700000000.123456) can0 123##0AABB",
			Frame{Time: ts, Bus: "can0", ID: 0x123, Flags: FD, Len: 2, Data: data(0xAA, 0xBB)}},
		{"FD BRS", "(1700000000.123456) can0 123##1001122",
			Frame{Time: ts, Bus: "can0", ID: 0x123, Flags: FD | BRS, Len: 3, Data: data(0, 0x11, 0x22)}},
		{"FD ESI", "(1700000000.123456) can0 123##2",
			Frame{Time: ts, Bus: "can0", ID: 0x123, Flags: FD | ESI}},
		{"FD BRS ESI FDF", "(1700000000.123456) can0 18FEF100##7AA",
			Frame{Time: ts, Bus: "can0", ID: 0x18FEF100, Flags: Extended | FD | BRS | ESI, Len: 1, Data: data(0xAA)}},
		{"FD FDF only (kernel 6 logs)", "(1700000000.123456) can0 123##4",
			Frame{Time: ts, Bus: "can0", ID: 0x123, Flags: FD}},
		{"FD 12 bytes", "(1700000000.123456) can0 123##0000102030405060708090A0B",
			Frame{Time: ts, Bus: "can0", ID: 0x123, Flags: FD, Len: 12, Data: data(seq(12)...)}},
		{"FD 64 bytes", "(1700000000.123456) can0 123##0" + strings.Repeat("00", 64),
			Frame{Time: ts, Bus: "can0", ID: 0x123, Flags: FD, Len: 64}},
		{"error frame", "(1700000000.123456) can0 20000004#0000080000000000",
			Frame{Time: ts, Bus: "can0", ID: 0x4, Flags: ErrorFrame, Len: 8, Data: data(0, 0, 8)}},
		{"error frame bus off", "(1700000000.123456) can0 20000040#0000000000000000",
			Frame{Time: ts, Bus: "can0", ID: 0x40, Flags: ErrorFrame, Len: 8}},
		{"dot separators", "(1700000000.123456) can0 123#11.22.33",
			Frame{Time: ts, Bus: "can0", ID: 0x123, Len: 3, Data: data(0x11, 0x22, 0x33)}},
		{"right-aligned interface name", "(1700000000.123456)  can0 123#01",
			Frame{Time: ts, Bus: "can0", ID: 0x123, Len: 1, Data: data(1)}},
		{"direction R", "(1700000000.123456) can0 123#01 R",
			Frame{Time: ts, Bus: "can0", ID: 0x123, Len: 1, Data: data(1)}},
		{"direction T", "(1700000000.123456) can0 123#01 T",
			Frame{Time: ts, Bus: "can0", ID: 0x123, Len: 1, Data: data(1)}},
		{"CRLF", "(1700000000.123456) can0 123#01\r",
			Frame{Time: ts, Bus: "can0", ID: 0x123, Len: 1, Data: data(1)}},
		{"tabs", "(1700000000.123456)\tcan0\t123#01",
			Frame{Time: ts, Bus: "can0", ID: 0x123, Len: 1, Data: data(1)}},
		{"zero time", "(0000000000.000000) can0 123#",
			Frame{Time: time.Unix(0, 0), Bus: "can0", ID: 0x123}},
		{"short fraction", "(1700000000.5) can0 123#",
			Frame{Time: time.Unix(1700000000, 500_000_000), Bus: "can0", ID: 0x123}},
		{"nanoseconds", "(1700000000.123456789) can0 123#",
			Frame{Time: time.Unix(1700000000, 123456789), Bus: "can0", ID: 0x123}},
		{"15-byte name", "(1700000000.123456) abcdefghijklmno 123#",
			Frame{Time: ts, Bus: "abcdefghijklmno", ID: 0x123}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := readAll(t, tc.line+"\n")
			if err != nil {
				t.Fatalf("Err() = %v", err)
			}
			if len(got) != 1 {
				t.Fatalf("got %d frames, want 1", len(got))
			}
			if !got[0].Time.Equal(tc.want.Time) {
				t.Errorf("Time = %v, want %v", got[0].Time, tc.want.Time)
			}
			got[0].Time = tc.want.Time
			if got[0] != tc.want {
				t.Errorf("frame\n got %+v\nwant %+v", got[0], tc.want)
			}
			if err := got[0].Validate(); err != nil {
				t.Errorf("parsed frame does not validate: %v", err)
			}
		})
	}
}

func TestReaderMalformed(t *testing.T) {
	const pre = "(1700000000.123456) can0 "
	for _, tc := range []struct {
		name string
		line string
		want error
	}{
		{"no timestamp", "can0 123#00", ErrSyntax},
		{"timestamp without fraction", "(1700000000) can0 123#00", ErrSyntax},
		{"timestamp without seconds", "(.123456) can0 123#00", ErrSyntax},
		{"timestamp not closed", "(1700000000.123456 can0 123#00", ErrSyntax},
		{"timestamp 13 digits", "(1234567890123.000000) can0 123#00", ErrSyntax},
		{"fraction 10 digits", "(1700000000.1234567890) can0 123#00", ErrSyntax},
		{"negative time", "(-1.000000) can0 123#00", ErrSyntax},
		{"no blank after timestamp", "(1700000000.123456)can0 123#00", ErrSyntax},
		{"timestamp only", "(1700000000.123456)", ErrSyntax},
		{"no frame", "(1700000000.123456) can0", ErrSyntax},
		{"name too long", "(1700000000.123456) abcdefghijklmnop 123#00", ErrSyntax},
		{"missing hash", pre + "123", ErrSyntax},
		{"bad hex in id", pre + "12G#00", ErrSyntax},
		{"2-digit id", pre + "12#00", ErrSyntax},
		{"4-digit id", pre + "1234#00", ErrSyntax},
		{"9-digit id", pre + "123456789#00", ErrSyntax},
		{"10-digit id", pre + "1234567890#00", ErrSyntax},
		{"standard id over 7FF", pre + "800#00", ErrSyntax},
		{"8 digits with EFF flag bit", pre + "80000123#00", ErrSyntax},
		{"8 digits with RTR flag bit", pre + "40000123#00", ErrSyntax},
		{"CAN XL", pre + "00123#80:00:11223344#0011", ErrSyntax},
		{"empty id", pre + "#00", ErrSyntax},
		{"bad hex in data", pre + "123#00G1", ErrSyntax},
		{"odd data length", pre + "123#001", ErrSyntax},
		{"9 bytes classic", pre + "123#001122334455667788", ErrSyntax},
		{"raw DLC after 7 bytes", pre + "123#00112233445566_9", ErrSyntax},
		{"raw DLC 8", pre + "123#0011223344556677_8", ErrSyntax},
		{"raw DLC not hex", pre + "123#0011223344556677_X", ErrSyntax},
		{"raw DLC two digits", pre + "123#0011223344556677_9A", ErrSyntax},
		{"remote length 9", pre + "123#R9", ErrSyntax},
		{"remote with data", pre + "123#R11", ErrSyntax},
		{"remote raw DLC with length 5", pre + "123#R5_9", ErrSyntax},
		{"FD without flags", pre + "123##", ErrSyntax},
		{"FD bad flags", pre + "123##G00", ErrSyntax},
		{"FD unknown flag 8", pre + "123##800", ErrSyntax},
		{"FD length 9", pre + "123##0" + strings.Repeat("00", 9), ErrSyntax},
		{"FD length 63", pre + "123##0" + strings.Repeat("00", 63), ErrSyntax},
		{"FD length 65", pre + "123##0" + strings.Repeat("00", 65), ErrSyntax},
		{"FD raw DLC", pre + "123##00011223344556677_9", ErrSyntax},
		{"FD triple hash", pre + "123###00", ErrSyntax},
		{"remote error frame", pre + "20000004#R", ErrSyntax},
		{"FD error frame", pre + "20000004##000", ErrSyntax},
		{"trailing garbage", pre + "123#00 X", ErrSyntax},
		{"trailing words", pre + "123#00 R T", ErrSyntax},
		{"NUL bytes", "\x00\x00\x00\x00", ErrSyntax},
		{"NUL in name", "(1700000000.123456) ca\x00n0 123#00", ErrSyntax},
		{"binary garbage", "\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR", ErrSyntax},
		{"UTF-8 name", "(1700000000.123456) cän0 123#00", ErrSyntax},
		{"5 KiB line", pre + "123#" + strings.Repeat("0", 5<<10), ErrLineTooLong},
		{"1 MiB line", strings.Repeat("A", 1<<20), ErrLineTooLong},
	} {
		t.Run(tc.name, func(t *testing.T) {
			log := "(1699999999.000000) can0 001#01\n" + tc.line + "\n(1700000001.000000) can0 002#02\n"
			got, err := readAll(t, log)
			if !errors.Is(err, tc.want) {
				t.Fatalf("Err() = %v, want %v", err, tc.want)
			}
			var le *LineError
			if !errors.As(err, &le) || le.Line != 2 {
				t.Fatalf("Err() = %#v, want a *LineError for line 2", err)
			}
			if !strings.HasPrefix(err.Error(), "line 2: ") {
				t.Errorf("Error() = %q, want it to start with \"line 2: \"", err)
			}
			if len(err.Error()) > 300 {
				t.Errorf("Error() is %d bytes long, want a short message", len(err.Error()))
			}
			if len(got) != 1 || got[0].ID != 1 {
				t.Errorf("frames before the error = %v, want the frame of line 1 only", got)
			}
		})
	}
}

func TestReaderErrorNamesField(t *testing.T) {
	_, err := readAll(t, "(1700000000.123456) can0 123#00112\n")
	want := `line 1: candump syntax: data: want an even number of hex digits, found "00112"`
	if err == nil || err.Error() != want {
		t.Errorf("Error() = %q, want %q", err, want)
	}
}

func TestReaderStopsAtError(t *testing.T) {
	r := NewReader(strings.NewReader("garbage\n(1700000000.123456) can0 123#00\n"))
	if r.Receive() {
		t.Fatal("Receive() = true on a malformed first line")
	}
	if r.Receive() {
		t.Error("Receive() = true after an error")
	}
	if !errors.Is(r.Err(), ErrSyntax) || r.Line() != 1 {
		t.Errorf("Err() = %v at line %d, want ErrSyntax at line 1", r.Err(), r.Line())
	}
}

func TestReaderSkipsBlankAndNotices(t *testing.T) {
	log := "\n  \n(1700000000.000001) can0 001#\r\n" +
		"DROPCOUNT: dropped 2 CAN frames on 'can0' socket (total drops 2)\n\n" +
		"(1700000000.000002) can0 002#" // last line without newline
	r := NewReader(strings.NewReader(log))
	var ids []uint32
	var lines []int
	for r.Receive() {
		ids = append(ids, r.Frame().ID)
		lines = append(lines, r.Line())
	}
	if err := r.Err(); err != nil {
		t.Fatal(err)
	}
	if fmt.Sprint(ids) != "[1 2]" || fmt.Sprint(lines) != "[3 6]" {
		t.Errorf("ids %v at lines %v, want [1 2] at lines [3 6]", ids, lines)
	}
}

func TestReaderEmpty(t *testing.T) {
	for _, log := range []string{"", "\n", "\n\n   \n"} {
		got, err := readAll(t, log)
		if err != nil || len(got) != 0 {
			t.Errorf("log %q: %d frames, Err() = %v; want none, nil", log, len(got), err)
		}
	}
}

type failingReader struct{ err error }

func (r failingReader) Read([]byte) (int, error) { return 0, r.err }

func TestReaderReadError(t *testing.T) {
	boom := errors.New("boom")
	r := NewReader(io.MultiReader(strings.NewReader("(1700000000.000001) can0 001#\n"), failingReader{boom}))
	n := 0
	for r.Receive() {
		n++
	}
	var le *LineError
	if n != 1 || !errors.Is(r.Err(), boom) || errors.As(r.Err(), &le) {
		t.Errorf("%d frames, Err() = %v; want 1 frame and the read error, not a *LineError", n, r.Err())
	}
}

func TestReaderSampleLog(t *testing.T) {
	b, err := os.ReadFile("testdata/sample.log")
	if err != nil {
		t.Fatal(err)
	}
	got, err := readAll(t, string(b))
	if err != nil {
		t.Fatal(err)
	}
	var keys []string
	for _, f := range got {
		keys = append(keys, f.Bus+" "+f.String())
	}
	want := []string{
		"can0 1A3#0011223344556677",
		"vcan1 1A3#DEADBEEF",
		"can0 123#1122334455667788",
		"can0 123#R",
		"can0 123#R8",
		"can0 123##1001122",
		"can0 123#112233",
		"can0 20000004#0000080000000000",
		"can0 18FEF100#0102030405060708",
	}
	if strings.Join(keys, "\n") != strings.Join(want, "\n") {
		t.Errorf("frames\n%s\nwant\n%s", strings.Join(keys, "\n"), strings.Join(want, "\n"))
	}
}

// TestWriterCanonical: reading a log candump wrote and writing it back gives
// the same bytes.
func TestWriterCanonical(t *testing.T) {
	in, err := os.ReadFile("testdata/canonical.log")
	if err != nil {
		t.Fatal(err)
	}
	r := NewReader(bytes.NewReader(in))
	var out bytes.Buffer
	w := NewWriter(&out)
	for r.Receive() {
		if err := w.Write(r.Frame()); err != nil {
			t.Fatalf("line %d: %v", r.Line(), err)
		}
	}
	if err := r.Err(); err != nil {
		t.Fatal(err)
	}
	if err := w.Flush(); err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(out.Bytes(), in) {
		t.Errorf("rewritten log differs\n got:\n%s\nwant:\n%s", out.Bytes(), in)
	}
}

func TestWriterLines(t *testing.T) {
	for _, tc := range []struct {
		name string
		f    Frame
		want string
	}{
		{"standard", Frame{Time: ts, Bus: "can0", ID: 0x1A3, Len: 2, Data: data(0xAB, 0x0C)},
			"(1700000000.123456) can0 1A3#AB0C\n"},
		{"zero-padded id", Frame{Time: ts, Bus: "can0", ID: 0x5}, "(1700000000.123456) can0 005#\n"},
		{"extended", Frame{Time: ts, Bus: "can1", ID: 0x5, Flags: Extended, Len: 1, Data: data(1)},
			"(1700000000.123456) can1 00000005#01\n"},
		{"remote", Frame{Time: ts, Bus: "can0", ID: 0x123, Flags: Remote}, "(1700000000.123456) can0 123#R\n"},
		{"remote len", Frame{Time: ts, Bus: "can0", ID: 0x123, Flags: Remote, Len: 3}, "(1700000000.123456) can0 123#R3\n"},
		{"FD BRS ESI", Frame{Time: ts, Bus: "can0", ID: 0x123, Flags: FD | BRS | ESI, Len: 1, Data: data(0xFF)},
			"(1700000000.123456) can0 123##3FF\n"},
		{"error", Frame{Time: ts, Bus: "can0", ID: 0x4, Flags: ErrorFrame, Len: 8},
			"(1700000000.123456) can0 20000004#0000000000000000\n"},
		{"small time, nanoseconds truncated", Frame{Time: time.Unix(12, 999_999_999), Bus: "can0", ID: 1},
			"(0000000012.999999) can0 001#\n"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var b bytes.Buffer
			w := NewWriter(&b)
			if err := w.Write(&tc.f); err != nil {
				t.Fatal(err)
			}
			if err := w.Flush(); err != nil {
				t.Fatal(err)
			}
			if b.String() != tc.want {
				t.Errorf("wrote %q, want %q", b.String(), tc.want)
			}
		})
	}
}

func TestWriterRefuses(t *testing.T) {
	ok := Frame{Time: ts, Bus: "can0", ID: 0x123}
	for _, tc := range []struct {
		name   string
		modify func(*Frame)
	}{
		{"no bus", func(f *Frame) { f.Bus = "" }},
		{"bus with blank", func(f *Frame) { f.Bus = "can 0" }},
		{"bus too long", func(f *Frame) { f.Bus = "abcdefghijklmnop" }},
		{"zero time", func(f *Frame) { f.Time = time.Time{} }},
		{"before 1970", func(f *Frame) { f.Time = time.Unix(-1, 0) }},
		{"after MaxLogSeconds", func(f *Frame) { f.Time = time.Unix(MaxLogSeconds+1, 0) }},
		{"standard id too big", func(f *Frame) { f.ID = 0x800 }},
		{"classic 9 bytes", func(f *Frame) { f.Len = 9 }},
		{"FD length 9", func(f *Frame) { f.Flags, f.Len = FD, 9 }},
		{"remote FD", func(f *Frame) { f.Flags = FD | Remote }},
		{"extended error frame", func(f *Frame) { f.Flags = ErrorFrame | Extended }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f := ok
			tc.modify(&f)
			var b bytes.Buffer
			w := NewWriter(&b)
			if err := w.Write(&f); !errors.Is(err, ErrInvalidFrame) {
				t.Errorf("Write() = %v, want ErrInvalidFrame", err)
			}
			if err := w.Flush(); err != nil || b.Len() != 0 {
				t.Errorf("wrote %q (Flush %v), want nothing", b.String(), err)
			}
		})
	}
}

type errWriter struct{}

func (errWriter) Write([]byte) (int, error) { return 0, io.ErrClosedPipe }

func TestWriterError(t *testing.T) {
	w := NewWriter(errWriter{})
	f := Frame{Time: ts, Bus: "can0", ID: 1}
	if err := w.Write(&f); err != nil {
		t.Fatalf("buffered Write() = %v", err)
	}
	if err := w.Flush(); !errors.Is(err, io.ErrClosedPipe) {
		t.Errorf("Flush() = %v, want the underlying error", err)
	}
}

// randFrame returns a random valid frame of any kind.
func randFrame(rng *rand.Rand) Frame {
	f := Frame{
		Time: time.Unix(rng.Int64N(MaxLogSeconds+1), rng.Int64N(1e9)),
		Bus:  []string{"can0", "vcan1", "x", "abcdefghijklmno"}[rng.IntN(4)],
	}
	fdLens := []uint8{0, 1, 2, 3, 4, 5, 6, 7, 8, 12, 16, 20, 24, 32, 48, 64}
	switch rng.IntN(6) {
	case 0: // error
		f.Flags, f.ID, f.Len = ErrorFrame, rng.Uint32N(MaxExtendedID+1), uint8(rng.IntN(9))
	case 1: // remote
		f.Flags, f.Len = Remote, uint8(rng.IntN(9))
	case 2, 3: // FD
		f.Flags, f.Len = FD|Flags(rng.IntN(4))*BRS, fdLens[rng.IntN(len(fdLens))]
	default:
		f.Len = uint8(rng.IntN(9))
	}
	if f.Flags&ErrorFrame == 0 {
		if rng.IntN(2) == 0 {
			f.Flags |= Extended
			f.ID = rng.Uint32N(MaxExtendedID + 1)
		} else {
			f.ID = rng.Uint32N(MaxID + 1)
		}
	}
	if f.Flags&Remote == 0 {
		for i := range f.Data[:f.Len] {
			f.Data[i] = byte(rng.Uint32())
		}
	}
	return f
}

func TestRoundTrip(t *testing.T) {
	rng := rand.New(rand.NewPCG(7, 11))
	frames := make([]Frame, 5000)
	var b bytes.Buffer
	w := NewWriter(&b)
	for i := range frames {
		frames[i] = randFrame(rng)
		if err := frames[i].Validate(); err != nil {
			t.Fatalf("randFrame made an invalid frame %+v: %v", frames[i], err)
		}
		if err := w.Write(&frames[i]); err != nil {
			t.Fatalf("Write(%+v) = %v", frames[i], err)
		}
	}
	if err := w.Flush(); err != nil {
		t.Fatal(err)
	}
	r := NewReader(&b)
	i := 0
	for ; r.Receive(); i++ {
		if i >= len(frames) {
			t.Fatal("more frames read than written")
		}
		if !sameFrame(r.Frame(), &frames[i]) {
			t.Fatalf("line %d: read %+v, wrote %+v", r.Line(), *r.Frame(), frames[i])
		}
	}
	if r.Err() != nil || i != len(frames) {
		t.Fatalf("read %d of %d frames, Err() = %v", i, len(frames), r.Err())
	}
}

// TestReaderDataCleared: a short frame after a long one has zero bytes past
// its length, so frames with equal payloads compare equal with ==.
func TestReaderDataCleared(t *testing.T) {
	r := NewReader(strings.NewReader("(1.0) can0 123##0" + strings.Repeat("FF", 64) + "\n(1.0) can0 123#01\n"))
	if !r.Receive() || !r.Receive() {
		t.Fatal(r.Err())
	}
	want := Frame{Time: time.Unix(1, 0), Bus: "can0", ID: 0x123, Len: 1, Data: data(1)}
	if got := *r.Frame(); got != want {
		t.Errorf("got %+v, want %+v", got, want)
	}
}

func TestReaderFilter(t *testing.T) {
	log := "(1.000000) can0 123#01\n" +
		"(1.000001) can0 124#02\n" +
		"(1.000002) can0 00000123#03\n" + // extended 0x123: a different message
		"(1.000003) can0 123#R\n" + // remote: never passes
		"(1.000004) can0 20000123#0000000000000000\n" + // error frame: never passes
		"(1.000005) can0 18FEF100#04\n" +
		"(1.000006) can0 123##105\n" + // FD data frame of an allowed id
		"(1.000007) can0 5A1#06\n"
	filter := NewFilter(Key{ID: 0x123}, Key{ID: 0x18FEF100, Extended: true})
	got, err := readAll(t, log, WithFilter(filter))
	if err != nil {
		t.Fatal(err)
	}
	var payloads []byte
	for _, f := range got {
		payloads = append(payloads, f.Data[0])
	}
	if !bytes.Equal(payloads, []byte{1, 4, 5}) {
		t.Errorf("passed frames with first bytes %v, want [1 4 5]", payloads)
	}

	got, err = readAll(t, log, WithFilter(nil))
	if err != nil || len(got) != 0 {
		t.Errorf("nil filter: %d frames, Err() = %v; want none", len(got), err)
	}
	got, err = readAll(t, log)
	if err != nil || len(got) != 8 {
		t.Errorf("no filter: %d frames, Err() = %v; want all 8", len(got), err)
	}
}

// TestReaderFilterStillValidates: a malformed line stops the Reader even if
// its frame would not pass the filter.
func TestReaderFilterStillValidates(t *testing.T) {
	log := "(1.000000) can0 123#01\n(1.000001) can0 5A1#0\n(1.000002) can0 123#02\n"
	got, err := readAll(t, log, WithFilter(NewFilter(Key{ID: 0x123})))
	var le *LineError
	if len(got) != 1 || !errors.As(err, &le) || le.Line != 2 {
		t.Errorf("%d frames, Err() = %v; want 1 frame and a *LineError at line 2", len(got), err)
	}
}

// TestReaderZeroAllocs guards the hot path: steady-state parsing and
// filtering of a line allocate nothing, bus names included.
func TestReaderZeroAllocs(t *testing.T) {
	log, ends, filter := benchLog(2000)
	var sb strings.Builder
	sb.Write(log)
	// Interleave a second bus and every frame kind.
	canon, err := os.ReadFile("testdata/canonical.log")
	if err != nil {
		t.Fatal(err)
	}
	sb.Write(canon)
	text := []byte(sb.String())
	lines := len(ends) + bytes.Count(canon, []byte("\n"))
	const runs = 20
	r := NewReader(newLinesReader(text, []int{len(text)}, runs+3), WithFilter(filter))
	r.Receive() // first pass: buffers and interned names
	for r.Line() < lines && r.Receive() {
	}
	allocs := testing.AllocsPerRun(runs, func() {
		start := r.Line()
		for r.Line() < start+lines && r.Receive() {
		}
	})
	if r.Err() != nil {
		t.Fatal(r.Err())
	}
	if allocs != 0 {
		t.Errorf("%v allocations per pass of %d lines, want 0", allocs, lines)
	}
}

func TestReaderInternsBusNames(t *testing.T) {
	r := NewReader(strings.NewReader("(1.0) can0 001#\n(1.0) can1 001#\n(1.0) can0 001#\n"))
	var names []string
	for r.Receive() {
		names = append(names, r.Frame().Bus)
	}
	if fmt.Sprint(names) != "[can0 can1 can0]" {
		t.Fatalf("bus names %v", names)
	}
	if unsafeStringData(names[0]) != unsafeStringData(names[2]) {
		t.Error("the same bus name is held in two strings, want one interned string")
	}
}

// fakeClock is a clock whose time moves only when the Reader waits.
type fakeClock struct {
	mu    sync.Mutex
	now   time.Time
	waits []time.Duration
}

func (c *fakeClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

func (c *fakeClock) After(d time.Duration) <-chan time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.waits = append(c.waits, d)
	c.now = c.now.Add(d)
	ch := make(chan time.Time, 1)
	ch <- c.now
	return ch
}

func (c *fakeClock) advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.now = c.now.Add(d)
}

func TestReaderPace(t *testing.T) {
	log := "(100.000000) can0 001#\n" +
		"(100.250000) can0 002#\n" + // filtered out: no wait for it
		"(100.500000) can0 001#\n" +
		"(100.400000) can0 001#\n" + // earlier than its predecessor: at once
		"(102.000000) can0 001#\n"
	clock := &fakeClock{now: time.Unix(5000, 0)}
	r := NewReader(strings.NewReader(log), WithPace(clock), WithFilter(NewFilter(Key{ID: 1})))
	var at []time.Duration
	for r.Receive() {
		at = append(at, clock.Now().Sub(time.Unix(5000, 0)))
		clock.advance(100 * time.Millisecond) // the consumer takes time
	}
	if r.Err() != nil {
		t.Fatal(r.Err())
	}
	want := []time.Duration{0, 500 * time.Millisecond, 600 * time.Millisecond, 2 * time.Second}
	if fmt.Sprint(at) != fmt.Sprint(want) {
		t.Errorf("frames delivered at %v, want %v", at, want)
	}
	wantWaits := []time.Duration{400 * time.Millisecond, 1300 * time.Millisecond}
	if fmt.Sprint(clock.waits) != fmt.Sprint(wantWaits) {
		t.Errorf("waited %v, want %v", clock.waits, wantWaits)
	}
}

// blockingClock never fires: only the context ends a wait.
type blockingClock struct{ now time.Time }

func (c blockingClock) Now() time.Time                     { return c.now }
func (blockingClock) After(time.Duration) <-chan time.Time { return nil }

func TestReaderPaceCancel(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	log := "(100.000000) can0 001#\n(200.000000) can0 001#\n"
	r := NewReader(strings.NewReader(log), WithPace(blockingClock{time.Unix(1, 0)}), WithContext(ctx))
	if !r.Receive() {
		t.Fatal(r.Err())
	}
	done := make(chan bool)
	go func() { done <- r.Receive() }()
	cancel()
	select {
	case ok := <-done:
		if ok || !errors.Is(r.Err(), context.Canceled) {
			t.Errorf("Receive() = %v, Err() = %v; want false, context.Canceled", ok, r.Err())
		}
	case <-time.After(5 * time.Second):
		t.Fatal("Receive did not return after the context was canceled")
	}
}

func TestReaderContextCanceled(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	got, err := readAll(t, "(1.0) can0 001#\n", WithContext(ctx))
	if len(got) != 0 || !errors.Is(err, context.Canceled) {
		t.Errorf("%d frames, Err() = %v; want none, context.Canceled", len(got), err)
	}

	// A long run of filtered-out lines still notices the cancellation.
	ctx, cancel = context.WithCancel(context.Background())
	log := strings.Repeat("(1.0) can0 002#\n", 3*ctxCheckLines)
	r := NewReader(strings.NewReader("(1.0) can0 001#\n"+log+"(1.0) can0 001#\n"),
		WithContext(ctx), WithFilter(NewFilter(Key{ID: 1})))
	if !r.Receive() {
		t.Fatal(r.Err())
	}
	cancel()
	if r.Receive() || !errors.Is(r.Err(), context.Canceled) {
		t.Errorf("Err() = %v after line %d, want context.Canceled", r.Err(), r.Line())
	}
	if r.Line() > 1+ctxCheckLines {
		t.Errorf("read up to line %d after cancel, want at most %d", r.Line(), 1+ctxCheckLines)
	}
}

func TestLineError(t *testing.T) {
	err := error(&LineError{Line: 12, Err: fmt.Errorf("%w: data: want hex digits, found %q", ErrSyntax, "G0")})
	if err.Error() != `line 12: candump syntax: data: want hex digits, found "G0"` {
		t.Errorf("Error() = %q", err)
	}
	if !errors.Is(err, ErrSyntax) || errors.Is(err, ErrLineTooLong) {
		t.Error("errors.Is does not see through LineError")
	}
}

func TestAppendDec(t *testing.T) {
	for _, tc := range []struct {
		v     uint64
		width int
		want  string
	}{
		{0, 1, "0"}, {0, 6, "000000"}, {7, 0, "7"}, {1700000000, 10, "1700000000"},
		{12, 10, "0000000012"}, {999999999999, 10, "999999999999"}, {123456, 6, "123456"},
	} {
		if got := string(appendDec(nil, tc.v, tc.width)); got != tc.want {
			t.Errorf("appendDec(%d, %d) = %q, want %q", tc.v, tc.width, got, tc.want)
		}
	}
}
