package cli

import (
	"context"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"strconv"

	"github.com/csop/tbox/cmd/collector/contract"
	"github.com/csop/tbox/cmd/collector/internal/ledger"
	"github.com/csop/tbox/signer"
)

// exportLine is one line of `collector export`: a stored attestation whose
// span covers the batch, and the calldata of MileageMining.submit for it.
type exportLine struct {
	Device   signer.Address `json:"device"`
	Seq      uint64         `json:"seq"`
	Batch    uint64         `json:"batch"`
	Batches  uint32         `json:"batches"`
	Meters   uint64         `json:"meters"`
	Eligible bool           `json:"eligible"`
	Digest   string         `json:"digest"`
	Data     string         `json:"data"` // 0x calldata of submit(attestation, sig)
}

// runExport prints the stored attestations covering a batch as calldata of
// MileageMining.submit (cmd/collector/contract), one JSON line each, by
// device address then seq: the order in which a chain accepts them.
func runExport(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := newFlags("export", stderr)
	cfgPath := fs.String("config", "", "configuration `FILE` (TOML)")
	batch := fs.String("batch", "", "the `BATCH` number, floor(unix/600)")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return usagef("unexpected argument %q", fs.Arg(0))
	}
	if *batch == "" {
		return usagef("--batch B is required")
	}
	b, err := strconv.ParseUint(*batch, 10, 64)
	if err != nil {
		return usagef("--batch: expected a batch number, found %q", *batch)
	}
	cfg, err := loadConfig(*cfgPath)
	if err != nil {
		return err
	}
	l, err := openLedger(ctx, cfg, true)
	if err != nil {
		return err
	}
	defer l.Close()
	lines, err := exportBatch(l, b)
	if err != nil {
		return fmt.Errorf("export of batch %d: %w", b, err)
	}
	enc := json.NewEncoder(stdout)
	for _, line := range lines {
		if err := enc.Encode(line); err != nil {
			return err
		}
	}
	return nil
}

// exportBatch returns the stored attestations whose span covers batch b,
// eligible or not (a chain needs every link), each verified again.
func exportBatch(l ledger.Ledger, b uint64) ([]exportLine, error) {
	st, err := l.Stats()
	if err != nil {
		return nil, err
	}
	var lines []exportLine
	for _, ds := range st.Devices { // by address
		rep, err := l.Device(ds.Device)
		if err != nil {
			return nil, err
		}
		for _, rec := range rep.Records { // by seq
			if b < rec.Batch || b-rec.Batch >= uint64(rec.Batches) {
				continue
			}
			var a *signer.Attestation
			err := l.View(func(tx ledger.Tx) error {
				_, wire, ok := tx.Stored(ds.Device, rec.Seq)
				if !ok {
					return fmt.Errorf("device %s seq %d: listed but not stored", ds.Device, rec.Seq)
				}
				var err error
				if a, err = signer.ParseWire(wire); err != nil {
					return fmt.Errorf("stored device %s seq %d: %w", ds.Device, rec.Seq, err)
				}
				return nil
			})
			if err != nil {
				return nil, err
			}
			if err := signer.Verify(l.ChainID(), a); err != nil {
				return nil, fmt.Errorf("stored device %s seq %d: %w", ds.Device, rec.Seq, err)
			}
			lines = append(lines, exportLine{
				Device: a.Device, Seq: a.Seq, Batch: a.Batch, Batches: a.Batches, Meters: a.Meters,
				Eligible: rec.Verdict.Eligible, Digest: rec.Digest,
				Data: "0x" + hex.EncodeToString(contract.Submit(a)),
			})
		}
	}
	return lines, nil
}
