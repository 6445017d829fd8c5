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

	"github.com/csop/tbox/agent/profile"
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
	// The same flags give the same log.
	again := filepath.Join(dir, "again.log")
	if err := run(context.Background(), []string{"--profile", evProfile, "--seed", "3", "--duration", "30m",
		"--log", again, "--biometric", "--noise", "2"}, &bytes.Buffer{}, &bytes.Buffer{}); err != nil {
		t.Fatal(err)
	}
	if b2, _ := os.ReadFile(again); !bytes.Equal(log, b2) {
		t.Error("same seed, different log")
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
		{[]string{"--profile", evProfile, "--duration", "0s"}, vehicle.ErrScenario, "duration"},
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
