package uplink_test

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"os"
	"slices"
	"sync"
	"testing"
	"time"

	mqtt "github.com/eclipse/paho.mqtt.golang"
	"go.uber.org/goleak"

	"github.com/csop/tbox/agent/uplink"
	"github.com/csop/tbox/signer"
)

// chainID is the chain ID of the tests' receipts.
const chainID = 20220807

var (
	collKeyOnce sync.Once
	collKey     *signer.FileKey
)

// collectorKey is the fake collector's receipt key, made once per run.
func collectorKey(t testing.TB) *signer.FileKey {
	collKeyOnce.Do(func() {
		dir, err := os.MkdirTemp("", "uplink-collector-key")
		if err != nil {
			t.Fatal(err)
		}
		defer os.RemoveAll(dir)
		if _, err := signer.GenerateKeyFile(dir + "/collector.key"); err != nil {
			t.Fatal(err)
		}
		if collKey, err = signer.LoadKeyFile(dir + "/collector.key"); err != nil {
			t.Fatal(err)
		}
	})
	if collKey == nil {
		t.Fatal("no collector key")
	}
	return collKey
}

// digestOf is the stand-in digest the fake device signed for seq.
func digestOf(seq uint64) [32]byte {
	var d [32]byte
	copy(d[:], fmt.Sprintf("digest of seq %d", seq))
	return d
}

// signedAck returns the collector's signed receipt of seq by key.
func signedAck(t testing.TB, key signer.Signer, seq uint64) []byte {
	r := signer.Receipt{Device: deviceAddr(), Seq: seq, Digest: digestOf(seq)}
	if err := signer.SignReceipt(key, chainID, &r); err != nil {
		t.Error(err)
	}
	return r.AppendWire(nil)
}

// signedNack returns the collector's signed refusal of seq by key.
func signedNack(t testing.TB, key signer.Signer, seq uint64, reason string) []byte {
	r := signer.Refusal{Device: deviceAddr(), Seq: seq, Digest: digestOf(seq), Reason: reason}
	if err := signer.SignRefusal(key, chainID, &r); err != nil {
		t.Error(err)
	}
	return r.AppendWire(nil)
}

func deviceAddr() signer.Address {
	a, _ := signer.ParseAddress(device)
	return a
}

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// memOutbox is an in-memory Outbox recording every call.
type memOutbox struct {
	mu    sync.Mutex
	msgs  []uplink.Message // unacked, ascending
	next  uint64
	acks  []uint64
	nacks []nackCall
}

type nackCall struct {
	seq    uint64
	reason string
	at     time.Time
}

var _ uplink.Outbox = (*memOutbox)(nil)

func newMemOutbox() *memOutbox { return &memOutbox{next: 1} }

// wire is a stand-in wire form: the collector only reads seq.
func wire(seq uint64) []byte {
	return fmt.Appendf(nil, `{"v":1,"device":%q,"seq":%d,"batch":2811234,"batches":1,"meters":1000,"modes":[],"prev":"0x00","flags":0,"sig":"0x00"}`, device, seq)
}

// add appends n attestations and returns the last seq.
func (o *memOutbox) add(n int) uint64 {
	o.mu.Lock()
	defer o.mu.Unlock()
	for range n {
		o.msgs = append(o.msgs, uplink.Message{Seq: o.next, Digest: digestOf(o.next), Wire: wire(o.next)})
		o.next++
	}
	return o.next - 1
}

func (o *memOutbox) Pending(after uint64, limit int) ([]uplink.Message, error) {
	o.mu.Lock()
	defer o.mu.Unlock()
	i, _ := slices.BinarySearchFunc(o.msgs, after+1, func(m uplink.Message, s uint64) int { return cmpU(m.Seq, s) })
	end := len(o.msgs)
	if limit > 0 {
		end = min(end, i+limit)
	}
	return slices.Clone(o.msgs[i:end]), nil
}

func (o *memOutbox) Ack(r signer.Receipt) error {
	seq := r.Seq
	o.mu.Lock()
	defer o.mu.Unlock()
	o.acks = append(o.acks, seq)
	o.msgs = slices.DeleteFunc(o.msgs, func(m uplink.Message) bool { return m.Seq <= seq })
	return nil
}

func (o *memOutbox) Nack(seq uint64, reason string) error {
	o.mu.Lock()
	defer o.mu.Unlock()
	o.nacks = append(o.nacks, nackCall{seq, reason, time.Now()})
	if !slices.ContainsFunc(o.msgs, func(m uplink.Message) bool { return m.Seq == seq }) {
		return fmt.Errorf("nack seq %d: not pending", seq)
	}
	return nil
}

