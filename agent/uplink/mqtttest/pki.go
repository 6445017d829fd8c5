package mqtttest

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"
)

// PKI is a throwaway certificate authority in a temporary directory: a CA,
// a server certificate for 127.0.0.1 and localhost, and client certificates
// on demand. Keys are ECDSA P-256, files PEM.
type PKI struct {
	Dir        string // the temporary directory holding every file
	CAFile     string // the CA certificate
	ServerCert string // the server certificate (SAN 127.0.0.1, ::1, localhost)
	ServerKey  string // its key

	t      testing.TB
	ca     *x509.Certificate
	caKey  *ecdsa.PrivateKey
	serial atomic.Int64
}

// NewPKI creates a CA and a server certificate in a new temporary directory.
func NewPKI(t testing.TB) *PKI {
	t.Helper()
	p := &PKI{t: t, Dir: t.TempDir()}
	p.serial.Store(1)
	key := p.newKey()
	tmpl := &x509.Certificate{
		SerialNumber:          big.NewInt(p.serial.Add(1)),
		Subject:               pkix.Name{CommonName: "mqtttest CA " + filepath.Base(p.Dir), Organization: []string{"mqtttest"}},
		NotBefore:             time.Now().Add(-time.Hour),
		NotAfter:              time.Now().Add(24 * time.Hour),
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageCRLSign | x509.KeyUsageDigitalSignature,
		BasicConstraintsValid: true,
		IsCA:                  true,
		MaxPathLenZero:        true,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatalf("mqtttest: CA certificate: %v", err)
	}
	p.ca, err = x509.ParseCertificate(der)
	if err != nil {
		t.Fatalf("mqtttest: parse CA certificate: %v", err)
	}
	p.caKey = key
	p.CAFile = p.writePEM("ca.crt", "CERTIFICATE", der)
	p.ServerCert, p.ServerKey = p.issue("server", "127.0.0.1", x509.ExtKeyUsageServerAuth)
	return p
}

// ClientCert issues a client certificate with common name cn (the MQTT
// user name under use_identity_as_username) and returns its files.
func (p *PKI) ClientCert(cn string) (certFile, keyFile string) {
	p.t.Helper()
	return p.issue("client-"+sanitize(cn), cn, x509.ExtKeyUsageClientAuth)
}

func (p *PKI) issue(name, cn string, usage x509.ExtKeyUsage) (certFile, keyFile string) {
	p.t.Helper()
	key := p.newKey()
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(p.serial.Add(1)),
		Subject:      pkix.Name{CommonName: cn, Organization: []string{"mqtttest"}},
		NotBefore:    time.Now().Add(-time.Hour),
		NotAfter:     time.Now().Add(24 * time.Hour),
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{usage},
	}
	if usage == x509.ExtKeyUsageServerAuth {
		tmpl.IPAddresses = []net.IP{net.IPv4(127, 0, 0, 1), net.IPv6loopback}
		tmpl.DNSNames = []string{"localhost"}
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, p.ca, &key.PublicKey, p.caKey)
	if err != nil {
		p.t.Fatalf("mqtttest: certificate %s: %v", name, err)
	}
	kder, err := x509.MarshalECPrivateKey(key)
	if err != nil {
		p.t.Fatalf("mqtttest: marshal key %s: %v", name, err)
	}
	return p.writePEM(name+".crt", "CERTIFICATE", der), p.writePEM(name+".key", "EC PRIVATE KEY", kder)
}

func (p *PKI) newKey() *ecdsa.PrivateKey {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		p.t.Fatalf("mqtttest: generate key: %v", err)
	}
	return key
}

func (p *PKI) writePEM(name, typ string, der []byte) string {
	path := filepath.Join(p.Dir, name)
	if err := os.WriteFile(path, pem.EncodeToMemory(&pem.Block{Type: typ, Bytes: der}), 0o600); err != nil {
		p.t.Fatalf("mqtttest: write %s: %v", path, err)
	}
	return path
}

// sanitize keeps a common name usable as a file name.
func sanitize(s string) string {
	return strings.Map(func(r rune) rune {
		switch {
		case r >= 'a' && r <= 'z', r >= 'A' && r <= 'Z', r >= '0' && r <= '9', r == '-', r == '_', r == '.':
			return r
		}
		return '_'
	}, s)
}
