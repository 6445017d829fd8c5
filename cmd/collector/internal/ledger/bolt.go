package ledger

import (
	"encoding/binary"
	"encoding/json"
	"fmt"
	"io"

	"github.com/csop/tbox/signer"
	"go.etcd.io/bbolt"
)

// Lock does nothing: bbolt has one writer at a time.
func (t *boltTx) Lock([]signer.Address) error { return nil }

// Records calls fn for each stored attestation of dev, by seq.
func (t *boltTx) Records(dev signer.Address, fn func(seq uint64, digest [32]byte, wire []byte) error) error {
	d := t.devBucket(dev)
	if d == nil || d.Bucket(bucketAtt) == nil {
		return nil
	}
	var last uint64
	return d.Bucket(bucketAtt).ForEach(func(k, v []byte) error {
		if len(k) != 8 || len(v) < 32 {
			return fmt.Errorf("device %s: record after seq %d has key %x: %w", dev, last, k, ErrCorrupt)
		}
		last = binary.BigEndian.Uint64(k)
		var digest [32]byte
		copy(digest[:], v)
		return fn(last, digest, v[32:])
	})
}

// Devices returns every device with a bucket, by address.
func (t *boltTx) Devices() ([]signer.Address, error) {
	var devs []signer.Address
	err := t.tx.Bucket(bucketDev).ForEach(func(k, _ []byte) error {
		var dev signer.Address
		if len(k) != len(dev) {
			return fmt.Errorf("device key %x: %w", k, ErrCorrupt)
		}
		copy(dev[:], k)
		devs = append(devs, dev)
		return nil
	})
	return devs, err
}

// Modes returns the device's meters per drive mode.
func (t *boltTx) Modes(dev signer.Address) (map[string]uint64, error) {
	ms := map[string]uint64{}
	d := t.devBucket(dev)
	if d == nil || d.Bucket(bucketModes) == nil {
		return ms, nil
	}
	err := d.Bucket(bucketModes).ForEach(func(k, v []byte) error {
		if len(v) != 8 {
			return fmt.Errorf("device %s mode %q: %w", dev, k, ErrCorrupt)
		}
		ms[string(k)] = binary.BigEndian.Uint64(v)
		return nil
	})
	return ms, err
}

// Awards returns the wins kept in the device's head.
func (t *boltTx) Awards(dev signer.Address) (wins, micro uint64, err error) {
	h, err := t.Head(dev)
	return h.Wins, h.AwardMicro, err
}

// ClaimDraw reports whether b has no recorded draw; bbolt's single writer
// keeps it so until commit.
func (t *boltTx) ClaimDraw(b uint64) (bool, error) {
	return t.tx.Bucket(bucketDraws).Get(u64(b)) == nil, nil
}

// Draws returns how many draws are recorded.
func (t *boltTx) Draws() (int, error) { return t.tx.Bucket(bucketDraws).Stats().KeyN, nil }

// LastDraws returns the draws of the n highest batches, highest first:
// the draws bucket is keyed by the batch, big-endian, so a cursor from its
// end.
func (t *boltTx) LastDraws(n int) ([]DrawRecord, error) {
	var out []DrawRecord
	c := t.tx.Bucket(bucketDraws).Cursor()
	for k, v := c.Last(); k != nil && len(out) < n; k, v = c.Prev() {
		var r DrawRecord
		if err := json.Unmarshal(v, &r); err != nil {
			return nil, fmt.Errorf("draw of batch %x: %w: %v", k, ErrCorrupt, err)
		}
		out = append(out, r)
	}
	return out, nil
}

// RegistryAdd adds devices to the registry and returns how many were new.
func (t *boltTx) RegistryAdd(devs []signer.Address) (int, error) {
	b := t.tx.Bucket(bucketReg)
	if b == nil {
		return 0, fmt.Errorf("registry: %w", bbolt.ErrTxNotWritable)
	}
	n := 0
	for _, d := range devs {
		if b.Get(d[:]) != nil {
			continue
		}
		if err := b.Put(d[:], []byte{}); err != nil {
			return n, fmt.Errorf("registry: %w", err)
		}
		n++
	}
	return n, nil
}

// RegistryRemove removes devices from the registry and returns how many
// were listed.
func (t *boltTx) RegistryRemove(devs []signer.Address) (int, error) {
	b := t.tx.Bucket(bucketReg)
	if b == nil {
		return 0, nil
	}
	n := 0
	for _, d := range devs {
		if b.Get(d[:]) == nil {
			continue
		}
		if err := b.Delete(d[:]); err != nil {
			return n, fmt.Errorf("registry: %w", err)
		}
		n++
	}
	return n, nil
}

// Registry returns the registered devices, by address.
func (t *boltTx) Registry() ([]signer.Address, error) {
	b := t.tx.Bucket(bucketReg)
	if b == nil {
		return nil, nil
	}
	var devs []signer.Address
	err := b.ForEach(func(k, _ []byte) error {
		var d signer.Address
		if len(k) != len(d) {
			return fmt.Errorf("registry key %x: %w", k, ErrCorrupt)
		}
		copy(d[:], k)
		devs = append(devs, d)
		return nil
	})
	return devs, err
}

// Backup writes a consistent copy of the whole database to w (a read
// transaction: writers go on meanwhile) and returns its size.
func (l *Bolt) Backup(w io.Writer) (int64, error) {
	var n int64
	err := l.db.View(func(tx *bbolt.Tx) error {
		var err error
		n, err = tx.WriteTo(w)
		return err
	})
	if err != nil {
		return n, fmt.Errorf("backup of %s: %w", l.db.Path(), err)
	}
	return n, nil
}
