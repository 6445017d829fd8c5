package cli

import (
	"compress/gzip"
	"context"
	"encoding/json"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/csop/tbox/cmd/collector/internal/collect"
	"github.com/csop/tbox/cmd/collector/internal/ledger"
	"github.com/csop/tbox/signer"
)

type allowAll struct{}

func (allowAll) Allowed(signer.Address) bool { return true }

// TestVerdicts: `collector verdicts --device` shows each stored
// attestation with its verdict, the chain breaks and the held seqs.
func TestVerdicts(t *testing.T) {
	dir := t.TempDir()
	cfgPath := writeFile(t, dir, "c.toml", baseConfig(""))
	k := newKey(t)
	b := uint64(time.Now().Unix())/600 - 10
	a1 := sign(t, k, 1, b, 4000, [32]byte{})
	a2 := sign(t, k, 2, b+1, 85_840, signer.Digest(20220807, a1))
	a3 := sign(t, k, 3, b+2, 100, signer.Digest(20220807, a2))
	a4 := sign(t, k, 4, b+3, 200, signer.Digest(20220807, a3))
	a6 := sign(t, k, 6, b+5, 300, [32]byte{5})

	l, err := ledger.Open(filepath.Join(dir, "c.db"), &ledger.Options{ChainID: 20220807})
	if err != nil {
		t.Fatal(err)
	}
	now := time.Now()
	c, err := collect.New(l, collect.Config{ChainID: 20220807, Allow: allowAll{}, GapTimeout: time.Minute, Now: func() time.Time { return now }}, nil)
	if err != nil {
		t.Fatal(err)
	}
	topic := "csop/v1/" + k.Address().String() + "/att"
	for _, a := range []*signer.Attestation{a1, a2, a4} { // 3 missing: 4 held
		if _, err := c.Process([]collect.Message{{Topic: topic, Payload: a.AppendWire(nil)}}); err != nil {
			t.Fatal(err)
		}
	}
	now = now.Add(2 * time.Minute) // seq 3 never came: seq 6 records the break, then waits for 5
	if _, err := c.Process([]collect.Message{{Topic: topic, Payload: a6.AppendWire(nil)}}); err != nil {
		t.Fatal(err)
	}
	l.Close()

	code, out, errOut := run(t, context.Background(), "verdicts", "--config", cfgPath, "--device", k.Address().String())
	for _, want := range []string{
		"head seq 4, 3 attestations listed, 1 chain breaks, 1 held",
		"INELIGIBLE impossible meters: 85840 m in 1 batch",
		"chain break: seqs 3 .. 3 missing",
		"held: seq 6",
	} {
		if code != 0 || !strings.Contains(out, want) {
			t.Errorf("verdicts: exit %d, output lacks %q:\n%s%s", code, want, out, errOut)
		}
	}
	code, out, _ = run(t, context.Background(), "verdicts", "--config", cfgPath, "--device", k.Address().String(), "--ineligible", "--json")
	var r ledger.DeviceReport
	if err := json.Unmarshal([]byte(out), &r); code != 0 || err != nil || len(r.Records) != 1 || r.Records[0].Seq != 2 || r.Records[0].Verdict.Eligible {
		t.Errorf("verdicts --ineligible --json: exit %d, %v\n%s", code, err, out)
	}
	if code, _, errOut := run(t, context.Background(), "verdicts", "--config", cfgPath); code != 2 || !strings.Contains(errOut, "--device") {
		t.Errorf("verdicts without --device: exit %d, %q", code, errOut)
	}
	if code, out, _ := run(t, context.Background(), "audit", "--config", cfgPath); code != 0 || out != "ok\n" {
		t.Errorf("audit across the chain break: exit %d, %q", code, out)
	}
}

// TestMigrateCommand: the read-only commands refuse a ledger written by
// the schema 1 collector, naming the schema; migrate brings it forward.
func TestMigrateCommand(t *testing.T) {
	dir := t.TempDir()
	cfgPath := writeFile(t, dir, "c.toml", baseConfig(""))
	f, err := os.Open("../ledger/testdata/ledger-v1.db.gz")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	zr, err := gzip.NewReader(f)
	if err != nil {
		t.Fatal(err)
	}
	db, err := os.Create(filepath.Join(dir, "c.db"))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := io.Copy(db, zr); err != nil {
		t.Fatal(err)
	}
	db.Close()
	if code, _, errOut := run(t, context.Background(), "stats", "--config", cfgPath); code != 1 || !strings.Contains(errOut, "schema 1") {
		t.Errorf("stats of a schema 1 ledger: exit %d, %q; want 1 naming schema 1", code, errOut)
	}
	if code, out, errOut := run(t, context.Background(), "migrate", "--config", cfgPath); code != 0 || !strings.Contains(out, "current schema") {
		t.Fatalf("migrate: exit %d\n%s%s", code, out, errOut)
	}
	code, out, errOut := run(t, context.Background(), "stats", "--config", cfgPath, "--json")
	var st ledger.Stats
	if err := json.Unmarshal([]byte(out), &st); code != 0 || err != nil || len(st.Devices) != 1 || st.Devices[0].EligibleMeters != 6000 {
		t.Errorf("stats after migrate: exit %d, %v\n%s%s", code, err, out, errOut)
	}
	if code, out, _ := run(t, context.Background(), "audit", "--config", cfgPath); code != 0 || out != "ok\n" {
		t.Errorf("audit after migrate: exit %d, %q", code, out)
	}
}
