// Command demo is `make demo`: a simulated drive on vcan0 inside the emulated ARM T-Box, tboxd attesting and uploading to a local broker, the reference collector verifying, acking and drawing.
//
// What runs where:
//
//   - host: mosquitto on a free loopback port with the shipped
//     configuration (cmd/collector/deploy/mosquitto: mTLS only, the
//     per-device ACL), the collector (go build of cmd/collector, connecting
//     with its own certificate) with a fresh database, and this program,
//     which also subscribes to the attestation and reply topics, as the
//     rig's read-only capture identity, to show progress;
//   - guest (qemu-system-arm, Cortex-A15, TCG; package hil): tboxd and vsim
//     cross-compiled for GOARCH=arm GOARM=7, vcan0 in the guest kernel, the
//     T-Box's certificate and the rig's CA, and qemu's guestfwd from
//     10.0.2.100:1883 to the host's broker (a socat per connection).
//
// The bench is package hil/rig (the field rig the scenarios of issue 8 use
// too): the host processes, the guest's script and configuration, the MQTT
// capture, the collector's readers and the truth's alignment.
//
// Time: vsim plays a drive of --drive at --pace times the recorded pace and
// tboxd runs with can.time_scale = --pace, so the drive keeps its speeds
// and its 10-minute batches. The guest's clock is set from the host at boot
// to (now - drive - 30 min), so that the compressed drive ends in the past
// of the host's clock: every batch is closed by the end and the collector
// draws it. With no NTP in the guest the kernel calls its clock
// unsynchronized; the guest helper clocksync (hil/rig/clocksync) marks it synchronized, as NTP
// would, so that attestations do not carry CLOCK.
//
// The demo ends with a table: per batch the meters per drive mode, the
// attestations made and verified, the Stones the device won in the draw; and
// the comparison with the simulator's ground truth. It exits 0 only when
// every attestation was verified (by the collector and by the demo) and
// acked, none refused, none flagged CLOCK, the meters in total and per drive
// mode equal the truth, and every batch's draw is recorded and
// reproducible. Per batch the table shows the truth too: frames that the
// emulated CPU put on the bus late can cross a batch boundary (10 ms late at
// 120x is 1.2 s of driving), which moves meters between neighbouring batches
// and no more.
//
//	go run ./hil/demo [--seed N] [--drive 2h] [--pace 120] [-v] [--keep DIR]
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/csop/tbox/hil"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	code := mainCode(ctx, os.Args[1:], os.Stdout, os.Stderr)
	stop()
	os.Exit(code)
}

// mainCode runs the demo with command line args and returns the exit
// status: 0 success, 1 a failed check or a runtime error, 2 bad usage, 77
// when this machine cannot host the emulated T-Box.
func mainCode(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	cfg := defaultConfig()
	fs := flag.NewFlagSet("demo", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Int64Var(&cfg.Seed, "seed", cfg.Seed, "vehicle simulator seed")
	fs.DurationVar(&cfg.Drive, "drive", cfg.Drive, "length of the simulated drive")
	fs.Float64Var(&cfg.Pace, "pace", cfg.Pace, "speed-up of the drive and of tboxd's clock (can.time_scale)")
	fs.BoolVar(&cfg.Verbose, "v", false, "print the whole guest console and the collector's log")
	fs.StringVar(&cfg.Keep, "keep", "", "keep the working files (keys, configs, databases, logs) in this directory")
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return 0
		}
		return 2
	}
	if fs.NArg() > 0 {
		fmt.Fprintf(stderr, "demo: unexpected argument %q\n", fs.Arg(0))
		return 2
	}
	if err := cfg.check(); err != nil {
		fmt.Fprintln(stderr, "demo:", err)
		return 2
	}
	cfg.Out = stdout
	rep, err := run(ctx, cfg)
	if rep != nil {
		rep.print(stdout)
	}
	switch {
	case errors.Is(err, hil.ErrUnavailable):
		fmt.Fprintln(stderr, "demo:", err)
		return 77
	case err != nil:
		fmt.Fprintln(stderr, "demo:", err)
		return 1
	case len(rep.Problems) > 0:
		fmt.Fprintf(stderr, "demo: FAILED: %d problem(s), listed above\n", len(rep.Problems))
		return 1
	}
	return 0
}

// Config is one run of the demo.
type Config struct {
	Seed    int64
	Drive   time.Duration // simulated drive
	Pace    float64       // vsim --pace and tboxd can.time_scale
	Verbose bool
	Keep    string    // keep the working directory here; "" uses a temporary one
	Out     io.Writer // progress and the table; nil discards
}

func defaultConfig() Config {
	return Config{Seed: 6, Drive: 2 * time.Hour, Pace: 120}
}

func (c *Config) check() error {
	switch {
	case c.Drive < 20*time.Minute || c.Drive > 24*time.Hour:
		return fmt.Errorf("--drive %v: want 20m to 24h", c.Drive)
	case !(c.Pace >= 1 && c.Pace <= 1000):
		return fmt.Errorf("--pace %v: want 1 to 1000", c.Pace)
	}
	return nil
}
