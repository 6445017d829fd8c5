// Package mqtttest runs a real mosquitto broker per test, with a throwaway PKI for mutual TLS.
//
// A test calls [Start] to get a [Broker] listening on a free loopback port;
// the broker is killed in t.Cleanup. [Broker.Stop] kills it with SIGKILL (a
// broker crash: no clean disconnects, no will suppression) and
// [Broker.Restart] brings it back on the same port. Persistence is off, so a
// restarted broker has forgotten every session and subscription.
//
// When mosquitto is not installed the test is skipped with a message saying
// so, unless the environment variable CI is "true": CI must install it, so
// there the test fails instead.
package mqtttest

import (
	"bytes"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/csop/tbox/cmd/collector/deploy/mosquitto"
)

// Paths tried, in order, when mosquitto is not on PATH (Debian installs it
// in /usr/sbin, which is not on an ordinary user's PATH).
var fallbackPaths = []string{"/usr/sbin/mosquitto", "/usr/local/sbin/mosquitto", "/opt/homebrew/sbin/mosquitto"}

// readyTimeout bounds the wait for a started broker to accept connections.
const readyTimeout = 10 * time.Second

// logCap bounds the broker log kept in memory (the tail is kept).
const logCap = 64 << 10

// Option configures a [Broker].
type Option func(*options)

type options struct {
	tls     *tlsFiles
	extra   []string
	shipped bool
}

// WithShippedConfig runs the broker with the project's shipped
// configuration (cmd/collector/deploy/mosquitto: mTLS required, identity as user name,
// the per-device ACL, the message size limit, no anonymous clients); only
// its paths are rewritten: the listener is the test's loopback port, the
// certificates are p's (p.ClientCert makes device and collector ones) and
// persistence is off.
func WithShippedConfig(p *PKI) Option {
	return func(o *options) {
		o.shipped = true
		o.tls = &tlsFiles{ca: p.CAFile, cert: p.ServerCert, key: p.ServerKey, requireClient: true}
	}
}

type tlsFiles struct {
	ca, cert, key string
	requireClient bool
}

// WithTLS makes the listener a TLS one, with the broker's certificate and
// key and the CA that client certificates are checked against. With
// requireClientCert the broker refuses clients without a certificate signed
// by caFile, and uses the certificate's CN as the MQTT user name.
func WithTLS(caFile, certFile, keyFile string, requireClientCert bool) Option {
	return func(o *options) {
		o.tls = &tlsFiles{ca: caFile, cert: certFile, key: keyFile, requireClient: requireClientCert}
	}
}

// WithConfig appends raw lines to the generated mosquitto.conf (for example
// "max_packet_size 1024").
func WithConfig(lines ...string) Option {
	return func(o *options) { o.extra = append(o.extra, lines...) }
}

// Broker is one mosquitto process bound to 127.0.0.1.
type Broker struct {
	t    testing.TB
	bin  string
	dir  string
	opts options
	port int
	log  *tailBuffer

	mu   sync.Mutex
	cmd  *exec.Cmd
	done chan struct{} // closed when cmd has exited
}

// Binary returns the path of the mosquitto executable, or "" when it is not
// installed.
func Binary() string {
	if p, err := exec.LookPath("mosquitto"); err == nil {
		return p
	}
	for _, p := range fallbackPaths {
		if fi, err := os.Stat(p); err == nil && !fi.IsDir() && fi.Mode()&0o111 != 0 {
			return p
		}
	}
	return ""
}

// Require skips the test when mosquitto is not installed, or fails it when
// the environment variable CI is "true".
func Require(t testing.TB) string {
	t.Helper()
	bin := Binary()
	if bin != "" {
		return bin
	}
	if os.Getenv("CI") == "true" {
		t.Fatal("mosquitto not installed: CI=true, so the real-broker tests must run (install it: apt-get install mosquitto)")
	}
	t.Skip("mosquitto not installed (apt-get install mosquitto); skipping the real-broker test")
	return ""
}

