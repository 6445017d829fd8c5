package signer

import (
	"bytes"
	"errors"
	"os"
	"runtime"
	"strconv"
	"strings"
	"testing"
	"unsafe"
)

// vmLocked returns the process's locked memory in kB (VmLck of
// /proc/self/status), or -1 where there is no such file.
func vmLocked(t *testing.T) int {
	t.Helper()
	b, err := os.ReadFile("/proc/self/status")
	if err != nil {
		return -1
	}
	for _, l := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(l, "VmLck:"); ok {
			n, err := strconv.Atoi(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(v), "kB")))
			if err != nil {
				t.Fatalf("VmLck %q: %v", v, err)
			}
			return n
		}
	}
	return -1
}

// TestMemKeyLockedAndZeroed: what a TPM-unsealed key promises: its
// scalar sits in memory the kernel counts as locked (VmLck grows), and
// Close overwrites the very bytes that held it with zeros, unlocks them,
// and leaves a key that refuses to sign.
func TestMemKeyLockedAndZeroed(t *testing.T) {
	scalar, err := GenerateScalar()
	if err != nil {
		t.Fatal(err)
	}
	want := bytes.Clone(scalar)
	before := vmLocked(t)
	k, err := NewMemKey(scalar)
	clear(scalar)
	if err != nil {
		t.Fatal(err)
	}
	// The memory that holds the scalar, as the key keeps it.
	held := k.key
	raw := unsafe.Slice((*byte)(unsafe.Pointer(held)), unsafe.Sizeof(*held))
	if b := held.Key.Bytes(); !bytes.Equal(b[:], want) {
		t.Fatal("the key does not hold the scalar it was made of")
	}
	if runtime.GOOS == "linux" {
		if !k.Locked() {
			t.Skip("mlock refused (RLIMIT_MEMLOCK 0 here?): locking not testable")
		}
		if after := vmLocked(t); before >= 0 && after <= before {
			t.Errorf("VmLck %d kB after NewMemKey, %d kB before: the key's page is not locked", after, before)
		}
	}
	if _, err := k.SignDigest([32]byte{1}); err != nil {
		t.Fatalf("SignDigest: %v", err)
	}
	if err := k.Close(); err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(raw, make([]byte, len(raw))) {
		t.Errorf("after Close the key's memory holds %x, want zeros", raw)
	}
	if runtime.GOOS == "linux" && before >= 0 {
		if after := vmLocked(t); after != before {
			t.Errorf("VmLck %d kB after Close, %d kB before the key: not unlocked", after, before)
		}
	}
	if _, err := k.SignDigest([32]byte{1}); !errors.Is(err, ErrBadKey) {
		t.Errorf("SignDigest after Close: %v, want ErrBadKey", err)
	}
	if err := k.Close(); err != nil {
		t.Errorf("a second Close: %v", err)
	}
	runtime.KeepAlive(held)
}
