package rig

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"fmt"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"time"

	"github.com/csop/tbox/hil"
)

// The validity of the rig's certificates. The guest checks the broker's
// certificate against its own clock, and the rig sets that clock in the
// past so that a compressed drive ends before the host's now (a day's
// drive: 8.5 h back in TestNormalDay, 30 h in TestPowerCuts, the drive
// plus a margin in make demo). A certificate valid from the host's now
// would not be valid yet in the guest ("x509: certificate has expired or
// is not yet valid"). So the rig's certificates start CertBackdate before
// the host's now, far behind any guest clock the scenarios set, and Boot
// refuses a guest clock earlier than that with an error naming both. They
// end CertLife after it: the guest's clock never runs ahead of the host's.
const (
	CertBackdate = 14 * 24 * time.Hour
	CertLife     = 30 * 24 * time.Hour
)

// Certificate names of the rig's PKI.
const (
	// CollectorCN is the collector's certificate CN: one of the identities
	// the shipped ACL lets write ack and nack.
	CollectorCN = "collector-1"
	// CaptureCN is the MQTT capture's identity. The shipped ACL gives no
	// one read access to every topic; the rig's broker adds this one
	// read-only observer (CaptureACL), which writes nothing.
	CaptureCN = "rig-capture"
)

// CaptureACL is appended to the shipped ACL in the rig's broker: the
// capture reads csop/v1/# (attestations, receipts, refusals, health) and
// may write nothing.
const CaptureACL = "\n# The HIL rig's read-only MQTT capture (hil/rig), never in a deployment.\nuser " + CaptureCN + "\ntopic read csop/v1/#\n"

// PKI is the rig's throwaway certificate authority: ECDSA P-256, PEM files
// in the rig's directory.
type PKI struct {
	CA                          string // the CA certificate (the broker's cafile, the clients' ca)
	ServerCert, ServerKey       string // the broker's: SAN 127.0.0.1 (host clients) and the guest's broker address
	DeviceCert, DeviceKey       string // the T-Box's: CN = its address (the ACL's %u)
	CollectorCert, CollectorKey string // CN CollectorCN
	CaptureCert, CaptureKey     string // CN CaptureCN
	NotBefore, NotAfter         time.Time

	ca     *x509.Certificate
	caKey  *ecdsa.PrivateKey
	serial int64
}

// newPKI makes the CA and every certificate of the rig in dir.
func newPKI(dir, device string, now time.Time) (*PKI, error) {
	p := &PKI{NotBefore: now.Add(-CertBackdate).Truncate(time.Second), NotAfter: now.Add(CertLife).Truncate(time.Second)}
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, fmt.Errorf("CA key: %w", err)
	}
	tmpl := p.template("tbox rig CA")
	tmpl.KeyUsage = x509.KeyUsageCertSign | x509.KeyUsageCRLSign | x509.KeyUsageDigitalSignature
	tmpl.BasicConstraintsValid, tmpl.IsCA, tmpl.MaxPathLenZero = true, true, true
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		return nil, fmt.Errorf("CA certificate: %w", err)
	}
	if p.ca, err = x509.ParseCertificate(der); err != nil {
		return nil, fmt.Errorf("CA certificate: %w", err)
	}
	p.caKey = key
	if p.CA, err = writePEM(filepath.Join(dir, "ca.crt"), "CERTIFICATE", der); err != nil {
		return nil, err
	}
	brokerIP, _, err := net.SplitHostPort(hil.BrokerAddr)
	if err != nil {
		return nil, err
	}
	for _, c := range []struct {
		name, cn   string
		server     bool
		cert, keyf *string
	}{
		{"server", "tbox rig broker", true, &p.ServerCert, &p.ServerKey},
		{"device", device, false, &p.DeviceCert, &p.DeviceKey},
		{"collector", CollectorCN, false, &p.CollectorCert, &p.CollectorKey},
		{"capture", CaptureCN, false, &p.CaptureCert, &p.CaptureKey},
	} {
		t := p.template(c.cn)
		t.KeyUsage = x509.KeyUsageDigitalSignature
		t.ExtKeyUsage = []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}
		if c.server {
			// The host's clients dial 127.0.0.1; the guest dials
			// hil.BrokerAddr, which qemu's guestfwd carries to the host.
			t.ExtKeyUsage = []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}
			t.IPAddresses = []net.IP{net.IPv4(127, 0, 0, 1), net.ParseIP(brokerIP)}
			t.DNSNames = []string{"localhost"}
		}
		if *c.cert, *c.keyf, err = p.issue(filepath.Join(dir, c.name), t); err != nil {
			return nil, fmt.Errorf("%s certificate: %w", c.name, err)
		}
	}
	return p, nil
}

func (p *PKI) template(cn string) *x509.Certificate {
	p.serial++
	return &x509.Certificate{
		SerialNumber: big.NewInt(p.serial),
		Subject:      pkix.Name{CommonName: cn, Organization: []string{"tbox HIL rig"}},
		NotBefore:    p.NotBefore,
		NotAfter:     p.NotAfter,
	}
}

func (p *PKI) issue(base string, tmpl *x509.Certificate) (certFile, keyFile string, err error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return "", "", err
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, p.ca, &key.PublicKey, p.caKey)
	if err != nil {
		return "", "", err
	}
	kder, err := x509.MarshalECPrivateKey(key)
	if err != nil {
		return "", "", err
	}
	if certFile, err = writePEM(base+".crt", "CERTIFICATE", der); err != nil {
		return "", "", err
	}
	if keyFile, err = writePEM(base+".key", "EC PRIVATE KEY", kder); err != nil {
		return "", "", err
	}
	return certFile, keyFile, nil
}

func writePEM(path, typ string, der []byte) (string, error) {
	if err := os.WriteFile(path, pem.EncodeToMemory(&pem.Block{Type: typ, Bytes: der}), 0o600); err != nil {
		return "", fmt.Errorf("write %s: %w", path, err)
	}
	return path, nil
}
