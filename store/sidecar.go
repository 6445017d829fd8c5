package store

import (
	"encoding/binary"
	"errors"
	"hash/crc32"
	"io"
	"os"
	"path/filepath"
)

// The sidecar file "head" holds the chain head outside the database, so that
// losing outbox.db cannot make the agent sign a seq twice. It is replaced
// atomically: written to "head.tmp", fsynced, renamed, and the directory
// fsynced. Layout, big-endian:
//
//	off    len  field
//	  0      4  magic "TBXH"
//	  4      1  format version (1)
//	  5      3  reserved, zero
//	  8      8  seq of the last record ever appended (>= 1)
//	 16     32  its digest
//	 48      8  its created time, unix nanoseconds (0 if unknown)
//	 56      8  acked-through when the sidecar was written
//	 64      4  wire length W (1..MaxWireSize)
//	 68      4  state length S (0..MaxStateSize)
//	 72      W  the record's wire bytes
//	 72+W    S  the caller's state blob saved with that record
//	 72+W+S  4  crc32c (Castagnoli) over bytes [0, 72+W+S)
const (
	sidecarName      = "head"
	sidecarTmpName   = "head.tmp"
	sidecarMagic     = "TBXH"
	sidecarVersion   = 1
	sidecarHeaderLen = 72
	sidecarMaxLen    = sidecarHeaderLen + MaxWireSize + MaxStateSize + 4
)

// sidecar is the decoded content of the head file.
type sidecar struct {
	rec   Record // Seq, Digest, Wire, Created
	acked uint64
	state []byte
}

func encodeSidecar(sc sidecar) []byte {
	b := make([]byte, 0, sidecarHeaderLen+len(sc.rec.Wire)+len(sc.state)+4)
	b = append(b, sidecarMagic...)
	b = append(b, sidecarVersion, 0, 0, 0)
	b = appendBE64(b, sc.rec.Seq)
	b = append(b, sc.rec.Digest[:]...)
	var created int64
	if !sc.rec.Created.IsZero() {
		created = nanos(sc.rec.Created)
	}
	b = appendBE64(b, uint64(created))
	b = appendBE64(b, sc.acked)
	b = binary.BigEndian.AppendUint32(b, uint32(len(sc.rec.Wire)))
	b = binary.BigEndian.AppendUint32(b, uint32(len(sc.state)))
	b = append(b, sc.rec.Wire...)
	b = append(b, sc.state...)
	return binary.BigEndian.AppendUint32(b, crc32.Checksum(b, castagnoli))
}

// decodeSidecar parses the head file's bytes. They come from flash and may
// be torn or damaged: every length is checked before use.
func decodeSidecar(b []byte) (sidecar, error) {
	var sc sidecar
	if len(b) < sidecarHeaderLen+4 {
		return sc, errorf("length: expected at least %d bytes, found %d", sidecarHeaderLen+4, len(b))
	}
	if string(b[0:4]) != sidecarMagic {
		return sc, errorf("offset 0: magic: expected %q, found %q", sidecarMagic, b[0:4])
	}
	if b[4] != sidecarVersion {
		return sc, errorf("offset 4: version: expected %d, found %d", sidecarVersion, b[4])
	}
	body, sum := b[:len(b)-4], binary.BigEndian.Uint32(b[len(b)-4:])
	if got := crc32.Checksum(body, castagnoli); got != sum {
		return sc, errorf("offset %d: crc32c: stored %08x, computed %08x", len(b)-4, sum, got)
	}
	if b[5] != 0 || b[6] != 0 || b[7] != 0 {
		return sc, errorf("offset 5: reserved bytes: expected zero, found %x", b[5:8])
	}
	sc.rec.Seq = be64(b[8:])
	if sc.rec.Seq == 0 {
		return sc, errorf("offset 8: seq: expected >= 1, found 0")
	}
	copy(sc.rec.Digest[:], b[16:48])
	if c := int64(be64(b[48:])); c != 0 {
		sc.rec.Created = fromNanos(c)
	}
	sc.acked = be64(b[56:])
	if sc.acked > sc.rec.Seq {
		return sc, errorf("offset 56: acked-through %d above seq %d", sc.acked, sc.rec.Seq)
	}
	wl := int64(binary.BigEndian.Uint32(b[64:]))
	sl := int64(binary.BigEndian.Uint32(b[68:]))
	if wl == 0 || wl > MaxWireSize {
		return sc, errorf("offset 64: wire length: expected 1..%d, found %d", MaxWireSize, wl)
	}
	if sl > MaxStateSize {
		return sc, errorf("offset 68: state length: expected 0..%d, found %d", MaxStateSize, sl)
	}
	if want := sidecarHeaderLen + wl + sl + 4; want != int64(len(b)) {
		return sc, errorf("length: header says %d bytes, found %d", want, len(b))
	}
	sc.rec.Wire = append([]byte(nil), b[sidecarHeaderLen:sidecarHeaderLen+wl]...)
	if sl > 0 {
		sc.state = append([]byte(nil), b[sidecarHeaderLen+wl:sidecarHeaderLen+wl+sl]...)
	}
	return sc, nil
}

// readSidecar returns the sidecar in dir. An absent file is reported with
// an error that matches os.ErrNotExist; a damaged one with a *CorruptError.
func readSidecar(dir string) (sidecar, error) {
	path := filepath.Join(dir, sidecarName)
	f, err := os.Open(path)
	if err != nil {
		return sidecar{}, err
	}
	defer f.Close()
	b, err := io.ReadAll(io.LimitReader(f, sidecarMaxLen+1))
	if err != nil {
		return sidecar{}, &CorruptError{Path: path, Err: err}
	}
	if len(b) > sidecarMaxLen {
		return sidecar{}, &CorruptError{Path: path, Err: errorf("length: expected at most %d bytes, found more", sidecarMaxLen)}
	}
	sc, err := decodeSidecar(b)
	if err != nil {
		return sidecar{}, &CorruptError{Path: path, Err: err}
	}
	return sc, nil
}

// errReplaced marks a sidecar write that failed after the rename: the new
// head may or may not be on flash.
var errReplaced = errors.New("sidecar replaced")

// writeSidecar replaces dir/head atomically and returns the number of
// fsyncs it made. An error that matches errReplaced came after the rename.
func writeSidecar(dir string, sc sidecar, sync bool) (fsyncs int, err error) {
	tmp := filepath.Join(dir, sidecarTmpName)
	f, err := os.OpenFile(tmp, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o600)
	if err != nil {
		return 0, errorf("sidecar: %w", err)
	}
	_, err = f.Write(encodeSidecar(sc))
	if err == nil && sync {
		err = f.Sync()
		fsyncs++
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		_ = os.Remove(tmp)
		return fsyncs, errorf("sidecar: %w", err)
	}
	if err := os.Rename(tmp, filepath.Join(dir, sidecarName)); err != nil {
		_ = os.Remove(tmp)
		return fsyncs, errorf("sidecar: %w", err)
	}
	if sync {
		fsyncs++
		if err := syncDir(dir); err != nil {
			return fsyncs, errorf("sidecar: %w: %w", errReplaced, err)
		}
	}
	return fsyncs, nil
}

// syncDir makes a rename or a new file in dir durable.
func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	err = d.Sync()
	if cerr := d.Close(); err == nil {
		err = cerr
	}
	return err
}
