// Package cli is the collector's command line: configuration, logging, signals and the commands run, draw, stats, audit and registry add.
package cli

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"sort"
	"strconv"
	"strings"
	"syscall"
	"text/tabwriter"
	"time"

	"github.com/csop/tbox/cmd/collector/internal/collect"
	"github.com/csop/tbox/cmd/collector/internal/draw"
	"github.com/csop/tbox/cmd/collector/internal/ledger"
	"github.com/csop/tbox/signer"
	"golang.org/x/sync/errgroup"
)

// Version is the --version line, set by main from what the build stamped.
var Version = "dev"

// usageError marks bad usage: exit status 2.
type usageError struct{ err error }

func (e usageError) Error() string { return e.err.Error() }
func (e usageError) Unwrap() error { return e.err }

func usagef(format string, a ...any) error { return usageError{fmt.Errorf(format, a...)} }

// ErrCheckFailed: a check ran and found a problem (exit status 1).
var ErrCheckFailed = errors.New("check failed")

type command struct {
	name    string
	summary string
	run     func(ctx context.Context, args []string, stdout, stderr io.Writer) error
}

var commands = []command{
	{"run", "run --config FILE: verify, store and ack attestations from MQTT; draw closed batches", runRun},
	{"draw", "draw --config FILE --batch B [--json]: re-run a batch's draw from the stored attestations and compare with the recorded one", runDraw},
	{"stats", "stats --config FILE [--json]: per device attestations, meters, modes, batches and awards", runStats},
	{"audit", "audit --config FILE: re-verify every stored attestation chain", runAudit},
	{"verdicts", "verdicts --config FILE --device ADDR [--ineligible] [--json]: a device's stored attestations with their verdicts, chain breaks, held seqs and forks", runVerdicts},
	{"migrate", "migrate --config FILE: bring a ledger written by an older collector to the current schema", runMigrate},
	{"registry", "registry add|remove|list --config FILE [ADDR...]: the devices allowed to attest (in the ledger; in the registry file when one is configured with db)", runRegistry},
	{"backup", "backup --config FILE PATH: a consistent copy of the bbolt ledger (for PostgreSQL use pg_dump)", runBackup},
	{"export", "export --config FILE --batch B: the stored attestations covering a batch as MileageMining.submit calldata, one JSON line each", runExport},
}

// Main runs the command line args (without the program name) and returns
// the exit status: 0 success, 1 a runtime error or failed check, 2 bad
// usage or configuration.
func Main(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	if len(args) == 0 || args[0] == "-h" || args[0] == "--help" || args[0] == "help" {
		printUsage(stderr)
		if len(args) == 0 {
			return 2
		}
		return 0
	}
	if args[0] == "version" || args[0] == "--version" {
		fmt.Fprintln(stdout, Version)
		return 0
	}
	for _, c := range commands {
		if c.name == args[0] {
			return exitCode(stderr, c.name, c.run(ctx, args[1:], stdout, stderr))
		}
	}
	fmt.Fprintf(stderr, "collector: unknown command %q\n", args[0])
	printUsage(stderr)
	return 2
}

func printUsage(w io.Writer) {
	fmt.Fprintln(w, "usage: collector COMMAND [flags]")
	for _, c := range commands {
		fmt.Fprintf(w, "  %s\n", c.summary)
	}
}

func exitCode(stderr io.Writer, name string, err error) int {
	var ue usageError
	switch {
	case err == nil:
		return 0
	case errors.Is(err, flag.ErrHelp):
		return 0
	case errors.As(err, new(shownError)):
		return 2 // the flag package printed it with the usage
	case errors.As(err, &ue), errors.Is(err, ErrConfig):
		fmt.Fprintf(stderr, "collector %s: %v\n", name, err)
		return 2
	default:
		fmt.Fprintf(stderr, "collector %s: %v\n", name, err)
		return 1
	}
}

func newFlags(name string, stderr io.Writer) *flag.FlagSet {
	fs := flag.NewFlagSet("collector "+name, flag.ContinueOnError)
	fs.SetOutput(stderr)
	return fs
}

// shownError is a usage error that the flag package has already printed,
// with the command's usage: exit status 2 and no second copy.
type shownError struct{ err error }

func (e shownError) Error() string { return e.err.Error() }
func (e shownError) Unwrap() error { return e.err }

func parseFlags(fs *flag.FlagSet, args []string) error {
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return err
		}
		return shownError{err}
	}
	return nil
}

func loadConfig(path string) (*Config, error) {
	if path == "" {
		return nil, usagef("--config FILE is required")
	}
	return LoadConfig(path)
}

func logLevel(s string) (slog.Level, error) {
	var l slog.Level
	if s == "" {
		return slog.LevelInfo, nil
	}
	if err := l.UnmarshalText([]byte(s)); err != nil {
		return l, fmt.Errorf("expected debug, info, warn or error, found %q", s)
	}
	return l, nil
}

