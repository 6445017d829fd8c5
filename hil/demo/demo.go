package main

import (
	"context"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"time"

	"golang.org/x/sync/errgroup"

	"github.com/csop/tbox/hil"
	"github.com/csop/tbox/signer"
)

// Fixed parameters of the demo.
const (
	chainID = 20220807
	// drawSeed is the collector's public random value: fixed, so that a
	// run's draws can be re-run by anyone.
	drawSeed = "0x64656d6f2d64656d6f2d64656d6f2d64656d6f2d64656d6f2d64656d6f2d6421"
	winners  = 100
	// clockMargin: the compressed drive ends about this long, less the
	// compressed start-up and shutdown, before the host's now.
	clockMargin = 30 * time.Minute
)

// files are the working files of one run.
type files struct {
	dir                     string
	tboxd, vsim, clocksync  string // ARM binaries
	collector               string // host binary
	key, registry           string
	tboxdConf, collConf, db string
	profile, dbc            string
}

// run is the whole demo. It returns a report (with Problems when a check
// failed) or an error when the demo could not run to its end.
func run(ctx context.Context, cfg Config) (rep *Report, err error) {
	start := time.Now()
	out := cfg.Out
	if out == nil {
		out = io.Discard
	}
	p := &printer{w: out, start: start}
	p.say("tbox demo: a %v drive of the seeded vehicle simulator (seed %d) at %gx, in the emulated ARM T-Box", cfg.Drive, cfg.Seed, cfg.Pace)

	ctx, cancel := context.WithCancel(ctx)
	defer cancel()

	// 1. The kit (installs qemu and the guest's packages on a fresh machine).
	t := time.Now()
	kit, err := hil.Prepare(ctx)
	if err != nil {
		return nil, fmt.Errorf("emulated T-Box kit: %w", err)
	}
	p.say("kit ready in %v: %s, kernel %s", since(t), kit.QEMU, kit.KernelVersion)

	f, cleanup, err := workDir(cfg.Keep)
	if err != nil {
		return nil, err
	}
	defer cleanup()

	// 2. Binaries: tboxd, vsim and clocksync for the guest, the collector
	// for the host. No build-time stamp: the guest's clock reads earlier
	// than any build, which tboxd would flag as CLOCK.
	t = time.Now()
	if err := build(ctx, f); err != nil {
		return nil, err
	}
	p.say("built tboxd, vsim, clocksync (linux/arm GOARM=7, static) and the collector (host) in %v", since(t))

	// 3. The device key and the collector's allowlist.
	addr, err := signer.GenerateKeyFile(f.key)
	if err != nil {
		return nil, fmt.Errorf("device key: %w", err)
	}
	if err := os.WriteFile(f.registry, []byte("# the demo's T-Box\n"+addr.String()+"\n"), 0o644); err != nil {
		return nil, err
	}
	p.say("device key made: the T-Box is %s (on the collector's allowlist)", addr)

	// 4. Host side: broker, collector, and our own watcher of the topics.
	procs := &procSet{}
	defer procs.killAll()
	broker, err := startBroker(ctx, f.dir, procs)
	if err != nil {
		return nil, err
	}
	p.say("mosquitto listening on 127.0.0.1:%d (the guest reaches it as %s)", broker.port, hil.BrokerAddr)

	watch, err := newWatcher(broker.port, chainID, p)
	if err != nil {
		return nil, err
	}
	defer watch.close()

	if err := writeCollectorConfig(f, broker.port); err != nil {
		return nil, err
	}
	coll, err := startCollector(ctx, f, procs, p, cfg.Verbose)
	if err != nil {
		return nil, err
	}
	p.say("collector running (seed %s…, %d winners per batch, draws each batch once it has ended)", drawSeed[:10], winners)

	// 5. The guest.
	g := newGuest(cfg, f)
	if err := g.writeConfig(); err != nil {
		return nil, err
	}
	p.say("booting the T-Box: guest clock %s UTC (host's now - %v - %v), drive starts about %s",
		g.clock.UTC().Format("2006-01-02 15:04:05"), cfg.Drive, clockMargin, g.simStart.UTC().Format("15:04"))
	t = time.Now()
	res, gerr := g.boot(ctx, kit, broker.port, p)
	if res != nil {
		p.say("guest powered off after %v (booted in %v)", since(t), res.BootTime.Round(time.Millisecond))
	}

	if ctx.Err() != nil {
		return nil, fmt.Errorf("interrupted: %w", ctx.Err())
	}
	rep = &Report{Seed: cfg.Seed, Drive: cfg.Drive, Pace: cfg.Pace, Device: addr}
	defer func() {
		if rep != nil {
			rep.Elapsed = time.Since(start)
		}
	}()
	if gerr != nil {
		rep.problem("guest: %v", gerr)
	}
	g.parse(rep)

	// 6. Let the collector finish: every attestation acked, every batch
	// drawn; then stop it so that its database can be read.
	watch.waitSettled(ctx, rep, coll, 20*time.Second)
	if err := coll.stop(10 * time.Second); err != nil {
		rep.problem("collector: %v", err)
	}
	watch.close()
	rep.Attestations = watch.attestations()
	rep.Nacks = watch.nacks()
	rep.AckedThrough = watch.acked()

	// 7. The collector's view: stats and every batch's draw.
	if err := collectorResults(ctx, f, rep); err != nil {
		rep.problem("collector results: %v", err)
	}

	// 8. The simulator's truth, and every check.
	if err := compareTruth(cfg, g, rep); err != nil {
		rep.problem("truth: %v", err)
	}
	rep.check(cfg)
	return rep, nil
}

