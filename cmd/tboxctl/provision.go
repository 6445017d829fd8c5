package main

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"

	"github.com/csop/tbox/signer"
)

// runProvision prepares a new T-Box for the fleet: its device key (made
// when --key does not exist yet), a P-256 TLS key for the broker's mTLS and
// a certificate signing request whose subject CN is the device address,
// the identity the broker's ACL binds the device's topics to.
func runProvision(_ context.Context, args []string, _ io.Reader, stdout, stderr io.Writer) error {
	fl := newFlagSet("provision", stderr)
	key := fl.String("key", "", "device key file (secp256k1); made with mode 0600 when it does not exist")
	tlsKey := fl.String("tls-key", "", "path of the new TLS key (P-256, mode 0600)")
	csrPath := fl.String("csr", "", "path of the new certificate signing request (PEM), CN = the device address")
	if err := parseFlags(fl, args, 0); err != nil {
		return err
	}
	if *key == "" || *tlsKey == "" || *csrPath == "" {
		return usagef("--key, --tls-key and --csr are required")
	}
	var addr signer.Address
	k, err := signer.LoadKeyFile(*key)
	switch {
	case err == nil:
		addr = k.Address()
	case errors.Is(err, fs.ErrNotExist):
		if addr, err = signer.GenerateKeyFile(*key); err != nil {
			return err
		}
		fmt.Fprintf(stderr, "device key %s made\n", *key)
	default:
		return usageError{err}
	}
	priv, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return fmt.Errorf("tls key: %w", err)
	}
	der, err := x509.MarshalECPrivateKey(priv)
	if err != nil {
		return fmt.Errorf("tls key: %w", err)
	}
	csr, err := x509.CreateCertificateRequest(rand.Reader, &x509.CertificateRequest{
		Subject: pkix.Name{CommonName: addr.String()},
	}, priv)
	if err != nil {
		return fmt.Errorf("csr: %w", err)
	}
	if err := writeExcl(*tlsKey, pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: der}), 0o600); err != nil {
		return err
	}
	if err := writeExcl(*csrPath, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE REQUEST", Bytes: csr}), 0o644); err != nil {
		os.Remove(*tlsKey)
		return err
	}
	fmt.Fprintln(stdout, addr)
	return nil
}

// writeExcl writes a new file, refusing to replace one.
func writeExcl(path string, data []byte, mode os.FileMode) error {
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, mode)
	if err != nil {
		if errors.Is(err, fs.ErrExist) {
			return usagef("%w (refusing to overwrite an existing file)", err)
		}
		return err
	}
	if _, err := f.Write(data); err != nil {
		f.Close()
		return fmt.Errorf("%s: %w", path, err)
	}
	if err := f.Sync(); err != nil {
		f.Close()
		return fmt.Errorf("%s: %w", path, err)
	}
	return f.Close()
}
