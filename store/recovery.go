package store

import (
	"fmt"
	"time"

	"go.etcd.io/bbolt"
)

// LostRange is the range of seqs that a re-seed from the sidecar may have
// lost: the records between the sidecar's acked-through point and its head
// were only in the damaged database (some may have been acked after the
// sidecar was written). The collector records such a range as a chain
// break (README §C7); the agent reports it in its log, its diagnostic
// shell and its health report until a later re-seed replaces it.
type LostRange struct {
	From, To uint64    // inclusive; From == 0 means none
	At       time.Time // when Open re-seeded
}

// Empty reports whether no seq was lost.
func (r LostRange) Empty() bool { return r.From == 0 }

func (r LostRange) String() string {
	if r.Empty() {
		return "none"
	}
	return fmt.Sprintf("%d..%d", r.From, r.To)
}

// keyLost holds the LostRange of the last re-seed: from, to, unix
// nanoseconds, 8 bytes each, big-endian.
var keyLost = []byte("lost")

func encodeLost(r LostRange) []byte {
	b := appendBE64(nil, r.From)
	b = appendBE64(b, r.To)
	return appendBE64(b, uint64(nanos(r.At)))
}

// loadLost reads meta/lost; head is the database's head, above which no
// lost seq can be.
func loadLost(meta *bbolt.Bucket, head uint64) (LostRange, error) {
	v := meta.Get(keyLost)
	if v == nil {
		return LostRange{}, nil
	}
	if len(v) != 24 {
		return LostRange{}, errorf("meta/lost: expected 24 bytes, found %d", len(v))
	}
	r := LostRange{From: be64(v), To: be64(v[8:]),
		At: fromNanos(int64(be64(v[16:])))}
	if r.From == 0 || r.To < r.From || r.To >= head {
		return LostRange{}, errorf("meta/lost: expected 1 <= from <= to < head %d, found %d..%d", head, r.From, r.To)
	}
	return r, nil
}

// headLostAfterFallback is the error of Open when bbolt would fall back to
// the previous transaction (a meta page invalid, as after a torn write) and
// the sidecar cannot say where the head was: the database's head may be one
// behind the head that was published, and signing its successor again
// would fork the chain.
func (s *Store) headLostAfterFallback(badMeta int, sidecar string) error {
	return errorf("open %s: %w: the database's meta page %d is invalid (a torn write?), so bbolt would use "+
		"the previous transaction, whose head may be one behind the last seq published; the sidecar, "+
		"which would say, is %s; starting would risk signing a published seq again (a fork), "+
		"nothing was rewritten, files left in place for an operator",
		s.dir, ErrHeadLost, badMeta, sidecar)
}
