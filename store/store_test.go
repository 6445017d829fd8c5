package store

import (
	"bytes"
	"crypto/sha256"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"go.uber.org/goleak"
)

func TestMain(m *testing.M) {
	if dir := os.Getenv(crashHelperEnv); dir != "" {
		os.Exit(crashHelper(dir))
	}
	goleak.VerifyTestMain(m)
}

// mustOpen opens a store in dir (a new t.TempDir() if dir is ""). At
// cleanup, if the test left it open, it must pass Check, close cleanly and
// reopen without any repair.
func mustOpen(t testing.TB, dir string, opts *Options) *Store {
	t.Helper()
	if dir == "" {
		dir = t.TempDir()
	}
	s, err := Open(dir, opts)
	if err != nil {
		t.Fatalf("Open(%s): %v", dir, err)
	}
	t.Cleanup(func() {
		s.mu.Lock()
		closed := s.closed
		s.mu.Unlock()
		if closed {
			return
		}
		if err := s.Check(); err != nil {
			t.Errorf("cleanup: %v", err)
		}
		seq, digest := s.Last()
		if err := s.Close(); err != nil {
			t.Errorf("cleanup: %v", err)
		}
		r, err := Open(dir, opts)
		if err != nil {
			t.Errorf("cleanup: reopen: %v", err)
			return
		}
		defer r.Close()
		if rec := r.Stats().Recovery; rec.Repaired() {
			t.Errorf("cleanup: reopen after a clean Close repaired: %q", rec.Notes)
		}
		if gs, gd := r.Last(); gs != seq || gd != digest {
			t.Errorf("cleanup: reopen: head %d %x, want %d %x", gs, gd[:4], seq, digest[:4])
		}
	})
	return s
}

// testWire is the wire form of the test records: it carries prev, like an
// attestation, so that a chain can be checked from the records alone.
type testWire struct {
	Seq  uint64 `json:"seq"`
	Prev string `json:"prev"`
	Pad  string `json:"pad"`
}

// chain makes successive records: Digest = sha256(Wire), Wire holds prev.
type chain struct {
	seq  uint64
	prev [32]byte
}

// chainAt continues the chain whose head is (seq, digest).
func chainAt(seq uint64, digest [32]byte) *chain { return &chain{seq: seq, prev: digest} }

func (c *chain) next() Record {
	c.seq++
	w, _ := json.Marshal(testWire{Seq: c.seq, Prev: fmt.Sprintf("%x", c.prev), Pad: strings.Repeat("m", 300)})
	d := sha256.Sum256(w)
	c.prev = d
	return Record{Seq: c.seq, Digest: d, Wire: w}
}

func stateFor(seq uint64) []byte { return []byte(fmt.Sprintf("seq=%d", seq)) }

// appendN appends n records from c with state stateFor(seq).
func appendN(t testing.TB, s *Store, c *chain, n int) []Record {
	t.Helper()
	var out []Record
	for i := 0; i < n; i++ {
		r := c.next()
		if err := s.Append(r, stateFor(r.Seq)); err != nil {
			t.Fatalf("Append(%d): %v", r.Seq, err)
		}
		out = append(out, r)
	}
	return out
}

// checkChain checks that recs are contiguous, that each digest is the hash
// of its wire bytes and that each wire's prev is the previous digest. known
// maps seqs to digests seen before; a different digest for one is a fork.
func checkChain(t testing.TB, recs []Record, known map[uint64][32]byte) {
	t.Helper()
	for i, r := range recs {
		if d := sha256.Sum256(r.Wire); d != r.Digest {
			t.Fatalf("record %d: digest %x is not sha256 of its wire", r.Seq, r.Digest[:4])
		}
		var w testWire
		if err := json.Unmarshal(r.Wire, &w); err != nil {
			t.Fatalf("record %d: wire: %v", r.Seq, err)
		}
		if w.Seq != r.Seq {
			t.Fatalf("record %d: wire says seq %d", r.Seq, w.Seq)
		}
		if i > 0 {
			if r.Seq != recs[i-1].Seq+1 {
				t.Fatalf("record %d follows %d: gap or duplicate", r.Seq, recs[i-1].Seq)
			}
			if want := fmt.Sprintf("%x", recs[i-1].Digest); w.Prev != want {
				t.Fatalf("record %d: prev %s, want %s: fork", r.Seq, w.Prev[:8], want[:8])
			}
		}
		if d, ok := known[r.Seq-1]; ok && w.Prev != fmt.Sprintf("%x", d) {
			t.Fatalf("record %d: prev %s differs from the digest of %d seen earlier: fork", r.Seq, w.Prev[:8], r.Seq-1)
		}
		if d, ok := known[r.Seq]; ok && d != r.Digest {
			t.Fatalf("record %d: digest differs from the one seen earlier: fork", r.Seq)
		}
		if known != nil {
			known[r.Seq] = r.Digest
		}
	}
}

