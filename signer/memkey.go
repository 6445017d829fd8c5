package signer

import (
	"fmt"
	"io"
	"log/slog"
	"sync"
	"unsafe"

	"github.com/decred/dcrd/dcrec/secp256k1/v4"
)

// MemKey is a device key that came from elsewhere than a PEM file (a TPM
// unsealed it): its scalar is kept in memory locked against swapping
// (mlock, where the OS allows it) and zeroed by Close. It prints, formats
// and logs as REDACTED.
type MemKey struct {
	_ [0]func() // not comparable: no generated equality function (tboxd size)

	mu     sync.Mutex
	key    *secp256k1.PrivateKey // nil after Close
	addr   Address
	locked bool
}

var _ Signer = (*MemKey)(nil)

// NewMemKey makes a key of the 32-byte big-endian scalar priv, which the
// caller zeroes afterwards. It refuses a scalar that is zero or not below
// the group order ([ErrBadKey]). Locked reports whether mlock succeeded.
func NewMemKey(priv []byte) (*MemKey, error) {
	if len(priv) != 32 {
		return nil, errorf("device key of %d bytes, expected 32: %w", len(priv), ErrBadKey)
	}
	var s secp256k1.ModNScalar
	if overflow := s.SetByteSlice(priv); overflow || s.IsZero() {
		s.Zero()
		return nil, errorf("device key not in 1..n-1 of secp256k1: %w", ErrBadKey)
	}
	k := &MemKey{key: secp256k1.NewPrivateKey(&s)}
	s.Zero()
	// The Go heap does not move objects: locking the struct's pages keeps
	// the scalar out of swap for the key's life.
	k.locked = mlock(unsafe.Pointer(k.key), unsafe.Sizeof(*k.key)) == nil
	k.addr = AddressOf(k.key.PubKey())
	return k, nil
}

// Locked reports whether the key's memory is locked against swapping.
func (k *MemKey) Locked() bool { return k.locked }

// Address returns the address of the key.
func (k *MemKey) Address() Address { return k.addr }

// SignDigest signs d like [FileKey.SignDigest]; after Close it fails with
// [ErrBadKey].
func (k *MemKey) SignDigest(d [32]byte) (Signature, error) {
	k.mu.Lock()
	defer k.mu.Unlock()
	if k.key == nil {
		return Signature{}, errorf("device key closed: %w", ErrBadKey)
	}
	return signDigest(k.key, d)
}

// Close zeroes the key and unlocks its memory.
func (k *MemKey) Close() error {
	k.mu.Lock()
	defer k.mu.Unlock()
	if k.key == nil {
		return nil
	}
	k.key.Zero()
	if k.locked {
		munlock(unsafe.Pointer(k.key), unsafe.Sizeof(*k.key))
	}
	k.key = nil
	return nil
}

// String returns REDACTED.
func (*MemKey) String() string { return redacted }

// GoString returns REDACTED, for %#v.
func (*MemKey) GoString() string { return redacted }

// Format prints REDACTED for every verb.
func (*MemKey) Format(f fmt.State, _ rune) { io.WriteString(f, redacted) }

// LogValue logs the key as REDACTED.
func (*MemKey) LogValue() slog.Value { return slog.StringValue(redacted) }

// GenerateScalar returns a new random secp256k1 private scalar (32 bytes,
// big-endian) for a key kept elsewhere than a PEM file; the caller zeroes it.
func GenerateScalar() ([]byte, error) {
	key, err := secp256k1.GeneratePrivateKey()
	if err != nil {
		return nil, errorf("key generation: %w", err)
	}
	defer key.Zero()
	b := key.Key.Bytes()
	out := make([]byte, 32)
	copy(out, b[:])
	clear(b[:])
	return out, nil
}

// WriteNewKeyFile writes data to a new file at path with mode 0600,
// atomically and durably, never overwriting (an error wrapping
// fs.ErrExist), as [GenerateKeyFile] does: for a key kept in another form.
func WriteNewKeyFile(path string, data []byte) error {
	if err := writeNew(path, data); err != nil {
		return err
	}
	return nil
}
