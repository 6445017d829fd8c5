package uplink_test

import (
	"errors"
	"github.com/csop/tbox/signer"
	"io/fs"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/csop/tbox/agent/uplink"
	"github.com/csop/tbox/agent/uplink/mqtttest"
)

const device = "0x3b0c5f3e2a1d4c6b8e9f0a1b2c3d4e5f60718293"

func TestValidate(t *testing.T) {
	pki := mqtttest.NewPKI(t)
	cert, key := pki.ClientCert(device)
	dir := t.TempDir()
	notPEM := filepath.Join(dir, "not.pem")
	if err := os.WriteFile(notPEM, []byte("hello"), 0o600); err != nil {
		t.Fatal(err)
	}
	missing := filepath.Join(dir, "missing.pem")
	ok := uplink.Config{Broker: "ssl://broker.example:8883", Device: device, CAFile: pki.CAFile, CertFile: cert, KeyFile: key}

	tests := []struct {
		name      string
		mod       func(*uplink.Config)
		wantErr   error
		wantField string
		wantCause error
	}{
		{"mutual TLS", func(*uplink.Config) {}, nil, "", nil},
		{"tls scheme", func(c *uplink.Config) { c.Broker = "tls://10.0.0.1:8883" }, nil, "", nil},
		{"mqtts scheme", func(c *uplink.Config) { c.Broker = "mqtts://broker.example:8883" }, nil, "", nil},
		{"TLS with system roots, no client cert", func(c *uplink.Config) { c.CAFile, c.CertFile, c.KeyFile = "", "", "" }, nil, "", nil},
		{"plaintext loopback", func(c *uplink.Config) { *c = uplink.Config{Broker: "tcp://127.0.0.1:1883", Device: device} }, nil, "", nil},
		{"plaintext localhost", func(c *uplink.Config) { *c = uplink.Config{Broker: "mqtt://localhost:1883", Device: device} }, nil, "", nil},
		{"plaintext IPv6 loopback", func(c *uplink.Config) { *c = uplink.Config{Broker: "tcp://[::1]:1883", Device: device} }, nil, "", nil},
		{"plaintext remote allowed", func(c *uplink.Config) {
			*c = uplink.Config{Broker: "tcp://192.0.2.1:1883", Device: device, AllowInsecure: true}
		}, nil, "", nil},

		{"plaintext remote", func(c *uplink.Config) { *c = uplink.Config{Broker: "tcp://192.0.2.1:1883", Device: device} }, uplink.ErrInsecure, "broker", nil},
		{"plaintext remote by name", func(c *uplink.Config) { *c = uplink.Config{Broker: "mqtt://broker.example:1883", Device: device} }, uplink.ErrInsecure, "broker", nil},
		{"TLS files on plaintext", func(c *uplink.Config) { c.Broker = "tcp://127.0.0.1:1883" }, uplink.ErrTLSFiles, "ca_file", nil},
		{"no broker", func(c *uplink.Config) { c.Broker = "" }, uplink.ErrBroker, "broker", nil},
		{"bad scheme", func(c *uplink.Config) { c.Broker = "http://broker.example:80" }, uplink.ErrBroker, "broker", nil},
		{"no port", func(c *uplink.Config) { c.Broker = "ssl://broker.example" }, uplink.ErrBroker, "broker", nil},
		{"bad port", func(c *uplink.Config) { c.Broker = "ssl://broker.example:99999" }, uplink.ErrBroker, "broker", nil},
		{"no host", func(c *uplink.Config) { c.Broker = "ssl://:8883" }, uplink.ErrBroker, "broker", nil},
		{"path", func(c *uplink.Config) { c.Broker = "ssl://broker.example:8883/mqtt" }, uplink.ErrBroker, "broker", nil},
		{"no device", func(c *uplink.Config) { c.Device = "" }, uplink.ErrDevice, "device", nil},
		{"device upper case", func(c *uplink.Config) { c.Device = "0x3B0C5F3E2A1D4C6B8E9F0A1B2C3D4E5F60718293" }, uplink.ErrDevice, "device", nil},
		{"device short", func(c *uplink.Config) { c.Device = device[:40] }, uplink.ErrDevice, "device", nil},
		{"device with wildcard", func(c *uplink.Config) { c.Device = "0x3b0c5f3e2a1d4c6b8e9f0a1b2c3d4e5f6071829#" }, uplink.ErrDevice, "device", nil},
		{"cert without key", func(c *uplink.Config) { c.KeyFile = "" }, uplink.ErrTLSFiles, "key_file", nil},
		{"key without cert", func(c *uplink.Config) { c.CertFile = "" }, uplink.ErrTLSFiles, "cert_file", nil},
		{"CA file missing", func(c *uplink.Config) { c.CAFile = missing }, uplink.ErrTLSFiles, "ca_file", fs.ErrNotExist},
		{"CA file not PEM", func(c *uplink.Config) { c.CAFile = notPEM }, uplink.ErrTLSFiles, "ca_file", nil},
		{"cert file missing", func(c *uplink.Config) { c.CertFile = missing }, uplink.ErrTLSFiles, "cert_file", fs.ErrNotExist},
		{"key file missing", func(c *uplink.Config) { c.KeyFile = missing }, uplink.ErrTLSFiles, "key_file", fs.ErrNotExist},
		{"key of another cert", func(c *uplink.Config) { c.KeyFile = pki.ServerKey }, uplink.ErrTLSFiles, "cert_file", nil},
		{"negative keepalive", func(c *uplink.Config) { c.KeepAlive = -time.Second }, uplink.ErrDuration, "keepalive", nil},
		{"sub-second keepalive", func(c *uplink.Config) { c.KeepAlive = 500 * time.Millisecond }, uplink.ErrDuration, "keepalive", nil},
		{"backoff min above max", func(c *uplink.Config) { c.BackoffMin, c.BackoffMax = 2*time.Second, time.Second }, uplink.ErrDuration, "backoff_min", nil},
		{"negative nack retry", func(c *uplink.Config) { c.NackRetry = -1 }, uplink.ErrDuration, "nack_retry", nil},
		{"negative window", func(c *uplink.Config) { c.Window = -1 }, uplink.ErrWindow, "window", nil},
		{"window too large", func(c *uplink.Config) { c.Window = uplink.MaxWindow + 1 }, uplink.ErrWindow, "window", nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := ok
			tt.mod(&c)
			err := c.Validate()
			if tt.wantErr == nil {
				if err != nil {
					t.Fatalf("Validate() = %v, want nil", err)
				}
				return
			}
			if !errors.Is(err, tt.wantErr) {
				t.Fatalf("Validate() = %v, want %v", err, tt.wantErr)
			}
			var ce *uplink.ConfigError
			if !errors.As(err, &ce) || ce.Field != tt.wantField {
				t.Fatalf("Validate() = %v, want a ConfigError on field %q", err, tt.wantField)
			}
			if tt.wantCause != nil && !errors.Is(err, tt.wantCause) {
				t.Fatalf("Validate() = %v, want it to wrap %v", err, tt.wantCause)
			}
			t.Logf("%v", err)
		})
	}
}

