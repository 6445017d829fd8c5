package cli

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/csop/tbox/cmd/collector/internal/ledger"
	"github.com/csop/tbox/signer"
)

func runVerdicts(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := newFlags("verdicts", stderr)
	cfgPath := fs.String("config", "", "configuration `FILE` (TOML)")
	device := fs.String("device", "", "the device `ADDR`ess (0x and 40 hex digits)")
	onlyIneligible := fs.Bool("ineligible", false, "list only the attestations that earn no tickets")
	asJSON := fs.Bool("json", false, "print JSON")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return usagef("unexpected argument %q", fs.Arg(0))
	}
	if *device == "" {
		return usagef("--device ADDR is required")
	}
	dev, err := signer.ParseAddress(*device)
	if err != nil {
		return usageError{fmt.Errorf("--device: %w", err)}
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
	r, err := l.Device(dev)
	if err != nil {
		return err
	}
	if *onlyIneligible {
		kept := r.Records[:0]
		for _, rec := range r.Records {
			if !rec.Verdict.Eligible {
				kept = append(kept, rec)
			}
		}
		r.Records = kept
	}
	if *asJSON {
		enc := json.NewEncoder(stdout)
		enc.SetIndent("", "  ")
		return enc.Encode(r)
	}
	PrintDevice(stdout, r)
	return nil
}

// PrintDevice writes a device's report: its attestations with their
// verdicts, then its chain breaks, held seqs, forks and loss announcement.
func PrintDevice(w io.Writer, r *ledger.DeviceReport) {
	fmt.Fprintf(w, "device %s: head seq %d, %d attestations listed, %d chain breaks, %d held, %d forks\n",
		r.Device, r.Head, len(r.Records), len(r.Breaks), len(r.Held), len(r.Forks))
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "seq\tbatch\tbatches\tmeters\tflags\tverdict")
	for _, rec := range r.Records {
		flags := strings.Join(signer.FlagNames(rec.Flags), ",")
		if flags == "" {
			flags = "-"
		}
		v := "eligible"
		if !rec.Verdict.Eligible {
			v = "INELIGIBLE " + rec.Verdict.Reason
		}
		fmt.Fprintf(tw, "%d\t%d\t%d\t%d\t%s\t%s\n", rec.Seq, rec.Batch, rec.Batches, rec.Meters, flags, v)
	}
	tw.Flush()
	for _, b := range r.Breaks {
		fmt.Fprintf(w, "chain break: seqs %d .. %d missing, recorded %s (%s): %s\n", b.From, b.To, b.At.Format(time.RFC3339), b.Cause, b.Reason)
	}
	for _, h := range r.Held {
		fmt.Fprintf(w, "held: seq %d since %s, waiting for seq %d\n", h.Seq, h.Received.Format(time.RFC3339), r.Head+1)
	}
	for _, f := range r.Forks {
		fmt.Fprintf(w, "fork: seq %d (%s), refused digest %s, stored %s, received %s\n", f.Seq, f.Kind, f.Digest, f.Stored, f.Received.Format(time.RFC3339))
	}
	if r.Lost != nil {
		fmt.Fprintf(w, "loss announced %s: seqs %d .. %d may be lost\n", r.Lost.At.Format(time.RFC3339), r.Lost.From, r.Lost.To)
	}
}

func runMigrate(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := newFlags("migrate", stderr)
	cfgPath := fs.String("config", "", "configuration `FILE` (TOML)")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return usagef("unexpected argument %q", fs.Arg(0))
	}
	cfg, err := loadConfig(*cfgPath)
	if err != nil {
		return err
	}
	l, err := openLedger(ctx, cfg, false) // Open migrates in one transaction
	if err != nil {
		return err
	}
	if err := l.Close(); err != nil {
		return err
	}
	fmt.Fprintf(stdout, "%s: at the current schema\n", l.Where())
	return nil
}
