package signer

import (
	"bytes"
	"encoding/asn1"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"

	"github.com/decred/dcrd/dcrec/secp256k1/v4"
)

// oidSecp256k1 is the named-curve OID of secp256k1 (SEC 2).
var oidSecp256k1 = asn1.ObjectIdentifier{1, 3, 132, 0, 10}

// PEM block types.
const (
	pemECPrivateKey = "EC PRIVATE KEY"
	pemECParameters = "EC PARAMETERS"
)

// maxKeyFileSize bounds what LoadKeyFile reads; a key file is about 300 bytes.
const maxKeyFileSize = 16 << 10

// ecPrivateKey is the SEC1 (RFC 5915) ECPrivateKey structure:
//
//	ECPrivateKey ::= SEQUENCE {
//	  version        INTEGER { ecPrivkeyVer1(1) },
//	  privateKey     OCTET STRING,                  -- 32 bytes, big-endian
//	  parameters [0] ECParameters OPTIONAL,         -- namedCurve OID
//	  publicKey  [1] BIT STRING OPTIONAL }          -- 0x04 || X || Y
type ecPrivateKey struct {
	Version    int
	PrivateKey []byte
	Curve      asn1.ObjectIdentifier `asn1:"optional,explicit,tag:0"`
	PublicKey  asn1.BitString        `asn1:"optional,explicit,tag:1"`
}

// KeyFileError is an error about a key file. Err is [ErrBadKey],
// [ErrKeyPermissions] or an error from the file system.
type KeyFileError struct {
	_ [0]func() // not comparable: no generated equality function (tboxd size)

	Path   string
	Detail string // what is wrong and, where possible, how to fix it
	Err    error
}

func (e *KeyFileError) Error() string {
	if e.Detail == "" {
		return "key file " + e.Path + ": " + e.Err.Error()
	}
	return "key file " + e.Path + ": " + e.Detail
}

func (e *KeyFileError) Unwrap() error { return e.Err }

// FileKey is a device key held in a file. It prints, formats and logs as
// REDACTED; no method returns the private scalar.
type FileKey struct {
	key  *secp256k1.PrivateKey
	addr Address
}

var _ Signer = (*FileKey)(nil)

// Address returns the address of the key.
func (k *FileKey) Address() Address { return k.addr }

// PublicKey returns the public key.
func (k *FileKey) PublicKey() *secp256k1.PublicKey { return k.key.PubKey() }

// SignDigest signs d (RFC 6979 deterministic nonce): r||s||v, v in {27, 28},
// low s.
func (k *FileKey) SignDigest(d [32]byte) (Signature, error) {
	return signDigest(k.key, d)
}

const redacted = "REDACTED"

// String returns REDACTED.
func (FileKey) String() string { return redacted }

// GoString returns REDACTED, for %#v.
func (FileKey) GoString() string { return redacted }

// Format prints REDACTED for every verb, so no fmt verb reaches the fields.
func (FileKey) Format(f fmt.State, _ rune) { io.WriteString(f, redacted) }

// LogValue logs the key as REDACTED.
func (FileKey) LogValue() slog.Value { return slog.StringValue(redacted) }

// GenerateKeyFile creates a new device key at path and returns its address.
// The file is written to a temporary file in the same directory with mode
// 0600, synced, and then linked to path, so path either does not exist or
// holds a complete key. It never overwrites: if path exists the error wraps
// fs.ErrExist.
func GenerateKeyFile(path string) (Address, error) {
	if _, err := os.Lstat(path); err == nil {
		return Address{}, &KeyFileError{Path: path, Detail: "already exists; refusing to overwrite a key", Err: fs.ErrExist}
	}
	dir := filepath.Dir(path)
	if st, err := os.Stat(dir); err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			return Address{}, &KeyFileError{Path: path, Detail: fmt.Sprintf("directory %s does not exist; create it first (mkdir -p -m 700 %s)", dir, dir), Err: err}
		}
		return Address{}, &KeyFileError{Path: path, Detail: "directory: " + err.Error(), Err: err}
	} else if !st.IsDir() {
		return Address{}, &KeyFileError{Path: path, Detail: fmt.Sprintf("%s is %s, expected a directory", dir, describeType(st.Mode())), Err: fs.ErrInvalid}
	}
	key, err := secp256k1.GeneratePrivateKey()
	if err != nil {
		return Address{}, errorf("key generation: %w", err)
	}
	defer key.Zero()
	data, err := marshalKey(key)
	if err != nil {
		return Address{}, err
	}
	defer clear(data)
	if err := writeNew(path, data); err != nil {
		return Address{}, err
	}
	return AddressOf(key.PubKey()), nil
}

