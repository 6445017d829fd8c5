package tpmkey_test

import (
	"bytes"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-tpm/tpm2"
	"github.com/google/go-tpm/tpm2/transport"

	"github.com/csop/tbox/signer"
	"github.com/csop/tbox/signer/tpmkey"
	"github.com/csop/tbox/signer/tpmkey/swtpmtest"
)

func open(t *testing.T, sock string) transport.TPMCloser {
	t.Helper()
	tp, err := tpmkey.Open(sock)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { tp.Close() })
	return tp
}

// sealNew seals a new key for PCR 16 (resettable, extendable by a test).
func sealNew(t *testing.T, tp transport.TPM) (string, signer.Address) {
	t.Helper()
	path := filepath.Join(t.TempDir(), "device.sealed")
	addr, err := tpmkey.Generate(tp, path, []int{16, 7})
	if err != nil {
		t.Fatalf("Generate: %v", err)
	}
	return path, addr
}

// TestSealUnsealSign: a key sealed in the TPM unseals there, signs
// attestations its address verifies, and leaves no clear copy on disk.
func TestSealUnsealSign(t *testing.T) {
	sw := swtpmtest.Start(t)
	tp := open(t, sw.Socket)
	path, addr := sealNew(t, tp)

	fi, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	if fi.Mode().Perm() != 0o600 {
		t.Errorf("sealed file mode %v, want 0600", fi.Mode().Perm())
	}
	gotAddr, pcrs, err := tpmkey.ReadFile(path)
	if err != nil || gotAddr != addr || len(pcrs) != 2 || pcrs[0] != 7 || pcrs[1] != 16 {
		t.Fatalf("ReadFile = %s %v %v, want %s [7 16]", gotAddr, pcrs, err, addr)
	}
	if _, err := tpmkey.Generate(tp, path, nil); !errors.Is(err, os.ErrExist) {
		t.Errorf("Generate over an existing file: %v, want ErrExist", err)
	}

	k, err := tpmkey.Load(tp, path)
	if err != nil {
		t.Fatalf("Load: %v", err)
	}
	if k.Address() != addr {
		t.Fatalf("unsealed address %s, sealed %s", k.Address(), addr)
	}
	if !k.Locked() {
		t.Log("mlock refused here (RLIMIT_MEMLOCK?): key not locked")
	}
	a := &signer.Attestation{V: signer.Version, Device: addr, Seq: 1, Batch: 2833333, Batches: 1, Meters: 1234, Modes: []signer.ModeMeters{{Mode: "ECO", Meters: 1234}}}
	if err := signer.Sign(k, 20220807, a); err != nil {
		t.Fatal(err)
	}
	if err := signer.Verify(20220807, a); err != nil {
		t.Fatalf("the signature of the unsealed key does not verify: %v", err)
	}
	if s := strings.Join([]string{k.String(), fmtV(k)}, " "); strings.Contains(s, "0x") {
		t.Errorf("the key prints as %q", s)
	}
	k.Close()
	if _, err := k.SignDigest([32]byte{1}); !errors.Is(err, signer.ErrBadKey) {
		t.Errorf("SignDigest after Close: %v, want ErrBadKey", err)
	}
}

// TestRefusedAfterPCRExtend: once a policy PCR changes (another boot
// chain), the TPM refuses to unseal, with ErrPCRMismatch.
func TestRefusedAfterPCRExtend(t *testing.T) {
	sw := swtpmtest.Start(t)
	tp := open(t, sw.Socket)
	path, _ := sealNew(t, tp)
	if _, err := (tpm2.PCRExtend{
		PCRHandle: tpm2.AuthHandle{Handle: tpm2.TPMHandle(16), Auth: tpm2.PasswordAuth(nil)},
		Digests: tpm2.TPMLDigestValues{Digests: []tpm2.TPMTHA{{
			HashAlg: tpm2.TPMAlgSHA256, Digest: bytes.Repeat([]byte{0xAB}, 32),
		}}},
	}).Execute(tp); err != nil {
		t.Fatal(err)
	}
	k, err := tpmkey.Load(tp, path)
	if !errors.Is(err, tpmkey.ErrPCRMismatch) {
		t.Fatalf("Load after a PCR extend: key %v, err %v; want ErrPCRMismatch", k != nil, err)
	}
	if !strings.Contains(err.Error(), path) || !strings.Contains(err.Error(), "another chain") {
		t.Errorf("error %q should name the file and the cause", err)
	}
}

// TestRefusedOnAnotherTPM: a sealed file copied to another device (another
// TPM, another seed) does not load there.
func TestRefusedOnAnotherTPM(t *testing.T) {
	path, _ := sealNew(t, open(t, swtpmtest.Start(t).Socket))
	other := open(t, swtpmtest.Start(t).Socket)
	k, err := tpmkey.Load(other, path)
	if !errors.Is(err, tpmkey.ErrForeignTPM) {
		t.Fatalf("Load on another TPM: key %v, err %v; want ErrForeignTPM", k != nil, err)
	}
}

// TestBadFiles: a damaged sealed file is refused before the TPM is asked.
func TestBadFiles(t *testing.T) {
	dir := t.TempDir()
	for name, body := range map[string]string{
		"empty":    "",
		"pem key":  "-----BEGIN EC PRIVATE KEY-----\nAAAA\n-----END EC PRIVATE KEY-----\n",
		"no pcrs":  "-----BEGIN TBOX TPM SEALED KEY-----\nAddress: 0x0000000000000000000000000000000000000000\n\nAAAA\n-----END TBOX TPM SEALED KEY-----\n",
		"bad pcr":  "-----BEGIN TBOX TPM SEALED KEY-----\nAddress: 0x0000000000000000000000000000000000000000\nPCRs: sha256:99\n\nAAAA\n-----END TBOX TPM SEALED KEY-----\n",
		"truncate": "-----BEGIN TBOX TPM SEALED KEY-----\nAddress: 0x0000000000000000000000000000000000000000\nPCRs: sha256:7\n\nAP8A\n-----END TBOX TPM SEALED KEY-----\n",
	} {
		p := filepath.Join(dir, strings.ReplaceAll(name, " ", "_"))
		os.WriteFile(p, []byte(body), 0o600)
		if _, _, err := tpmkey.ReadFile(p); !errors.Is(err, tpmkey.ErrBadFile) {
			t.Errorf("%s: ReadFile err %v, want ErrBadFile", name, err)
		}
	}
}
