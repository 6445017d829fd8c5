package main

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/x509"
	"encoding/pem"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/csop/tbox/signer"
)

// provision makes the device key when missing, a P-256 TLS key (0600) and
// a CSR signed by it whose CN is the device address; it never overwrites.
func TestProvision(t *testing.T) {
	dir := t.TempDir()
	key, tlsKey, csrPath := filepath.Join(dir, "device.key"), filepath.Join(dir, "tls.key"), filepath.Join(dir, "device.csr")
	r := tboxctl(t, nil, "provision", "--key", key, "--tls-key", tlsKey, "--csr", csrPath)
	if r.code != 0 {
		t.Fatalf("provision: exit %d: %s", r.code, r.stderr)
	}
	k, err := signer.LoadKeyFile(key)
	if err != nil {
		t.Fatal(err)
	}
	if got := strings.TrimSpace(r.stdout); got != k.Address().String() {
		t.Errorf("printed %q, device address %s", got, k.Address())
	}
	b, err := os.ReadFile(csrPath)
	if err != nil {
		t.Fatal(err)
	}
	blk, _ := pem.Decode(b)
	if blk == nil || blk.Type != "CERTIFICATE REQUEST" {
		t.Fatalf("csr file: %q", b)
	}
	csr, err := x509.ParseCertificateRequest(blk.Bytes)
	if err != nil {
		t.Fatal(err)
	}
	if err := csr.CheckSignature(); err != nil {
		t.Errorf("csr signature: %v", err)
	}
	if csr.Subject.CommonName != k.Address().String() {
		t.Errorf("csr CN %q, want the device address %s", csr.Subject.CommonName, k.Address())
	}
	pub, ok := csr.PublicKey.(*ecdsa.PublicKey)
	if !ok || pub.Curve != elliptic.P256() {
		t.Errorf("csr key %T, want P-256", csr.PublicKey)
	}
	fi, err := os.Stat(tlsKey)
	if err != nil || fi.Mode().Perm() != 0o600 {
		t.Errorf("tls key mode %v, %v; want 0600", fi.Mode(), err)
	}
	kb, _ := os.ReadFile(tlsKey)
	kblk, _ := pem.Decode(kb)
	priv, err := x509.ParseECPrivateKey(kblk.Bytes)
	if err != nil || !priv.PublicKey.Equal(pub) {
		t.Errorf("tls key does not match the csr: %v", err)
	}

	// Again: the existing device key is kept, the TLS files are not replaced.
	r = tboxctl(t, nil, "provision", "--key", key, "--tls-key", tlsKey, "--csr", filepath.Join(dir, "other.csr"))
	if r.code != 2 || !strings.Contains(r.stderr, "refusing to overwrite") {
		t.Errorf("second provision over the TLS key: exit %d: %s", r.code, r.stderr)
	}
	if _, err := os.Stat(filepath.Join(dir, "other.csr")); err == nil {
		t.Error("a CSR was written for a TLS key that was not")
	}
	r = tboxctl(t, nil, "provision", "--key", key)
	if r.code != 2 {
		t.Errorf("provision without --tls-key: exit %d", r.code)
	}
}
