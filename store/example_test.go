package store_test

import (
	"crypto/sha256"
	"fmt"
	"log"
	"os"
	"path/filepath"

	"github.com/csop/tbox/store"
)

func Example() {
	dir, err := os.MkdirTemp("", "outbox")
	if err != nil {
		log.Fatal(err)
	}
	defer os.RemoveAll(dir)

	s, err := store.Open(dir, nil)
	if err != nil {
		log.Fatal(err)
	}
	defer s.Close()

	// The next attestation is head+1 and chains on the head's digest.
	seq, prev := s.Last()
	wire := []byte(fmt.Sprintf(`{"v":1,"seq":%d,"prev":"0x%x"}`, seq+1, prev))
	rec := store.Record{Seq: seq + 1, Digest: sha256.Sum256(wire), Wire: wire}
	if err := s.Append(rec, []byte(`{"hwm":1234567}`)); err != nil {
		log.Fatal(err)
	}

	// Publish only what Append has made durable.
	pending, err := s.Pending(0, 10)
	if err != nil {
		log.Fatal(err)
	}
	for _, r := range pending {
		fmt.Printf("publish seq %d: %s\n", r.Seq, r.Wire[:15])
	}

	// The collector's {"seq":1} ack.
	n, err := s.Ack(1)
	if err != nil {
		log.Fatal(err)
	}
	head, _ := s.Last()
	fmt.Printf("acked %d, head %d, depth %d\n", n, head, s.Stats().Depth)
	// Output:
	// publish seq 1: {"v":1,"seq":1,
	// acked 1, head 1, depth 0
}

// The chain head survives the loss of the database file: the sidecar
// re-queues the last record, and the next seq is still head+1.
func Example_recovery() {
	dir, err := os.MkdirTemp("", "outbox")
	if err != nil {
		log.Fatal(err)
	}
	defer os.RemoveAll(dir)

	s, err := store.Open(dir, nil)
	if err != nil {
		log.Fatal(err)
	}
	for seq := uint64(1); seq <= 3; seq++ {
		wire := []byte(fmt.Sprintf(`{"seq":%d}`, seq))
		if err := s.Append(store.Record{Seq: seq, Digest: sha256.Sum256(wire), Wire: wire}, nil); err != nil {
			log.Fatal(err)
		}
	}
	s.Close()

	os.Remove(filepath.Join(dir, "outbox.db"))

	s, err = store.Open(dir, nil)
	if err != nil {
		log.Fatal(err)
	}
	defer s.Close()
	head, _ := s.Last()
	rec := s.Stats().Recovery
	fmt.Printf("head %d, re-queued %d, maybe lost %d\n", head, rec.Requeued, rec.MaybeLost)
	err = s.Append(store.Record{Seq: 3, Wire: []byte(`{"seq":3,"forked":true}`)}, nil)
	fmt.Println(err)
	// Output:
	// head 3, re-queued 3, maybe lost 2
	// append seq 3: duplicate seq (expected 4)
}
