package store

import (
	"bytes"
	"errors"
	"os"
	"path/filepath"
	"testing"
	"time"
)

// dirBytes returns every file in dir with its contents.
func dirBytes(t *testing.T, dir string) map[string][]byte {
	t.Helper()
	out := map[string][]byte{}
	ents, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range ents {
		b, err := os.ReadFile(filepath.Join(dir, e.Name()))
		if err != nil {
			t.Fatal(err)
		}
		out[e.Name()] = b
	}
	return out
}

// TestOpenReadOnlyCreatesNothing: a missing directory, a file, or a
// directory without an outbox is ErrNoStore, and none of them is created.
func TestOpenReadOnlyCreatesNothing(t *testing.T) {
	base := t.TempDir()
	missing := filepath.Join(base, "nosuch")
	plain := filepath.Join(base, "file")
	empty := filepath.Join(base, "empty")
	if err := os.WriteFile(plain, []byte("x"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.Mkdir(empty, 0o700); err != nil {
		t.Fatal(err)
	}
	for _, dir := range []string{missing, plain, empty} {
		s, err := OpenReadOnly(dir)
		if !errors.Is(err, ErrNoStore) {
			t.Errorf("OpenReadOnly(%s) = %v, want ErrNoStore", dir, err)
			if s != nil {
				s.Close()
			}
		}
	}
	if _, err := os.Stat(missing); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("OpenReadOnly created %s", missing)
	}
	if ents, _ := os.ReadDir(empty); len(ents) != 0 {
		t.Errorf("OpenReadOnly wrote into an empty directory: %v", ents)
	}
}

// TestOpenReadOnly reads what an agent left, writes nothing, refuses every
// write, and is refused at once while an agent holds the directory.
func TestOpenReadOnly(t *testing.T) {
	dir := t.TempDir()
	s := mustOpen(t, dir, nil)
	c := &chain{}
	recs := appendN(t, s, c, 5)
	if _, err := s.Ack(2); err != nil {
		t.Fatal(err)
	}

	start := time.Now()
	if _, err := OpenReadOnly(dir); !errors.Is(err, ErrLocked) {
		t.Fatalf("OpenReadOnly beside a running agent = %v, want ErrLocked", err)
	}
	if d := time.Since(start); d > time.Second {
		t.Errorf("OpenReadOnly beside a running agent waited %v", d)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}

	before := dirBytes(t, dir)
	r, err := OpenReadOnly(dir)
	if err != nil {
		t.Fatal(err)
	}
	st := r.Stats()
	if st.Head != 5 || st.AckedThrough != 2 || st.Depth != 3 {
		t.Errorf("stats head %d acked %d depth %d, want 5 2 3", st.Head, st.AckedThrough, st.Depth)
	}
	got, err := r.Pending(0, 0)
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 3 || got[0].Seq != 3 || !bytes.Equal(got[2].Wire, recs[4].Wire) {
		t.Errorf("pending %d records from seq %d, want seqs 3..5", len(got), got[0].Seq)
	}
	if err := r.Append(c.next(), nil); !errors.Is(err, ErrReadOnly) {
		t.Errorf("Append = %v, want ErrReadOnly", err)
	}
	if _, err := r.Ack(5); !errors.Is(err, ErrReadOnly) {
		t.Errorf("Ack = %v, want ErrReadOnly", err)
	}
	if err := r.Nack(3, "x"); !errors.Is(err, ErrReadOnly) {
		t.Errorf("Nack = %v, want ErrReadOnly", err)
	}
	if err := r.Checkpoint([]byte("s")); !errors.Is(err, ErrReadOnly) {
		t.Errorf("Checkpoint = %v, want ErrReadOnly", err)
	}
	if err := r.Close(); err != nil {
		t.Fatal(err)
	}
	after := dirBytes(t, dir)
	if len(after) != len(before) {
		t.Errorf("files before %d, after %d", len(before), len(after))
	}
	for name, b := range before {
		if !bytes.Equal(after[name], b) {
			t.Errorf("%s changed under a read-only open", name)
		}
	}
}
