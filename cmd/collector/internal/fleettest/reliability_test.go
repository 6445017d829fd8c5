package fleettest

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/csop/tbox/agent/uplink/mqtttest"
	"github.com/csop/tbox/cmd/collector/internal/ledger/pgledger/pgtest"
	"github.com/csop/tbox/signer"
	mqtt "github.com/eclipse/paho.mqtt.golang"
	"github.com/jackc/pgx/v5"
)

const chainID = 20220807

// buildCollector builds cmd/collector into dir.
func buildCollector(t *testing.T, dir string) string {
	t.Helper()
	bin := filepath.Join(dir, "collector")
	out, err := exec.Command("go", "build", "-o", bin, "../../").CombinedOutput()
	if err != nil {
		t.Fatalf("go build cmd/collector: %v\n%s", err, out)
	}
	return bin
}

// proc is a collector process.
type proc struct {
	cmd *exec.Cmd
	log *bytes.Buffer
	mu  *sync.Mutex
}

type lockedWriter struct {
	mu *sync.Mutex
	b  *bytes.Buffer
}

func (w lockedWriter) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.b.Write(p)
}

func startCollector(t *testing.T, bin, cfg string) *proc {
	t.Helper()
	p := &proc{log: &bytes.Buffer{}, mu: &sync.Mutex{}}
	p.cmd = exec.Command(bin, "run", "--config", cfg)
	p.cmd.Stderr = lockedWriter{p.mu, p.log}
	p.cmd.Stdout = p.cmd.Stderr
	if err := p.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	return p
}

func (p *proc) kill() {
	if p.cmd.ProcessState == nil {
		p.cmd.Process.Kill()
		p.cmd.Wait()
	}
}

func (p *proc) stop() {
	if p.cmd.ProcessState == nil {
		p.cmd.Process.Signal(syscall.SIGTERM)
		done := make(chan struct{})
		go func() { p.cmd.Wait(); close(done) }()
		select {
		case <-done:
		case <-time.After(10 * time.Second):
			p.cmd.Process.Kill()
			<-done
		}
	}
}

func (p *proc) String() string {
	p.mu.Lock()
	defer p.mu.Unlock()
	s := p.log.String()
	if len(s) > 4000 {
		s = "..." + s[len(s)-4000:]
	}
	return s
}

// fakeAgent is a device: its signed chain, sent with a window of
// unreceipted seqs, resent every second until receipted.
type fakeAgent struct {
	key    *signer.MemKey
	addr   signer.Address
	wires  [][]byte
	acked  atomic.Uint64
	nacks  atomic.Uint64
	client mqtt.Client
	bad    atomic.Value // string: a receipt that did not verify
}

func newAgent(t *testing.T, n int, batch0 uint64) *fakeAgent {
	t.Helper()
	priv, err := signer.GenerateScalar()
	if err != nil {
		t.Fatal(err)
	}
	k, err := signer.NewMemKey(priv)
	if err != nil {
		t.Fatal(err)
	}
	a := &fakeAgent{key: k, addr: k.Address()}
	var prev [32]byte
	for i := 0; i < n; i++ {
		at := &signer.Attestation{V: signer.Version, Device: a.addr, Seq: uint64(i + 1), Batch: batch0 + uint64(i), Batches: 1, Meters: 1000, Prev: prev,
			Modes: []signer.ModeMeters{{Mode: "ECO", Meters: 1000}}}
		if err := signer.Sign(k, chainID, at); err != nil {
			t.Fatal(err)
		}
		prev = signer.Digest(chainID, at)
		a.wires = append(a.wires, at.AppendWire(nil))
	}
	return a
}

func (a *fakeAgent) topic(leaf string) string { return "csop/v1/" + a.addr.String() + "/" + leaf }

// run sends the chain until the last seq is receipted or ctx is done.
func (a *fakeAgent) run(ctx context.Context, collectorAddr signer.Address) {
	const window = 4
	for ctx.Err() == nil {
		acked := a.acked.Load()
		if acked >= uint64(len(a.wires)) {
			return
		}
		for s := acked; s < min(acked+window, uint64(len(a.wires))); s++ {
			a.client.Publish(a.topic("att"), 1, false, a.wires[s])
		}
		deadline := time.After(time.Second)
	wait:
		for {
			select {
			case <-ctx.Done():
				return
			case <-deadline:
				break wait
			case <-time.After(20 * time.Millisecond):
				if n := a.acked.Load(); n >= acked+window || n >= uint64(len(a.wires)) {
					break wait
				}
			}
		}
	}
}

