package store

import (
	"encoding/binary"
	"hash/crc32"
	"strings"
	"time"
	"unicode/utf8"
)

// Limits on what one record and one state blob may hold. An attestation is
// 300-400 bytes of JSON; these bound what a damaged file can make the store
// allocate.
const (
	MaxWireSize   = 64 << 10 // bytes of one record's wire form
	MaxStateSize  = 1 << 20  // bytes of the caller's state blob
	maxReasonSize = 256      // bytes of a nack reason kept per record
)

var castagnoli = crc32.MakeTable(crc32.Castagnoli)

// Record is one signed attestation waiting for the collector's ack.
type Record struct {
	Seq     uint64    // 1, 2, 3, ... with no gap
	Digest  [32]byte  // the digest that was signed; the next record's prev
	Wire    []byte    // the wire form, published as is
	Created time.Time // when it was appended; Append fills in a zero value

	// Set by the store, ignored by Append.
	Nacks      uint32 // times the collector refused it
	NackReason string // the collector's last reason
}

// Record value layout, in bucket "rec" under the 8-byte big-endian seq, and
// in bucket "meta" under "head" for the last record ever appended:
//
//	off    len  field
//	  0      1  format version (1)
//	  1      8  created, unix nanoseconds, big-endian int64
//	  9     32  digest
//	 41      4  nacks, big-endian uint32
//	 45      2  nack reason length R (<= 256)
//	 47      R  nack reason, UTF-8
//	 47+R    4  wire length W (1..MaxWireSize)
//	 51+R    W  wire bytes
//	 51+R+W  4  crc32c (Castagnoli) over the 8-byte key and bytes [0, 51+R+W)
const (
	recVersion    = 1
	recFixedSize  = 1 + 8 + 32 + 4 + 2 + 4 + 4 // 55 bytes around reason and wire
	offRecCreated = 1
	offRecDigest  = 9
	offRecNacks   = 41
	offRecReason  = 45
)

// seqKey is a record's key: seq, big-endian. Not inlined: its 32-bit
// byte shuffle would be copied into each of its many callers.
//
//go:noinline
func seqKey(seq uint64) []byte {
	return appendBE64(make([]byte, 0, 8), seq)
}

// recordSize is the number of bytes a record occupies in the cap accounting:
// key plus value.
func recordSize(valueLen int) int64 { return int64(8 + valueLen) }

func cleanReason(s string) string {
	s = strings.ToValidUTF8(s, "?")
	if len(s) > maxReasonSize {
		s = s[:maxReasonSize]
		for !utf8.ValidString(s) {
			s = s[:len(s)-1]
		}
	}
	return s
}

func encodeRecord(r Record) []byte {
	reason := cleanReason(r.NackReason)
	b := make([]byte, 0, recFixedSize+len(reason)+len(r.Wire))
	b = append(b, recVersion)
	var created int64
	if !r.Created.IsZero() {
		created = nanos(r.Created)
	}
	b = appendBE64(b, uint64(created))
	b = append(b, r.Digest[:]...)
	b = binary.BigEndian.AppendUint32(b, r.Nacks)
	b = binary.BigEndian.AppendUint16(b, uint16(len(reason)))
	b = append(b, reason...)
	b = binary.BigEndian.AppendUint32(b, uint32(len(r.Wire)))
	b = append(b, r.Wire...)
	crc := crc32.Update(crc32.Checksum(seqKey(r.Seq), castagnoli), castagnoli, b)
	return binary.BigEndian.AppendUint32(b, crc)
}

// decodeRecord parses a record value stored under key. The returned record
// does not alias v (bbolt values are only valid inside their transaction).
func decodeRecord(key, v []byte) (Record, error) {
	var r Record
	if len(key) != 8 {
		return r, errorf("record key: expected 8 bytes, found %d", len(key))
	}
	r.Seq = be64(key)
	if len(v) < recFixedSize {
		return r, errorf("record %d: expected at least %d bytes, found %d", r.Seq, recFixedSize, len(v))
	}
	body, sum := v[:len(v)-4], binary.BigEndian.Uint32(v[len(v)-4:])
	if got := crc32.Update(crc32.Checksum(key, castagnoli), castagnoli, body); got != sum {
		return r, errorf("record %d: crc32c mismatch: stored %08x, computed %08x", r.Seq, sum, got)
	}
	if body[0] != recVersion {
		return r, errorf("record %d: format version: expected %d, found %d", r.Seq, recVersion, body[0])
	}
	if c := int64(be64(body[offRecCreated:])); c != 0 {
		r.Created = fromNanos(c)
	}
	copy(r.Digest[:], body[offRecDigest:])
	r.Nacks = binary.BigEndian.Uint32(body[offRecNacks:])
	rl := int(binary.BigEndian.Uint16(body[offRecReason:]))
	rest := body[offRecReason+2:]
	if rl > maxReasonSize || len(rest) < rl+4 {
		return r, errorf("record %d: nack reason length %d: expected <= %d within %d bytes", r.Seq, rl, maxReasonSize, len(rest)-4)
	}
	if !utf8.Valid(rest[:rl]) {
		return r, errorf("record %d: nack reason: expected UTF-8", r.Seq)
	}
	r.NackReason = string(rest[:rl])
	rest = rest[rl:]
	wl := int64(binary.BigEndian.Uint32(rest))
	rest = rest[4:]
	if wl == 0 || wl > MaxWireSize || wl != int64(len(rest)) {
		return r, errorf("record %d: wire length: header says %d, expected 1..%d and equal to the %d bytes present", r.Seq, wl, MaxWireSize, len(rest))
	}
	r.Wire = append([]byte(nil), rest...)
	return r, nil
}
