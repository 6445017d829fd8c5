package main

import (
	"bytes"
	"encoding/hex"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/csop/tbox/hil/vehicle"
)

// TestBiometricNeverLeaves plays a drive whose biometric messages (DMS_Face,
// VA_VoiceCmd, FPR_Auth) carry vehicle.BiometricMarker through decode and
// replay --state: the marker, as bytes or as the hex a candump line spells
// it with, is in no output, no message and no byte of any file of the state
// directory.
func TestBiometricNeverLeaves(t *testing.T) {
	p := loadEV(t)
	log, truth := driveLog(t, p, vehicle.Scenario{
		Seed: 5, Start: start, Duration: 40 * time.Minute,
		Biometric: true, ModeChanges: true, Noise: 3,
	})
	if truth.Frames.Biometric == 0 {
		t.Fatal("the drive has no biometric frames")
	}
	needles := [][]byte{
		[]byte(vehicle.BiometricMarker),
		[]byte(strings.ToUpper(hex.EncodeToString([]byte(vehicle.BiometricMarker)))),
		[]byte(hex.EncodeToString([]byte(vehicle.BiometricMarker))),
	}
	// The log itself holds the marker: the scan below can find it.
	if !bytes.Contains(log, needles[1]) {
		t.Fatalf("the log does not spell the marker as %s", needles[1])
	}
	check := func(what string, b []byte) {
		t.Helper()
		for _, n := range needles {
			if bytes.Contains(b, n) {
				t.Errorf("%s holds the biometric marker %q", what, n)
			}
		}
	}

	logPath := filepath.Join(t.TempDir(), "drive.log")
	if err := os.WriteFile(logPath, log, 0o600); err != nil {
		t.Fatal(err)
	}
	dec := tboxctl(t, bytes.NewReader(log), "decode", "--profile", evProfile)
	if dec.code != 0 || dec.stdout == "" {
		t.Fatalf("decode: exit %d, stderr %q", dec.code, dec.stderr)
	}
	check("decode stdout", []byte(dec.stdout))
	check("decode stderr", []byte(dec.stderr))
	if strings.Count(dec.stdout, "\n") != truth.Frames.Odometer+truth.Frames.Speed+truth.Frames.DriveMode {
		t.Errorf("decode printed %d readings, the drive has %d profile frames", strings.Count(dec.stdout, "\n"),
			truth.Frames.Odometer+truth.Frames.Speed+truth.Frames.DriveMode)
	}

	key, _ := newKey(t)
	state := filepath.Join(t.TempDir(), "state")
	// Two runs, so that the state is written, reopened and written again.
	half := bytes.LastIndexByte(log[:len(log)/2], '\n') + 1
	for i, part := range [][]byte{log[:half], log[half:]} {
		r := tboxctl(t, bytes.NewReader(part), "replay", "--profile", evProfile, "--key", key, "--state", state)
		if r.code != 0 || r.stdout == "" {
			t.Fatalf("replay %d: exit %d, stderr %q", i+1, r.code, r.stderr)
		}
		check("replay stdout", []byte(r.stdout))
		check("replay stderr", []byte(r.stderr))
	}
	r := tboxctl(t, nil, "replay", "--profile", evProfile, "--key", key, "--log", logPath)
	check("replay --log stdout", []byte(r.stdout))
	check("replay --log stderr", []byte(r.stderr))
	o := tboxctl(t, nil, "outbox", "--state", state)
	check("outbox stdout", []byte(o.stdout))
	check("outbox stderr", []byte(o.stderr))

	files := 0
	err := filepath.WalkDir(state, func(path string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		b, err := os.ReadFile(path)
		if err != nil {
			return err
		}
		files++
		check(path, b)
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if files < 2 {
		t.Errorf("the state directory holds %d files; the scan saw nothing", files)
	}
}
