package uplink

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/url"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/csop/tbox/signer"
)

// Defaults for the zero values of [Config].
const (
	DefaultKeepAlive      = 30 * time.Second
	DefaultConnectTimeout = 10 * time.Second
	DefaultBackoffMin     = 100 * time.Millisecond
	DefaultBackoffMax     = 1500 * time.Millisecond
	DefaultWindow         = 64
	DefaultNackRetry      = 10 * time.Minute
	DefaultAckTimeout     = 10 * time.Second
	DefaultHealthInterval = 60 * time.Second

	// MaxWindow is the largest Window: MQTT packet identifiers are 16 bits.
	MaxWindow = 65535
)

// Config configures an [Uplink]. Zero durations and a zero Window take the
// Default values.
type Config struct {
	// Broker is the broker URL: tcp:// or mqtt:// (plaintext, loopback only
	// unless AllowInsecure), ssl://, tls:// or mqtts:// (TLS). The port is
	// required.
	Broker string
	// Device is the device address, "0x" and 40 lowercase hex digits: the
	// MQTT client ID and the <device> of every topic.
	Device string

	// CAFile is the PEM bundle the broker's certificate is checked
	// against; empty means the system roots.
	CAFile string
	// CertFile and KeyFile are the PEM client certificate and key for
	// mutual TLS; both or neither.
	CertFile, KeyFile string
	// AllowInsecure permits plaintext MQTT to a host that is not loopback.
	// It never disables certificate checks on a TLS broker.
	AllowInsecure bool

	// KeepAlive is the MQTT keep-alive: a silently dead link is noticed
	// after about 1.5 times this.
	KeepAlive time.Duration
	// ConnectTimeout bounds the TCP, TLS and MQTT handshakes of one
	// connection attempt, and a subscribe.
	ConnectTimeout time.Duration
	// BackoffMin and BackoffMax bound the reconnect delays; see doc.go.
	BackoffMin, BackoffMax time.Duration
	// Window is the most attestations published and not yet acked or
	// nacked by the collector.
	Window int
	// NackRetry is how long a refused attestation waits before it is
	// published again.
	NackRetry time.Duration
	// AckTimeout is how long the oldest in-flight attestation may wait for
	// the collector's ack before everything unacked is published again.
	AckTimeout time.Duration
	// HealthInterval is the period of the retained health report.
	HealthInterval time.Duration

	// ChainID is the chain ID of the EIP-712 domain the collector signs
	// its receipts in (the attestations' chain ID).
	ChainID uint64
	// Collectors are the addresses of the collector keys whose signed
	// receipts and refusals the uplink acts on (mqtt.collector_addresses;
	// more than one while a key is rotated). New refuses an empty list.
	Collectors []signer.Address

	// Logger receives the uplink's logs; nil discards them.
	Logger *slog.Logger
	// Health, if set, is called from the uplink's goroutine for the
	// agent's part of each health report (version, outbox depth, ...); it
	// must return a value encoding/json can marshal.
	Health func() any
	// AckedThrough is the outbox's acked-through seq at start (0 for a
	// new outbox): the health report's last_acked and the shell's last ack
	// say it until the first receipt of this run, instead of 0 after
	// every restart.
	AckedThrough uint64
}

// ConfigError is returned by [Config.Validate]: Field is the configuration
// key at fault. It unwraps to one of the Err sentinels and, when there is
// one, to the underlying cause (an *fs.PathError, an x509 error).
type ConfigError struct {
	_ [0]func() // not comparable: no generated equality function (tboxd size)

	Field string // "broker", "device", "ca_file", "cert_file", "key_file", "window", ...
	Value string // the value found, "" when it would not help
	Msg   string // what was expected, what was found
	Err   error  // the sentinel
	Cause error  // the underlying error, or nil
}

func (e *ConfigError) Error() string {
	// Concatenation, not a strings.Builder, whose inlined writes cost tboxd
	// more code.
	s := "uplink config: " + e.Field
	if e.Value != "" {
		s += " " + strconv.Quote(e.Value)
	}
	s += ": " + e.Msg
	if e.Cause != nil {
		s += ": " + e.Cause.Error()
	}
	return s
}

// Unwrap returns the sentinel and the cause.
func (e *ConfigError) Unwrap() []error {
	if e.Cause == nil {
		return []error{e.Err}
	}
	return []error{e.Err, e.Cause}
}

// Validate checks the configuration without dialing anything; it reads the
// TLS files. Every error is a *[ConfigError].
func (c Config) Validate() error {
	_, err := c.resolve()
	return err
}

