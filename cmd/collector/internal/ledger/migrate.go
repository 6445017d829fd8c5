package ledger

import (
	"encoding/binary"
	"encoding/json"
	"fmt"

	"go.etcd.io/bbolt"
)

// verdictMigrated is the verdict given to every attestation of a schema 1
// ledger: the old collector stored only what passed all its checks.
var verdictMigrated = Verdict{Eligible: true, Code: "eligible", Reason: "eligible: accepted by a schema 1 collector"}

// migrate brings a schema 1 ledger to the current schema inside tx; it
// does nothing to a ledger of any other version (check judges those).
func migrate(tx *bbolt.Tx, chainID uint64) error {
	m := tx.Bucket(bucketMeta)
	if v := m.Get(keyVersion); len(v) != 8 || binary.BigEndian.Uint64(v) != 1 {
		return nil
	}
	if c := m.Get(keyChainID); len(c) != 8 || binary.BigEndian.Uint64(c) != chainID {
		return nil // check refuses it before anything is written
	}
	vj, err := json.Marshal(verdictMigrated)
	if err != nil {
		return err
	}
	devs := tx.Bucket(bucketDev)
	var keys [][]byte
	if err := devs.ForEach(func(k, _ []byte) error { keys = append(keys, append([]byte(nil), k...)); return nil }); err != nil {
		return err
	}
	for _, k := range keys {
		d := devs.Bucket(k)
		if d == nil {
			return fmt.Errorf("schema 1 migration: device key %x is not a bucket: %w", k, ErrCorrupt)
		}
		h, err := unmarshalHeadV1(d.Get(keyHead))
		if err != nil {
			return fmt.Errorf("schema 1 migration: device %x: %w", k, err)
		}
		verdicts, err := d.CreateBucketIfNotExists(bucketVerdict)
		if err != nil {
			return err
		}
		if att := d.Bucket(bucketAtt); att != nil {
			if err := att.ForEach(func(seq, _ []byte) error { return verdicts.Put(seq, vj) }); err != nil {
				return fmt.Errorf("schema 1 migration: device %x: %w", k, err)
			}
		}
		if err := d.Put(keyHead, h.marshal()); err != nil {
			return err
		}
	}
	return m.Put(keyVersion, u64(schemaVersion))
}
