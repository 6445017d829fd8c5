package rig

import (
	"crypto/tls"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"net"
	"os"
	"testing"
	"time"

	"github.com/csop/tbox/hil"
)

// TestPKIValidInTheGuest: the broker's certificate verifies for the
// address the guest dials (hil.BrokerAddr, an IP SAN) at the oldest guest
// clock a scenario sets (30 h before the host's now), and the device's
// certificate names the device (the ACL's %u). Before NotBefore it does
// not verify: that is why the rig back-dates it.
func TestPKIValidInTheGuest(t *testing.T) {
	now := time.Now()
	const device = "0x00000000000000000000000000000000000000a1"
	p, err := newPKI(t.TempDir(), device, now)
	if err != nil {
		t.Fatal(err)
	}
	roots := x509.NewCertPool()
	ca, err := os.ReadFile(p.CA)
	if err != nil {
		t.Fatal(err)
	}
	roots.AppendCertsFromPEM(ca)
	brokerIP, _, _ := net.SplitHostPort(hil.BrokerAddr)
	server := readCert(t, p.ServerCert)
	for _, c := range []struct {
		host string
		at   time.Time
		ok   bool
	}{
		{brokerIP, now.Add(-30 * time.Hour), true},
		{brokerIP, now, true},
		{"127.0.0.1", now.Add(-8 * time.Hour), true},
		{brokerIP, p.NotBefore.Add(-time.Minute), false},
		{"10.0.2.2", now, false},
	} {
		_, err := server.Verify(x509.VerifyOptions{DNSName: c.host, Roots: roots, CurrentTime: c.at, KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}})
		if (err == nil) != c.ok {
			t.Errorf("broker certificate for %s at %s: %v, want ok=%v", c.host, c.at.UTC().Format(time.DateTime), err, c.ok)
		}
	}
	if cn := readCert(t, p.DeviceCert).Subject.CommonName; cn != device {
		t.Errorf("device certificate CN %q, want %q", cn, device)
	}
	if cn := readCert(t, p.CollectorCert).Subject.CommonName; cn != CollectorCN {
		t.Errorf("collector certificate CN %q, want %q", cn, CollectorCN)
	}
	if _, err := p.TLS(p.DeviceCert, p.DeviceKey); err != nil {
		t.Errorf("TLS: %v", err)
	}
	if _, err := tls.LoadX509KeyPair(p.DeviceCert, p.CollectorKey); err == nil {
		t.Error("a certificate loaded with another's key")
	}
	if _, err := p.TLS(p.DeviceCert, p.DeviceCert+".missing"); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("TLS with a missing key: %v, want ErrNotExist", err)
	}
}

func readCert(t *testing.T, path string) *x509.Certificate {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	blk, _ := pem.Decode(b)
	if blk == nil {
		t.Fatalf("%s: no PEM", path)
	}
	c, err := x509.ParseCertificate(blk.Bytes)
	if err != nil {
		t.Fatal(err)
	}
	return c
}