// resolved is a validated configuration with defaults applied.
type resolved struct {
	Config
	url *url.URL
	tls *tls.Config // nil for plaintext
}

// Not inlined: an error path called from many places, kept as one copy.
//
//go:noinline
func cfgErr(field, value string, sentinel error, cause error, format string, args ...any) *ConfigError {
	return &ConfigError{Field: field, Value: value, Msg: fmt.Sprintf(format, args...), Err: sentinel, Cause: cause}
}

// The broker URL's schemes: TLS (ssl, tls, mqtts) and plaintext (tcp,
// mqtt). A switch rather than maps built at start.
func tlsScheme(s string) bool   { return s == "ssl" || s == "tls" || s == "mqtts" }
func plainScheme(s string) bool { return s == "tcp" || s == "mqtt" }

func (c Config) resolve() (*resolved, error) {
	r := &resolved{Config: c}
	if c.Broker == "" {
		return nil, cfgErr("broker", "", ErrBroker, nil, "missing; want tcp://host:1883 or ssl://host:8883")
	}
	u, err := url.Parse(c.Broker)
	if err != nil {
		return nil, cfgErr("broker", c.Broker, ErrBroker, err, "not a URL")
	}
	scheme := strings.ToLower(u.Scheme)
	if !tlsScheme(scheme) && !plainScheme(scheme) {
		return nil, cfgErr("broker", c.Broker, ErrBroker, nil, "scheme %q; want tcp, mqtt, ssl, tls or mqtts", u.Scheme)
	}
	host, port := u.Hostname(), u.Port()
	if host == "" {
		return nil, cfgErr("broker", c.Broker, ErrBroker, nil, "no host")
	}
	if p, err := strconv.Atoi(port); err != nil || p < 1 || p > 65535 {
		return nil, cfgErr("broker", c.Broker, ErrBroker, nil, "port %q; want 1..65535 (1883 plaintext, 8883 TLS)", port)
	}
	if (u.Path != "" && u.Path != "/") || u.RawQuery != "" || u.User != nil {
		return nil, cfgErr("broker", c.Broker, ErrBroker, nil, "want scheme://host:port only, found a path, query or user info")
	}
	r.url = u

	if !validDevice(c.Device) {
		return nil, cfgErr("device", c.Device, ErrDevice, nil, "want 0x and 40 lowercase hex digits (the device address)")
	}

	if plainScheme(scheme) {
		for _, f := range []struct{ name, val string }{{"ca_file", c.CAFile}, {"cert_file", c.CertFile}, {"key_file", c.KeyFile}} {
			if f.val != "" {
				return nil, cfgErr(f.name, f.val, ErrTLSFiles, nil, "set, but broker %q is plaintext; want ssl:// or tls://", c.Broker)
			}
		}
		if !c.AllowInsecure && !isLoopback(host) {
			return nil, cfgErr("broker", c.Broker, ErrInsecure, nil,
				"plaintext MQTT to non-loopback host %q; want ssl:// or tls://, or allow_insecure = true", host)
		}
	} else {
		tc, err := c.tlsConfig(host)
		if err != nil {
			return nil, err
		}
		r.tls = tc
	}

	durs := []struct {
		name string
		p    *time.Duration
		def  time.Duration
	}{
		{"keepalive", &r.KeepAlive, DefaultKeepAlive},
		{"connect_timeout", &r.ConnectTimeout, DefaultConnectTimeout},
		{"backoff_min", &r.BackoffMin, DefaultBackoffMin},
		{"backoff_max", &r.BackoffMax, DefaultBackoffMax},
		{"nack_retry", &r.NackRetry, DefaultNackRetry},
		{"ack_timeout", &r.AckTimeout, DefaultAckTimeout},
		{"health_interval", &r.HealthInterval, DefaultHealthInterval},
	}
	for _, d := range durs {
		if *d.p < 0 {
			return nil, cfgErr(d.name, d.p.String(), ErrDuration, nil, "negative; want a positive duration, or 0 for %v", d.def)
		}
		if *d.p == 0 {
			*d.p = d.def
		}
	}
	if r.KeepAlive < time.Second {
		// MQTT carries the keep-alive in whole seconds; 0 would disable it.
		return nil, cfgErr("keepalive", r.KeepAlive.String(), ErrDuration, nil, "want at least 1s")
	}
	if r.BackoffMin > r.BackoffMax {
		return nil, cfgErr("backoff_min", r.BackoffMin.String(), ErrDuration, nil, "above backoff_max %v", r.BackoffMax)
	}
	switch {
	case r.Window < 0 || r.Window > MaxWindow:
		return nil, cfgErr("window", strconv.Itoa(r.Window), ErrWindow, nil, "want 1..%d, or 0 for %d", MaxWindow, DefaultWindow)
	case r.Window == 0:
		r.Window = DefaultWindow
	}
	if r.Logger == nil {
		r.Logger = slog.New(slog.DiscardHandler)
	}
	return r, nil
}

