package collect

import (
	"context"
	"crypto/tls"
	"encoding/json"
	"errors"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/csop/tbox/cmd/collector/internal/ledger"
	"github.com/csop/tbox/cmd/collector/internal/ledger/pgledger/pgtest"
	"github.com/csop/tbox/signer"
	mqtt "github.com/eclipse/paho.mqtt.golang"
	"go.uber.org/goleak"
)

const testChainID = 20220807

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m, goleak.Cleanup(func(code int) { pgtest.StopShared(); stopBenchPG(); os.Exit(code) }))
}

// testLog logs to the test when -v, else discards.
func testLog(t testing.TB) *slog.Logger {
	if testing.Verbose() {
		return slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelDebug}))
	}
	return slog.New(slog.DiscardHandler)
}

// newLedger opens a ledger in a temp dir; at cleanup it audits and closes it.
func newLedger(t testing.TB, noSync bool) ledger.Ledger {
	t.Helper()
	l, err := ledger.Open(filepath.Join(t.TempDir(), "collector.db"), &ledger.Options{ChainID: testChainID, NoSync: noSync})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := l.Audit(); err != nil {
			t.Errorf("ledger audit: %v", err)
		}
		l.Close()
	})
	return l
}

// allowSet is an in-memory allowlist.
type allowSet map[signer.Address]bool

func (s allowSet) Allowed(a signer.Address) bool { return s[a] }

// device is a fake T-Box: a real key and its chain.
type device struct {
	t     testing.TB
	key   *signer.FileKey
	addr  signer.Address
	seq   uint64   // last seq sent in order
	prev  [32]byte // its digest
	batch uint64   // batch of the next span

	client  mqtt.Client
	replies chan reply
}

type reply struct {
	Kind   string // "ack" or "nack"
	Seq    uint64 `json:"seq"`
	Reason string `json:"reason"`
}

func newDevice(t testing.TB, batch uint64) *device {
	t.Helper()
	path := filepath.Join(t.TempDir(), "device.key")
	if _, err := signer.GenerateKeyFile(path); err != nil {
		t.Fatal(err)
	}
	key, err := signer.LoadKeyFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return &device{t: t, key: key, addr: key.Address(), batch: batch}
}

// make signs the next attestation (seq+1, prev, one batch, meters as ECO)
// after mut, without advancing the chain.
func (d *device) make(meters uint64, mut ...func(*signer.Attestation)) *signer.Attestation {
	d.t.Helper()
	a := &signer.Attestation{V: signer.Version, Device: d.addr, Seq: d.seq + 1, Batch: d.batch, Batches: 1, Meters: meters, Prev: d.prev}
	if meters > 0 {
		a.Modes = []signer.ModeMeters{{Mode: "ECO", Meters: meters}}
	}
	for _, m := range mut {
		m(a)
	}
	if err := signer.Sign(d.key, testChainID, a); err != nil {
		d.t.Fatal(err)
	}
	return a
}

// advance makes a the chain's head.
func (d *device) advance(a *signer.Attestation) {
	d.seq, d.prev = a.Seq, signer.Digest(testChainID, a)
}

// next makes, advances and returns the wire form.
func (d *device) next(meters uint64, mut ...func(*signer.Attestation)) []byte {
	a := d.make(meters, mut...)
	d.advance(a)
	return a.AppendWire(nil)
}

func (d *device) topic(leaf string) string { return "csop/v1/" + d.addr.String() + "/" + leaf }

func (d *device) msg(wire []byte) Message { return Message{Topic: d.topic("att"), Payload: wire} }

// connect connects the device to the broker, subscribed to its replies.
func (d *device) connect(url string) { d.connectTLS(url, nil) }

// connectTLS connects over TLS when cfg is not nil.
func (d *device) connectTLS(url string, cfg *tls.Config) {
	d.t.Helper()
	d.replies = make(chan reply, 256)
	opts := mqtt.NewClientOptions().AddBroker(url).SetClientID(d.addr.String()).SetCleanSession(true).SetOrderMatters(true)
	if cfg != nil {
		opts.SetTLSConfig(cfg)
	}
	d.client = mqtt.NewClient(opts)
	if tok := d.client.Connect(); !tok.WaitTimeout(10*time.Second) || tok.Error() != nil {
		d.t.Fatalf("device connect: %v", tok.Error())
	}
	d.t.Cleanup(func() { d.client.Disconnect(50) })
	tok := d.client.Subscribe(d.topic("+"), 1, func(_ mqtt.Client, m mqtt.Message) {
		var r reply
		leaf := m.Topic()[strings.LastIndexByte(m.Topic(), '/')+1:]
		if leaf != "ack" && leaf != "nack" || m.Retained() {
			return // a retained receipt is the stored head, not a reply to what was sent
		}
		if err := json.Unmarshal(m.Payload(), &r); err != nil {
			d.t.Errorf("reply %s: %v", m.Payload(), err)
			return
		}
		r.Kind = leaf
		d.replies <- r
	})
	if !tok.WaitTimeout(10*time.Second) || tok.Error() != nil {
		d.t.Fatalf("device subscribe: %v", tok.Error())
	}
}

// send publishes wire as the agent does (QoS 1) and returns the reply,
// publishing again every 500 ms until one comes (at most 20 s).
func (d *device) send(wire []byte) reply {
	d.t.Helper()
	deadline := time.After(20 * time.Second)
	for {
		tok := d.client.Publish(d.topic("att"), 1, false, wire)
		if !tok.WaitTimeout(5*time.Second) || tok.Error() != nil {
			d.t.Fatalf("publish: %v", tok.Error())
		}
		select {
		case r := <-d.replies:
			return r
		case <-time.After(500 * time.Millisecond):
		case <-deadline:
			d.t.Fatalf("device %s: no reply to %s", d.addr, wire)
		}
	}
}

// startCollector runs c against the broker until the test ends and waits
// until it is subscribed.
func startCollector(t testing.TB, c *Collector, m MQTT) {
	t.Helper()
	if c.cfg.Signer == nil {
		c.cfg.Signer = collectorKey(t)
	}
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	wg.Add(1)
	errc := make(chan error, 1)
	go func() {
		defer wg.Done()
		errc <- c.Run(ctx, m)
	}()
	t.Cleanup(func() {
		cancel()
		wg.Wait()
		if err := <-errc; err != nil && !errors.Is(err, context.Canceled) {
			t.Errorf("collector run: %v", err)
		}
	})
	deadline := time.Now().Add(10 * time.Second)
	for !c.Subscribed() {
		if time.Now().After(deadline) {
			t.Fatal("collector not subscribed after 10 s")
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// collectorKey returns a fresh receipts key.
func collectorKey(t testing.TB) *signer.FileKey {
	t.Helper()
	path := filepath.Join(t.TempDir(), "collector.key")
	if _, err := signer.GenerateKeyFile(path); err != nil {
		t.Fatal(err)
	}
	k, err := signer.LoadKeyFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return k
}

func nowBatch() uint64 { return uint64(time.Now().Unix()) / 600 }
