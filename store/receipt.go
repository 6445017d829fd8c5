package store

import (
	"bytes"
	"errors"
	"time"

	"go.etcd.io/bbolt"
)

// Adopt continues the chain from the collector's verified retained receipt
// after a reflash: a device that kept its key but lost its state (or holds
// a state older than the receipt) learns there that the collector stored
// its chain up to seq, whose digest is digest. Adopt makes that the chain
// head (the next Append is seq+1 with prev = digest) and acked point, keeps
// receipt as the last receipt (and as the head record's wire form, for
// evidence), drops the records the store still held (they fork the stored
// chain: the collector would refuse them) and the attester's state (the
// first odometer reading after it is the new base: nothing is credited
// twice). A seq at or below the head is refused: a state ahead of the
// receipt is the normal case and stays as it is.
func (s *Store) Adopt(seq uint64, digest [32]byte, receipt []byte) (dropped int, err error) {
	if len(receipt) == 0 || len(receipt) > MaxReceiptSize {
		return 0, errorf("adopt seq %d: receipt of %d bytes, want 1 to %d", seq, len(receipt), MaxReceiptSize)
	}
	s.mu.Lock()
	defer s.unlock()
	if err := s.writable(); err != nil {
		return 0, err
	}
	if seq <= s.head.Seq {
		return 0, errorf("adopt seq %d: %w: the chain head is already %d", seq, ErrAdoptBehind, s.head.Seq)
	}
	head := Record{Seq: seq, Digest: digest, Wire: bytes.Clone(receipt), Created: s.now().Round(0)}
	v := encodeRecord(head)
	err = s.update(func(tx *bbolt.Tx) error {
		b, meta := tx.Bucket(bucketRec), tx.Bucket(bucketMeta)
		var keys [][]byte
		c := b.Cursor()
		for k, _ := c.First(); k != nil; k, _ = c.Next() {
			keys = append(keys, bytes.Clone(k))
		}
		for _, k := range keys {
			if err := b.Delete(k); err != nil {
				return err
			}
		}
		dropped = len(keys)
		if err := meta.Put(keyHead, append(seqKey(seq), v...)); err != nil {
			return err
		}
		if err := meta.Delete(keyState); err != nil {
			return err
		}
		if err := meta.Put(keyReceipt, head.Wire); err != nil {
			return err
		}
		return putUint(meta, keyAcked, seq)
	})
	if err != nil {
		s.broken = err
		return 0, errorf("adopt seq %d: %w", seq, err)
	}
	s.head, s.acked, s.state, s.dirty = head, seq, nil, false
	s.depth, s.bytes, s.oldest = 0, 0, time.Time{}
	// The database first, then the sidecar: a crash in between leaves the
	// sidecar behind the database, which Open rewrites from it.
	if err := s.rewriteSidecar(); err != nil {
		s.broken = err
		return dropped, errorf("adopt seq %d: sidecar: %w", seq, err)
	}
	return dropped, nil
}

// ErrAdoptBehind: a receipt to adopt that is not ahead of the chain head.
var ErrAdoptBehind = errors.New("receipt not ahead of the chain head")