func seqs(recs []Record) []uint64 {
	out := make([]uint64, len(recs))
	for i, r := range recs {
		out[i] = r.Seq
	}
	return out
}

func TestFreshStore(t *testing.T) {
	s := mustOpen(t, "", nil)
	if seq, d := s.Last(); seq != 0 || d != [32]byte{} {
		t.Errorf("Last() = %d, %x; want 0 and zeros", seq, d[:4])
	}
	st, err := s.State()
	if err != nil || st != nil {
		t.Errorf("State() = %q, %v; want nil, nil", st, err)
	}
	p, err := s.Pending(0, 0)
	if err != nil || len(p) != 0 {
		t.Errorf("Pending() = %v, %v; want none", seqs(p), err)
	}
	if rec := s.Stats().Recovery; rec.Repaired() {
		t.Errorf("fresh store repaired: %q", rec.Notes)
	}
}

func TestAppendSeq(t *testing.T) {
	for _, tc := range []struct {
		name string
		seq  uint64
		want error
	}{
		{"next", 4, nil},
		{"head again", 3, ErrDuplicate},
		{"old", 1, ErrDuplicate},
		{"zero", 0, ErrDuplicate},
		{"gap", 5, ErrSeqGap},
		{"far gap", 1 << 40, ErrSeqGap},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			s := mustOpen(t, dir, nil)
			c := &chain{}
			appendN(t, s, c, 3)
			r := c.next()
			r.Seq = tc.seq
			err := s.Append(r, []byte("new"))
			if !errors.Is(err, tc.want) || (err == nil) != (tc.want == nil) {
				t.Fatalf("Append(seq %d) = %v, want %v", tc.seq, err, tc.want)
			}
			wantHead := uint64(3)
			if tc.want == nil {
				wantHead = 4
			} else {
				var se *SeqError
				if !errors.As(err, &se) || se.Want != 4 || se.Got != tc.seq {
					t.Errorf("error %v: want a *SeqError{Got: %d, Want: 4}", err, tc.seq)
				}
			}
			if seq, _ := s.Last(); seq != wantHead {
				t.Errorf("head = %d, want %d", seq, wantHead)
			}
			// A refused record must not reach the sidecar either.
			sc, err := readSidecar(dir)
			if err != nil || sc.rec.Seq != wantHead {
				t.Errorf("sidecar head = %d, %v; want %d", sc.rec.Seq, err, wantHead)
			}
		})
	}
}

func TestAppendInvalid(t *testing.T) {
	s := mustOpen(t, "", nil)
	for _, tc := range []struct {
		name  string
		wire  []byte
		state []byte
	}{
		{"empty wire", nil, nil},
		{"huge wire", make([]byte, MaxWireSize+1), nil},
		{"huge state", []byte("{}"), make([]byte, MaxStateSize+1)},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := s.Append(Record{Seq: 1, Wire: tc.wire}, tc.state)
			if !errors.Is(err, ErrInvalidRecord) {
				t.Errorf("Append = %v, want ErrInvalidRecord", err)
			}
		})
	}
	if err := s.Checkpoint(make([]byte, MaxStateSize+1)); !errors.Is(err, ErrInvalidRecord) {
		t.Errorf("Checkpoint(huge) = %v, want ErrInvalidRecord", err)
	}
}

