package main

import (
	"bytes"
	"context"
	"errors"
	"io"
	"os"
	"strings"
	"testing"

	"go.uber.org/goleak"

	"github.com/csop/tbox/hil"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// TestDemo runs the whole demo once: the ARM tboxd in the emulated T-Box,
// mosquitto and the collector on the host. It skips only where the
// emulated T-Box cannot run at all (as the hil tests do).
func TestDemo(t *testing.T) {
	if testing.Short() {
		t.Skip("the demo boots the emulated T-Box for about a minute")
	}
	cfg := defaultConfig()
	var out bytes.Buffer
	cfg.Out = &out
	rep, err := run(context.Background(), cfg)
	if errors.Is(err, hil.ErrUnavailable) && os.Getenv("CI") == "" {
		t.Skipf("emulated T-Box: %v", err)
	}
	if rep != nil {
		rep.print(&out)
	}
	t.Log("\n" + out.String())
	if err != nil {
		t.Fatalf("demo: %v", err)
	}
	for _, p := range rep.Problems {
		t.Errorf("problem: %s", p)
	}

	// Every attestation verified (by the collector's ack and by the demo)
	// and none refused.
	if len(rep.Attestations) == 0 {
		t.Fatal("no attestations")
	}
	var meters int64
	modes := map[string]int64{}
	for _, s := range rep.Attestations {
		if s.verified != nil {
			t.Errorf("seq %d: %v", s.att.Seq, s.verified)
		}
		if s.att.Seq > rep.AckedThrough {
			t.Errorf("seq %d not acked (acked through %d)", s.att.Seq, rep.AckedThrough)
		}
		meters += int64(s.att.Meters)
		for _, m := range s.att.Modes {
			modes[m.Mode] += int64(m.Meters)
		}
	}
	if len(rep.Nacks) > 0 {
		t.Errorf("refused: %v", rep.Nacks)
	}
	if rep.Stats == nil || len(rep.Stats.Devices) != 1 || rep.Stats.Devices[0].Attestations != uint64(len(rep.Attestations)) {
		t.Errorf("collector stats %+v, want one device with %d attestations", rep.Stats, len(rep.Attestations))
	}

	// The meters equal the simulator's truth, in total and per drive mode.
	if rep.Guest == nil || rep.Guest.Truth == nil {
		t.Fatal("no truth from vsim")
	}
	if meters != rep.Guest.Truth.Meters || meters == 0 {
		t.Errorf("attested %d m, vsim's truth %d m", meters, rep.Guest.Truth.Meters)
	}
	want := map[string]int64{}
	for _, b := range rep.Guest.Truth.Batches {
		for _, m := range b.Modes {
			want[m.Mode] += m.Meters
		}
	}
	if !equalModes(modes, want) {
		t.Errorf("meters per drive mode %v, vsim's truth %v", modes, want)
	}

	// Every batch drawn, reproducibly, with Stones for the only device.
	if len(rep.Rows) == 0 {
		t.Fatal("no rows")
	}
	for _, rw := range rep.Rows {
		if rw.Attestations > 0 && (!rw.Drawn || rw.Micro == 0) {
			t.Errorf("batch %d: drawn %v, %d µStone won", rw.Batch, rw.Drawn, rw.Micro)
		}
	}
	if !strings.Contains(out.String(), "demo OK") {
		t.Error(`the demo did not print "demo OK"`)
	}
	t.Logf("demo took %v", rep.Elapsed)
}

func TestUsage(t *testing.T) {
	tests := []struct {
		args []string
		want int
		msg  string
	}{
		{[]string{"--pace", "0"}, 2, "--pace 0"},
		{[]string{"--drive", "5m"}, 2, "--drive 5m0s"},
		{[]string{"--bogus"}, 2, "flag provided but not defined"},
		{[]string{"extra"}, 2, `unexpected argument "extra"`},
		{[]string{"-h"}, 0, "-seed"},
	}
	for _, tt := range tests {
		var stderr bytes.Buffer
		if got := mainCode(context.Background(), tt.args, io.Discard, &stderr); got != tt.want {
			t.Errorf("%v: exit %d, want %d", tt.args, got, tt.want)
		}
		if !strings.Contains(stderr.String(), tt.msg) {
			t.Errorf("%v: stderr %q, want it to name %q", tt.args, stderr.String(), tt.msg)
		}
	}
}
