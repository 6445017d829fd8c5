//go:build tpm

package main

import (
	"path/filepath"
	"strings"
	"testing"

	"github.com/csop/tbox/signer/tpmkey"
	"github.com/csop/tbox/signer/tpmkey/swtpmtest"
)

// TestKeygenTPM: keygen --tpm seals a new key by a real swtpm and prints
// its address, which the sealed file declares and the TPM unseals; it
// refuses to overwrite, and a bad --pcrs is a usage error.
func TestKeygenTPM(t *testing.T) {
	sw := swtpmtest.Start(t)
	path := filepath.Join(t.TempDir(), "device.sealed")
	r := tboxctl(t, nil, "keygen", "--tpm", "--tpm-device", sw.Socket, "--pcrs", "7,16", "--key", path)
	if r.code != 0 || !addressLine.MatchString(r.stdout) {
		t.Fatalf("keygen --tpm: exit %d, stdout %q, stderr %q", r.code, r.stdout, r.stderr)
	}
	addr, pcrs, err := tpmkey.ReadFile(path)
	if err != nil || addr.String() != strings.TrimSpace(r.stdout) || len(pcrs) != 2 {
		t.Fatalf("sealed file: %s %v %v; keygen printed %q", addr, pcrs, err, r.stdout)
	}
	tp, err := tpmkey.Open(sw.Socket)
	if err != nil {
		t.Fatal(err)
	}
	defer tp.Close()
	k, err := tpmkey.Load(tp, path)
	if err != nil || k.Address() != addr {
		t.Fatalf("unseal: %v", err)
	}
	k.Close()
	if r := tboxctl(t, nil, "keygen", "--tpm", "--tpm-device", sw.Socket, "--key", path); r.code != 2 {
		t.Errorf("keygen --tpm over an existing file: exit %d, want 2", r.code)
	}
	if r := tboxctl(t, nil, "keygen", "--tpm", "--tpm-device", sw.Socket, "--pcrs", "7,x", "--key", path+"2"); r.code != 2 {
		t.Errorf("keygen --tpm --pcrs 7,x: exit %d, want 2", r.code)
	}
}
