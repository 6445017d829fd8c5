package rig

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"time"

	"github.com/csop/tbox/cmd/collector/deploy/mosquitto"
	"github.com/csop/tbox/hil"
)

// Broker is mosquitto on the host's loopback with the shipped configuration
// (cmd/collector/deploy/mosquitto: mTLS only, no anonymous clients, the
// per-device ACL, the size limits); a guest booted with GuestOptions.Broker
// reaches it as hil.BrokerAddr.
type Broker struct {
	Port int
	proc *proc
}

// URL is the broker's address for a host client (TLS: a client needs the
// rig's PKI.CA and a certificate of its own).
func (b *Broker) URL() string { return fmt.Sprintf("ssl://127.0.0.1:%d", b.Port) }

// TLS returns a host client's TLS configuration: the rig's CA and the
// certificate and key given.
func (p *PKI) TLS(certFile, keyFile string) (*tls.Config, error) {
	pem, err := os.ReadFile(p.CA)
	if err != nil {
		return nil, err
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(pem) {
		return nil, fmt.Errorf("%s: no certificate", p.CA)
	}
	kp, err := tls.LoadX509KeyPair(certFile, keyFile)
	if err != nil {
		return nil, fmt.Errorf("client certificate %s: %w", certFile, err)
	}
	return &tls.Config{RootCAs: pool, Certificates: []tls.Certificate{kp}, MinVersion: tls.VersionTLS12, ServerName: "127.0.0.1"}, nil
}

// Stop ends the broker (SIGTERM, then SIGKILL after 3 s).
func (b *Broker) Stop() { b.proc.terminate(3 * time.Second) }

// StartBroker runs mosquitto on a free loopback port with the shipped
// configuration (only its listener, certificate and ACL paths rewritten,
// persistence off; the ACL gets the capture's read-only CaptureACL), and
// returns once it accepts connections.
func (r *Rig) StartBroker(ctx context.Context) (*Broker, error) {
	bin, err := exec.LookPath("mosquitto")
	if err != nil {
		if _, serr := os.Stat("/usr/sbin/mosquitto"); serr != nil {
			return nil, fmt.Errorf("mosquitto (installed by hil/scripts/install.sh): %w", err)
		}
		bin = "/usr/sbin/mosquitto"
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	port := ln.Addr().(*net.TCPAddr).Port
	ln.Close()
	acl := r.path("mosquitto.acl")
	if err := os.WriteFile(acl, []byte(mosquitto.ACL+CaptureACL), 0o600); err != nil {
		return nil, err
	}
	conf := mosquitto.Local(mosquitto.Paths{
		Port: port, CA: r.PKI.CA, Cert: r.PKI.ServerCert, Key: r.PKI.ServerKey, ACL: acl,
		RunAsRoot: os.Geteuid() == 0, // else mosquitto drops to a user that may not read this directory
	})
	cf := r.path("mosquitto.conf")
	if err := os.WriteFile(cf, []byte(conf), 0o644); err != nil {
		return nil, err
	}
	logPath := r.path("mosquitto.log")
	logf, err := os.Create(logPath)
	if err != nil {
		return nil, err
	}
	defer logf.Close()
	cmd := commandContext(ctx, bin, "-c", cf)
	cmd.Stdout, cmd.Stderr = logf, logf
	pr, err := r.procs.start("mosquitto", cmd)
	if err != nil {
		return nil, err
	}
	deadline := time.Now().Add(10 * time.Second)
	for {
		c, err := net.DialTimeout("tcp", net.JoinHostPort("127.0.0.1", strconv.Itoa(port)), time.Second)
		if err == nil {
			c.Close()
			r.logf("mosquitto listening on 127.0.0.1:%d with the shipped configuration, mTLS only (the guest reaches it as %s)", port, hil.BrokerAddr)
			return &Broker{Port: port, proc: pr}, nil
		}
		if pr.exited() {
			b, _ := os.ReadFile(filepath.Clean(logPath))
			return nil, fmt.Errorf("mosquitto exited at start (%v): %s", pr.err, b)
		}
		if time.Now().After(deadline) {
			pr.terminate(time.Second)
			return nil, fmt.Errorf("mosquitto not listening on 127.0.0.1:%d after 10 s", port)
		}
		time.Sleep(50 * time.Millisecond)
	}
}