func (o *memOutbox) len() int {
	o.mu.Lock()
	defer o.mu.Unlock()
	return len(o.msgs)
}

func (o *memOutbox) has(seq uint64) bool {
	o.mu.Lock()
	defer o.mu.Unlock()
	return slices.ContainsFunc(o.msgs, func(m uplink.Message) bool { return m.Seq == seq })
}

func (o *memOutbox) ackCalls() []uint64 {
	o.mu.Lock()
	defer o.mu.Unlock()
	return slices.Clone(o.acks)
}

func (o *memOutbox) nackCalls() []nackCall {
	o.mu.Lock()
	defer o.mu.Unlock()
	return slices.Clone(o.nacks)
}

func cmpU(a, b uint64) int {
	switch {
	case a < b:
		return -1
	case a > b:
		return 1
	}
	return 0
}

// collector is a fake of the backend collector: a paho client subscribed
// to the device's att topic. It stores what it receives (idempotently) and,
// when acking, acks the highest seq n such that 1..n are all stored, after
// every delivery (duplicates included, so a lost ack is answered again).
// refuse, if set, is asked about each delivery; a non-empty reason nacks it.
type collector struct {
	t      testing.TB
	url    string
	tc     *tls.Config
	id     string
	refuse func(seq uint64, delivery int) string

	mu         sync.Mutex
	c          mqtt.Client
	acking     bool
	arrivals   []arrival // every delivery, in order
	deliveries map[uint64]int
	stored     map[uint64]bool
	contiguous uint64
}

type arrival struct {
	seq uint64
	at  time.Time
}

func newCollector(t testing.TB, url string, acking bool) *collector {
	k := &collector{t: t, url: url, id: "collector", acking: acking, deliveries: map[uint64]int{}, stored: map[uint64]bool{}}
	t.Cleanup(k.stop)
	return k
}

func (k *collector) start() {
	k.t.Helper()
	att, _, _, _ := uplink.Topics(device)
	o := mqtt.NewClientOptions().AddBroker(k.url).SetClientID(k.id).SetProtocolVersion(4).
		SetCleanSession(true).SetAutoReconnect(false).SetConnectTimeout(5 * time.Second).SetTLSConfig(k.tc).
		// The handler publishes acks; a publish racing a disconnect blocks
		// for the write timeout (30 s by default) and would outlive the test.
		SetWriteTimeout(500 * time.Millisecond)
	c := mqtt.NewClient(o)
	if tok := c.Connect(); !tok.WaitTimeout(10*time.Second) || tok.Error() != nil {
		k.t.Fatalf("collector connect %s: %v", k.url, tok.Error())
	}
	if tok := c.Subscribe(att, 1, k.onAtt); !tok.WaitTimeout(10*time.Second) || tok.Error() != nil {
		k.t.Fatalf("collector subscribe: %v", tok.Error())
	}
	k.mu.Lock()
	k.c = c
	k.mu.Unlock()
}

func (k *collector) stop() {
	k.mu.Lock()
	c := k.c
	k.c = nil
	k.mu.Unlock()
	if c != nil {
		c.Disconnect(100)
	}
}

func (k *collector) onAtt(c mqtt.Client, m mqtt.Message) {
	var a struct {
		Seq uint64 `json:"seq"`
	}
	if err := json.Unmarshal(m.Payload(), &a); err != nil || a.Seq == 0 {
		k.t.Errorf("collector: bad attestation %q: %v", m.Payload(), err)
		return
	}
	_, ackT, nackT, _ := uplink.Topics(device)
	k.mu.Lock()
	k.arrivals = append(k.arrivals, arrival{a.Seq, time.Now()})
	k.deliveries[a.Seq]++
	reason := ""
	if k.refuse != nil {
		reason = k.refuse(a.Seq, k.deliveries[a.Seq])
	}
	if reason == "" {
		k.stored[a.Seq] = true
		for k.stored[k.contiguous+1] {
			k.contiguous++
		}
	}
	acking, n := k.acking, k.contiguous
	k.mu.Unlock()
	// Never wait on a token inside a paho handler.
	if reason != "" {
		c.Publish(nackT, 1, false, signedNack(k.t, collectorKey(k.t), a.Seq, reason))
		return
	}
	if acking && n > 0 {
		c.Publish(ackT, 1, false, signedAck(k.t, collectorKey(k.t), n))
	}
}

