package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/hex"
	"encoding/json"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/csop/tbox/hil/vehicle"
	"github.com/csop/tbox/signer"
)

// TestEthersInterop checks the attestations tboxctl replay prints, as
// printed, with ethers v6 (signer/testdata/interop/verify.mjs): ethers'
// EIP-712 digest equals ours and verifyTypedData recovers the device. It
// installs ethers into <module root>/.cache/npm-ethers when missing, as the
// signer's interop test does; it is skipped only when node or npm is absent.
func TestEthersInterop(t *testing.T) {
	node, errNode := exec.LookPath("node")
	npm, errNpm := exec.LookPath("npm")
	if errNode != nil || errNpm != nil {
		t.Skip("node and npm are needed for the ethers interop test; install Node.js (v18+) to run it")
	}
	root, err := moduleRoot()
	if err != nil {
		t.Fatal(err)
	}
	prefix := ethersPrefix(t, npm, root)

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
	cmd := exec.CommandContext(ctx, node, filepath.Join(root, "signer", "testdata", "interop", "verify.mjs"), prefix, inPath)
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

// ethersPrefix returns the npm prefix holding ethers v6, installing it into
// <module root>/.cache/npm-ethers when it is not there yet (the same
// directory signer's interop test uses).
func ethersPrefix(t *testing.T, npm, root string) string {
	t.Helper()
	prefix := filepath.Join(root, ".cache", "npm-ethers")
	pkg := filepath.Join(prefix, "node_modules", "ethers", "package.json")
	if b, err := os.ReadFile(pkg); err == nil {
		var p struct{ Version string }
		if json.Unmarshal(b, &p) == nil && strings.HasPrefix(p.Version, "6.") {
			return prefix
		}
	}
	if err := os.MkdirAll(prefix, 0o755); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, npm, "install", "--prefix", prefix, "--no-audit", "--no-fund", "--loglevel=error", "ethers@6")
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("npm install ethers@6 into %s: %v\n%s", prefix, err, out)
	}
	return prefix
}

// moduleRoot returns the directory of the go.mod above the working directory.
func moduleRoot() (string, error) {
	dir, err := os.Getwd()
	if err != nil {
		return "", err
	}
	for {
		if _, err := os.Stat(filepath.Join(dir, "go.mod")); err == nil {
			return dir, nil
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return "", errors.New("no go.mod above the working directory")
		}
		dir = parent
	}
}
