package main

import (
	"bytes"
	"encoding/hex"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/csop/tbox/agent/profile"
	"github.com/csop/tbox/hil/vehicle"
)

// A candump log of a CAN FD car (ev_fd.toml: the odometer in bytes 8 to 11
// of a 16-byte frame, the speed in a 64-byte one) replays to the
// simulator's ground truth exactly, and decode reads every profile frame.
// 64-byte FD frames of the biometric DMS_FaceFD, carrying the marker, are
// mixed in: the privacy filter drops them as it does classic ones, and the
// marker is in no output.
func TestReplayFD(t *testing.T) {
	path := filepath.Join(profileDir, "ev_fd.toml")
	p, err := profile.Load(path)
	if err != nil {
		t.Fatal(err)
	}
	log, truth := driveLog(t, p, vehicle.Scenario{
		Seed: 21, Start: start, Duration: time.Hour,
		ModeChanges: true, StopAndGo: true, Noise: 3,
		OdometerHz: 2, SpeedHz: 5, ModeHz: 1,
	})
	if truth.Meters < 10000 || !bytes.Contains(log, []byte(" 4A0##0")) {
		t.Fatalf("truth %d m, FD odometer lines %v: not a drive to judge", truth.Meters, bytes.Contains(log, []byte(" 4A0##0")))
	}
	// A DMS_FaceFD frame after every 40th line, at that line's time.
	marker := strings.ToUpper(hex.EncodeToString(bytes.Repeat([]byte(vehicle.BiometricMarker), 8)))
	var mixed bytes.Buffer
	injected := 0
	for i, line := range strings.SplitAfter(string(log), "\n") {
		mixed.WriteString(line)
		if ts, _, ok := strings.Cut(line, " "); ok && i%40 == 0 {
			mixed.WriteString(ts + " can0 4A3##1" + marker + "\n")
			injected++
		}
	}
	if injected < 100 {
		t.Fatalf("%d biometric frames injected", injected)
	}
	key, addr := newKey(t)
	r := tboxctl(t, bytes.NewReader(mixed.Bytes()), "replay", "--profile", path, "--key", key)
	if r.code != 0 {
		t.Fatalf("replay: exit %d: %s", r.code, r.stderr)
	}
	atts := parseLines(t, r.stdout)
	checkChain(t, defaultChainID, addr, atts)
	checkTruth(t, atts, r.stdout, truth)

	d := tboxctl(t, bytes.NewReader(mixed.Bytes()), "decode", "--profile", path)
	if d.code != 0 {
		t.Fatalf("decode: exit %d: %s", d.code, d.stderr)
	}
	if n, want := strings.Count(d.stdout, "\n"), truth.Frames.Odometer+truth.Frames.Speed+truth.Frames.DriveMode; n != want {
		t.Errorf("decode printed %d readings, the drive has %d FD profile frames", n, want)
	}
	for _, out := range []string{r.stdout, r.stderr, d.stdout, d.stderr} {
		if strings.Contains(strings.ToUpper(out), marker[:16]) || strings.Contains(out, vehicle.BiometricMarker) {
			t.Fatal("the biometric marker reached the output")
		}
	}
}
