package cli

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/csop/tbox/agent/uplink/mqtttest"
	"github.com/csop/tbox/cmd/collector/internal/collect"
	"github.com/csop/tbox/cmd/collector/internal/draw"
	"github.com/csop/tbox/cmd/collector/internal/ledger"
	"github.com/csop/tbox/cmd/collector/internal/ledger/pgledger/pgtest"
	"github.com/csop/tbox/signer"
	"github.com/csop/tbox/signer/sigcache"
	mqtt "github.com/eclipse/paho.mqtt.golang"
	"go.uber.org/goleak"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m, goleak.Cleanup(func(code int) { pgtest.StopShared(); os.Exit(code) }))
}

const seedHex = "0x00112233445566778899aabbccddeeff00112233445566778899aabbccddeeff"

func writeFile(t *testing.T, dir, name, text string) string {
	t.Helper()
	p := filepath.Join(dir, name)
	if err := os.WriteFile(p, []byte(text), 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

func baseConfig(extra string) string {
	return fmt.Sprintf("broker = \"tcp://127.0.0.1:1\"\nchain_id = 20220807\nregistry = \"devices.txt\"\ndb = \"c.db\"\nsigning_key = \"collector.key\"\nseed = %q\n%s", seedHex, extra)
}

func TestParseConfig(t *testing.T) {
	tests := []struct {
		name  string
		text  string
		field string // the field the error names; "" for no error
	}{
		{"valid", baseConfig("winners = 7\ngrace = \"10m\"\nmax_speed_kmh = 250\nkey_cache = 5000\ntable_cache = 100"), ""},
		{"negative key_cache", baseConfig("key_cache = -1"), "key_cache"},
		{"key_cache too large", baseConfig("key_cache = 100000001"), "key_cache"},
		{"table_cache too large", baseConfig("table_cache = 1000001"), "table_cache"},
		{"unknown key", baseConfig("winner = 7"), "winner"},
		{"missing chain_id", "db = \"c.db\"\nseed = \"" + seedHex + "\"", "chain_id"},
		{"negative chain_id", "chain_id = -1\ndb = \"c.db\"\nseed = \"" + seedHex + "\"", "chain_id"},
		{"missing db", "chain_id = 1\nseed = \"" + seedHex + "\"", "db"},
		{"missing seed", "chain_id = 1\ndb = \"c.db\"", "seed"},
		{"short seed", strings.Replace(baseConfig(""), seedHex, "0x1234", 1), "seed"},
		{"seed not hex", strings.Replace(baseConfig(""), seedHex, "0x"+strings.Repeat("zz", 32), 1), "seed"},
		{"negative winners", baseConfig("winners = -1"), "winners"},
		{"bad speed", baseConfig("max_speed_kmh = 0.5"), ""}, // a float: a TOML type error for the whole file
		{"bad grace", baseConfig("grace = \"soon\""), "grace"},
		{"bad gap_timeout", baseConfig("gap_timeout = \"10ms\""), "gap_timeout"},
		{"bad log level", baseConfig("log_level = \"loud\""), "log_level"},
		{"cert without key", baseConfig("cert = \"c.crt\""), "cert"},
		{"syntax", "chain_id = = 1", ""},
		{"string for a number", "chain_id = \"one\"", ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfg, err := ParseConfig("/etc/collector.toml", []byte(tt.text))
			if tt.name == "valid" {
				if err != nil {
					t.Fatal(err)
				}
				if cfg.Winners != 7 || cfg.grace != 10*time.Minute || cfg.MaxSpeedKmh != 250 || cfg.DB != "/etc/c.db" || cfg.Registry != "/etc/devices.txt" || cfg.seed.String() != seedHex || cfg.KeyCache != 5000 || cfg.TableCache != 100 {
					t.Errorf("config %+v", cfg)
				}
				return
			}
			var ce *ConfigError
			if !errors.Is(err, ErrConfig) || !errors.As(err, &ce) {
				t.Fatalf("error %v, want a ConfigError", err)
			}
			if ce.File != "/etc/collector.toml" || (tt.field != "" && ce.Field != tt.field) {
				t.Errorf("error %q names file %q field %q, want field %q", err, ce.File, ce.Field, tt.field)
			}
		})
	}
}

func TestDefaults(t *testing.T) {
	cfg, err := ParseConfig("c.toml", []byte(baseConfig("")))
	if err != nil {
		t.Fatal(err)
	}
	if cfg.Winners != collect.DefaultWinners || cfg.MaxSpeedKmh != collect.DefaultMaxSpeedKmh || cfg.grace != collect.DefaultGrace || cfg.drawEvery != collect.DefaultDrawEvery || cfg.gapTimeout != collect.DefaultGapTimeout || cfg.KeyCache != sigcache.DefaultKeys || cfg.TableCache != sigcache.DefaultSize {
		t.Errorf("defaults %+v", cfg)
	}
}

func run(t *testing.T, ctx context.Context, args ...string) (code int, stdout, stderr string) {
	t.Helper()
	var o, e bytes.Buffer
	code = Main(ctx, args, &o, &e)
	return code, o.String(), e.String()
}

func TestExitCodes(t *testing.T) {
	dir := t.TempDir()
	good := writeFile(t, dir, "c.toml", baseConfig(""))
	bad := writeFile(t, dir, "bad.toml", baseConfig("colour = \"red\""))
	noBroker := writeFile(t, dir, "nob.toml", "chain_id = 1\ndb = \"c.db\"\nseed = \""+seedHex+"\"\nregistry = \"devices.txt\"")
	ctx := context.Background()
	tests := []struct {
		args   []string
		code   int
		stderr string
	}{
		{nil, 2, "usage"},
		{[]string{"frobnicate"}, 2, "unknown command"},
		{[]string{"run"}, 2, "--config"},
		{[]string{"run", "--config", bad}, 2, `field "colour"`},
		{[]string{"run", "--config", noBroker}, 2, `field "broker"`},
		{[]string{"run", "--config", good}, 2, `field "registry"`}, // devices.txt does not exist
		{[]string{"run", "--config", filepath.Join(dir, "missing.toml")}, 2, "missing.toml"},
		{[]string{"draw", "--config", good}, 2, "--batch"},
		{[]string{"draw", "--config", good, "--batch", "x"}, 2, "--batch"},
		{[]string{"draw", "--config", good, "--batch", "5"}, 1, "c.db"}, // no database yet
		{[]string{"stats", "--bogus"}, 2, "bogus"},
		{[]string{"registry", "add", "--config", good, "0x12"}, 2, "0x12"},
		{[]string{"registry"}, 2, "registry add"},
	}
	for _, tt := range tests {
		code, _, stderr := run(t, ctx, tt.args...)
		if code != tt.code || !strings.Contains(stderr, tt.stderr) {
			t.Errorf("collector %v: exit %d, stderr %q; want %d mentioning %q", tt.args, code, stderr, tt.code, tt.stderr)
		}
	}
}

func newKey(t *testing.T) *signer.FileKey {
	t.Helper()
	p := filepath.Join(t.TempDir(), "k")
	if _, err := signer.GenerateKeyFile(p); err != nil {
		t.Fatal(err)
	}
	k, err := signer.LoadKeyFile(p)
	if err != nil {
		t.Fatal(err)
	}
	return k
}

func sign(t *testing.T, k *signer.FileKey, seq, batch, meters uint64, prev [32]byte) *signer.Attestation {
	t.Helper()
	a := &signer.Attestation{V: 1, Device: k.Address(), Seq: seq, Batch: batch, Batches: 1, Meters: meters,
		Modes: []signer.ModeMeters{{Mode: "SPORT", Meters: meters}}, Prev: prev}
	if err := signer.Sign(k, 20220807, a); err != nil {
		t.Fatal(err)
	}
	return a
}

// TestRunDrawStats: the run command stores what a device publishes and
// acks it; after it stops, draw re-runs a recorded draw and stats shows
// the device.
func TestRunDrawStats(t *testing.T) {
	broker := mqtttest.Start(t)
	dir := t.TempDir()
	k := newKey(t)
	writeFile(t, dir, "devices.txt", "# fleet\n\n"+k.Address().String()+" # test car\n")
	collAddr, err := signer.GenerateKeyFile(filepath.Join(dir, "collector.key"))
	if err != nil {
		t.Fatal(err)
	}
	cfgPath := writeFile(t, dir, "c.toml", strings.Replace(baseConfig("winners = 5\ngrace = \"0s\"\ndraw_every = \"1s\"\nclient_id = \"cli-test\""),
		"tcp://127.0.0.1:1", broker.URL(), 1))

	// A device publishes two attestations of closed batches.
	b := uint64(time.Now().Unix())/600 - 3
	a1 := sign(t, k, 1, b, 4000, [32]byte{})
	a2 := sign(t, k, 2, b+1, 6000, signer.Digest(20220807, a1))
	acks := make(chan []byte, 8)
	dev := mqtt.NewClient(mqtt.NewClientOptions().AddBroker(broker.URL()).SetClientID(k.Address().String()))
	if tok := dev.Connect(); !tok.WaitTimeout(10*time.Second) || tok.Error() != nil {
		t.Fatal(tok.Error())
	}
	defer dev.Disconnect(50)
	ackTopic := "csop/v1/" + k.Address().String() + "/ack"
	if tok := dev.Subscribe(ackTopic, 1, func(_ mqtt.Client, m mqtt.Message) { acks <- m.Payload() }); !tok.WaitTimeout(10*time.Second) || tok.Error() != nil {
		t.Fatal(tok.Error())
	}

	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan int, 1)
	var stderr bytes.Buffer
	go func() { done <- Main(ctx, []string{"run", "--config", cfgPath}, &bytes.Buffer{}, &stderr) }()
	deadline := time.After(20 * time.Second)
	var last *signer.Receipt
	for last == nil || last.Seq != 2 {
		for _, a := range []*signer.Attestation{a1, a2} {
			dev.Publish("csop/v1/"+k.Address().String()+"/att", 1, false, a.AppendWire(nil)).WaitTimeout(5 * time.Second)
		}
		select {
		case p := <-acks:
			// Every ack is a receipt signed by the signing_key, naming the
			// device and the digest of what was stored.
			r, err := signer.ParseReceipt(k.Address(), p)
			if err != nil {
				t.Fatalf("ack %s: %v", p, err)
			}
			if by, err := signer.VerifyReceipt(20220807, r, []signer.Address{collAddr}); err != nil {
				t.Fatalf("ack %s: %v (signed by %s)", p, err, by)
			}
			want := map[uint64][32]byte{1: signer.Digest(20220807, a1), 2: signer.Digest(20220807, a2)}
			if r.Digest != want[r.Seq] {
				t.Fatalf("ack of seq %d names digest 0x%x, want 0x%x", r.Seq, r.Digest, want[r.Seq])
			}
			last = r
		case <-time.After(500 * time.Millisecond):
		case <-deadline:
			cancel()
			t.Fatalf("no ack of seq 2; collector log:\n%s", stderr.String())
		}
	}
	time.Sleep(1500 * time.Millisecond) // a draw pass after the store (draw_every 1s, grace 0)
	cancel()
	if code := <-done; code != 0 {
		t.Fatalf("run exited %d:\n%s", code, stderr.String())
	}

	code, out, errOut := run(t, context.Background(), "draw", "--config", cfgPath, "--batch", fmt.Sprint(b))
	if code != 0 || !strings.Contains(out, "4000 tickets") || !strings.Contains(out, "matches") || !strings.Contains(out, k.Address().String()) {
		t.Errorf("draw: exit %d\n%s%s", code, out, errOut)
	}
	code, out, _ = run(t, context.Background(), "draw", "--config", cfgPath, "--batch", fmt.Sprint(b+1), "--json")
	var dj struct {
		Match  bool         `json:"match"`
		Result *draw.Result `json:"result"`
	}
	if err := json.Unmarshal([]byte(out), &dj); code != 0 || err != nil || !dj.Match || dj.Result.Total != 6000 || dj.Result.Awards[0].Micro != draw.Drop(b+1) {
		t.Errorf("draw --json: exit %d, %v, %+v\n%s", code, err, dj, out)
	}
	code, out, _ = run(t, context.Background(), "stats", "--config", cfgPath, "--json")
	var st ledger.Stats
	if err := json.Unmarshal([]byte(out), &st); code != 0 || err != nil || len(st.Devices) != 1 || st.Devices[0].Meters != 10000 ||
		st.Devices[0].Modes["SPORT"] != 10000 || st.Devices[0].AwardMicro != draw.Drop(b)+draw.Drop(b+1) || st.Draws != 2 {
		t.Errorf("stats --json: exit %d, %v\n%s", code, err, out)
	}
	if code, out, _ := run(t, context.Background(), "audit", "--config", cfgPath); code != 0 || out != "ok\n" {
		t.Errorf("audit: exit %d, %q", code, out)
	}
	// A re-run with another seed than the recorded draw's is a failed check.
	other := writeFile(t, dir, "other.toml", strings.Replace(baseConfig("winners = 5"), seedHex, "0x"+strings.Repeat("11", 32), 1))
	if code, out, _ := run(t, context.Background(), "draw", "--config", other, "--batch", fmt.Sprint(b)); code != 1 || !strings.Contains(out, "DIFFERS") {
		t.Errorf("draw with another seed: exit %d\n%s", code, out)
	}
}