// TestNewRefusesInsecureBeforeDialing: New with a plaintext broker off
// loopback fails at once (192.0.2.1 is TEST-NET-1: a dial would hang until
// the timeout, so a quick return shows nothing was dialed).
func TestNewRefusesInsecureBeforeDialing(t *testing.T) {
	start := time.Now()
	_, err := uplink.New(uplink.Config{Broker: "tcp://192.0.2.1:1883", Device: device}, newMemOutbox())
	if !errors.Is(err, uplink.ErrInsecure) {
		t.Fatalf("New = %v, want ErrInsecure", err)
	}
	if d := time.Since(start); d > 500*time.Millisecond {
		t.Fatalf("New took %v: it must refuse before dialing", d)
	}
	if _, err := uplink.New(uplink.Config{Broker: "tcp://127.0.0.1:1883", Device: device}, nil); !errors.Is(err, uplink.ErrNoOutbox) {
		t.Fatalf("New(nil outbox) = %v, want ErrNoOutbox", err)
	}
}

// TestAckedThroughAtStart: after a restart the uplink reports the outbox's
// acked-through seq as its last ack (the health report's last_acked), not
// 0 until the next receipt.
func TestAckedThroughAtStart(t *testing.T) {
	u, err := uplink.New(uplink.Config{Broker: "tcp://127.0.0.1:1883", Device: device, ChainID: 1,
		Collectors: []signer.Address{collectorKey(t).Address()}, AckedThrough: 42}, newMemOutbox())
	if err != nil {
		t.Fatal(err)
	}
	if got := u.Stats().LastAcked; got != 42 {
		t.Errorf("LastAcked at start = %d, want the outbox's 42", got)
	}
}