// tlsConfig builds the client TLS configuration: the broker checked against
// CAFile (or the system roots) under its host name, our certificate offered
// when one is configured, TLS 1.2 at least.
func (c Config) tlsConfig(host string) (*tls.Config, error) {
	tc := &tls.Config{MinVersion: tls.VersionTLS12, ServerName: host}
	if c.CAFile != "" {
		pemBytes, err := os.ReadFile(c.CAFile)
		if err != nil {
			return nil, cfgErr("ca_file", c.CAFile, ErrTLSFiles, err, "unreadable")
		}
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(pemBytes) {
			return nil, cfgErr("ca_file", c.CAFile, ErrTLSFiles, nil, "want PEM CERTIFICATE blocks, found none")
		}
		tc.RootCAs = pool
	}
	switch {
	case c.CertFile != "" && c.KeyFile == "":
		return nil, cfgErr("key_file", "", ErrTLSFiles, nil, "missing; cert_file %q needs its key", c.CertFile)
	case c.CertFile == "" && c.KeyFile != "":
		return nil, cfgErr("cert_file", "", ErrTLSFiles, nil, "missing; key_file %q needs its certificate", c.KeyFile)
	case c.CertFile != "":
		if _, err := os.Stat(c.CertFile); err != nil {
			return nil, cfgErr("cert_file", c.CertFile, ErrTLSFiles, err, "unreadable")
		}
		if _, err := os.Stat(c.KeyFile); err != nil {
			return nil, cfgErr("key_file", c.KeyFile, ErrTLSFiles, err, "unreadable")
		}
		kp, err := tls.LoadX509KeyPair(c.CertFile, c.KeyFile)
		if err != nil {
			return nil, cfgErr("cert_file", c.CertFile, ErrTLSFiles, err, "not a PEM certificate matching key_file %q", c.KeyFile)
		}
		tc.Certificates = []tls.Certificate{kp}
	}
	return tc, nil
}

func validDevice(s string) bool {
	if len(s) != 42 || s[0] != '0' || s[1] != 'x' {
		return false
	}
	for _, ch := range s[2:] {
		if (ch < '0' || ch > '9') && (ch < 'a' || ch > 'f') {
			return false
		}
	}
	return true
}

// isLoopback reports whether host is "localhost" or a loopback IP. No name
// is resolved: Validate never touches the network.
func isLoopback(host string) bool {
	if strings.EqualFold(host, "localhost") {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}

// These errors are the sentinels of a *ConfigError and of Run; test for
// them with errors.Is.
var (
	// ErrBroker: the broker URL is missing, malformed, or has an
	// unsupported scheme or no port.
	ErrBroker = errors.New("bad broker URL")
	// ErrInsecure: plaintext MQTT to a host that is not loopback, without
	// allow_insecure.
	ErrInsecure = errors.New("insecure transport")
	// ErrDevice: the device address is not 0x and 40 lowercase hex digits.
	ErrDevice = errors.New("bad device address")
	// ErrTLSFiles: a CA, certificate or key file is unreadable, invalid,
	// half of a pair, or set for a plaintext broker.
	ErrTLSFiles = errors.New("bad TLS files")
	// ErrDuration: a negative or inconsistent duration.
	ErrDuration = errors.New("bad duration")
	// ErrWindow: Window out of range.
	ErrWindow = errors.New("bad window")

	// ErrNoOutbox is returned by New for a nil Outbox.
	ErrNoOutbox = errors.New("no outbox")
	// ErrRunning is returned by Run when the Uplink is already running.
	ErrRunning = errors.New("uplink already running")
	// ErrCollectors: no collector addresses to check receipts against.
	ErrCollectors = errors.New("no collector addresses")
	// ErrMalformedReply marks an ack or nack payload that was ignored:
	// too large, or not a receipt or refusal wire form.
	ErrMalformedReply = errors.New("malformed reply")
	// ErrForgedReply marks an ack or nack not signed by a collector key
	// for this device (or for another chain ID).
	ErrForgedReply = errors.New("reply not signed by a collector")
	// ErrForeignReply marks a signed ack or nack that does not match this
	// agent's record: an unknown seq or another digest.
	ErrForeignReply = errors.New("reply does not match this device's record")
)