func TestPendingGet(t *testing.T) {
	dir := t.TempDir()
	s := mustOpen(t, dir, nil)
	recs := appendN(t, s, &chain{}, 10)

	all, err := s.Pending(0, 0)
	if err != nil {
		t.Fatal(err)
	}
	if len(all) != 10 {
		t.Fatalf("Pending(0, 0) = %v, want 1..10", seqs(all))
	}
	checkChain(t, all, nil)
	for i, r := range all {
		if !bytes.Equal(r.Wire, recs[i].Wire) || r.Digest != recs[i].Digest || r.Created.IsZero() {
			t.Errorf("record %d differs from what was appended", r.Seq)
		}
	}
	for _, tc := range []struct {
		after uint64
		limit int
		want  []uint64
	}{
		{4, 3, []uint64{5, 6, 7}},
		{8, 0, []uint64{9, 10}},
		{10, 5, nil},
		{0, 1, []uint64{1}},
	} {
		got, err := s.Pending(tc.after, tc.limit)
		if err != nil || fmt.Sprint(seqs(got)) != fmt.Sprint(tc.want) {
			t.Errorf("Pending(%d, %d) = %v, %v; want %v", tc.after, tc.limit, seqs(got), err, tc.want)
		}
	}
	r, err := s.Get(5)
	if err != nil || r.Digest != recs[4].Digest {
		t.Errorf("Get(5) = %d, %v; want record 5", r.Seq, err)
	}
	for _, seq := range []uint64{0, 11} {
		if _, err := s.Get(seq); !errors.Is(err, ErrNotFound) {
			t.Errorf("Get(%d) = %v, want ErrNotFound", seq, err)
		}
	}
	// State goes with the record.
	if st, _ := s.State(); string(st) != "seq=10" {
		t.Errorf("State() = %q, want seq=10", st)
	}
}

func TestAck(t *testing.T) {
	dir := t.TempDir()
	s := mustOpen(t, dir, nil)
	recs := appendN(t, s, &chain{}, 10)
	for _, step := range []struct {
		ack     uint64
		removed int
		err     error
		pending []uint64
	}{
		{4, 4, nil, []uint64{5, 6, 7, 8, 9, 10}},
		{4, 0, nil, []uint64{5, 6, 7, 8, 9, 10}}, // idempotent
		{2, 0, nil, []uint64{5, 6, 7, 8, 9, 10}}, // older ack
		{11, 0, ErrAckAhead, []uint64{5, 6, 7, 8, 9, 10}},
		{7, 3, nil, []uint64{8, 9, 10}},
		{10, 3, nil, []uint64{}},
	} {
		n, err := s.Ack(step.ack)
		if n != step.removed || !errors.Is(err, step.err) || (err == nil) != (step.err == nil) {
			t.Fatalf("Ack(%d) = %d, %v; want %d, %v", step.ack, n, err, step.removed, step.err)
		}
		p, _ := s.Pending(0, 0)
		if fmt.Sprint(seqs(p)) != fmt.Sprint(step.pending) {
			t.Fatalf("after Ack(%d): pending %v, want %v", step.ack, seqs(p), step.pending)
		}
		if st := s.Stats(); st.Depth != len(step.pending) {
			t.Fatalf("after Ack(%d): depth %d, want %d", step.ack, st.Depth, len(step.pending))
		}
	}
	if _, err := s.Get(3); !errors.Is(err, ErrNotFound) {
		t.Errorf("Get(3) after ack = %v, want ErrNotFound", err)
	}
	// The head survives the ack of every record, across a reopen.
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	s = mustOpen(t, dir, nil)
	st := s.Stats()
	if seq, d := s.Last(); seq != 10 || d != recs[9].Digest || st.AckedThrough != 10 || st.Depth != 0 || st.Bytes != 0 || !st.Oldest.IsZero() {
		t.Errorf("after reopen: head %d, acked %d, depth %d, bytes %d; want head 10 = record 10, acked 10, empty", seq, st.AckedThrough, st.Depth, st.Bytes)
	}
	if err := s.Append(recs[9], nil); !errors.Is(err, ErrDuplicate) {
		t.Errorf("re-Append(10) after ack = %v, want ErrDuplicate", err)
	}
}

