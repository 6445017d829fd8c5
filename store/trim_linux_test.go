package store

import (
	"bufio"
	"os"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"testing"
)

// mappedRSS returns the resident kilobytes of the process's mappings of
// file, from /proc/self/smaps.
func mappedRSS(t *testing.T, file string) int {
	t.Helper()
	f, err := os.Open("/proc/self/smaps")
	if err != nil {
		t.Skipf("smaps: %v", err)
	}
	defer f.Close()
	kb, in := 0, false
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		l := sc.Text()
		if fs := strings.Fields(l); len(fs) >= 5 && strings.Contains(fs[0], "-") {
			in = len(fs) >= 6 && fs[len(fs)-1] == file
			continue
		}
		if in && strings.HasPrefix(l, "Rss:") {
			n, _ := strconv.Atoi(strings.Fields(l)[1])
			kb += n
		}
	}
	return kb
}

// procStatusKB reads a kB field of /proc/self/status.
func procStatusKB(t *testing.T, field string) int {
	t.Helper()
	b, err := os.ReadFile("/proc/self/status")
	if err != nil {
		t.Skipf("status: %v", err)
	}
	for _, l := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(l, field+":"); ok {
			n, _ := strconv.Atoi(strings.Fields(v)[0])
			return n
		}
	}
	t.Fatalf("no %s in /proc/self/status", field)
	return 0
}

// TestAckTrimsTheMapping checks that draining a backlog does not leave it
// resident: the records read through bbolt's memory map count in the
// process's RSS (a T-Box's budget is 16 MiB) until the acks drop them.
func TestAckTrimsTheMapping(t *testing.T) {
	dir := t.TempDir()
	s := mustOpen(t, dir, &Options{NoSync: true})
	file, err := filepath.EvalSymlinks(filepath.Join(dir, "outbox.db"))
	if err != nil {
		t.Fatal(err)
	}
	const n = 6000 // about 2.8 MB of records
	want := appendN(t, s, &chain{}, n)
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	// Open reads every record once (the chain check): not kept resident,
	// not even on the way (the process's peak RSS, reset before, tells).
	runtime.GC()
	resetPeak := os.WriteFile("/proc/self/clear_refs", []byte("5"), 0) == nil
	before := procStatusKB(t, "VmRSS")
	s = mustOpen(t, dir, &Options{NoSync: true})
	if kb, limit := mappedRSS(t, file), int(4*trimEvery>>10); kb > limit {
		t.Errorf("%d KiB of outbox.db resident after Open, want at most %d", kb, limit)
	}
	if resetPeak {
		grew := procStatusKB(t, "VmHWM") - before
		t.Logf("peak RSS grew by %d KiB while Open read the 6,000 records", grew)
		if limit := int(6 * trimEvery >> 10); grew > limit {
			t.Errorf("peak RSS grew by %d KiB while Open read the records, want at most %d", grew, limit)
		}
	}

	// Drained as the uplink does: a window read, acked, the next one.
	peak := 0
	for seq := uint64(0); seq < n; {
		recs, err := s.Pending(seq, 100)
		if err != nil || len(recs) == 0 {
			t.Fatalf("Pending(%d, 100): %d records, %v", seq, len(recs), err)
		}
		for _, r := range recs {
			if w := want[r.Seq-1]; string(r.Wire) != string(w.Wire) {
				t.Fatalf("seq %d read back after a trim differs from what was appended", r.Seq)
			}
		}
		seq = recs[len(recs)-1].Seq
		peak = max(peak, mappedRSS(t, file))
		if _, err := s.Ack(seq); err != nil {
			t.Fatal(err)
		}
	}
	after := mappedRSS(t, file)
	fi, err := os.Stat(file)
	if err != nil {
		t.Fatal(err)
	}
	size := fi.Size() >> 10
	t.Logf("outbox.db of %d KiB: at most %d KiB resident while draining %d records, %d KiB once drained", size, peak, n, after)
	if after > 128 {
		t.Errorf("%d KiB of outbox.db resident once drained, want at most 128", after)
	}
	// trimEvery counts record bytes; bbolt's pages hold about half that
	// much, and a drain reads ahead by a window before it acks.
	if limit := int64(4 * trimEvery >> 10); int64(peak) > limit {
		t.Errorf("up to %d KiB resident while draining, want at most %d (a trim every %d KiB of records)", peak, limit, trimEvery>>10)
	}
}

// TestFreelistDuplicateRefused: bbolt reads a synced freelist by its
// count and would hand a repeated free page out twice; the walk before
// bbolt.Open refuses it.
func TestFreelistDuplicateRefused(t *testing.T) {
	dir := t.TempDir()
	s := mustOpen(t, dir, &Options{NoSync: true})
	appendN(t, s, &chain{}, 300)
	if _, err := s.Ack(250); err != nil { // frees pages
		t.Fatal(err)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(dir, dbName)
	f, err := os.OpenFile(path, os.O_RDWR, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	fi, _ := f.Stat()
	if _, err := verifyBolt(f, fi.Size()); err != nil {
		t.Fatalf("the intact file: %v", err)
	}
	m, ps, _, err := pickMeta(f, fi.Size())
	if err != nil || m.freelist == pgidNoFreelist {
		t.Fatalf("meta %+v, %v: want a synced freelist", m, err)
	}
	off := int64(m.freelist) * int64(ps)
	hdr := make([]byte, pageHeaderSize+16)
	if _, err := f.ReadAt(hdr, off); err != nil {
		t.Fatal(err)
	}
	if n := ne.Uint16(hdr[10:]); n < 2 || n == 0xFFFF {
		t.Fatalf("freelist of %d ids: want at least two, inline", n)
	}
	copy(hdr[pageHeaderSize+8:], hdr[pageHeaderSize:pageHeaderSize+8]) // the second id = the first
	if _, err := f.WriteAt(hdr, off); err != nil {
		t.Fatal(err)
	}
	if _, err := verifyBolt(f, fi.Size()); err == nil || !strings.Contains(err.Error(), "increasing") {
		t.Errorf("a freelist with a repeated id: %v, want it refused", err)
	}
}
