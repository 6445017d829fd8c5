package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/csop/tbox/agent/profile"
	"github.com/csop/tbox/can"
	"github.com/csop/tbox/can/socketcan"
	"github.com/csop/tbox/hil/vehicle"
)

const evProfile = "../../agent/profile/testdata/ev.toml"

func TestRun(t *testing.T) {
	dir := t.TempDir()
	logPath, truthPath := filepath.Join(dir, "drive.log"), filepath.Join(dir, "truth.json")
	var stderr bytes.Buffer
	err := run(context.Background(), []string{"--profile", evProfile, "--seed", "3", "--duration", "30m",
		"--log", logPath, "--truth", truthPath, "--biometric", "--noise", "2"}, &bytes.Buffer{}, &stderr)
	if err != nil {
		t.Fatalf("run: %v (%s)", err, stderr.String())
	}
	b, err := os.ReadFile(truthPath)
	if err != nil {
		t.Fatal(err)
	}
	var tr vehicle.Truth
	if err := json.Unmarshal(b, &tr); err != nil {
		t.Fatal(err)
	}
	log, err := os.ReadFile(logPath)
	if err != nil {
		t.Fatal(err)
	}
	if lines := bytes.Count(log, []byte("\n")); lines != tr.Frames.Total || tr.Meters <= 0 {
		t.Errorf("log has %d lines, truth counts %d frames and %d m", lines, tr.Frames.Total, tr.Meters)
	}
	// By default the drive ends now: a log replayed at once is neither in
	// the future nor older than the binaries that read it.
	if d := time.Since(tr.End); d < 0 || d > time.Minute {
		t.Errorf("the default drive ends %v ago, want now", d)
	}
	// The same flags give the same log.
	start := tr.Start.Format(time.RFC3339)
	one, again := filepath.Join(dir, "one.log"), filepath.Join(dir, "again.log")
	for _, p := range []string{one, again} {
		if err := run(context.Background(), []string{"--profile", evProfile, "--seed", "3", "--duration", "30m", "--start", start,
			"--log", p, "--biometric", "--noise", "2"}, &bytes.Buffer{}, &bytes.Buffer{}); err != nil {
			t.Fatal(err)
		}
	}
	b1, _ := os.ReadFile(one)
	if b2, _ := os.ReadFile(again); !bytes.Equal(b1, b2) || len(b1) == 0 {
		t.Error("same seed and start, different log")
	}
}

func TestRunUsage(t *testing.T) {
	for _, c := range []struct {
		args []string
		want error
		text string
	}{
		{[]string{}, nil, "--profile"},
		{[]string{"--profile", evProfile, "--start", "yesterday"}, nil, "RFC 3339"},
		{[]string{"--profile", evProfile, "--log", "x", "--iface", "vcan0"}, nil, "exclude"},
		{[]string{"--profile", "../../agent/profile/testdata/bad/bad_unit.toml"}, profile.ErrUnit, "ticks"},
		{[]string{"--profile", evProfile, "--duration", "0s"}, nil, "--duration 0s: want a length > 0"},
		{[]string{"--profile", evProfile, "--duration", "-1h"}, nil, "--duration -1h0m0s: want a length > 0"},
		{[]string{"--bogus"}, nil, "bogus"},
		{[]string{"--profile", evProfile, "--pace", "60"}, nil, "needs --iface"},
		{[]string{"--profile", evProfile, "--iface", "vcan0", "--pace", "0"}, nil, "> 0"},
		{[]string{"--profile", evProfile, "--iface", "vcan0", "--pace", "-3"}, nil, "> 0"},
		{[]string{"--profile", evProfile, "--iface", "vcan0", "--pace", "NaN"}, nil, "> 0"},
	} {
		err := run(context.Background(), c.args, &bytes.Buffer{}, &bytes.Buffer{})
		var ue *usageError
		if !errors.As(err, &ue) {
			t.Errorf("run(%q) = %v, want a usage error (exit 2)", c.args, err)
			continue
		}
		if c.want != nil && !errors.Is(err, c.want) {
			t.Errorf("run(%q) = %v, want %v", c.args, err, c.want)
		}
		if !strings.Contains(err.Error(), c.text) {
			t.Errorf("run(%q) = %q, want it to mention %q", c.args, err, c.text)
		}
	}
}

// TestRunIfaceMissing: a CAN interface that does not exist is a usage error
// naming it (exit 2), before any frame is made.
func TestRunIfaceMissing(t *testing.T) {
	if runtime.GOOS != "linux" {
		t.Skip("SocketCAN exists only on Linux")
	}
	var stderr bytes.Buffer
	err := run(context.Background(), []string{"--profile", evProfile, "--duration", "1m", "--iface", "nosuchcan7"}, &bytes.Buffer{}, &stderr)
	var ue *usageError
	if !errors.As(err, &ue) || !errors.Is(err, socketcan.ErrNoInterface) {
		t.Fatalf("run with a missing interface = %v, want a usage error matching socketcan.ErrNoInterface", err)
	}
	if !strings.Contains(err.Error(), "nosuchcan7") {
		t.Errorf("error %q does not name the interface", err)
	}
}

// The FD sample car's drive is written as CAN FD frames (candump's "##"),
// each of its message's length, and reads back to the same frames.
func TestRunFD(t *testing.T) {
	dir := t.TempDir()
	logPath, truthPath := filepath.Join(dir, "drive.log"), filepath.Join(dir, "truth.json")
	if err := run(context.Background(), []string{"--profile", "../../agent/profile/testdata/ev_fd.toml", "--seed", "4", "--duration", "20m",
		"--log", logPath, "--truth", truthPath, "--noise", "2"}, &bytes.Buffer{}, &bytes.Buffer{}); err != nil {
		t.Fatal(err)
	}
	var tr vehicle.Truth
	if b, err := os.ReadFile(truthPath); err != nil || json.Unmarshal(b, &tr) != nil {
		t.Fatalf("truth: %v", err)
	}
	f, err := os.Open(logPath)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	wantLen := map[uint32]uint8{0x4A0: 16, 0x4A1: 8, 0x4A2: 64}
	fd := 0
	r := can.NewReader(f)
	for r.Receive() {
		fr := r.Frame()
		n, ok := wantLen[fr.ID]
		if !ok {
			continue
		}
		if !fr.IsFD() || fr.Len != n {
			t.Fatalf("frame %s: want a CAN FD frame of %d bytes", fr, n)
		}
		fd++
	}
	if err := r.Err(); err != nil {
		t.Fatal(err)
	}
	if want := tr.Frames.Odometer + tr.Frames.Speed + tr.Frames.DriveMode; fd != want || fd == 0 || tr.Meters <= 0 {
		t.Errorf("%d FD frames of the profile's messages, the truth counts %d (and %d m)", fd, want, tr.Meters)
	}
	if b, _ := os.ReadFile(logPath); !bytes.Contains(b, []byte(" 4A0##0")) {
		t.Error("the log has no candump FD line for the odometer")
	}
}