// Start runs a fresh mosquitto on a free loopback port and returns once the
// port accepts connections. The broker is killed when the test ends.
func Start(t testing.TB, opts ...Option) *Broker {
	t.Helper()
	bin := Require(t)
	b := &Broker{t: t, bin: bin, dir: t.TempDir(), log: &tailBuffer{max: logCap}}
	for _, o := range opts {
		o(&b.opts)
	}
	t.Cleanup(func() {
		b.Stop()
		if t.Failed() {
			t.Logf("mosquitto log (port %d):\n%s", b.port, b.log.String())
		}
	})
	var err error
	for attempt := 0; attempt < 5; attempt++ {
		b.port, err = freePort()
		if err != nil {
			t.Fatalf("mqtttest: free port: %v", err)
		}
		if err = b.start(); err == nil {
			return b
		}
		if !errors.Is(err, errBind) {
			break
		}
	}
	t.Fatalf("mqtttest: start mosquitto: %v\n%s", err, b.log.String())
	return nil
}

// Addr returns "127.0.0.1:PORT".
func (b *Broker) Addr() string { return net.JoinHostPort("127.0.0.1", strconv.Itoa(b.port)) }

// Port returns the listener's port.
func (b *Broker) Port() int { return b.port }

// URL returns the broker URL for an MQTT client: "tcp://127.0.0.1:PORT", or
// "ssl://127.0.0.1:PORT" with [WithTLS].
func (b *Broker) URL() string {
	if b.opts.tls != nil {
		return "ssl://" + b.Addr()
	}
	return "tcp://" + b.Addr()
}

// Log returns the tail of the broker's log.
func (b *Broker) Log() string { return b.log.String() }

// Running reports whether the broker process is alive.
func (b *Broker) Running() bool {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.cmd == nil {
		return false
	}
	select {
	case <-b.done:
		return false
	default:
		return true
	}
}

// Stop kills the broker with SIGKILL and waits for it to exit: to its
// clients it is a crash. Stopping a stopped broker does nothing.
func (b *Broker) Stop() {
	b.mu.Lock()
	cmd, done := b.cmd, b.done
	b.cmd = nil
	b.mu.Unlock()
	if cmd == nil {
		return
	}
	_ = cmd.Process.Kill()
	<-done
}

// Restart brings the broker back on the same port (killing it first if it is
// still running) and returns once it accepts connections.
func (b *Broker) Restart() {
	b.t.Helper()
	b.Stop()
	deadline := time.Now().Add(5 * time.Second)
	for {
		err := b.start()
		if err == nil {
			return
		}
		if !errors.Is(err, errBind) || time.Now().After(deadline) {
			b.t.Fatalf("mqtttest: restart mosquitto on port %d: %v\n%s", b.port, err, b.log.String())
		}
		time.Sleep(50 * time.Millisecond)
	}
}

var errBind = errors.New("port in use")

