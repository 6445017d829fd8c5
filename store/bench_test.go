package store

import (
	"bufio"
	"fmt"
	"os"
	"strconv"
	"strings"
	"testing"
	"time"
)

// procIO returns this process's wchar (bytes passed to write calls) and
// write_bytes (bytes sent to the block layer) from /proc/self/io; -1 where
// unavailable.
func procIO() (wchar, disk int64) {
	wchar, disk = -1, -1
	f, err := os.Open("/proc/self/io")
	if err != nil {
		return
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		k, v, _ := strings.Cut(sc.Text(), ": ")
		n, err := strconv.ParseInt(v, 10, 64)
		if err != nil {
			continue
		}
		switch k {
		case "wchar":
			wchar = n
		case "write_bytes":
			disk = n
		}
	}
	return
}

// BenchmarkAppendFsync appends records with every fsync on (sidecar file,
// directory, bbolt data and meta pages).
func BenchmarkAppendFsync(b *testing.B) {
	s := mustOpen(b, "", nil)
	c := &chain{}
	st0 := s.Stats()
	w0, d0 := procIO()
	n := 0
	start := time.Now()
	for b.Loop() {
		r := c.next()
		if err := s.Append(r, stateFor(r.Seq)); err != nil {
			b.Fatal(err)
		}
		n++
	}
	el := time.Since(start)
	st := s.Stats()
	w1, d1 := procIO()
	b.ReportMetric(float64(n)/el.Seconds(), "appends/s")
	b.ReportMetric(float64(st.Fsyncs-st0.Fsyncs)/float64(n), "fsyncs/op")
	if w0 >= 0 {
		b.ReportMetric(float64(w1-w0)/float64(n), "written-B/op")
		b.ReportMetric(float64(d1-d0)/float64(n), "disk-B/op")
	}
}

// BenchmarkDrivenHour simulates one hour of driving per op at the normal
// pace: an attestation every 10 minutes, acked by the collector right
// after, and the agent checkpointing its open span. It reports what an
// hour costs the flash: fsyncs, commits, bytes written.
func BenchmarkDrivenHour(b *testing.B) {
	for _, p := range []struct {
		name  string
		every time.Duration // Options.CheckpointEvery
		ckpt  int           // seconds between the agent's Checkpoint calls, 0 for none
	}{
		{"ckpt=10s,every=1m", time.Minute, 10},
		{"ckpt=1m,every=always", -1, 60},
		{"ckpt=10s,every=5m", 5 * time.Minute, 10},
		{"no-ckpt", -1, 0},
	} {
		b.Run(p.name, func(b *testing.B) {
			s := mustOpen(b, "", &Options{CheckpointEvery: p.every})
			now := time.Unix(1_700_000_000, 0)
			s.now = func() time.Time { return now }
			c := &chain{}
			st0 := s.Stats()
			w0, d0 := procIO()
			hours := 0
			for b.Loop() {
				for sec := 10; sec <= 3600; sec += 10 {
					now = now.Add(10 * time.Second)
					if sec%600 == 0 {
						r := c.next()
						if err := s.Append(r, []byte(fmt.Sprintf("seq=%d;hwm=123456789;span=0", r.Seq))); err != nil {
							b.Fatal(err)
						}
						if _, err := s.Ack(r.Seq); err != nil {
							b.Fatal(err)
						}
					} else if p.ckpt > 0 && sec%p.ckpt == 0 {
						if err := s.Checkpoint([]byte(fmt.Sprintf("seq=%d;hwm=123456789;span=%d", c.seq, sec))); err != nil {
							b.Fatal(err)
						}
					}
				}
				hours++
			}
			st := s.Stats()
			w1, d1 := procIO()
			h := float64(hours)
			b.ReportMetric(float64(st.Fsyncs-st0.Fsyncs)/h, "fsyncs/h")
			b.ReportMetric(float64(st.Commits-st0.Commits)/h, "commits/h")
			if w0 >= 0 {
				b.ReportMetric(float64(w1-w0)/h, "written-B/h")
				b.ReportMetric(float64(d1-d0)/h, "disk-B/h")
			}
		})
	}
}
