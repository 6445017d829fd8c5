package cli

import (
	"bytes"
	"context"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/csop/tbox/cmd/collector/contract"
	"github.com/csop/tbox/cmd/collector/internal/ledger"
	"github.com/csop/tbox/signer"
)

// TestExport: export lists every stored attestation whose span covers the
// batch (an ineligible one too: the chain on chain needs every link), by
// device address then seq, each with the submit calldata of that
// attestation; other batches' attestations are left out.
func TestExport(t *testing.T) {
	dir := t.TempDir()
	cfgPath := writeFile(t, dir, "c.toml", baseConfig(""))
	writeFile(t, dir, "devices.txt", "")
	const b = 2800000
	k1, k2 := newKey(t), newKey(t)
	// k1: seq 1 in b-1, seq 2 a catch-up over b-1 .. b+1, seq 3 in b (ineligible), seq 4 in b+1.
	var atts []*signer.Attestation
	prev := [32]byte{}
	for i, span := range []struct{ batch, batches uint64 }{{b - 1, 1}, {b - 1, 3}, {b, 1}, {b + 1, 1}} {
		a := &signer.Attestation{V: 1, Device: k1.Address(), Seq: uint64(i + 1), Batch: span.batch, Batches: uint32(span.batches),
			Meters: 1000, Modes: []signer.ModeMeters{{Mode: "ECO", Meters: 1000}}, Prev: prev}
		if span.batches > 1 {
			a.Flags = signer.FlagCatchup
		}
		if err := signer.Sign(k1, 20220807, a); err != nil {
			t.Fatal(err)
		}
		prev = signer.Digest(20220807, a)
		atts = append(atts, a)
	}
	atts = append(atts, sign(t, k2, 1, b, 700, [32]byte{}))

	l, err := ledger.Open(filepath.Join(dir, "c.db"), &ledger.Options{ChainID: 20220807})
	if err != nil {
		t.Fatal(err)
	}
	err = l.Update(func(tx ledger.Tx) error {
		for _, a := range atts {
			v := ledger.Verdict{Eligible: true, Code: "eligible"}
			if a.Device == k1.Address() && a.Seq == 3 {
				v = ledger.Verdict{Code: "impossible meters", Reason: "impossible meters: test"}
			}
			if err := tx.Append(a, signer.Digest(20220807, a), a.AppendWire(nil), v); err != nil {
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

	code, out, errOut := run(t, context.Background(), "export", "--config", cfgPath, "--batch", fmt.Sprint(b))
	if code != 0 {
		t.Fatalf("export: exit %d: %s", code, errOut)
	}
	var got []exportLine
	dec := json.NewDecoder(strings.NewReader(out))
	for dec.More() {
		var line exportLine
		if err := dec.Decode(&line); err != nil {
			t.Fatalf("export output: %v\n%s", err, out)
		}
		got = append(got, line)
	}
	want := []*signer.Attestation{atts[1], atts[2], atts[4]} // k1 seq 2, 3; k2 seq 1
	slices.SortStableFunc(want, func(x, y *signer.Attestation) int { return bytes.Compare(x.Device[:], y.Device[:]) })
	if len(got) != len(want) {
		t.Fatalf("export: %d lines, expected %d:\n%s", len(got), len(want), out)
	}
	for i, a := range want {
		g := got[i]
		data, err := hex.DecodeString(strings.TrimPrefix(g.Data, "0x"))
		if err != nil {
			t.Fatal(err)
		}
		d := signer.Digest(20220807, a)
		eligible := !(a.Device == k1.Address() && a.Seq == 3)
		if g.Device != a.Device || g.Seq != a.Seq || g.Eligible != eligible || g.Digest != fmt.Sprintf("0x%x", d) || !bytes.Equal(data, contract.Submit(a)) {
			t.Errorf("line %d: %+v, expected device %s seq %d eligible %v", i, g, a.Device, a.Seq, eligible)
		}
	}
	if code, _, errOut := run(t, context.Background(), "export", "--config", cfgPath); code != 2 || !strings.Contains(errOut, "--batch") {
		t.Errorf("export without --batch: exit %d, %s", code, errOut)
	}
}
