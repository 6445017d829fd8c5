package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"math"
	"os"
	"sync"
	"time"

	"github.com/csop/tbox/agent/profile"
	"github.com/csop/tbox/can"
	"github.com/csop/tbox/can/socketcan"
	"github.com/csop/tbox/cmd/internal/buildinfo"
	"github.com/csop/tbox/hil/vehicle"
)

// usageError is bad usage or bad configuration: exit code 2. shown means
// the flag package has already printed it, with the usage.
type usageError struct {
	err   error
	shown bool
}

func (e *usageError) Error() string { return e.err.Error() }
func (e *usageError) Unwrap() error { return e.err }

func usage(format string, a ...any) error { return &usageError{err: fmt.Errorf(format, a...)} }

func run(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("vsim", flag.ContinueOnError)
	fs.SetOutput(stderr)
	var (
		profilePath = fs.String("profile", "", "vehicle profile (TOML)")
		seed        = fs.Int64("seed", 1, "random seed: the same seed gives the same frames")
		duration    = fs.Duration("duration", 8*time.Hour, "length of the simulated drive")
		startStr    = fs.String("start", "", "start time (RFC 3339; default: the drive ends now)")
		logPath     = fs.String("log", "", "write a candump -l log here (\"-\" for stdout; the default without --iface)")
		iface       = fs.String("iface", "", "send the frames on this SocketCAN interface")
		pace        = fs.Float64("pace", 1, "with --iface: speed-up against the recorded pace (60 = an hour a minute)")
		truthPath   = fs.String("truth", "", "write the ground truth JSON here")
		bus         = fs.String("bus", "can0", "name of the default bus in the frames")
		odometer    = fs.Float64("odometer-km", 0, "odometer at the start in km (0: seeded)")
		parking     = fs.Bool("parking", true, "trips separated by parked periods (bus silent)")
		modes       = fs.Bool("modes", true, "drive mode changes")
		traffic     = fs.Bool("traffic", true, "stop-and-go traffic")
		noise       = fs.Int("noise", 10, "number of unrelated messages on the bus")
		biometric   = fs.Bool("biometric", false, "send the profile's biometric messages with a marker payload")
		rollbacks   = fs.Int("rollbacks", 0, "odometer rollbacks to inject")
		jumps       = fs.Int("jumps", 0, "odometer jumps to inject")
		second      = fs.Bool("second-device", false, "a second sender of conflicting odometer frames")
		gaps        = fs.Int("gaps", 0, "windows without odometer frames")
		silentAt    = fs.Duration("silent-at", 0, "with --silent-for: the odometer (frames, or the ECU's answers) falls silent this far into the drive")
		silentFor   = fs.Duration("silent-for", 0, "how long the odometer stays silent from --silent-at")
		odoHz       = fs.Float64("odometer-hz", 10, "odometer frames per second while driving")
		speedHz     = fs.Float64("speed-hz", 50, "speed frames per second while driving")
		modeHz      = fs.Float64("mode-hz", 5, "drive-mode frames per second while driving")
	)
	showVersion := fs.Bool("version", false, "print the version and exit")
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return err
		}
		return &usageError{err: err, shown: true}
	}
	if *showVersion {
		fmt.Fprintln(stdout, buildinfo.Line("vsim", version, buildTime))
		return nil
	}
	if fs.NArg() > 0 {
		return usage("unexpected argument %q", fs.Arg(0))
	}
	if *profilePath == "" {
		return usage("--profile is required")
	}
	if *duration <= 0 {
		return usage("--duration %v: want a length > 0, such as 2h", *duration)
	}
	// The default drive ends now, so that a log replayed at once is neither
	// in the future nor older than the binaries that read it.
	start := time.Now().Add(-*duration).Truncate(time.Second)
	if *startStr != "" {
		var err error
		if start, err = time.Parse(time.RFC3339, *startStr); err != nil {
			return usage("--start %q: want RFC 3339 such as 2026-01-01T08:00:00Z", *startStr)
		}
	}
	if *logPath != "" && *iface != "" {
		return usage("--log and --iface exclude each other")
	}
	paceSet := false
	fs.Visit(func(f *flag.Flag) { paceSet = paceSet || f.Name == "pace" })
	if paceSet && *iface == "" {
		return usage("--pace %v: pacing needs --iface (a log is written at full speed)", *pace)
	}
	if !(*pace > 0) || math.IsInf(*pace, 0) {
		return usage("--pace %v: want a speed-up factor > 0 (1 = real time, 60 = an hour a minute)", *pace)
	}
	p, err := profile.Load(*profilePath)
	if err != nil {
		return &usageError{err: err}
	}
	for _, r := range []struct {
		name string
		v    float64
	}{{"odometer-hz", *odoHz}, {"speed-hz", *speedHz}, {"mode-hz", *modeHz}} {
		if !(r.v > 0 && r.v <= 1000) {
			return &usageError{err: fmt.Errorf("--%s: want a rate in (0, 1000] frames per second, found %v", r.name, r.v)}
		}
	}
	s := vehicle.Scenario{
		Seed: *seed, Start: start, Duration: *duration, Bus: *bus, StartOdometer: *odometer * 1000,
		Parking: *parking, ModeChanges: *modes, StopAndGo: *traffic, Noise: *noise, Biometric: *biometric,
		Rollbacks: *rollbacks, Jumps: *jumps, SecondDevice: *second, Gaps: *gaps,
		OdometerHz: *odoHz, SpeedHz: *speedHz, ModeHz: *modeHz,
		SilentAt: *silentAt, SilentFor: *silentFor,
	}
	if *silentAt < 0 || *silentFor < 0 {
		return usage("--silent-at %v, --silent-for %v: want durations >= 0", *silentAt, *silentFor)
	}
	var sink vehicle.Sink
	var flush func() error
	var conn *socketcan.Conn
	var finishECU func() *vehicle.PolledTruth
	switch {
	case *iface != "":
		// The profile's FD messages need a socket that writes CAN FD
		// frames, on an interface that carries them.
		var opts []socketcan.Option
		for _, b := range p.Buses() {
			if p.FD(b) {
				opts = []socketcan.Option{socketcan.WithFD(true)}
			}
		}
		c, err := socketcan.Open(*iface, opts...)
		if err != nil {
			if errors.Is(err, socketcan.ErrNoInterface) {
				return &usageError{err: fmt.Errorf("--iface: %w", err)}
			}
			return fmt.Errorf("--iface: %w", err)
		}
		defer c.Close()
		conn = c
		sink, flush = vehicle.NewPacedSink(ctx, c, *pace, nil), c.Close
		if po, ok := p.Poll(); ok {
			// The odometer is asked for: answer the requests as the ECU.
			stop, err := runECU(ctx, p, po, *iface, &s)
			if err != nil {
				return err
			}
			defer stop() // idempotent: the error paths
			finishECU = stop
		}
	default:
		w := stdout
		if *logPath != "" && *logPath != "-" {
			f, err := os.Create(*logPath)
			if err != nil {
				return fmt.Errorf("log: %w", err)
			}
			defer f.Close()
			w = f
		}
		ls := vehicle.NewLogSink(w)
		sink, flush = ls, ls.Flush
	}
	write := func(f *can.Frame) error {
		if err := ctx.Err(); err != nil {
			return err
		}
		return sink.WriteFrame(f)
	}
	truth, err := s.Frames(p, write)
	if finishECU != nil {
		// The tester asks on for a moment after the drive: its last
		// request finds the final odometer.
		select {
		case <-ctx.Done():
		case <-time.After(ecuLinger):
		}
		polled := finishECU()
		truth.Polled = polled
		truth.FirstOdometer, truth.HighWater, truth.Meters = polled.FirstOdometer, polled.HighWater, polled.Meters
	}
	if ferr := flush(); err == nil {
		err = ferr
	}
	if err != nil {
		if errors.Is(err, vehicle.ErrScenario) {
			return &usageError{err: err}
		}
		return err
	}
	if *truthPath != "" {
		b, err := json.MarshalIndent(truth, "", " ")
		if err != nil {
			return fmt.Errorf("truth: %w", err)
		}
		if err := os.WriteFile(*truthPath, append(b, '\n'), 0o644); err != nil {
			return fmt.Errorf("truth: %w", err)
		}
	}
	fmt.Fprintf(stderr, "vsim: %d frames, %d m credited in %d batches (drove %.0f m)\n",
		truth.Frames.Total, truth.Meters, len(truth.Batches), truth.TrueDistance)
	if pt := truth.Polled; pt != nil {
		fmt.Fprintf(stderr, "vsim: ECU: %d requests, %d answered, %d left unanswered (silent), %d before the drive, %d foreign frames, %d answers abandoned\n",
			pt.Requests, pt.Answers, pt.Silent, pt.Early, pt.Unasked, pt.Abandoned)
	}
	if conn != nil {
		st := conn.Stats()
		fmt.Fprintf(stderr, "vsim: %s: %d frames sent, %d retries on a full TX queue\n", *iface, st.TxFrames, st.TxRetries)
	}
	return nil
}

// ecuLinger is how long the ECU keeps answering after the drive's last
// frame.
const ecuLinger = time.Second

// runECU answers the odometer requests on iface until the returned stop,
// which gives what the ECU answered.
func runECU(ctx context.Context, p *profile.Profile, po *profile.Poll, iface string, s *vehicle.Scenario) (stop func() *vehicle.PolledTruth, err error) {
	ecu, err := vehicle.NewECU(p)
	if err != nil {
		return nil, &usageError{err: err}
	}
	port, err := socketcan.Open(iface, socketcan.WithFilter(can.NewFilter(po.Request)))
	if err != nil {
		return nil, fmt.Errorf("--iface: ECU socket: %w", err)
	}
	s.ECU = ecu
	ectx, cancel := context.WithCancel(ctx)
	done := make(chan error, 1)
	go func() { done <- ecu.Run(ectx, port) }()
	var once sync.Once
	var truth vehicle.PolledTruth
	return func() *vehicle.PolledTruth {
		once.Do(func() {
			cancel()
			if err := <-done; err != nil {
				fmt.Fprintln(os.Stderr, "vsim: ECU:", err)
			}
			port.Close()
			truth = ecu.Truth()
		})
		return &truth
	}, nil
}
