package profile

import (
	"bytes"
	"os"
	"runtime"
	"testing"
	"time"
)

// TestReadLargeDBC: a DBC near the size limit (15 MB of a real file dense
// in small signals, Honda's generated DBC over and over) reads in linear
// time and memory: all its allocations add up to at most 6 times the file
// (measured: 4.7 times, 71 MB; 9.5 times before the reader collected
// signals and values apart), and what it keeps at most 3 times (measured:
// 2.3 times; a 60-byte SG_ line is a SignalDef of over 100 bytes).
func TestReadLargeDBC(t *testing.T) {
	unit, err := os.ReadFile("testdata/public/honda_civic_touring_2016_can_generated.dbc")
	if err != nil {
		t.Fatal(err)
	}
	data := bytes.Repeat(unit, 15e6/len(unit))
	var before, after, kept runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)
	start := time.Now()
	db, err := parseDBC("big.dbc", data)
	elapsed := time.Since(start)
	runtime.ReadMemStats(&after)
	if err != nil {
		t.Fatal(err)
	}
	runtime.GC()
	runtime.ReadMemStats(&kept)
	alloc := after.TotalAlloc - before.TotalAlloc
	live := int64(kept.HeapAlloc) - int64(before.HeapAlloc)
	t.Logf("%.1f MB read in %v: %.1f MB allocated, %.1f MB kept, %d messages", float64(len(data))/1e6, elapsed, float64(alloc)/1e6, float64(live)/1e6, len(db.messages))
	if alloc > 6*uint64(len(data)) {
		t.Errorf("%d bytes allocated to read %d: want at most 6 times the file", alloc, len(data))
	}
	if live > 3*int64(len(data)) {
		t.Errorf("%d bytes kept after reading %d: want at most 3 times the file", live, len(data))
	}
	if elapsed > 30*time.Second {
		t.Errorf("%d bytes read in %v", len(data), elapsed)
	}
	if want := (15e6 / len(unit)) * bytes.Count(unit, []byte("\nBO_ ")); len(db.messages) != want {
		t.Errorf("%d messages, want %d", len(db.messages), want)
	}
	runtime.KeepAlive(db)
}
