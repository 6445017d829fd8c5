package can

import (
	"bytes"
	"io"
	"math/rand/v2"
	"testing"
	"time"
)

// benchLog returns a realistic candump log of n lines: 50 message ids (40
// standard, 10 extended, J1939-like), payloads of 2 to 8 bytes, one frame
// every 100 microseconds on can0; and a filter allowing 5 of those ids.
func benchLog(n int) (log []byte, lineEnds []int, filter *Filter) {
	rng := rand.New(rand.NewPCG(1, 2))
	type msg struct {
		key Key
		len uint8
	}
	msgs := make([]msg, 0, 50)
	for i := 0; i < 40; i++ {
		msgs = append(msgs, msg{Key{ID: uint32(0x100 + 0x13*i)}, uint8(2 + rng.IntN(7))})
	}
	for i := 0; i < 10; i++ {
		msgs = append(msgs, msg{Key{ID: 0x18FEF100 + uint32(i)<<8, Extended: true}, 8})
	}
	filter = NewFilter(msgs[3].key, msgs[17].key, msgs[29].key, msgs[38].key, msgs[44].key)

	var buf bytes.Buffer
	w := NewWriter(&buf)
	t := time.Unix(1700000000, 0)
	var f Frame
	f.Bus = "can0"
	for i := 0; i < n; i++ {
		m := msgs[rng.IntN(len(msgs))]
		f.ID, f.Len, f.Flags = m.key.ID, m.len, 0
		if m.key.Extended {
			f.Flags = Extended
		}
		for j := range f.Data[:f.Len] {
			f.Data[j] = byte(rng.Uint32())
		}
		f.Time = t.Add(time.Duration(i) * 100 * time.Microsecond)
		if err := w.Write(&f); err != nil {
			panic(err)
		}
		if err := w.Flush(); err != nil {
			panic(err)
		}
		lineEnds = append(lineEnds, buf.Len())
	}
	return buf.Bytes(), lineEnds, filter
}

// linesReader serves exactly n lines of a log, repeating it as needed.
type linesReader struct {
	log  []byte
	left int // bytes still to serve
	pos  int
}

func newLinesReader(log []byte, lineEnds []int, n int) *linesReader {
	total := (n/len(lineEnds))*len(log) + 0
	if rem := n % len(lineEnds); rem > 0 {
		total += lineEnds[rem-1]
	}
	return &linesReader{log: log, left: total}
}

func (r *linesReader) Read(p []byte) (int, error) {
	if r.left == 0 {
		return 0, io.EOF
	}
	if len(p) > r.left {
		p = p[:r.left]
	}
	n := copy(p, r.log[r.pos:])
	r.pos = (r.pos + n) % len(r.log)
	r.left -= n
	return n, nil
}

// BenchmarkReaderFilter measures the replay hot path: one op is one log
// line read, parsed and filtered (1 in 10 lines passes).
func BenchmarkReaderFilter(b *testing.B) {
	log, ends, filter := benchLog(50_000)
	b.SetBytes(int64(len(log) / len(ends)))
	b.ReportAllocs()
	r := NewReader(newLinesReader(log, ends, b.N), WithFilter(filter))
	passed := 0
	b.ResetTimer()
	for r.Receive() {
		passed++
	}
	b.StopTimer()
	if err := r.Err(); err != nil {
		b.Fatal(err)
	}
	if r.Line() != b.N {
		b.Fatalf("read %d lines, want %d", r.Line(), b.N)
	}
	if b.N >= 10_000 && (passed < b.N/20 || passed > b.N/5) {
		b.Fatalf("%d of %d lines passed the filter, want about 1 in 10", passed, b.N)
	}
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "frames/s")
}

// BenchmarkWriter measures writing one classic frame per op.
func BenchmarkWriter(b *testing.B) {
	f := Frame{Time: time.Unix(1700000000, 123456000), Bus: "can0", ID: 0x1A3, Len: 8,
		Data: [64]byte{0, 0x11, 0x22, 0x33, 0x44, 0x55, 0x66, 0x77}}
	w := NewWriter(io.Discard)
	b.ReportAllocs()
	for b.Loop() {
		if err := w.Write(&f); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "frames/s")
}
