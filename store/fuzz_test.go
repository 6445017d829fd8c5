package store

import (
	"bytes"
	"os"
	"path/filepath"
	"testing"
	"time"
)

func FuzzDecodeSidecar(f *testing.F) {
	c := &chain{}
	good := encodeSidecar(sidecar{rec: c.next(), acked: 0, state: []byte("seq=1")})
	f.Add(good)
	f.Add(good[:len(good)/2])
	f.Add(encodeSidecar(sidecar{rec: Record{Seq: 1 << 60, Wire: []byte("x"), Created: time.Unix(0, 1)}, acked: 1 << 59}))
	f.Add([]byte{})
	f.Add([]byte("TBXH\x01\x00\x00\x00"))
	f.Fuzz(func(t *testing.T, b []byte) {
		sc, err := decodeSidecar(b)
		if err != nil {
			return
		}
		// What decodes is a well-formed sidecar: it encodes to the same bytes.
		if again := encodeSidecar(sc); !bytes.Equal(again, b) {
			t.Fatalf("decode then encode changed the bytes:\n%x\n%x", b, again)
		}
		if sc.rec.Seq == 0 || len(sc.rec.Wire) == 0 || sc.acked > sc.rec.Seq {
			t.Fatalf("decoded an invalid head: seq %d, wire %d bytes, acked %d", sc.rec.Seq, len(sc.rec.Wire), sc.acked)
		}
	})
}

func FuzzDecodeRecord(f *testing.F) {
	c := &chain{}
	r := c.next()
	r.Created = time.Unix(1_700_000_000, 5)
	f.Add(seqKey(1), encodeRecord(r))
	r.Nacks, r.NackReason = 3, "bad signature"
	f.Add(seqKey(1), encodeRecord(r))
	f.Add(seqKey(2), encodeRecord(r))
	f.Add([]byte{1}, []byte{})
	f.Fuzz(func(t *testing.T, key, v []byte) {
		r, err := decodeRecord(key, v)
		if err != nil {
			return
		}
		if again := encodeRecord(r); !bytes.Equal(again, v) {
			t.Fatalf("decode then encode changed the bytes:\n%x\n%x", v, again)
		}
	})
}

// FuzzOpenDB writes arbitrary bytes as outbox.db and opens the store: it
// must neither crash (bbolt faults on a damaged file it maps) nor fail,
// since without a sidecar no record was ever appended.
func FuzzOpenDB(f *testing.F) {
	// A small initial mmap keeps the file, and so the inputs, small:
	// bbolt sizes the file to its mmap once it grows.
	small := &Options{NoSync: true, MmapSize: 1}
	dir := f.TempDir()
	s, err := Open(dir, small)
	if err != nil {
		f.Fatal(err)
	}
	f.Add(readDB(f, dir))
	appendN(f, s, &chain{}, 30)
	if _, err := s.Ack(5); err != nil {
		f.Fatal(err)
	}
	if err := s.Nack(7, "x"); err != nil {
		f.Fatal(err)
	}
	s.Close()
	full := readDB(f, dir)
	f.Add(full)
	f.Add(full[:len(full)/2])
	f.Fuzz(func(t *testing.T, b []byte) {
		if len(b) > 256<<10 {
			return
		}
		dir := t.TempDir()
		if err := os.WriteFile(filepath.Join(dir, dbName), b, 0o600); err != nil {
			t.Fatal(err)
		}
		s, err := Open(dir, small)
		if err != nil {
			t.Fatalf("Open: %v", err)
		}
		defer s.Close()
		p, err := s.Pending(0, 0)
		if err != nil {
			t.Fatalf("Pending: %v", err)
		}
		if st := s.Stats(); st.Depth != len(p) {
			t.Fatalf("depth %d, pending %d", st.Depth, len(p))
		}
		seq, d := s.Last()
		if err := s.Append((&chain{seq: seq, prev: d}).next(), nil); err != nil {
			t.Fatalf("Append after Open: %v", err)
		}
	})
}

func readDB(tb testing.TB, dir string) []byte {
	b, err := os.ReadFile(filepath.Join(dir, dbName))
	if err != nil {
		tb.Fatal(err)
	}
	return b
}