// TestCollectorsSideBySide: two collector processes on one PostgreSQL
// ledger behind mosquitto's shared subscription (the shipped broker
// configuration: mTLS, the ACL), 50 devices attesting at once with their
// seqs split between the collectors. One collector is SIGKILLed and
// restarted mid-stream, and PostgreSQL is restarted mid-stream. Every
// attestation is stored exactly once, every device's verified receipt
// reaches its last seq, no device gets a nack, and audit passes.
func TestCollectorsSideBySide(t *testing.T) {
	mqtttest.Require(t)
	pgBin := pgtest.Require(t)
	if testing.Short() {
		t.Skip("-short: the fleet reliability test takes about a minute")
	}
	dir := t.TempDir()
	bin := buildCollector(t, dir)
	pg, err := pgtest.New(pgBin)
	if err != nil {
		t.Fatal(err)
	}
	defer pg.Stop()
	url, err := pg.CreateDB()
	if err != nil {
		t.Fatal(err)
	}
	pki := mqtttest.NewPKI(t)
	broker := mqtttest.Start(t, mqtttest.WithShippedConfig(pki))
	brokerURL := "ssl://" + broker.Addr()

	keyPath := filepath.Join(dir, "signing.key")
	collectorAddr, err := signer.GenerateKeyFile(keyPath)
	if err != nil {
		t.Fatal(err)
	}
	const devices, seqs = 50, 12
	batch0 := uint64(time.Now().Unix())/600 - seqs - 2
	agents := make([]*fakeAgent, devices)
	for i := range agents {
		agents[i] = newAgent(t, seqs, batch0)
	}
	cfgs := make([]string, 2)
	for i := range cfgs {
		cert, key := pki.ClientCert(fmt.Sprintf("collector-%d", i+1))
		cfgs[i] = filepath.Join(dir, fmt.Sprintf("c%d.toml", i+1))
		conf := fmt.Sprintf(`broker = %q
client_id = "collector-%d"
ca = %q
cert = %q
key = %q
signing_key = %q
chain_id = %d
database_url = %q
seed = "0x00112233445566778899aabbccddeeff00112233445566778899aabbccddeeff"
registry_refresh = "1s"
log_level = "info"
`, brokerURL, i+1, pki.CAFile, cert, key, keyPath, chainID, url)
		if err := os.WriteFile(cfgs[i], []byte(conf), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	// The registry lives in the ledger: added with the command line.
	args := []string{"registry", "add", "--config", cfgs[0]}
	for _, a := range agents {
		args = append(args, a.addr.String())
	}
	if out, err := exec.Command(bin, args...).CombinedOutput(); err != nil {
		t.Fatalf("registry add: %v\n%s", err, out)
	}

	procs := []*proc{startCollector(t, bin, cfgs[0]), startCollector(t, bin, cfgs[1])}
	defer func() {
		for _, p := range procs {
			p.stop()
		}
		if t.Failed() {
			for i, p := range procs {
				t.Logf("collector %d log:\n%s", i+1, p)
			}
		}
	}()

	// Devices connect with their own certificates and listen for receipts.
	for _, a := range agents {
		a := a
		c, k := pki.ClientCert(a.addr.String())
		tlsCfg, err := tlsConfig(pki.CAFile, c, k)
		if err != nil {
			t.Fatal(err)
		}
		a.client = mqtt.NewClient(mqtt.NewClientOptions().AddBroker(brokerURL).SetClientID(a.addr.String()).SetTLSConfig(tlsCfg).
			SetCleanSession(true).SetAutoReconnect(true).SetConnectRetry(true))
		if tok := a.client.Connect(); !tok.WaitTimeout(10*time.Second) || tok.Error() != nil {
			t.Fatalf("device connect: %v", tok.Error())
		}
		defer a.client.Disconnect(50)
		tok := a.client.Subscribe(a.topic("+"), 1, func(_ mqtt.Client, m mqtt.Message) {
			switch {
			case strings.HasSuffix(m.Topic(), "/nack"):
				a.nacks.Add(1)
				t.Errorf("device %s: nack %s", a.addr, m.Payload())
			case strings.HasSuffix(m.Topic(), "/ack"):
				r, err := signer.ParseReceipt(a.addr, m.Payload())
				if err == nil {
					_, err = signer.VerifyReceipt(chainID, r, []signer.Address{collectorAddr})
				}
				if err != nil {
					a.bad.Store(fmt.Sprintf("%s: %v", m.Payload(), err))
					return
				}
				for {
					old := a.acked.Load()
					if r.Seq <= old || a.acked.CompareAndSwap(old, r.Seq) {
						break
					}
				}
			}
		})
		if !tok.WaitTimeout(10*time.Second) || tok.Error() != nil {
			t.Fatalf("device subscribe: %v", tok.Error())
		}
	}

	ctx, cancel := context.WithTimeout(context.Background(), 75*time.Second)
	defer cancel()
	var wg sync.WaitGroup
	for _, a := range agents {
		wg.Add(1)
		go func() { defer wg.Done(); a.run(ctx, collectorAddr) }()
	}
	total := func() (n uint64) {
		for _, a := range agents {
			n += a.acked.Load()
		}
		return n
	}
	waitFor := func(n uint64, what string) {
		for total() < n {
			if ctx.Err() != nil {
				t.Fatalf("%s: %d of %d receipted when the time ran out", what, total(), devices*seqs)
			}
			time.Sleep(20 * time.Millisecond)
		}
	}
	waitFor(devices*seqs/4, "before the kill")
	procs[0].kill()
	t.Logf("collector 1 killed at %d receipted", total())
	procs[0] = startCollector(t, bin, cfgs[0])
	waitFor(devices*seqs/2, "before the database restart")
	if err := pg.Restart("fast"); err != nil {
		t.Fatal(err)
	}
	t.Logf("PostgreSQL restarted at %d receipted", total())
	waitFor(devices*seqs, "at the end")
	cancel()
	wg.Wait()

	for _, a := range agents {
		if n := a.acked.Load(); n != seqs {
			t.Errorf("device %s: receipt at seq %d, want %d", a.addr, n, seqs)
		}
		if b := a.bad.Load(); b != nil {
			t.Errorf("device %s: receipt that does not verify: %s", a.addr, b)
		}
	}
	// Stored exactly once: one row per (device, seq), all of them.
	conn, err := pgx.Connect(context.Background(), url)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(context.Background())
	var rows, distinct, held int
	if err := conn.QueryRow(context.Background(), `SELECT count(*), count(DISTINCT (device, seq)) FROM attestations`).Scan(&rows, &distinct); err != nil {
		t.Fatal(err)
	}
	if err := conn.QueryRow(context.Background(), `SELECT count(*) FROM held`).Scan(&held); err != nil {
		t.Fatal(err)
	}
	if rows != devices*seqs || distinct != rows || held != 0 {
		t.Errorf("%d attestation rows (%d distinct), %d held; want %d, all distinct, none held", rows, distinct, held, devices*seqs)
	}
	// The operator's checks, run beside the live collectors.
	out, err := exec.Command(bin, "audit", "--config", cfgs[1]).CombinedOutput()
	if err != nil || string(out) != "ok\n" {
		t.Errorf("audit: %v: %s", err, out)
	}
	out, err = exec.Command(bin, "stats", "--json", "--config", cfgs[1]).Output()
	if err != nil {
		t.Fatalf("stats: %v", err)
	}
	var st struct {
		Devices []struct {
			Head, Attestations, Breaks uint64
			Held                       int
		}
		Forks int
	}
	if err := json.Unmarshal(out, &st); err != nil {
		t.Fatal(err)
	}
	if len(st.Devices) != devices || st.Forks != 0 {
		t.Errorf("stats: %d devices, %d forks", len(st.Devices), st.Forks)
	}
	for _, d := range st.Devices {
		if d.Head != seqs || d.Attestations != seqs || d.Breaks != 0 || d.Held != 0 {
			t.Errorf("stats device %+v", d)
		}
	}
}