func runRun(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := newFlags("run", stderr)
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
	if err := cfg.checkRun(); err != nil {
		return err
	}
	level, _ := logLevel(cfg.LogLevel)
	log := slog.New(slog.NewTextHandler(stderr, &slog.HandlerOptions{Level: level}))
	var reg *collect.Registry
	if cfg.Registry != "" {
		if reg, err = collect.LoadRegistry(cfg.Registry); err != nil {
			return &ConfigError{File: cfg.File, Field: "registry", Msg: err.Error()}
		}
	}
	mq := collect.MQTT{Broker: cfg.Broker, CAFile: cfg.CA, CertFile: cfg.Cert, KeyFile: cfg.Key, ClientID: cfg.ClientID}
	if _, err := mq.TLSConfig(); err != nil {
		return &ConfigError{File: cfg.File, Field: "ca", Msg: err.Error()}
	}
	if mq.ClientID == "" {
		host, _ := os.Hostname()
		mq.ClientID = fmt.Sprintf("csop-collector-%s-%d", host, os.Getpid())
	}
	key, err := signer.LoadKeyFile(cfg.SigningKey)
	if err != nil {
		return &ConfigError{File: cfg.File, Field: "signing_key", Msg: err.Error()}
	}
	l, err := openLedger(ctx, cfg, false)
	if err != nil {
		return err
	}
	defer l.Close()
	lreg, err := collect.LoadLedgerRegistry(l)
	if err != nil {
		return err
	}
	allow := collect.AnyOf{lreg}
	devices := lreg.Len()
	if reg != nil {
		allow = append(allow, reg)
		devices += reg.Len()
	}
	if devices == 0 {
		log.Warn("no device registered: every attestation is refused until one is (collector registry add)")
	}
	page, err := openStatusPage(cfg, l, allow, log)
	if err != nil {
		return err
	}
	defer page.close()
	c, err := collect.New(l, collect.Config{
		ChainID: cfg.ChainID, Allow: allow, MaxSpeedKmh: uint64(cfg.MaxSpeedKmh),
		Seed: cfg.seed, Winners: int(cfg.Winners), Grace: cfg.grace, DrawEvery: cfg.drawEvery, GapTimeout: cfg.gapTimeout,
		ShareGroup: cfg.ShareGroup, Signer: key, Observer: page.observer(),
		KeyCache: int(cfg.KeyCache), TableCache: int(cfg.TableCache),
	}, log)
	if err != nil {
		return err
	}
	hup := make(chan os.Signal, 1)
	signal.Notify(hup, syscall.SIGHUP)
	defer signal.Stop(hup)
	usr1 := make(chan os.Signal, 1)
	if b, ok := l.(*ledger.Bolt); ok {
		// The running collector's own backup: consistent while it writes.
		signal.Notify(usr1, syscall.SIGUSR1)
		defer signal.Stop(usr1)
		go func() {
			for {
				select {
				case <-ctx.Done():
					return
				case <-usr1:
					dst := cfg.DB + ".backup"
					if n, err := BackupBolt(b, dst); err != nil {
						log.Error("backup", "err", err)
					} else {
						log.Info("backup written", "path", dst, "bytes", n)
					}
				}
			}
		}()
	}
	refresh := time.NewTicker(cfg.regRefresh)
	defer refresh.Stop()
	go func() {
		for {
			select {
			case <-ctx.Done():
				return
			case <-refresh.C:
				if err := lreg.Reload(); err != nil {
					log.Warn("registry refresh from the ledger; the previous allowlist stays", "err", err)
				}
			case <-hup:
				if reg != nil {
					if err := reg.Reload(); err != nil {
						log.Error("registry reload; the previous allowlist stays", "err", err)
					} else {
						log.Info("registry file reloaded", "devices", reg.Len())
					}
				}
				if err := lreg.Reload(); err != nil {
					log.Error("registry reload from the ledger; the previous allowlist stays", "err", err)
				} else {
					log.Info("ledger registry reloaded", "devices", lreg.Len())
				}
			}
		}
	}()
	log.Info("collector starting", "version", Version, "receipt_signer", key.Address(), "ledger", l.Where(), "chain_id", cfg.ChainID, "devices", devices,
		"share_group", cfg.ShareGroup, "winners", cfg.Winners, "grace", cfg.grace)
	g, gctx := errgroup.WithContext(ctx)
	g.Go(func() error { return c.Run(gctx, mq) })
	g.Go(func() error { return page.serve(gctx, c, log) })
	err = g.Wait()
	log.Info("collector stopped")
	return err
}

