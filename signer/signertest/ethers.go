// Package signertest helps tests check attestations against an independent
// implementation: ethers v6, run by Node.js.
package signertest

import (
	"context"
	"encoding/json"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// Ethers is a Node.js with ethers v6 installed, and the verify script.
type Ethers struct {
	Node   string // the node binary
	Prefix string // the npm prefix holding node_modules/ethers
	Script string // signer/testdata/interop/verify.mjs
}

// RequireEthers returns ethers v6, installing it with npm into
// <module root>/.cache/npm-ethers when it is not there yet. The test is
// skipped only when node or npm is absent; a failed install fails it.
func RequireEthers(t testing.TB) Ethers {
	t.Helper()
	node, errNode := exec.LookPath("node")
	npm, errNpm := exec.LookPath("npm")
	if errNode != nil || errNpm != nil {
		t.Skip("node and npm are needed for the ethers interop test; install Node.js (v18+) to run it")
	}
	root, err := moduleRoot()
	if err != nil {
		t.Fatal(err)
	}
	e := Ethers{
		Node:   node,
		Prefix: filepath.Join(root, ".cache", "npm-ethers"),
		Script: filepath.Join(root, "signer", "testdata", "interop", "verify.mjs"),
	}
	pkg := filepath.Join(e.Prefix, "node_modules", "ethers", "package.json")
	if b, err := os.ReadFile(pkg); err == nil {
		var p struct{ Version string }
		if json.Unmarshal(b, &p) == nil && strings.HasPrefix(p.Version, "6.") {
			return e
		}
	}
	if err := os.MkdirAll(e.Prefix, 0o755); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, npm, "install", "--prefix", e.Prefix, "--no-audit", "--no-fund", "--loglevel=error", "ethers@6")
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("npm install ethers@6 into %s: %v\n%s", e.Prefix, err, out)
	}
	return e
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
