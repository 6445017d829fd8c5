package store

import (
	"errors"
	"maps"
	"os"
	"path/filepath"
	"testing"

	"go.etcd.io/bbolt"
)

// tornStore returns a closed store whose last transaction appended seq 5
// (the head, published), with its newest meta page torn: bbolt falls back
// to the transaction before, whose head is 4.
func tornStore(t *testing.T, records int) string {
	t.Helper()
	dir := t.TempDir()
	s, err := Open(dir, nil)
	if err != nil {
		t.Fatal(err)
	}
	appendN(t, s, &chain{}, records)
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(dir, dbName)
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	ps := int64(os.Getpagesize())
	m0, err0 := readMetaAt(f, 0)
	m1, err1 := readMetaAt(f, ps)
	f.Close()
	if err0 != nil || err1 != nil {
		t.Fatalf("meta pages of a clean store: %v, %v", err0, err1)
	}
	newest := int64(0)
	if m1.txid > m0.txid {
		newest = 1
	}
	// A cut during the meta page's write: its second half is garbage.
	overwrite(t, path, newest*ps+pageHeaderSize+32, 32, 77)
	if got := boltHead(t, path); got != uint64(records-1) {
		t.Fatalf("after tearing the newest meta page bbolt reads head %d, want %d: the test tears the wrong page", got, records-1)
	}
	return dir
}

// boltHead reads the head seq of outbox.db at path with bbolt alone, from
// a copy (bbolt's read-only open still takes a lock and maps the file).
func boltHead(t *testing.T, path string) uint64 {
	t.Helper()
	cp := filepath.Join(t.TempDir(), "copy.db")
	writeFile(t, cp, readFile(t, path))
	db, err := bbolt.Open(cp, 0o600, &bbolt.Options{ReadOnly: true})
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	var seq uint64
	err = db.View(func(tx *bbolt.Tx) error {
		v := tx.Bucket(bucketMeta).Get(keyHead)
		if len(v) < 8 {
			return errors.New("no head")
		}
		r, err := decodeRecord(v[:8], v[8:])
		seq = r.Seq
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	return seq
}

// snapshot returns every file of dir by name with its bytes.
func snapshot(t *testing.T, dir string) map[string]string {
	t.Helper()
	ents, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]string{}
	for _, e := range ents {
		out[e.Name()] = string(readFile(t, filepath.Join(dir, e.Name())))
	}
	return out
}

// TestTornMetaWithDamagedSidecar is issue 14 (d): bbolt's newest meta page
// torn and the sidecar damaged. The database alone says head 4; seq 5 was
// published. Open must refuse (ErrHeadLost), write nothing, and certainly
// not rewrite the sidecar at 4, from which seq 5 would be signed again.
func TestTornMetaWithDamagedSidecar(t *testing.T) {
	for _, tc := range []struct {
		name   string
		damage func(t *testing.T, head string)
	}{
		{"sidecar bytes overwritten", func(t *testing.T, head string) { overwrite(t, head, 20, 8, 5) }},
		{"sidecar truncated", func(t *testing.T, head string) { truncate(t, head, 30) }},
		{"sidecar deleted", func(t *testing.T, head string) { os.Remove(head) }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := tornStore(t, 5)
			tc.damage(t, filepath.Join(dir, sidecarName))
			before := snapshot(t, dir)
			s, err := Open(dir, nil)
			if err == nil {
				seq, _ := s.Last()
				s.Close()
				t.Fatalf("Open succeeded with head %d: the next Append would sign seq %d, published before", seq, seq+1)
			}
			if !errors.Is(err, ErrHeadLost) {
				t.Fatalf("Open = %v, want ErrHeadLost", err)
			}
			t.Logf("Open: %v", err)
			if after := snapshot(t, dir); !maps.Equal(before, after) {
				t.Errorf("Open changed the files: before %d, after %d (nothing may be rewritten)", len(before), len(after))
			}
			// The lock was released: an operator's tool can open it.
			if _, err := Open(dir, nil); !errors.Is(err, ErrHeadLost) {
				t.Errorf("second Open = %v, want ErrHeadLost again", err)
			}
		})
	}
}

// TestTornMetaWithSidecar: with the sidecar intact, the same torn page is
// repaired as before: the sidecar's head 5 wins.
func TestTornMetaWithSidecar(t *testing.T) {
	dir := tornStore(t, 5)
	s := mustOpen(t, dir, nil)
	if seq, _ := s.Last(); seq != 5 {
		t.Fatalf("head %d, want 5", seq)
	}
	if rec := s.Stats().Recovery; rec.Requeued != 5 || !rec.Lost.Empty() {
		t.Errorf("recovery %+v: want 5 completed from the sidecar, nothing lost", rec)
	}
}

// TestTornMetaFreshDevice: a device that never appended has no sidecar;
// a torn Checkpoint commit must not strand it.
func TestTornMetaFreshDevice(t *testing.T) {
	dir := t.TempDir()
	s, err := Open(dir, &Options{CheckpointEvery: -1})
	if err != nil {
		t.Fatal(err)
	}
	for _, st := range []string{"a", "b", "c"} {
		if err := s.Checkpoint([]byte(st)); err != nil {
			t.Fatal(err)
		}
	}
	s.Close()
	path := filepath.Join(dir, dbName)
	f, _ := os.Open(path)
	ps := int64(os.Getpagesize())
	m0, _ := readMetaAt(f, 0)
	m1, _ := readMetaAt(f, ps)
	f.Close()
	newest := int64(0)
	if m1.txid > m0.txid {
		newest = 1
	}
	overwrite(t, path, newest*ps+pageHeaderSize+32, 32, 78)
	s = mustOpen(t, dir, nil)
	if st, _ := s.State(); string(st) != "b" {
		t.Errorf("state %q, want the checkpoint before the torn one", st)
	}
	appendN(t, s, &chain{}, 1)
}

// TestReseedReportsLostRange is issue 14 (c): outbox.db damaged, re-seeded
// from the sidecar. The range of seqs that may be lost is reported, kept
// in the database across restarts, and replaced by the next re-seed.
func TestReseedReportsLostRange(t *testing.T) {
	f := newFixture(t) // records 1..40, 1..10 acked
	truncate(t, filepath.Join(f.dir, dbName), 0)
	s, err := Open(f.dir, nil)
	if err != nil {
		t.Fatal(err)
	}
	want := LostRange{From: 11, To: 39}
	st := s.Stats()
	if got := st.Recovery.Lost; got.From != want.From || got.To != want.To || got.At.IsZero() || st.Recovery.MaybeLost != 29 {
		t.Fatalf("Recovery.Lost %+v (MaybeLost %d), want 11..39 (29)", got, st.Recovery.MaybeLost)
	}
	if st.Lost != st.Recovery.Lost {
		t.Errorf("Stats.Lost %+v, want the recovery's %+v", st.Lost, st.Recovery.Lost)
	}
	at := st.Lost.At
	c := chainAt(40, f.recs[39].Digest)
	appendN(t, s, c, 2)
	if _, err := s.Ack(41); err != nil {
		t.Fatal(err)
	}
	s.Close()

	s = mustOpen(t, f.dir, nil)
	st = s.Stats()
	if st.Recovery.Repaired() || st.Lost.From != 11 || st.Lost.To != 39 || !st.Lost.At.Equal(at) {
		t.Errorf("after a clean restart: Lost %+v, recovery %+v; want 11..39 kept, nothing repaired", st.Lost, st.Recovery)
	}
	if got := st.Lost.String(); got != "11..39" {
		t.Errorf("String() = %q", got)
	}
}