// writeNew writes data to a new file at path, atomically and durably.
func writeNew(path string, data []byte) (err error) {
	dir := filepath.Dir(path)
	tmp, err := os.CreateTemp(dir, ".keygen-*.tmp")
	if err != nil {
		return &KeyFileError{Path: path, Detail: "temporary file: " + err.Error(), Err: err}
	}
	tmpName := tmp.Name()
	defer func() {
		tmp.Close()
		os.Remove(tmpName)
	}()
	fail := func(what string, err error) error {
		return &KeyFileError{Path: path, Detail: what + ": " + err.Error(), Err: err}
	}
	if err := tmp.Chmod(0o600); err != nil {
		return fail("chmod", err)
	}
	if _, err := tmp.Write(data); err != nil {
		return fail("write", err)
	}
	if err := tmp.Sync(); err != nil {
		return fail("sync", err)
	}
	if err := tmp.Close(); err != nil {
		return fail("close", err)
	}
	// link(2) fails with EEXIST instead of replacing path, unlike rename(2).
	if err := os.Link(tmpName, path); err != nil {
		if errors.Is(err, fs.ErrExist) {
			return &KeyFileError{Path: path, Detail: "already exists; refusing to overwrite a key", Err: fs.ErrExist}
		}
		return fail("link", err)
	}
	if err := syncDir(dir); err != nil {
		return fail("sync directory", err)
	}
	return nil
}

func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	defer d.Close()
	return d.Sync()
}

// marshalKey encodes key as a SEC1 "EC PRIVATE KEY" PEM block.
func marshalKey(key *secp256k1.PrivateKey) ([]byte, error) {
	priv := key.Key.Bytes()
	defer clear(priv[:])
	pub := key.PubKey().SerializeUncompressed()
	der, err := asn1.Marshal(ecPrivateKey{
		Version:    1,
		PrivateKey: priv[:],
		Curve:      oidSecp256k1,
		PublicKey:  asn1.BitString{Bytes: pub, BitLength: 8 * len(pub)},
	})
	if err != nil {
		return nil, errorf("key encoding: %w", err)
	}
	defer clear(der)
	return pem.EncodeToMemory(&pem.Block{Type: pemECPrivateKey, Bytes: der}), nil
}

// LoadKeyFile reads a device key written by [GenerateKeyFile] (or by
// `openssl ecparam -name secp256k1 -genkey`). It refuses a file that group
// or others may read or write ([ErrKeyPermissions]) and anything that is not
// a valid secp256k1 SEC1 PEM key ([ErrBadKey]); errors are [*KeyFileError].
func LoadKeyFile(path string) (*FileKey, error) {
	// Stat before opening: opening a FIFO blocks until a writer comes,
	// which would hang the daemon (and ignore SIGTERM) for good.
	if st, err := os.Stat(path); err != nil {
		return nil, &KeyFileError{Path: path, Err: err}
	} else if !st.Mode().IsRegular() {
		return nil, notRegular(path, st.Mode())
	}
	// O_NONBLOCK as well, for a file swapped for a FIFO after the Stat.
	f, err := os.OpenFile(path, os.O_RDONLY|openNonBlock, 0)
	if err != nil {
		return nil, &KeyFileError{Path: path, Err: err}
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return nil, &KeyFileError{Path: path, Err: err}
	}
	if !st.Mode().IsRegular() {
		return nil, notRegular(path, st.Mode())
	}
	if perm := st.Mode().Perm(); perm&0o077 != 0 {
		return nil, &KeyFileError{Path: path, Err: ErrKeyPermissions, Detail: fmt.Sprintf(
			"mode %04o lets group or others read or write the device key; expected 0600: run chmod 600 %s", perm, path)}
	}
	data, err := io.ReadAll(io.LimitReader(f, maxKeyFileSize+1))
	if err != nil {
		return nil, &KeyFileError{Path: path, Err: err}
	}
	defer clear(data)
	if len(data) > maxKeyFileSize {
		return nil, badKey(path, "larger than %d bytes; expected a PEM key of about 300 bytes", maxKeyFileSize)
	}
	key, err := parseKey(path, data)
	if err != nil {
		return nil, err
	}
	return &FileKey{key: key, addr: AddressOf(key.PubKey())}, nil
}

// notRegular is the error for a key path that is not a regular file.
func notRegular(path string, m fs.FileMode) error {
	return &KeyFileError{Path: path, Detail: fmt.Sprintf("is %s, expected a regular file holding a PEM key", describeType(m)), Err: ErrBadKey}
}

