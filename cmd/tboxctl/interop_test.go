package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/hex"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/csop/tbox/hil/vehicle"
	"github.com/csop/tbox/signer"
	"github.com/csop/tbox/signer/signertest"
)

// TestEthersInterop checks the attestations tboxctl replay prints, as
// printed, with ethers v6 (signer/testdata/interop/verify.mjs): ethers'
// EIP-712 digest equals ours and verifyTypedData recovers the device. It
// installs ethers into <module root>/.cache/npm-ethers when missing, as the
// signer's interop test does; it is skipped only when node or npm is absent.
func TestEthersInterop(t *testing.T) {
	ethers := signertest.RequireEthers(t)

	key, addr := newKey(t)
	log, _ := driveLog(t, loadEV(t), vehicle.Scenario{
		Seed: 9, Start: start, Duration: 3 * time.Hour, ModeChanges: true, StopAndGo: true, Rollbacks: 1, Gaps: 1,
		OdometerHz: 5, SpeedHz: 5, ModeHz: 1,
	})
	const chainID = 20220807
	r := tboxctl(t, bytes.NewReader(log), "replay", "--profile", evProfile, "--key", key)
	if r.code != 0 {
		t.Fatalf("replay: exit %d, %s", r.code, r.stderr)
	}
	atts := parseLines(t, r.stdout)
	if len(atts) < 10 {
		t.Fatalf("%d attestations", len(atts))
	}
	// The input of verify.mjs: each replay line untouched, as "att".
	var in bytes.Buffer
	for _, l := range strings.Split(strings.TrimSuffix(r.stdout, "\n"), "\n") {
		in.WriteString(`{"chainId":20220807,"att":`)
		in.WriteString(l)
		in.WriteString("}\n")
	}
	inPath := filepath.Join(t.TempDir(), "attestations.jsonl")
	if err := os.WriteFile(inPath, in.Bytes(), 0o600); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	var stderr bytes.Buffer
	cmd := exec.CommandContext(ctx, ethers.Node, ethers.Script, ethers.Prefix, inPath)
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("node verify.mjs: %v\n%s", err, stderr.Bytes())
	}
	sc := bufio.NewScanner(bytes.NewReader(out))
	i := 0
	for ; sc.Scan(); i++ {
		var res struct {
			Seq       uint64
			Digest    string
			Recovered string
		}
		if err := json.Unmarshal(sc.Bytes(), &res); err != nil {
			t.Fatalf("output line %d: %v: %s", i+1, err, sc.Bytes())
		}
		if i >= len(atts) {
			t.Fatal("more output lines than attestations")
		}
		a := atts[i]
		d := signer.Digest(chainID, a)
		if res.Seq != a.Seq || res.Digest != "0x"+hex.EncodeToString(d[:]) {
			t.Errorf("seq %d: ethers (seq %d) digest %s, ours 0x%x", a.Seq, res.Seq, res.Digest, d)
		}
		if res.Recovered != addr.String() {
			t.Errorf("seq %d: ethers recovers %s, the device is %s", a.Seq, res.Recovered, addr)
		}
	}
	if i != len(atts) {
		t.Fatalf("ethers checked %d of %d attestations\n%s", i, len(atts), stderr.Bytes())
	}
	t.Logf("ethers agrees on %d replayed attestations", i)
}
