package main

import (
	"bytes"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/csop/tbox/agent/profile"
	"github.com/csop/tbox/hil/vehicle"
	"github.com/csop/tbox/signer"
)

// A candump of a tester polling the car (its requests, the answers, the
// flow control before the rest of a multi-frame answer, and the car's other
// traffic) replays to the simulator's ground truth exactly: the sum, every
// batch and its drive modes. The ECU falls silent for 30 s mid-drive: that
// span carries GAP, and no meter is lost.
func TestReplayPolled(t *testing.T) {
	for _, name := range []string{"ev_obd.toml", "ev_uds.toml"} {
		t.Run(name, func(t *testing.T) {
			path := filepath.Join(profileDir, name)
			p, err := profile.Load(path)
			if err != nil {
				t.Fatal(err)
			}
			silentAt := 40 * time.Minute
			log, truth := driveLog(t, p, vehicle.Scenario{
				Seed: 17, Start: start, Duration: 2 * time.Hour,
				ModeChanges: true, StopAndGo: true, Noise: 3,
				OdometerHz: 2, SpeedHz: 5, ModeHz: 1,
				SilentAt: silentAt, SilentFor: 30 * time.Second,
			})
			if truth.Meters < 10000 {
				t.Fatalf("truth %d m: the drive is too short to judge", truth.Meters)
			}
			key, addr := newKey(t)
			r := tboxctl(t, bytes.NewReader(log), "replay", "--profile", path, "--key", key)
			if r.code != 0 {
				t.Fatalf("exit %d: %s", r.code, r.stderr)
			}
			atts := parseLines(t, r.stdout)
			checkChain(t, defaultChainID, addr, atts)
			checkTruth(t, atts, r.stdout, truth)
			silentBatch := uint64(vehicle.BatchOf(start.Add(silentAt + 15*time.Second)))
			for _, a := range atts {
				gap := a.Flags&signer.FlagGap != 0
				covers := a.Batch <= silentBatch && silentBatch < a.Batch+uint64(a.Batches)
				if gap != covers {
					t.Errorf("seq %d (batch %d): flags %v; the ECU was silent in batch %d", a.Seq, a.Batch, signer.FlagNames(a.Flags), silentBatch)
				}
			}
		})
	}
}

// decode reads the answers of a polled log; requests, flow control, other
// PIDs and other ECUs give nothing.
func TestDecodePolled(t *testing.T) {
	log := strings.Join([]string{
		"(1700000000.000000) can0 7DF#0201A6CCCCCCCCCC",
		"(1700000000.010000) can0 7E9#0641A600FFFFFFCC",
		"(1700000000.012000) can0 7E8#0641A600003039CC",
		"(1700000000.100000) can0 7DF#02010DCCCCCCCCCC",
		"(1700000000.110000) can0 7E8#03410D32CCCCCCCC",
		"(1700000000.200000) can0 7E8#037F0112CCCCCCCC",
		"(1700000000.300000) can0 220#2710000000000000",
		"",
	}, "\n")
	r := tboxctl(t, strings.NewReader(log), "decode", "--profile", filepath.Join(profileDir, "ev_obd.toml"))
	want := `{"t":1700000000.012000,"kind":"odometer","value":1234500}` + "\n" +
		`{"t":1700000000.300000,"kind":"speed","value":100}` + "\n"
	if r.code != 0 || r.stdout != want {
		t.Errorf("exit %d, stdout\n%s\nwant\n%s\nstderr %s", r.code, r.stdout, want, r.stderr)
	}
	uds := "(1700000000.000000) can0 7E0#0322F1A0CCCCCCCC\n" +
		"(1700000000.005000) can0 7E8#100B62F1A0000000\n" +
		"(1700000000.006000) can0 7E0#300000CCCCCCCCCC\n" +
		"(1700000000.007000) can0 7E8#210000BC614ECCCC\n"
	r = tboxctl(t, strings.NewReader(uds), "decode", "--profile", filepath.Join(profileDir, "ev_uds.toml"))
	if want := `{"t":1700000000.007000,"kind":"odometer","value":12345678}` + "\n"; r.stdout != want {
		t.Errorf("UDS: stdout %q, want %q (%s)", r.stdout, want, r.stderr)
	}
}