// describeType names a file's type as a person would.
func describeType(m fs.FileMode) string {
	switch t := m.Type(); {
	case t&fs.ModeDir != 0:
		return "a directory"
	case t&fs.ModeNamedPipe != 0:
		return "a named pipe (FIFO)"
	case t&fs.ModeSocket != 0:
		return "a socket"
	case t&fs.ModeCharDevice != 0:
		return "a character device"
	case t&fs.ModeDevice != 0:
		return "a block device"
	case t&fs.ModeSymlink != 0:
		return "a symbolic link"
	default:
		return "not a regular file"
	}
}

// Not inlined: an error path called from many places, kept as one copy.
//
//go:noinline
func badKey(path, format string, args ...any) error {
	return &KeyFileError{Path: path, Detail: fmt.Sprintf(format, args...), Err: ErrBadKey}
}

// parseKey decodes a SEC1 PEM secp256k1 key. An "EC PARAMETERS" block for
// secp256k1 before the key, as openssl writes it, is accepted.
func parseKey(path string, data []byte) (*secp256k1.PrivateKey, error) {
	rest := data
	for {
		block, r := pem.Decode(rest)
		if block == nil {
			if bytes.Contains(rest, []byte("-----BEGIN ")) {
				return nil, badKey(path, "PEM block without its END line (truncated file?)")
			}
			if len(rest) == len(data) {
				return nil, badKey(path, "not PEM; expected a %q block", pemECPrivateKey)
			}
			return nil, badKey(path, "no %q block found", pemECPrivateKey)
		}
		rest = r
		defer clear(block.Bytes)
		switch block.Type {
		case pemECParameters:
			var oid asn1.ObjectIdentifier
			if tail, err := asn1.Unmarshal(block.Bytes, &oid); err != nil || len(tail) != 0 {
				return nil, badKey(path, "%q block: expected a named-curve OID", pemECParameters)
			}
			if !oid.Equal(oidSecp256k1) {
				return nil, badKey(path, "curve %s, expected secp256k1 (%s)", oid, oidSecp256k1)
			}
			continue
		case pemECPrivateKey:
		case "PRIVATE KEY":
			return nil, badKey(path, "PEM block %q (PKCS#8), expected %q (SEC1); convert with: openssl ec -in %s -out NEWFILE", block.Type, pemECPrivateKey, path)
		case "ENCRYPTED PRIVATE KEY":
			return nil, badKey(path, "PEM block %q: encrypted keys are not supported, expected %q", block.Type, pemECPrivateKey)
		default:
			return nil, badKey(path, "PEM block %q, expected %q", block.Type, pemECPrivateKey)
		}
		if len(block.Headers) != 0 {
			return nil, badKey(path, "PEM headers present (an encrypted key?); expected a plain %q block", pemECPrivateKey)
		}
		if len(bytes.TrimSpace(rest)) != 0 {
			return nil, badKey(path, "unexpected data after the %q block", pemECPrivateKey)
		}
		return parseECPrivateKey(path, block.Bytes)
	}
}

func parseECPrivateKey(path string, der []byte) (*secp256k1.PrivateKey, error) {
	var k ecPrivateKey
	tail, err := asn1.Unmarshal(der, &k)
	if err != nil {
		return nil, badKey(path, "ECPrivateKey DER: %v (truncated or corrupt)", err)
	}
	defer clear(k.PrivateKey)
	if len(tail) != 0 {
		return nil, badKey(path, "%d bytes after the ECPrivateKey DER", len(tail))
	}
	if k.Version != 1 {
		return nil, badKey(path, "ECPrivateKey version %d, expected 1", k.Version)
	}
	if k.Curve == nil {
		return nil, badKey(path, "no curve parameters; expected the secp256k1 OID %s", oidSecp256k1)
	}
	if !k.Curve.Equal(oidSecp256k1) {
		return nil, badKey(path, "curve %s, expected secp256k1 (%s)", k.Curve, oidSecp256k1)
	}
	if len(k.PrivateKey) != 32 {
		return nil, badKey(path, "private key of %d bytes, expected 32", len(k.PrivateKey))
	}
	var s secp256k1.ModNScalar
	if overflow := s.SetByteSlice(k.PrivateKey); overflow {
		return nil, badKey(path, "private key not below the secp256k1 group order")
	}
	if s.IsZero() {
		return nil, badKey(path, "private key is zero")
	}
	key := secp256k1.NewPrivateKey(&s)
	s.Zero()
	if k.PublicKey.BitLength != 0 {
		pub, err := secp256k1.ParsePubKey(k.PublicKey.RightAlign())
		if err != nil || !pub.IsEqual(key.PubKey()) {
			key.Zero()
			return nil, badKey(path, "public key does not match the private key")
		}
	}
	return key, nil
}
