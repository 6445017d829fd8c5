package shell

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"path/filepath"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/csop/tbox/signer"
	"github.com/csop/tbox/store"
)

const testChainID = 20220807

// fakeClock is the shell's clock, moved by the test.
type fakeClock struct{ off atomic.Int64 }

func (c *fakeClock) Now() time.Time          { return time.Now().Add(time.Duration(c.off.Load())) }
func (c *fakeClock) Advance(d time.Duration) { c.off.Add(int64(d)) }

// newKey makes a key file and loads it.
func newKey(t testing.TB, name string) *signer.FileKey {
	t.Helper()
	path := filepath.Join(t.TempDir(), name)
	if _, err := signer.GenerateKeyFile(path); err != nil {
		t.Fatal(err)
	}
	k, err := signer.LoadKeyFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return k
}

// memOutbox is an outbox of signed attestations; seqs <= acked are gone.
type memOutbox struct {
	mu    sync.Mutex
	recs  map[uint64]store.Record
	head  uint64
	acked uint64
}

func (o *memOutbox) Get(seq uint64) (store.Record, error) {
	o.mu.Lock()
	defer o.mu.Unlock()
	r, ok := o.recs[seq]
	if !ok || seq <= o.acked {
		return store.Record{}, fmt.Errorf("get seq %d: %w", seq, store.ErrNotFound)
	}
	return r, nil
}

func (o *memOutbox) Last() (uint64, [32]byte) {
	o.mu.Lock()
	defer o.mu.Unlock()
	return o.head, o.recs[o.head].Digest
}

// fill signs n chained attestations with key; the first acked are removed.
func (o *memOutbox) fill(t testing.TB, key signer.Signer, n int, acked uint64, nackReason string) {
	t.Helper()
	o.mu.Lock()
	defer o.mu.Unlock()
	o.recs = map[uint64]store.Record{}
	var prev [32]byte
	for seq := uint64(1); seq <= uint64(n); seq++ {
		a := &signer.Attestation{V: signer.Version, Device: key.Address(), Seq: seq, Batch: 2811234 + seq, Batches: 1,
			Meters: 1000 * seq, Modes: []signer.ModeMeters{{Mode: "ECO", Meters: 1000 * seq}}, Prev: prev}
		if err := signer.Sign(key, testChainID, a); err != nil {
			t.Fatal(err)
		}
		d := signer.Digest(testChainID, a)
		r := store.Record{Seq: seq, Digest: d, Wire: a.AppendWire(nil), Created: time.Unix(1700000000+int64(seq)*600, 0)}
		if seq == uint64(n) && nackReason != "" {
			r.Nacks, r.NackReason = 2, nackReason
		}
		o.recs[seq] = r
		prev = d
	}
	o.head, o.acked = uint64(n), acked
}

// fakeAgent stands in for the agent: a loop that makes progress every
// millisecond and publishes its state under a mutex that Status also
// takes. It records its longest stall, which a shell that blocked it would
// make long.
type fakeAgent struct {
	mu       sync.Mutex
	frames   uint64
	started  time.Time
	ticks    atomic.Uint64
	maxGap   atomic.Int64
	statuses atomic.Uint64
	stop     chan struct{}
	done     chan struct{}
	nack     string
}

func startAgent(t testing.TB) *fakeAgent {
	a := &fakeAgent{started: time.Now(), stop: make(chan struct{}), done: make(chan struct{})}
	go func() {
		defer close(a.done)
		tk := time.NewTicker(time.Millisecond)
		defer tk.Stop()
		last := time.Now()
		for {
			select {
			case <-a.stop:
				return
			case now := <-tk.C:
				a.mu.Lock()
				a.frames += 10
				a.mu.Unlock()
				a.ticks.Add(1)
				if gap := now.Sub(last); int64(gap) > a.maxGap.Load() {
					a.maxGap.Store(int64(gap))
				}
				last = now
			}
		}
	}()
	t.Cleanup(func() {
		close(a.stop)
		<-a.done
	})
	return a
}

func (a *fakeAgent) status() Status {
	a.statuses.Add(1)
	a.mu.Lock()
	defer a.mu.Unlock()
	return Status{
		Started:   a.started,
		Frames:    a.frames,
		LastFrame: time.Now(),
		Buses: []BusStatus{
			{Name: "can0", State: "up", Frames: a.frames, Dropped: 3, ErrorFrames: 2, BusOff: 1, ErrorPassive: 1},
			{Name: "can1", State: "down (reopening)", Reopens: 4},
		},
		Batch:       BatchStatus{Known: true, Batch: 2811234, Batches: 1, Meters: 4321, Flags: signer.FlagGap},
		NotReadings: NotReadingStatus{Known: true, OdometerNamed: 6, OdometerUndecodable: 1, SpeedUndecodable: 2},
		Outbox: OutboxStatus{Head: 5, AckedThrough: 2, Depth: 3, Bytes: 1200, MaxBytes: 64 << 20,
			Oldest: time.Now().Add(-25 * time.Minute), Nacks: 2,
			LastNack: store.Nack{Seq: 5, Reason: a.nack, Time: time.Now().Add(-time.Minute)}},
		Uplink: UplinkStatus{Enabled: true, Connected: false, LastAcked: 2, Reconnects: 7,
			LastError: "dial tcp 10.0.2.100:1883: connection refused", LastErrorAt: time.Now().Add(-3 * time.Second)},
	}
}

