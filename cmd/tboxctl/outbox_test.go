package main

import (
	"strings"
	"testing"

	"github.com/csop/tbox/store"
)

// tboxctl outbox says which seqs are receipted and prints the kept receipt;
// stdout stays the pending attestations only.
func TestOutboxReceipted(t *testing.T) {
	dir := t.TempDir()
	st, err := store.Open(dir, nil)
	if err != nil {
		t.Fatal(err)
	}
	for seq := uint64(1); seq <= 3; seq++ {
		if err := st.Append(store.Record{Seq: seq, Digest: [32]byte{byte(seq)}, Wire: []byte(`{"seq":` + string(rune('0'+seq)) + `}`)}, nil); err != nil {
			t.Fatal(err)
		}
	}
	if err := st.Close(); err != nil {
		t.Fatal(err)
	}
	r := tboxctl(t, nil, "outbox", "--state", dir)
	if !strings.Contains(r.stderr, "receipted: none yet") {
		t.Errorf("before any receipt: %q", r.stderr)
	}
	if st, err = store.Open(dir, nil); err != nil {
		t.Fatal(err)
	}
	if _, err := st.AckReceipt(2, []byte("{\"seq\":2,\"receipt\":\"x\"}\n")); err != nil {
		t.Fatal(err)
	}
	if err := st.Close(); err != nil {
		t.Fatal(err)
	}
	r = tboxctl(t, nil, "outbox", "--state", dir)
	if r.code != 0 || r.stdout != "{\"seq\":3}\n" {
		t.Fatalf("outbox: exit %d, stdout %q", r.code, r.stdout)
	}
	if !strings.Contains(r.stderr, `receipted: seqs 1..2 (the collector's last receipt, the car's proof: "{\"seq\":2,\"receipt\":\"x\"}\n")`) {
		t.Errorf("stderr %q: want the receipted seqs and the receipt, escaped", r.stderr)
	}
}
