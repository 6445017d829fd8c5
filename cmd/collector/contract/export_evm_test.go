package contract_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/csop/tbox/cmd/collector/contract"
	"github.com/csop/tbox/cmd/collector/contract/evmtest"
	"github.com/csop/tbox/cmd/collector/internal/cli"
	"github.com/csop/tbox/cmd/collector/internal/draw"
	"github.com/csop/tbox/cmd/collector/internal/ledger"
	"github.com/csop/tbox/signer"
)

// TestExportOnChain: what `collector export` prints for a batch is accepted
// by the contract as it is, and the contract's draw of that batch equals
// `collector draw` over the same ledger and seed.
func TestExportOnChain(t *testing.T) {
	t.Parallel()
	e := evmtest.Require(t)
	dir := t.TempDir()
	const b = draw.Genesis + 777
	var atts []*signer.Attestation
	for d := range 3 {
		k := evmtest.NewKey(t)
		prev := [32]byte{}
		for seq := uint64(1); seq <= 3; seq++ {
			m := uint64(1000*(d+1)) + seq*17
			a := &signer.Attestation{V: 1, Device: k.Address(), Seq: seq, Batch: b, Batches: 1, Meters: m,
				Modes: []signer.ModeMeters{{Mode: "ECO", Meters: m}}, Prev: prev}
			if err := signer.Sign(k, chainID, a); err != nil {
				t.Fatal(err)
			}
			prev = signer.Digest(chainID, a)
			atts = append(atts, a)
		}
	}
	l, err := ledger.Open(filepath.Join(dir, "c.db"), &ledger.Options{ChainID: chainID})
	if err != nil {
		t.Fatal(err)
	}
	err = l.Update(func(tx ledger.Tx) error {
		for _, a := range atts {
			if err := tx.Append(a, signer.Digest(chainID, a), a.AppendWire(nil), ledger.Verdict{Eligible: true, Code: "eligible"}); err != nil {
				return err
			}
		}
		return nil
	})
	if cerr := l.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		t.Fatal(err)
	}
	cfg := filepath.Join(dir, "c.toml")
	conf := fmt.Sprintf("broker = \"tcp://127.0.0.1:1\"\nchain_id = %d\nregistry = \"devices.txt\"\ndb = \"c.db\"\nseed = %q\nwinners = 25\n", chainID, seed.String())
	if err := os.WriteFile(cfg, []byte(conf), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "devices.txt"), nil, 0o644); err != nil {
		t.Fatal(err)
	}
	collector := func(args ...string) string {
		t.Helper()
		var out, errb bytes.Buffer
		if code := cli.Main(context.Background(), args, &out, &errb); code != 0 {
			t.Fatalf("collector %s: exit %d: %s", strings.Join(args, " "), code, errb.String())
		}
		return out.String()
	}
	exported := collector("export", "--config", cfg, "--batch", fmt.Sprint(b))
	var calls []evmtest.Tx
	for _, a := range atts {
		if a.Seq == 1 {
			calls = append(calls, evmtest.Tx{Data: evmtest.Hex(contract.SetDevice(a.Device, true))})
		}
	}
	first := len(calls)
	dec := json.NewDecoder(strings.NewReader(exported))
	for dec.More() {
		var line struct{ Data string }
		if err := dec.Decode(&line); err != nil {
			t.Fatalf("export output: %v\n%s", err, exported)
		}
		calls = append(calls, evmtest.Tx{Data: line.Data})
	}
	if len(calls)-first != len(atts) {
		t.Fatalf("export printed %d attestations, the ledger holds %d", len(calls)-first, len(atts))
	}
	calls = append(calls, evmtest.Tx{Data: evmtest.Hex(contract.Draw(b))})
	var collectorDraw struct{ Result *draw.Result }
	if err := json.Unmarshal([]byte(collector("draw", "--config", cfg, "--batch", fmt.Sprint(b), "--json")), &collectorDraw); err != nil || collectorDraw.Result == nil {
		t.Fatalf("collector draw --json: %v", err)
	}
	out := e.Run(t, contract.Constructor(chainID, seed, 25), calls)
	for i, r := range out.Results[first : len(calls)-1] {
		if !r.OK {
			t.Errorf("exported line %d refused: %s", i+1, evmtest.RevertName(r.Ret))
		}
	}
	d := out.Results[len(calls)-1]
	if !d.OK {
		t.Fatalf("draw reverted: %s", evmtest.RevertName(d.Ret))
	}
	sameDraw(t, b, d.Bytes(t), collectorDraw.Result)
}

var seed = draw.Seed{0xe8, 0x9a, 0x07}

const chainID = 20220807

// sameDraw compares the contract's draw of a batch with the collector's.
func sameDraw(t *testing.T, b uint64, ret []byte, want *draw.Result) {
	t.Helper()
	total, wins, err := contract.DecodeDraw(ret)
	if err != nil {
		t.Fatalf("batch %d: %v", b, err)
	}
	if total != want.Total || len(wins) != len(want.Wins) {
		t.Fatalf("batch %d: contract %d tickets, %d wins; collector %d tickets, %d wins", b, total, len(wins), want.Total, len(want.Wins))
	}
	for i, w := range wins {
		g := want.Wins[i]
		if w.Ticket != g.Ticket || w.Device != g.Device || w.Seq != g.Seq || w.Micro != g.Micro {
			t.Errorf("batch %d win %d: contract %+v, collector %+v", b, i, w, g)
		}
	}
}
