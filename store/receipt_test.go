package store

import (
	"bytes"
	"errors"
	"fmt"
	"testing"
)

// The last receipt is kept with the ack, survives a reopen, and a receipt
// at or below the acked point (a replay) changes nothing.
func TestAckReceipt(t *testing.T) {
	dir := t.TempDir()
	s := mustOpen(t, dir, nil)
	for seq := uint64(1); seq <= 3; seq++ {
		if err := s.Append(Record{Seq: seq, Digest: [32]byte{byte(seq)}, Wire: fmt.Appendf(nil, `{"seq":%d}`, seq)}, nil); err != nil {
			t.Fatal(err)
		}
	}
	if r, err := s.LastReceipt(); err != nil || r != nil {
		t.Fatalf("LastReceipt of a fresh store = %q, %v", r, err)
	}
	if n, err := s.AckReceipt(2, []byte("receipt 2")); err != nil || n != 2 {
		t.Fatalf("AckReceipt(2) = %d, %v", n, err)
	}
	commits := s.Stats().Commits
	if n, err := s.AckReceipt(1, []byte("receipt 1")); err != nil || n != 0 {
		t.Fatalf("AckReceipt(1) after 2 = %d, %v", n, err)
	}
	if c := s.Stats().Commits; c != commits {
		t.Errorf("an old receipt cost %d commits", c-commits)
	}
	if _, err := s.AckReceipt(3, nil); err == nil {
		t.Error("AckReceipt without a receipt accepted")
	}
	if _, err := s.AckReceipt(3, make([]byte, MaxReceiptSize+1)); err == nil {
		t.Error("AckReceipt of an oversize receipt accepted")
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	s = mustOpen(t, dir, nil)
	if r, err := s.LastReceipt(); err != nil || !bytes.Equal(r, []byte("receipt 2")) {
		t.Fatalf("LastReceipt after reopen = %q, %v", r, err)
	}
	if st := s.Stats(); st.AckedThrough != 2 || st.Depth != 1 {
		t.Errorf("stats %+v", st)
	}
}

// A reflashed store adopts the retained receipt: the chain continues at
// seq+1 with prev = its digest, across a reopen, with no state left.
func TestAdopt(t *testing.T) {
	dir := t.TempDir()
	s := mustOpen(t, dir, nil)
	for seq := uint64(1); seq <= 2; seq++ {
		if err := s.Append(Record{Seq: seq, Digest: [32]byte{byte(seq)}, Wire: []byte("x")}, []byte("state")); err != nil {
			t.Fatal(err)
		}
	}
	d := [32]byte{0xaa}
	n, err := s.Adopt(10, d, []byte("receipt 10"))
	if err != nil || n != 2 {
		t.Fatalf("Adopt = %d, %v; want 2 forked records dropped", n, err)
	}
	if _, err := s.Adopt(10, d, []byte("again")); !errors.Is(err, ErrAdoptBehind) {
		t.Errorf("Adopt of the head again: %v, want ErrAdoptBehind", err)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	s = mustOpen(t, dir, nil)
	if seq, dg := s.Last(); seq != 10 || dg != d {
		t.Fatalf("Last after reopen = %d, %x", seq, dg)
	}
	if st, _ := s.State(); st != nil {
		t.Errorf("state %q kept after adopting", st)
	}
	if rec := s.Stats().Recovery; rec.Repaired() {
		t.Errorf("reopen repaired: %q", rec.Notes)
	}
	if err := s.Append(Record{Seq: 11, Digest: [32]byte{11}, Wire: []byte("y")}, nil); err != nil {
		t.Fatalf("Append 11 after adopting 10: %v", err)
	}
	if st := s.Stats(); st.Depth != 1 || st.AckedThrough != 10 {
		t.Errorf("stats %+v", st)
	}
}