func TestNack(t *testing.T) {
	dir := t.TempDir()
	s := mustOpen(t, dir, nil)
	appendN(t, s, &chain{}, 5)
	if err := s.Nack(3, "bad signature"); err != nil {
		t.Fatal(err)
	}
	if err := s.Nack(3, "still bad"); err != nil {
		t.Fatal(err)
	}
	if err := s.Nack(9, "unknown"); !errors.Is(err, ErrNotFound) {
		t.Errorf("Nack(9) = %v, want ErrNotFound", err)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	s = mustOpen(t, dir, nil)
	r, err := s.Get(3)
	if err != nil || r.Nacks != 2 || r.NackReason != "still bad" {
		t.Errorf("Get(3) = nacks %d reason %q, %v; want 2, still bad", r.Nacks, r.NackReason, err)
	}
	st := s.Stats()
	if st.Nacks != 2 || st.LastNack.Seq != 3 || st.LastNack.Reason != "still bad" || st.LastNack.Time.IsZero() {
		t.Errorf("Stats nacks %d, last %+v; want 2, seq 3, still bad", st.Nacks, st.LastNack)
	}
	if p, _ := s.Pending(0, 0); len(p) != 5 {
		t.Errorf("a nacked record must stay pending: pending %v", seqs(p))
	}
	long := strings.Repeat("é", 400)
	if err := s.Nack(4, long); err != nil {
		t.Fatal(err)
	}
	if r, _ := s.Get(4); len(r.NackReason) > maxReasonSize || !strings.HasPrefix(long, r.NackReason) {
		t.Errorf("long reason kept as %d bytes, want a valid prefix of at most %d", len(r.NackReason), maxReasonSize)
	}
}

func TestCheckpoint(t *testing.T) {
	dir := t.TempDir()
	now := time.Unix(1_700_000_000, 0)
	s := mustOpen(t, dir, &Options{CheckpointEvery: time.Minute})
	s.now = func() time.Time { return now }
	appendN(t, s, &chain{}, 1)

	commits := s.Stats().Commits
	if err := s.Checkpoint([]byte("a")); err != nil {
		t.Fatal(err)
	}
	if got := s.Stats().Commits; got != commits {
		t.Errorf("Checkpoint within a minute of the Append committed (%d commits, want %d)", got, commits)
	}
	if st, _ := s.State(); string(st) != "a" {
		t.Errorf("State() = %q, want the held checkpoint a", st)
	}
	now = now.Add(time.Minute)
	if err := s.Checkpoint([]byte("b")); err != nil {
		t.Fatal(err)
	}
	if got := s.Stats().Commits; got != commits+1 {
		t.Errorf("Checkpoint a minute later: %d commits, want %d", got, commits+1)
	}
	if err := s.Checkpoint([]byte("c")); err != nil {
		t.Fatal(err)
	}
	// Close writes the held checkpoint.
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	s = mustOpen(t, dir, &Options{CheckpointEvery: -1})
	if st, _ := s.State(); string(st) != "c" {
		t.Errorf("after Close and Open: State() = %q, want c", st)
	}
	commits = s.Stats().Commits
	if err := s.Checkpoint([]byte("d")); err != nil {
		t.Fatal(err)
	}
	if got := s.Stats().Commits; got != commits+1 {
		t.Errorf("CheckpointEvery < 0: %d commits, want %d", got, commits+1)
	}
	// An Append carries its own state, which supersedes a checkpoint.
	seq, d := s.Last()
	appendN(t, s, chainAt(seq, d), 1)
	if st, _ := s.State(); string(st) != "seq=2" {
		t.Errorf("after Append: State() = %q, want seq=2", st)
	}
}

func TestCap(t *testing.T) {
	probe := (&chain{}).next()
	per := recordSize(len(encodeRecord(probe)))
	for _, tc := range []struct {
		name string
		opts Options
		fits int
	}{
		{"bytes", Options{MaxBytes: 10*per + per/2}, 10},
		{"records", Options{MaxRecords: 7}, 7},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			s := mustOpen(t, dir, &tc.opts)
			c := &chain{}
			appendN(t, s, c, tc.fits)
			if !s.Full() {
				t.Errorf("Full() = false with %d records at the cap", tc.fits)
			}
			next := c.next()
			if err := s.Append(next, nil); !errors.Is(err, ErrFull) {
				t.Fatalf("Append past the cap = %v, want ErrFull", err)
			}
			if sc, _ := readSidecar(dir); sc.rec.Seq != uint64(tc.fits) {
				t.Errorf("refused record reached the sidecar: head %d", sc.rec.Seq)
			}
			p, _ := s.Pending(0, 0)
			if len(p) != tc.fits {
				t.Fatalf("at the cap: pending %v, want all %d kept", seqs(p), tc.fits)
			}
			checkChain(t, p, nil)
			if n, err := s.Ack(2); n != 2 || err != nil {
				t.Fatalf("Ack(2) = %d, %v", n, err)
			}
			if s.Full() {
				t.Error("Full() = true after an ack freed room")
			}
			if err := s.Append(next, nil); err != nil {
				t.Fatalf("Append after the ack: %v", err)
			}
			if st := s.Stats(); st.Depth != tc.fits-1 || st.Head != uint64(tc.fits+1) {
				t.Errorf("depth %d head %d, want %d and %d", st.Depth, st.Head, tc.fits-1, tc.fits+1)
			}
		})
	}
}