func TestRegistryAdd(t *testing.T) {
	dir := t.TempDir()
	cfg := writeFile(t, dir, "c.toml", baseConfig(""))
	k1, k2 := newKey(t).Address(), newKey(t).Address()
	code, out, errOut := run(t, context.Background(), "registry", "add", "--config", cfg, k1.String(), k2.String(), k1.String())
	if code != 0 || !strings.HasPrefix(out, "2 added") {
		t.Fatalf("exit %d: %s%s", code, out, errOut)
	}
	if code, out, _ = run(t, context.Background(), "registry", "add", "--config", cfg, strings.ToUpper(k2.String()[2:])); code != 2 {
		t.Errorf("address without 0x: exit %d %s", code, out)
	}
	r, err := collect.LoadRegistry(filepath.Join(dir, "devices.txt"))
	if err != nil {
		t.Fatal(err)
	}
	if r.Len() != 2 || !r.Allowed(k1) || !r.Allowed(k2) {
		t.Errorf("registry has %d devices", r.Len())
	}
	writeFile(t, dir, "devices.txt", k1.String()+"\nnot-an-address\n")
	if err := r.Reload(); !errors.Is(err, collect.ErrRegistry) || !strings.Contains(err.Error(), "devices.txt:2") {
		t.Errorf("reload of a bad file: %v, want ErrRegistry naming line 2", err)
	}
	if !r.Allowed(k2) {
		t.Error("a failed reload dropped the previous allowlist")
	}
}