func runDraw(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := newFlags("draw", stderr)
	cfgPath := fs.String("config", "", "configuration `FILE` (TOML)")
	batch := fs.String("batch", "", "the `BATCH` number, floor(unix/600)")
	asJSON := fs.Bool("json", false, "print JSON")
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
	r, err := collect.Redraw(l, cfg.seed, int(cfg.Winners), b)
	if err != nil {
		return err
	}
	if *asJSON {
		out := struct {
			Batch    uint64             `json:"batch"`
			Result   *draw.Result       `json:"result"`
			Recorded *ledger.DrawRecord `json:"recorded"`
			Match    bool               `json:"match"`
			Late     []draw.Entry       `json:"late"`
		}{b, r.Result, r.Recorded, r.Match(), r.Late}
		enc := json.NewEncoder(stdout)
		enc.SetIndent("", "  ")
		if err := enc.Encode(out); err != nil {
			return err
		}
	} else {
		printDraw(stdout, b, r)
	}
	if r.Recorded != nil && !r.Match() {
		return fmt.Errorf("batch %d: the re-run differs from the recorded draw: %w", b, ErrCheckFailed)
	}
	return nil
}

func printDraw(w io.Writer, b uint64, r *collect.Rerun) {
	if r.Result == nil {
		fmt.Fprintf(w, "batch %d: no tickets\n", b)
	} else {
		res := r.Result
		fmt.Fprintf(w, "batch %d: %d tickets from %d attestations, drop %s Stones, %d wins of seed %s\n",
			b, res.Total, res.Entries, draw.FormatMicro(res.Drop), res.N, res.Seed)
		tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
		fmt.Fprintln(tw, "device\twins\tStones")
		for _, a := range res.Awards {
			fmt.Fprintf(tw, "%s\t%d\t%s\n", a.Device, a.Wins, draw.FormatMicro(a.Micro))
		}
		tw.Flush()
	}
	switch {
	case r.Recorded == nil:
		fmt.Fprintln(w, "recorded: not drawn yet")
	case r.Match():
		fmt.Fprintf(w, "recorded: %s, matches\n", r.Recorded.At.Format("2006-01-02T15:04:05Z"))
	default:
		fmt.Fprintf(w, "recorded: %s, DIFFERS (recorded seed %s, %d wins, %d tickets)\n",
			r.Recorded.At.Format("2006-01-02T15:04:05Z"), r.Recorded.Seed, r.Recorded.N, r.Recorded.Total)
	}
	if len(r.Late) > 0 {
		fmt.Fprintf(w, "late: %d attestations arrived after the draw and are not in it\n", len(r.Late))
	}
}

func runStats(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := newFlags("stats", stderr)
	cfgPath := fs.String("config", "", "configuration `FILE` (TOML)")
	asJSON := fs.Bool("json", false, "print JSON")
	if err := parseFlags(fs, args); err != nil {
		return err
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
	s, err := l.Stats()
	if err != nil {
		return err
	}
	if *asJSON {
		enc := json.NewEncoder(stdout)
		enc.SetIndent("", "  ")
		return enc.Encode(s)
	}
	PrintStats(stdout, s)
	return nil
}

// PrintStats writes the summary as a table.
func PrintStats(w io.Writer, s *ledger.Stats) {
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "device\tattestations\tmeters\teligible\tineligible\tbatches\thead\theld\tbreaks\twins\tStones\tmodes")
	for _, d := range s.Devices {
		names := make([]string, 0, len(d.Modes))
		for m := range d.Modes {
			names = append(names, m)
		}
		sort.Strings(names)
		var modes []string
		for _, m := range names {
			modes = append(modes, fmt.Sprintf("%s=%d", m, d.Modes[m]))
		}
		fmt.Fprintf(tw, "%s\t%d\t%d\t%d\t%d\t%d\t%d\t%d\t%d\t%d\t%s\t%s\n", d.Device, d.Attestations, d.Meters, d.EligibleMeters, d.Ineligible,
			d.Batches, d.Head, d.Held, d.Breaks, d.Wins, draw.FormatMicro(d.AwardMicro), strings.Join(modes, " "))
	}
	tw.Flush()
	fmt.Fprintf(w, "devices %d, draws %d, batches waiting for their draw %d, forks %d, chain breaks %d, held seqs %d\n",
		len(s.Devices), s.Draws, s.Undrawn, s.Forks, s.Breaks, s.Held)
}

func runAudit(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := newFlags("audit", stderr)
	cfgPath := fs.String("config", "", "configuration `FILE` (TOML)")
	if err := parseFlags(fs, args); err != nil {
		return err
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
	if err := l.Audit(); err != nil {
		return fmt.Errorf("%w: %w", ErrCheckFailed, err)
	}
	fmt.Fprintln(stdout, "ok")
	return nil
}
