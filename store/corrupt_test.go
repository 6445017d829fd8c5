package store

import (
	"errors"
	"math/rand/v2"
	"os"
	"path/filepath"
	"testing"
)

// fixture is a closed store with records 1..40, 1..10 acked, and copies of
// its files taken when the head was at 30.
type fixture struct {
	dir       string
	recs      []Record
	oldDB     []byte // outbox.db at head 30
	oldHead   []byte // sidecar at head 30
	pageSize  int
	headState string
}

func newFixture(t *testing.T) fixture {
	t.Helper()
	dir := t.TempDir()
	s, err := Open(dir, nil)
	if err != nil {
		t.Fatal(err)
	}
	c := &chain{}
	recs := appendN(t, s, c, 30)
	if _, err := s.Ack(10); err != nil {
		t.Fatal(err)
	}
	f := fixture{dir: dir, pageSize: os.Getpagesize(), headState: "seq=40"}
	// bbolt's file is consistent after every commit: a copy taken now is
	// what a backup or an old image would hold.
	f.oldDB = readFile(t, filepath.Join(dir, dbName))
	f.oldHead = readFile(t, filepath.Join(dir, sidecarName))
	recs = append(recs, appendN(t, s, c, 10)...)
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	f.recs = recs
	return f
}

func readFile(t *testing.T, p string) []byte {
	t.Helper()
	b, err := os.ReadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func writeFile(t *testing.T, p string, b []byte) {
	t.Helper()
	if err := os.WriteFile(p, b, 0o600); err != nil {
		t.Fatal(err)
	}
}

// overwrite puts n pseudo-random bytes at off in file p.
func overwrite(t *testing.T, p string, off int64, n int, seed uint64) {
	t.Helper()
	f, err := os.OpenFile(p, os.O_RDWR, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	b := make([]byte, n)
	r := rand.New(rand.NewPCG(seed, 1))
	for i := range b {
		b[i] = byte(r.Uint32())
	}
	if _, err := f.WriteAt(b, off); err != nil {
		t.Fatal(err)
	}
}

func truncate(t *testing.T, p string, size int64) {
	t.Helper()
	if err := os.Truncate(p, size); err != nil {
		t.Fatal(err)
	}
}

// Expected outcomes of Open after damage.
const (
	intact   = iota // every pending record 11..40 still there, no db moved
	reseeded        // db moved aside, only the head record 40 re-queued
	either          // damage may land on free space: intact, or reseeded
)

func TestCorruption(t *testing.T) {
	db := func(f fixture) string { return filepath.Join(f.dir, dbName) }
	head := func(f fixture) string { return filepath.Join(f.dir, sidecarName) }
	size := func(t *testing.T, p string) int64 {
		fi, err := os.Stat(p)
		if err != nil {
			t.Fatal(err)
		}
		return fi.Size()
	}
	for _, tc := range []struct {
		name    string
		damage  func(t *testing.T, f fixture)
		outcome int
		sidecar bool // the sidecar must have been rewritten
		gone    bool // no database file left to move aside
	}{
		{"db deleted", func(t *testing.T, f fixture) { os.Remove(db(f)) }, reseeded, false, true},
		{"db zero-length", func(t *testing.T, f fixture) { truncate(t, db(f), 0) }, reseeded, false, false},
		{"db truncated to one page", func(t *testing.T, f fixture) { truncate(t, db(f), int64(f.pageSize)) }, reseeded, false, false},
		{"db truncated to half", func(t *testing.T, f fixture) { truncate(t, db(f), size(t, db(f))/2) }, either, false, false},
		{"db truncated to 3 pages", func(t *testing.T, f fixture) { truncate(t, db(f), 3*int64(f.pageSize)) }, reseeded, false, false},
		{"db both meta pages overwritten", func(t *testing.T, f fixture) {
			overwrite(t, db(f), 0, 512, 1)
			overwrite(t, db(f), int64(f.pageSize), 512, 2)
		}, reseeded, false, false},
		{"db meta page 0 overwritten", func(t *testing.T, f fixture) { overwrite(t, db(f), 0, 512, 3) }, intact, false, false},
		{"db meta page 1 overwritten", func(t *testing.T, f fixture) { overwrite(t, db(f), int64(f.pageSize), 512, 4) }, intact, false, false},
		{"db page 2 overwritten", func(t *testing.T, f fixture) { overwrite(t, db(f), 2*int64(f.pageSize), 4096, 5) }, either, false, false},
		{"db page 3 overwritten", func(t *testing.T, f fixture) { overwrite(t, db(f), 3*int64(f.pageSize), 100, 6) }, either, false, false},
		{"db page 4 overwritten", func(t *testing.T, f fixture) { overwrite(t, db(f), 4*int64(f.pageSize)+16, 64, 7) }, either, false, false},
		{"db middle overwritten", func(t *testing.T, f fixture) { overwrite(t, db(f), size(t, db(f))/2, 8192, 8) }, either, false, false},
		{"db random bytes", func(t *testing.T, f fixture) {
			n := size(t, db(f))
			truncate(t, db(f), 0)
			overwrite(t, db(f), 0, int(n), 9)
		}, reseeded, false, false},
		{"db stale copy, 10 records behind", func(t *testing.T, f fixture) { writeFile(t, db(f), f.oldDB) }, reseeded, false, false},
		{"db from another chain", func(t *testing.T, f fixture) {
			other := t.TempDir()
			s, err := Open(other, &Options{NoSync: true})
			if err != nil {
				t.Fatal(err)
			}
			c := &chain{prev: [32]byte{1}}
			appendN(t, s, c, 40)
			s.Close()
			writeFile(t, db(f), readFile(t, filepath.Join(other, dbName)))
		}, reseeded, false, false},
		{"sidecar deleted", func(t *testing.T, f fixture) { os.Remove(head(f)) }, intact, true, false},
		{"sidecar torn", func(t *testing.T, f fixture) { truncate(t, head(f), size(t, head(f))/2) }, intact, true, false},
		{"sidecar zero-length", func(t *testing.T, f fixture) { truncate(t, head(f), 0) }, intact, true, false},
		{"sidecar bytes overwritten", func(t *testing.T, f fixture) { overwrite(t, head(f), 20, 8, 10) }, intact, true, false},
		{"sidecar stale copy", func(t *testing.T, f fixture) { writeFile(t, head(f), f.oldHead) }, intact, true, false},
		{"leftover head.tmp", func(t *testing.T, f fixture) {
			writeFile(t, filepath.Join(f.dir, sidecarTmpName), []byte("half a sidecar"))
		}, intact, false, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f := newFixture(t)
			tc.damage(t, f)
			s := mustOpen(t, f.dir, nil)
			rec := s.Stats().Recovery
			t.Logf("recovery: %q", rec.Notes)
			last := f.recs[39]
			if seq, d := s.Last(); seq != 40 || d != last.Digest {
				t.Fatalf("head after damage = %d %x, want 40 %x", seq, d[:4], last.Digest[:4])
			}
			p, err := s.Pending(0, 0)
			if err != nil {
				t.Fatal(err)
			}
			if len(p) == 0 || p[len(p)-1].Seq != 40 {
				t.Fatalf("pending %v: want a run ending at the head 40", seqs(p))
			}
			known := map[uint64][32]byte{}
			for _, r := range f.recs {
				known[r.Seq] = r.Digest
			}
			checkChain(t, p, known)
			moved := rec.MovedAside != ""
			if tc.outcome != reseeded && (moved || len(p) == 1) {
				t.Logf("db moved aside: %v, pending %v", moved, seqs(p))
			}
			switch {
			case tc.outcome == intact && (moved || p[0].Seq > 11):
				t.Errorf("want every pending record kept; moved aside %q, pending from %d", rec.MovedAside, p[0].Seq)
			case tc.outcome == reseeded && (moved == tc.gone || len(p) != 1 || rec.Requeued != 40 || rec.MaybeLost != 29):
				t.Errorf("want the db moved aside and 40 re-queued with 29 maybe lost; got moved %q, pending %v, requeued %d, lost %d",
					rec.MovedAside, seqs(p), rec.Requeued, rec.MaybeLost)
			case tc.outcome == either && moved && len(p) != 1:
				t.Errorf("db moved aside but pending is %v, want [40]", seqs(p))
			case tc.outcome == either && !moved && p[0].Seq > 11:
				t.Errorf("db kept but pending starts at %d, want <= 11", p[0].Seq)
			}
			if moved {
				if _, err := os.Stat(rec.MovedAside); err != nil {
					t.Errorf("moved-aside file: %v", err)
				}
			}
			if tc.sidecar != rec.SidecarRewritten {
				t.Errorf("SidecarRewritten = %v, want %v", rec.SidecarRewritten, tc.sidecar)
			}
			if sc, err := readSidecar(f.dir); err != nil || sc.rec.Seq != 40 || sc.rec.Digest != last.Digest {
				t.Errorf("sidecar after Open: %d, %v; want head 40", sc.rec.Seq, err)
			}
			if st, _ := s.State(); string(st) != "seq=40" {
				t.Errorf("State() = %q, want the state saved with 40", st)
			}
			// No fork is possible: the next record must be 41 on top of 40.
			c := chainAt(40, last.Digest)
			if err := s.Append(Record{Seq: 40, Digest: [32]byte{9}, Wire: []byte("fork")}, nil); !errors.Is(err, ErrDuplicate) {
				t.Errorf("re-signing 40 = %v, want ErrDuplicate", err)
			}
			next := appendN(t, s, c, 1)
			p, _ = s.Pending(0, 0)
			checkChain(t, p, known)
			if p[len(p)-1].Seq != 41 || p[len(p)-1].Digest != next[0].Digest {
				t.Errorf("pending after the next append ends at %d", p[len(p)-1].Seq)
			}
		})
	}
}

func TestHeadLost(t *testing.T) {
	for _, tc := range []struct {
		name   string
		damage func(t *testing.T, dir string)
	}{
		{"both damaged", func(t *testing.T, dir string) {
			overwrite(t, filepath.Join(dir, sidecarName), 20, 8, 1)
			truncate(t, filepath.Join(dir, dbName), 100)
		}},
		{"sidecar damaged, db deleted", func(t *testing.T, dir string) {
			truncate(t, filepath.Join(dir, sidecarName), 10)
			os.Remove(filepath.Join(dir, dbName))
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f := newFixture(t)
			tc.damage(t, f.dir)
			before, _ := os.ReadDir(f.dir)
			s, err := Open(f.dir, nil)
			if !errors.Is(err, ErrHeadLost) {
				if s != nil {
					s.Close()
				}
				t.Fatalf("Open = %v, want ErrHeadLost", err)
			}
			after, _ := os.ReadDir(f.dir)
			if len(before) != len(after) {
				t.Errorf("files changed: %d before, %d after; want them left for an operator", len(before), len(after))
			}
		})
	}
}

// A damaged sidecar next to a sound database that never held a record:
// no Append ever completed, so starting at seq 1 forks nothing.
func TestSidecarDamagedNoRecord(t *testing.T) {
	dir := t.TempDir()
	s, err := Open(dir, nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Checkpoint([]byte("odo")); err != nil {
		t.Fatal(err)
	}
	s.Close()
	writeFile(t, filepath.Join(dir, sidecarName), []byte("TBXH garbage"))
	s = mustOpen(t, dir, nil)
	if seq, _ := s.Last(); seq != 0 {
		t.Errorf("head %d, want 0", seq)
	}
	if st, _ := s.State(); string(st) != "odo" {
		t.Errorf("State() = %q, want odo", st)
	}
	if !s.Stats().Recovery.Repaired() {
		t.Error("a damaged sidecar must be reported")
	}
	appendN(t, s, &chain{}, 1)
}

var errCrash = errors.New("simulated crash")

// A crash between the sidecar write and the database commit: Open must
// complete the append from the sidecar, with its state.
func TestCrashBetweenSidecarAndCommit(t *testing.T) {
	for _, tc := range []struct {
		name  string
		crash func(t *testing.T, s *Store, r Record)
	}{
		{"hook", func(t *testing.T, s *Store, r Record) {
			testHookAfterSidecar = func() error { return errCrash }
			defer func() { testHookAfterSidecar = nil }()
			if err := s.Append(r, []byte("state-41")); !errors.Is(err, errCrash) {
				t.Fatalf("Append = %v, want the simulated crash", err)
			}
			if err := s.Append(r, []byte("state-41")); !errors.Is(err, ErrBroken) {
				t.Errorf("Append after the crash = %v, want ErrBroken", err)
			}
			s.Close()
		}},
		{"sidecar written ahead", func(t *testing.T, s *Store, r Record) {
			s.Close()
			r.Created = s.now()
			if _, err := writeSidecar(s.dir, sidecar{rec: r, acked: 10, state: []byte("state-41")}, true); err != nil {
				t.Fatal(err)
			}
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f := newFixture(t)
			s, err := Open(f.dir, nil)
			if err != nil {
				t.Fatal(err)
			}
			c := chainAt(40, f.recs[39].Digest)
			r := c.next()
			tc.crash(t, s, r)

			s = mustOpen(t, f.dir, nil)
			rec := s.Stats().Recovery
			if rec.Requeued != 41 || rec.MovedAside != "" || rec.MaybeLost != 0 {
				t.Errorf("recovery %+v: want 41 re-queued, nothing moved or lost", rec)
			}
			if seq, d := s.Last(); seq != 41 || d != r.Digest {
				t.Errorf("head = %d, want 41", seq)
			}
			if st, _ := s.State(); string(st) != "state-41" {
				t.Errorf("State() = %q, want the state appended with 41", st)
			}
			p, _ := s.Pending(0, 0)
			if len(p) != 31 || p[0].Seq != 11 {
				t.Fatalf("pending %v, want 11..41", seqs(p))
			}
			known := map[uint64][32]byte{}
			checkChain(t, p, known)
			appendN(t, s, c, 1)
		})
	}
}