// FuzzParseConfig: any file gives a config or a ConfigError, never a panic.
func FuzzParseConfig(f *testing.F) {
	f.Add([]byte(baseConfig("")))
	f.Add([]byte(baseConfig("winners = 3\ngrace = \"5m\"\n[x]\ny = 1")))
	f.Add([]byte("chain_id = 18446744073709551615\ndb = \"\"\n"))
	f.Add([]byte("seed = 0x12"))
	f.Fuzz(func(t *testing.T, data []byte) {
		cfg, err := ParseConfig("f.toml", data)
		if err != nil {
			if !errors.Is(err, ErrConfig) {
				t.Fatalf("error %v is not ErrConfig", err)
			}
			return
		}
		if cfg.ChainID == 0 || (cfg.DB == "" && cfg.DatabaseURL == "") || cfg.Winners < 1 || cfg.MaxSpeedKmh < 1 {
			t.Fatalf("accepted an invalid config %+v", cfg)
		}
	})
}

// TestExampleConfig: the example beside the binary parses, and documents
// every key the configuration has.
func TestExampleConfig(t *testing.T) {
	const path = "../../collector.example.toml"
	if _, err := LoadConfig(path); err != nil {
		t.Fatalf("%s: %v", path, err)
	}
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	for _, k := range strings.Split(knownFields(), ", ") {
		if !regexp.MustCompile(`(?m)^#? *` + regexp.QuoteMeta(k) + ` *=`).Match(data) {
			t.Errorf("%s does not show key %q", path, k)
		}
	}
}