func (b *Broker) start() error {
	conf := filepath.Join(b.dir, "mosquitto.conf")
	if err := os.WriteFile(conf, []byte(b.config()), 0o600); err != nil {
		return fmt.Errorf("config: %w", err)
	}
	cmd := exec.Command(b.bin, "-c", conf)
	cmd.Stdout = b.log
	cmd.Stderr = b.log
	setProcAttr(cmd)
	mark := b.log.Len()
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("exec %s: %w", b.bin, err)
	}
	done := make(chan struct{})
	go func() {
		_ = cmd.Wait()
		close(done)
	}()
	b.mu.Lock()
	b.cmd, b.done = cmd, done
	b.mu.Unlock()

	deadline := time.Now().Add(readyTimeout)
	for {
		select {
		case <-done:
			b.mu.Lock()
			b.cmd = nil
			b.mu.Unlock()
			out := b.log.Since(mark)
			if strings.Contains(out, "in use") {
				return fmt.Errorf("mosquitto exited: %w: %s", errBind, strings.TrimSpace(out))
			}
			return fmt.Errorf("mosquitto exited (%v): %s", cmd.ProcessState, strings.TrimSpace(out))
		default:
		}
		c, err := net.DialTimeout("tcp", b.Addr(), 200*time.Millisecond)
		if err == nil {
			_ = c.Close()
			return nil
		}
		if time.Now().After(deadline) {
			b.Stop()
			return fmt.Errorf("mosquitto not accepting on %s after %v: %w", b.Addr(), readyTimeout, err)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func (b *Broker) config() string {
	if b.opts.shipped {
		return b.shippedConfig()
	}
	var s strings.Builder
	fmt.Fprintf(&s, "# written by mqtttest\n")
	if os.Geteuid() == 0 {
		// Without it mosquitto drops to user "mosquitto", which cannot read
		// the test's 0700 temp directory.
		s.WriteString("user root\n")
	}
	s.WriteString("persistence false\nlog_dest stderr\nlog_type error\nlog_type warning\nlog_type notice\nlog_type information\nconnection_messages true\n")
	if tf := b.opts.tls; tf != nil {
		// "listener PORT" with no address would bind every interface; the
		// tests only ever need loopback.
		fmt.Fprintf(&s, "listener %d 127.0.0.1\n", b.port)
		fmt.Fprintf(&s, "cafile %s\ncertfile %s\nkeyfile %s\n", tf.ca, tf.cert, tf.key)
		if tf.requireClient {
			s.WriteString("require_certificate true\nuse_identity_as_username true\n")
		}
	} else {
		fmt.Fprintf(&s, "listener %d 127.0.0.1\n", b.port)
	}
	s.WriteString("allow_anonymous true\nset_tcp_nodelay true\n")
	for _, l := range b.opts.extra {
		s.WriteString(l + "\n")
	}
	return s.String()
}

// shippedConfig rewrites the paths of cmd/collector/deploy/mosquitto's mosquitto.conf.
func (b *Broker) shippedConfig() string {
	acl := filepath.Join(b.dir, "acl")
	if err := os.WriteFile(acl, []byte(mosquitto.ACL), 0o600); err != nil {
		b.t.Fatalf("mqtttest: acl: %v", err)
	}
	tf := b.opts.tls
	var s strings.Builder
	s.WriteString(mosquitto.Local(mosquitto.Paths{
		Port: b.port, CA: tf.ca, Cert: tf.cert, Key: tf.key, ACL: acl, RunAsRoot: os.Geteuid() == 0,
	}))
	for _, l := range b.opts.extra {
		s.WriteString(l + "\n")
	}
	return s.String()
}

// freePort asks the kernel for a free loopback port. Another process may
// take it before mosquitto binds; Start retries with a new one.
func freePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	port := l.Addr().(*net.TCPAddr).Port
	if err := l.Close(); err != nil {
		return 0, err
	}
	return port, nil
}

// tailBuffer is an io.Writer keeping the last max bytes written.
type tailBuffer struct {
	mu      sync.Mutex
	max     int
	buf     bytes.Buffer
	dropped int // bytes discarded from the front
}

func (w *tailBuffer) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.buf.Write(p)
	if over := w.buf.Len() - w.max; over > 0 {
		w.buf.Next(over)
		w.dropped += over
	}
	return len(p), nil
}

// Len returns the total number of bytes ever written.
func (w *tailBuffer) Len() int {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.dropped + w.buf.Len()
}

// Since returns what was written after the first mark bytes, as far as it
// is still kept.
func (w *tailBuffer) Since(mark int) string {
	w.mu.Lock()
	defer w.mu.Unlock()
	skip := mark - w.dropped
	if skip < 0 {
		skip = 0
	}
	if skip > w.buf.Len() {
		return ""
	}
	return string(w.buf.Bytes()[skip:])
}

func (w *tailBuffer) String() string { return w.Since(0) }
