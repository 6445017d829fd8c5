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
	collector := ledgerCLI(t, dir, atts)
	exported := collector("export", "--batch", fmt.Sprint(b))
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
	if err := json.Unmarshal([]byte(collector("draw", "--batch", fmt.Sprint(b), "--json")), &collectorDraw); err != nil || collectorDraw.Result == nil {
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

// ledgerCLI stores atts (all eligible) in a bbolt ledger under dir and
// returns a runner of the collector's command line on it (seed, 25 winners).
func ledgerCLI(t *testing.T, dir string, atts []*signer.Attestation) func(args ...string) string {
	t.Helper()
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
	return func(args ...string) string {
		t.Helper()
		var out, errb bytes.Buffer
		args = append(args[:1:1], append([]string{"--config", cfg}, args[1:]...)...)
		if code := cli.Main(context.Background(), args, &out, &errb); code != 0 {
			t.Fatalf("collector %s: exit %d: %s", strings.Join(args, " "), code, errb.String())
		}
		return out.String()
	}
}

// exportLine is what TestExport* read of `collector export`'s lines.
type exportLine struct {
	Device signer.Address
	Seq    uint64
	Data   string
}

func parseExport(t *testing.T, out string) []exportLine {
	t.Helper()
	var lines []exportLine
	dec := json.NewDecoder(strings.NewReader(out))
	for dec.More() {
		var l exportLine
		if err := dec.Decode(&l); err != nil {
			t.Fatalf("export output: %v\n%s", err, out)
		}
		lines = append(lines, l)
	}
	return lines
}

// TestExportConsecutiveBatches: an operator anchoring batch after batch as
// README "On-chain verification" says: a catch-up span is in the export of
// every batch it covers, its second submission reverts with SeqMismatch,
// and skipping the lines at or below the device's head on chain leaves
// every other line accepted as printed; the contract's draws of the
// batches equal `collector draw`'s.
func TestExportConsecutiveBatches(t *testing.T) {
	t.Parallel()
	e := evmtest.Require(t)
	const b = draw.Genesis + 900
	k := evmtest.NewKey(t)
	spans := []struct {
		batch   uint64
		batches uint32
		meters  uint64
	}{{b, 1, 4000}, {b + 1, 2, 7001}, {b + 2, 1, 1500}, {b + 3, 1, 800}}
	var atts []*signer.Attestation
	prev := [32]byte{}
	for i, sp := range spans {
		a := &signer.Attestation{V: 1, Device: k.Address(), Seq: uint64(i + 1), Batch: sp.batch, Batches: sp.batches, Meters: sp.meters,
			Modes: []signer.ModeMeters{{Mode: "SPORT", Meters: sp.meters}}, Prev: prev}
		if sp.batches > 1 {
			a.Flags = signer.FlagCatchup
		}
		if err := signer.Sign(k, chainID, a); err != nil {
			t.Fatal(err)
		}
		prev = signer.Digest(chainID, a)
		atts = append(atts, a)
	}
	collector := ledgerCLI(t, t.TempDir(), atts)
	calls := []evmtest.Tx{{Data: evmtest.Hex(contract.SetDevice(k.Address(), true))}}
	type sent struct {
		batch uint64
		seq   uint64
		again bool // already anchored with an earlier batch
	}
	var sents []sent
	head := uint64(0) // what devices(device) returns as seq, as the operator reads it
	var skipped []exportLine
	for bb := b; bb <= b+3; bb++ {
		for _, l := range parseExport(t, collector("export", "--batch", fmt.Sprint(bb))) {
			// Every line is submitted as printed, the repeated one too, to
			// see it revert; the operator would skip it.
			again := l.Seq <= head
			if again {
				skipped = append(skipped, l)
			}
			head = max(head, l.Seq)
			sents = append(sents, sent{bb, l.Seq, again})
			calls = append(calls, evmtest.Tx{Data: l.Data})
		}
	}
	if len(skipped) != 1 || skipped[0].Seq != 2 {
		t.Fatalf("lines repeated across the exports: %+v; expected seq 2, the catch-up span, once", skipped)
	}
	first := len(calls)
	for bb := b; bb <= b+3; bb++ {
		calls = append(calls, evmtest.Tx{Data: evmtest.Hex(contract.Draw(bb))})
	}
	out := e.Run(t, contract.Constructor(chainID, seed, 25), calls)
	for i, s := range sents {
		r := out.Results[1+i]
		if s.again {
			evmtest.WantRevert(t, fmt.Sprintf("seq %d again in batch %d's export", s.seq, s.batch), r, "SeqMismatch(uint64,uint64)")
		} else if !r.OK {
			t.Errorf("seq %d of batch %d's export refused: %s", s.seq, s.batch, evmtest.RevertName(r.Ret))
		}
	}
	for i := range 4 {
		bb := b + uint64(i)
		r := out.Results[first+i]
		if !r.OK {
			t.Fatalf("draw of batch %d reverted: %s", bb, evmtest.RevertName(r.Ret))
		}
		var cd struct{ Result *draw.Result }
		if err := json.Unmarshal([]byte(collector("draw", "--batch", fmt.Sprint(bb), "--json")), &cd); err != nil || cd.Result == nil {
			t.Fatalf("collector draw --json of batch %d: %v", bb, err)
		}
		sameDraw(t, bb, r.Bytes(t), cd.Result)
	}
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