// workDir returns the run's directory and its cleanup.
func workDir(keep string) (*files, func(), error) {
	var dir string
	cleanup := func() {}
	if keep != "" {
		if err := os.MkdirAll(keep, 0o700); err != nil {
			return nil, nil, err
		}
		d, err := filepath.Abs(keep)
		if err != nil {
			return nil, nil, err
		}
		dir = d
	} else {
		d, err := os.MkdirTemp("", "tbox-demo-")
		if err != nil {
			return nil, nil, err
		}
		dir = d
		cleanup = func() { os.RemoveAll(d) }
	}
	root, err := hil.RepoRoot()
	if err != nil {
		cleanup()
		return nil, nil, err
	}
	j := func(n string) string { return filepath.Join(dir, n) }
	td := filepath.Join(root, "agent", "profile", "testdata")
	return &files{
		dir: dir, tboxd: j("arm/tboxd"), vsim: j("arm/vsim"), clocksync: j("arm/clocksync"),
		collector: j("collector"), key: j("device.key"), registry: j("devices.txt"),
		tboxdConf: j("tboxd.toml"), collConf: j("collector.toml"), db: j("collector.db"),
		profile: filepath.Join(td, "ev.toml"), dbc: filepath.Join(td, "ev.dbc"),
	}, cleanup, nil
}

// build cross-compiles the guest's binaries and builds the host collector,
// two at a time.
func build(ctx context.Context, f *files) error {
	root, err := hil.RepoRoot()
	if err != nil {
		return err
	}
	g, gctx := errgroup.WithContext(ctx)
	g.SetLimit(2)
	for pkg, out := range map[string]string{"./cmd/tboxd": f.tboxd, "./cmd/vsim": f.vsim, "./hil/demo/clocksync": f.clocksync} {
		g.Go(func() error { return hil.CrossBuild(gctx, pkg, out) })
	}
	g.Go(func() error {
		cmd := commandContext(gctx, "go", "build", "-trimpath", "-o", f.collector, "./cmd/collector")
		cmd.Dir = root
		if b, err := cmd.CombinedOutput(); err != nil {
			return fmt.Errorf("go build ./cmd/collector: %w\n%s", err, b)
		}
		return nil
	})
	return g.Wait()
}

// printer writes progress lines stamped with the time since the start.
type printer struct {
	mu    sync.Mutex
	w     io.Writer
	start time.Time
}

func (p *printer) say(format string, a ...any) {
	p.mu.Lock()
	defer p.mu.Unlock()
	fmt.Fprintf(p.w, "[%5.1fs] %s\n", time.Since(p.start).Seconds(), fmt.Sprintf(format, a...))
}

func since(t time.Time) time.Duration { return time.Since(t).Round(100 * time.Millisecond) }

// logfmt parses the key=value pairs of a slog text line (values may be
// quoted).
func logfmt(line string) map[string]string {
	kv := map[string]string{}
	s := line
	for s != "" {
		s = strings.TrimLeft(s, " ")
		eq := strings.IndexByte(s, '=')
		if eq <= 0 {
			break
		}
		key := s[:eq]
		s = s[eq+1:]
		var val string
		if strings.HasPrefix(s, `"`) {
			if q, err := strconv.QuotedPrefix(s); err == nil {
				val, _ = strconv.Unquote(q)
				s = s[len(q):]
			} else {
				val, s = s, ""
			}
		} else if sp := strings.IndexByte(s, ' '); sp >= 0 {
			val, s = s[:sp], s[sp:]
		} else {
			val, s = s, ""
		}
		kv[key] = val
	}
	return kv
}
