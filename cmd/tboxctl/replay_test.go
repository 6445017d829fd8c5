package main

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/csop/tbox/hil/vehicle"
	"github.com/csop/tbox/signer"
	"github.com/csop/tbox/store"
)

// shortDrive is two hours of driving with mode changes and traffic.
func shortDrive(t testing.TB, seed int64) ([]byte, vehicle.Truth) {
	t.Helper()
	return driveLog(t, loadEV(t), vehicle.Scenario{
		Seed: seed, Start: start, Duration: 2 * time.Hour,
		ModeChanges: true, StopAndGo: true, Noise: 2,
		OdometerHz: 5, SpeedHz: 5, ModeHz: 1,
	})
}

func sumMeters(atts []*signer.Attestation) int64 {
	var m int64
	for _, a := range atts {
		m += int64(a.Meters)
	}
	return m
}

// checkChain checks atts with signer's own checker: one device, seq 1..n.
func checkChain(t *testing.T, chainID uint64, device signer.Address, atts []*signer.Attestation) {
	t.Helper()
	cc := signer.NewChainChecker(chainID, signer.WithDevice(device))
	for _, a := range atts {
		for _, p := range cc.Check(a) {
			t.Errorf("chain: %v", p)
		}
	}
}

func TestReplay(t *testing.T) {
	log, truth := shortDrive(t, 11)
	key, addr := newKey(t)
	r := tboxctl(t, bytes.NewReader(log), "replay", "--profile", evProfile, "--key", key)
	if r.code != 0 {
		t.Fatalf("exit %d, stderr %q", r.code, r.stderr)
	}
	atts := parseLines(t, r.stdout)
	if len(atts) < 12 {
		t.Fatalf("%d attestations for two hours of driving, want at least 12", len(atts))
	}
	checkChain(t, defaultChainID, addr, atts)
	if got := sumMeters(atts); got != truth.Meters {
		t.Errorf("meters %d, ground truth %d", got, truth.Meters)
	}
	for _, a := range atts {
		if a.Flags != 0 || a.Batches != 1 {
			t.Errorf("seq %d: flags %v, batches %d on a clean drive", a.Seq, signer.FlagNames(a.Flags), a.Batches)
		}
	}
	if v := tboxctl(t, strings.NewReader(r.stdout), "verify", "--device", addr.String()); v.code != 0 {
		t.Errorf("verify: exit %d\n%s%s", v.code, v.stdout, v.stderr)
	}

	// The same log gives the same attestations, byte for byte (RFC 6979).
	again := tboxctl(t, bytes.NewReader(log), "replay", "--profile", evProfile, "--key", key)
	if again.stdout != r.stdout {
		t.Error("a second replay of the same log printed other attestations")
	}

	// --log reads the same as stdin.
	path := filepath.Join(t.TempDir(), "drive.log")
	if err := os.WriteFile(path, log, 0o600); err != nil {
		t.Fatal(err)
	}
	if f := tboxctl(t, nil, "replay", "--profile", evProfile, "--key", key, "--log", path); f.stdout != r.stdout {
		t.Errorf("--log printed other attestations (exit %d, %s)", f.code, f.stderr)
	}
}

func TestReplayChainID(t *testing.T) {
	log, _ := shortDrive(t, 12)
	key, _ := newKey(t)
	r := tboxctl(t, bytes.NewReader(log), "replay", "--profile", evProfile, "--key", key, "--chain-id", "7")
	if r.code != 0 || r.stdout == "" {
		t.Fatalf("exit %d, stderr %q", r.code, r.stderr)
	}
	if v := tboxctl(t, strings.NewReader(r.stdout), "verify", "--chain-id", "7"); v.code != 0 {
		t.Errorf("verify --chain-id 7: exit %d\n%s", v.code, v.stdout)
	}
	if v := tboxctl(t, strings.NewReader(r.stdout), "verify"); v.code != 1 {
		t.Errorf("verify with the default chain ID: exit %d, want 1", v.code)
	}
}