// setAcking turns acking on or off; on, it acks what is stored at once.
func (k *collector) setAcking(on bool) {
	k.mu.Lock()
	k.acking = on
	c, n := k.c, k.contiguous
	k.mu.Unlock()
	if on && c != nil && n > 0 {
		_, ackT, _, _ := uplink.Topics(device)
		if tok := c.Publish(ackT, 1, false, signedAck(k.t, collectorKey(k.t), n)); !tok.WaitTimeout(5 * time.Second) {
			k.t.Fatal("collector ack: no PUBACK in 5 s")
		}
	}
}

// firstArrivals returns the seqs in the order each first arrived.
func (k *collector) firstArrivals() []uint64 {
	k.mu.Lock()
	defer k.mu.Unlock()
	seen := map[uint64]bool{}
	var out []uint64
	for _, a := range k.arrivals {
		if !seen[a.seq] {
			seen[a.seq] = true
			out = append(out, a.seq)
		}
	}
	return out
}

func (k *collector) arrivalsOf(seq uint64) []time.Time {
	k.mu.Lock()
	defer k.mu.Unlock()
	var out []time.Time
	for _, a := range k.arrivals {
		if a.seq == seq {
			out = append(out, a.at)
		}
	}
	return out
}

func (k *collector) count() int {
	k.mu.Lock()
	defer k.mu.Unlock()
	return len(k.arrivals)
}

// runUplink starts u.Run and stops it (checking it returns nil) when the
// test ends.
func runUplink(t testing.TB, u *uplink.Uplink) (stop func()) {
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- u.Run(ctx) }()
	var once sync.Once
	stop = func() {
		once.Do(func() {
			cancel()
			select {
			case err := <-done:
				if err != nil {
					t.Errorf("Run = %v, want nil after cancel", err)
				}
			case <-time.After(15 * time.Second):
				t.Errorf("Run did not return within 15 s of cancel")
			}
		})
	}
	t.Cleanup(stop)
	return stop
}

func newUplink(t testing.TB, cfg uplink.Config, ob uplink.Outbox) *uplink.Uplink {
	t.Helper()
	if cfg.Device == "" {
		cfg.Device = device
	}
	if cfg.Collectors == nil {
		cfg.Collectors, cfg.ChainID = []signer.Address{collectorKey(t).Address()}, chainID
	}
	if cfg.Logger == nil && testing.Verbose() {
		cfg.Logger = testLogger(t)
	}
	u, err := uplink.New(cfg, ob)
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	return u
}

// waitFor polls cond every 5 ms until it holds or timeout passes.
func waitFor(t testing.TB, timeout time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %v waiting for %s", timeout, what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func clientTLS(t testing.TB, caFile, certFile, keyFile string) *tls.Config {
	t.Helper()
	pem, err := os.ReadFile(caFile)
	if err != nil {
		t.Fatal(err)
	}
	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM(pem)
	if certFile == "" {
		return &tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS12, ServerName: "127.0.0.1"}
	}
	kp, err := tls.LoadX509KeyPair(certFile, keyFile)
	if err != nil {
		t.Fatal(err)
	}
	return &tls.Config{RootCAs: pool, Certificates: []tls.Certificate{kp}, MinVersion: tls.VersionTLS12, ServerName: "127.0.0.1"}
}

// proxy forwards TCP connections to target until cut, which drops every
// connection without a word: to the broker, an unclean client drop.
type proxy struct {
	l      net.Listener
	target string
	mu     sync.Mutex
	conns  []net.Conn
	wg     sync.WaitGroup
}

func newProxy(t testing.TB, target string) *proxy {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	p := &proxy{l: l, target: target}
	p.wg.Add(1)
	go p.serve()
	t.Cleanup(func() {
		l.Close()
		p.cut()
		p.wg.Wait()
	})
	return p
}

func (p *proxy) addr() string { return p.l.Addr().String() }

func (p *proxy) serve() {
	defer p.wg.Done()
	for {
		in, err := p.l.Accept()
		if err != nil {
			return
		}
		out, err := net.Dial("tcp", p.target)
		if err != nil {
			in.Close()
			continue
		}
		p.mu.Lock()
		p.conns = append(p.conns, in, out)
		p.mu.Unlock()
		p.wg.Add(2)
		go func() { defer p.wg.Done(); io.Copy(out, in); out.Close() }()
		go func() { defer p.wg.Done(); io.Copy(in, out); in.Close() }()
	}
}

// cut closes every proxied connection.
func (p *proxy) cut() {
	p.mu.Lock()
	defer p.mu.Unlock()
	for _, c := range p.conns {
		c.Close()
	}
	p.conns = nil
}