func TestLocked(t *testing.T) {
	dir := t.TempDir()
	mustOpen(t, dir, nil)
	start := time.Now()
	_, err := Open(dir, &Options{LockTimeout: 100 * time.Millisecond})
	if !errors.Is(err, ErrLocked) {
		t.Fatalf("second Open = %v, want ErrLocked", err)
	}
	if el := time.Since(start); el > 2*time.Second {
		t.Errorf("second Open took %v with a 100ms timeout", el)
	}
	if _, err := os.Stat(filepath.Join(dir, dbName)); err != nil {
		t.Errorf("a locked store must not be touched: %v", err)
	}
}

func TestClosed(t *testing.T) {
	s := mustOpen(t, "", nil)
	appendN(t, s, &chain{}, 1)
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	if err := s.Close(); err != nil {
		t.Errorf("second Close = %v", err)
	}
	c := chainAt(s.Last())
	for name, err := range map[string]error{
		"Append":     s.Append(c.next(), nil),
		"Checkpoint": s.Checkpoint(nil),
		"Nack":       s.Nack(1, "x"),
		"Check":      s.Check(),
	} {
		if !errors.Is(err, ErrClosed) {
			t.Errorf("%s after Close = %v, want ErrClosed", name, err)
		}
	}
	if _, err := s.Pending(0, 0); !errors.Is(err, ErrClosed) {
		t.Errorf("Pending after Close = %v, want ErrClosed", err)
	}
	if _, err := s.Ack(1); !errors.Is(err, ErrClosed) {
		t.Errorf("Ack after Close = %v, want ErrClosed", err)
	}
}

func TestStatsCounters(t *testing.T) {
	s := mustOpen(t, "", nil)
	before := s.Stats()
	appendN(t, s, &chain{}, 3)
	st := s.Stats()
	if st.Commits-before.Commits != 3 || st.Sidecars-before.Sidecars != 3 {
		t.Errorf("3 appends: %d commits, %d sidecars; want 3 and 3", st.Commits-before.Commits, st.Sidecars-before.Sidecars)
	}
	// Each append: sidecar file + directory, bbolt data + meta; growth adds one.
	if f := st.Fsyncs - before.Fsyncs; f < 12 || f > 15 {
		t.Errorf("3 appends: %d fsyncs, want 12 to 15", f)
	}
	if st.Oldest.IsZero() || st.Depth != 3 || st.Bytes <= 3*300 {
		t.Errorf("stats %+v: want 3 records of > 300 bytes with an oldest time", st)
	}
	ns := mustOpen(t, "", &Options{NoSync: true})
	appendN(t, ns, &chain{}, 3)
	if f := ns.Stats().Fsyncs; f != 0 {
		t.Errorf("NoSync: %d fsyncs, want 0", f)
	}
}

func TestConcurrent(t *testing.T) {
	s := mustOpen(t, "", &Options{NoSync: true, MmapSize: 1}) // small mmap: remaps while readers run
	stop := make(chan struct{})
	errs := make(chan error, 4)
	var wg sync.WaitGroup
	for i := 0; i < 3; i++ {
		wg.Go(func() {
			for {
				select {
				case <-stop:
					return
				default:
				}
				p, err := s.Pending(0, 20)
				if err != nil {
					errs <- err
					return
				}
				for j := 1; j < len(p); j++ {
					if p[j].Seq != p[j-1].Seq+1 {
						errs <- fmt.Errorf("pending %v: not contiguous", seqs(p))
						return
					}
				}
				if st := s.Stats(); st.AckedThrough > st.Head {
					errs <- fmt.Errorf("acked %d above head %d", st.AckedThrough, st.Head)
					return
				}
			}
		})
	}
	c := &chain{}
	for i := 0; i < 300; i++ {
		r := c.next()
		if err := s.Append(r, stateFor(r.Seq)); err != nil {
			t.Fatal(err)
		}
		if i%10 == 9 {
			if _, err := s.Ack(r.Seq - 5); err != nil {
				t.Fatal(err)
			}
		}
	}
	if err := s.Check(); err != nil {
		t.Error(err)
	}
	close(stop)
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
}