// TestReplayState replays a drive in three parts with one --state DIR: the
// chain continues across runs (seq, prev), nothing is printed twice, the
// meters add up to the ground truth, and outbox prints what is held.
func TestReplayState(t *testing.T) {
	log, truth := shortDrive(t, 13)
	key, addr := newKey(t)
	state := filepath.Join(t.TempDir(), "state")
	lines := bytes.SplitAfter(log, []byte("\n"))
	cut1, cut2 := len(lines)/3, 2*len(lines)/3
	parts := [][]byte{
		bytes.Join(lines[:cut1], nil),
		bytes.Join(lines[cut1:cut2], nil),
		bytes.Join(lines[cut2:], nil),
		nil, // a run with nothing new prints nothing
	}
	var all []*signer.Attestation
	var out strings.Builder
	for i, part := range parts {
		r := tboxctl(t, bytes.NewReader(part), "replay", "--profile", evProfile, "--key", key, "--state", state)
		if r.code != 0 {
			t.Fatalf("run %d: exit %d, stderr %q", i+1, r.code, r.stderr)
		}
		atts := parseLines(t, r.stdout)
		if i < 3 && len(atts) == 0 {
			t.Fatalf("run %d printed nothing", i+1)
		}
		if i == 3 && len(atts) > 0 {
			t.Errorf("run 4 with an empty log printed %d attestations", len(atts))
		}
		if len(atts) > 0 && len(all) > 0 && atts[0].Seq != all[len(all)-1].Seq+1 {
			t.Errorf("run %d starts at seq %d, the last run ended at %d", i+1, atts[0].Seq, all[len(all)-1].Seq)
		}
		all = append(all, atts...)
		out.WriteString(r.stdout)
	}
	checkChain(t, defaultChainID, addr, all)
	if got := sumMeters(all); got != truth.Meters {
		t.Errorf("meters over three runs %d, ground truth %d", got, truth.Meters)
	}
	o := tboxctl(t, nil, "outbox", "--state", state)
	if o.code != 0 {
		t.Fatalf("outbox: exit %d, %s", o.code, o.stderr)
	}
	if o.stdout != out.String() {
		t.Errorf("outbox printed\n%s\nreplay printed\n%s", o.stdout, out.String())
	}
	if want := fmt.Sprintf("head %d, acked through 0, %d pending", len(all), len(all)); !strings.Contains(o.stderr, want) {
		t.Errorf("outbox summary %q, want %q", o.stderr, want)
	}

	// Another device's key is refused on this state: exit 2.
	other, _ := newKey(t)
	r := tboxctl(t, bytes.NewReader(parts[2]), "replay", "--profile", evProfile, "--key", other, "--state", state)
	if r.code != 2 || !strings.Contains(r.stderr, addr.String()) || r.stdout != "" {
		t.Errorf("other key: exit %d, stdout %q, stderr %q; want 2 naming the state's device", r.code, r.stdout, r.stderr)
	}
}

// TestUsage: unknown commands, bad flags and missing required flags are bad
// usage, exit 2 with a message; help is not an error.
func TestUsage(t *testing.T) {
	key, _ := newKey(t)
	for _, tc := range []struct {
		args []string
		code int
		says string
	}{
		{nil, 2, "usage"},
		{[]string{"frobnicate"}, 2, `unknown command "frobnicate"`},
		{[]string{"help"}, 0, "usage"},
		{[]string{"--help"}, 0, "usage"},
		{[]string{"keygen"}, 2, "--key is required"},
		{[]string{"keygen", "--key"}, 2, "flag needs an argument"},
		{[]string{"keygen", "--nope", "x"}, 2, "flag provided but not defined"},
		{[]string{"address"}, 2, "--key is required"},
		{[]string{"address", "--key", key, "extra"}, 2, `unexpected argument "extra"`},
		{[]string{"decode"}, 2, "--profile is required"},
		{[]string{"decode", "--profile", evProfile, "--speed"}, 2, "flag provided but not defined"},
		{[]string{"replay", "--profile", evProfile}, 2, "--key"},
		{[]string{"replay", "--key", key}, 2, "--profile"},
		{[]string{"replay", "--profile", evProfile, "--key", key, "--chain-id", "x"}, 2, "chain-id"},
		{[]string{"replay", "--profile", evProfile, "--key", key, "--chain-id", "-1"}, 2, "chain-id"},
		{[]string{"verify", "a", "b"}, 2, `unexpected argument "b"`},
		{[]string{"verify", "--device", "0x1234"}, 2, "--device"},
		{[]string{"verify", "--chain-id", ""}, 2, "chain-id"},
		{[]string{"outbox"}, 2, "--state is required"},
		{[]string{"decode", "-h"}, 0, "-profile"},
	} {
		t.Run(strings.Join(tc.args, " "), func(t *testing.T) {
			r := tboxctl(t, nil, tc.args...)
			if r.code != tc.code {
				t.Errorf("exit %d, want %d; stderr %q", r.code, tc.code, r.stderr)
			}
			if !strings.Contains(r.stderr, tc.says) {
				t.Errorf("stderr %q does not say %q", r.stderr, tc.says)
			}
			if r.stdout != "" {
				t.Errorf("stdout %q, want nothing", r.stdout)
			}
		})
	}
	if r := tboxctl(t, nil, "version"); r.code != 0 || !strings.HasPrefix(r.stdout, "tboxctl ") {
		t.Errorf("version: exit %d, %q", r.code, r.stdout)
	}
}

// TestOutboxOnlyLooks: tboxctl outbox never creates or writes state. A
// missing directory is bad usage (exit 2) and stays missing; a directory
// that a running agent holds is refused at once with a pointer to the
// agent's shell; afterwards the listing verifies as a part of a chain.
func TestOutboxOnlyLooks(t *testing.T) {
	missing := filepath.Join(t.TempDir(), "nosuch")
	r := tboxctl(t, nil, "outbox", "--state", missing)
	if r.code != 2 || !strings.Contains(r.stderr, "does not exist") {
		t.Errorf("missing state: exit %d, stderr %q", r.code, r.stderr)
	}
	if _, err := os.Stat(missing); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("tboxctl outbox created %s", missing)
	}

	state := t.TempDir()
	st, err := store.Open(state, nil)
	if err != nil {
		t.Fatal(err)
	}
	r = tboxctl(t, nil, "outbox", "--state", state)
	st.Close()
	if r.code != 2 || !strings.Contains(r.stderr, "att show") || !strings.Contains(r.stderr, "running agent") {
		t.Errorf("held state: exit %d, stderr %q", r.code, r.stderr)
	}
}