// rig is a shell serving a pty with fake parts, and the terminal on the
// other end.
type rig struct {
	sh      *Shell
	key     *signer.FileKey // the device key
	service *signer.FileKey // the maker's service key
	clock   *fakeClock
	agent   *fakeAgent
	ob      *memOutbox
	logs    *LogRing
	calls   struct{ upload, reconnect, reopen, retry, flush atomic.Int32 }
	reopen  atomic.Value // bus of the last reopen can
	term    *term
	cancel  context.CancelFunc
	runDone chan error
}

type rigOption func(*Config, *Deps)

func newRig(t *testing.T, opts ...rigOption) *rig {
	t.Helper()
	r := &rig{
		key:     newKey(t, "device.key"),
		service: newKey(t, "service.key"),
		clock:   &fakeClock{},
		ob:      &memOutbox{},
		logs:    NewLogRing(50),
	}
	r.agent = startAgent(t)
	r.ob.fill(t, r.key, 5, 2, "bad batch\x1b[2J")
	master, slave := openPTY(t)
	cfg := Config{
		Device:     slave,
		Baud:       115200,
		ServiceKey: hexPub(r.service),
		ReopenMin:  20 * time.Millisecond,
		ReopenMax:  100 * time.Millisecond,
	}
	log := slog.New(r.logs.Handler(slog.DiscardHandler, slog.LevelInfo))
	log.Info("tboxd started", "version", "test")
	deps := Deps{
		Device:  r.key.Address(),
		Version: "v-test",
		ChainID: testChainID,
		Status:  r.agent.status,
		Outbox:  r.ob,
		Key:     r.key,
		ConfigText: func() string {
			return "[shell]\ndevice = \"" + slave + "\"\n[mqtt]\nbroker = \"ssl://u:REDACTED@broker\""
		},
		ProfileText: func() string { return "odometer CLU_Odometer.Odometer" },
		Logs:        r.logs,
		UploadNow:   func() { r.calls.upload.Add(1) },
		Reconnect:   func() error { r.calls.reconnect.Add(1); return nil },
		ReopenCAN: func(bus string) error {
			r.calls.reopen.Add(1)
			r.reopen.Store(bus)
			return nil
		},
		RetryNacked: func() error { r.calls.retry.Add(1); return errors.New("uplink offline") },
		Flush:       func() error { r.calls.flush.Add(1); return nil },
		Clock:       r.clock,
		Logger:      log,
	}
	for _, o := range opts {
		o(&cfg, &deps)
	}
	sh, err := New(cfg, deps)
	if err != nil {
		t.Fatal(err)
	}
	r.sh = sh
	r.term = newTerm(t, master)
	ctx, cancel := context.WithCancel(context.Background())
	r.cancel = cancel
	r.runDone = make(chan error, 1)
	go func() { r.runDone <- sh.Run(ctx) }()
	t.Cleanup(func() { r.stop(t) })
	r.term.expect(promptRE)
	return r
}

// stop stops Run and checks that it returned promptly with ctx's error.
func (r *rig) stop(t *testing.T) {
	if r.cancel == nil {
		return
	}
	r.cancel()
	r.cancel = nil
	select {
	case err := <-r.runDone:
		if !errors.Is(err, context.Canceled) {
			t.Errorf("Run returned %v, want context.Canceled", err)
		}
	case <-time.After(5 * time.Second):
		t.Error("Run did not return within 5 s of its context's end")
	}
}

func hexPub(k *signer.FileKey) string {
	return fmt.Sprintf("%x", k.PublicKey().SerializeCompressed())
}

// unlock asks for a challenge and returns it, parsed from the shell's
// output.
func (r *rig) challenge(t *testing.T) Challenge {
	t.Helper()
	out, _ := r.term.cmd("unlock")
	tok := challengeRE.FindStringSubmatch(out)
	if tok == nil {
		t.Fatalf("unlock printed no challenge token: %q", out)
	}
	c, err := ParseChallenge(tok[1])
	if err != nil {
		t.Fatalf("the shell's challenge does not parse: %v", err)
	}
	if c.Device != r.key.Address() {
		t.Fatalf("challenge for device %s, the device is %s", c.Device, r.key.Address())
	}
	return c
}

func (r *rig) respond(t *testing.T, key signer.Signer, c Challenge) (out, prompt string) {
	t.Helper()
	sig, err := SignUnlock(key, c)
	if err != nil {
		t.Fatal(err)
	}
	return r.term.cmd("unlock " + sig.String())
}
