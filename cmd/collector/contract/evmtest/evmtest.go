// Package evmtest runs MileageMining.sol (cmd/collector/contract) in
// @ethereumjs/vm through node and evm.mjs, for the tests.
package evmtest

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/csop/tbox/signer"
	"golang.org/x/crypto/sha3"
)

var installMu sync.Mutex

// EVM is node with the npm ci of package-lock.json, running evm.mjs.
type EVM struct {
	node    string
	dir     string // cmd/collector/contract
	modules string // the node_modules of the npm ci
}

// Require installs package-lock.json with npm ci into
// <module root>/.cache/npm-contract when it is not there yet (or stale). The
// test is skipped only when node or npm is absent and CI is unset.
func Require(t testing.TB) EVM {
	t.Helper()
	installMu.Lock() // the tests run in parallel; one npm ci at a time
	defer installMu.Unlock()
	node, errNode := exec.LookPath("node")
	npm, errNpm := exec.LookPath("npm")
	if errNode != nil || errNpm != nil {
		if os.Getenv("CI") != "" {
			t.Fatalf("node and npm are needed for the EVM test (CI is set): node: %v, npm: %v", errNode, errNpm)
		}
		t.Skip("node and npm are needed for the EVM test of MileageMining.sol; install Node.js (v18+) to run it")
	}
	root, err := ModuleRoot()
	if err != nil {
		t.Fatal(err)
	}
	prefix := filepath.Join(root, ".cache", "npm-contract")
	dir := filepath.Join(root, "cmd", "collector", "contract")
	lock, err := os.ReadFile(filepath.Join(dir, "package-lock.json"))
	if err != nil {
		t.Fatal(err)
	}
	installed, _ := os.ReadFile(filepath.Join(prefix, "package-lock.json"))
	_, errSolc := os.Stat(filepath.Join(prefix, "node_modules", "solc", "package.json"))
	if !bytes.Equal(lock, installed) || errSolc != nil {
		if err := os.MkdirAll(prefix, 0o755); err != nil {
			t.Fatal(err)
		}
		pkg, err := os.ReadFile(filepath.Join(dir, "package.json"))
		if err != nil {
			t.Fatal(err)
		}
		// The lockfile is copied last: it marks a finished install only
		// after npm ci succeeded.
		os.Remove(filepath.Join(prefix, "package-lock.json"))
		if err := os.WriteFile(filepath.Join(prefix, "package.json"), pkg, 0o644); err != nil {
			t.Fatal(err)
		}
		tmpLock := filepath.Join(prefix, "package-lock.json")
		if err := os.WriteFile(tmpLock, lock, 0o644); err != nil {
			t.Fatal(err)
		}
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
		defer cancel()
		cmd := exec.CommandContext(ctx, npm, "ci", "--no-audit", "--no-fund", "--loglevel=error")
		cmd.Dir = prefix
		if out, err := cmd.CombinedOutput(); err != nil {
			os.Remove(tmpLock)
			t.Fatalf("npm ci in %s: %v\n%s", prefix, err, out)
		}
	}
	return EVM{node: node, dir: dir, modules: filepath.Join(prefix, "node_modules")}
}

// ModuleRoot returns the directory of the go.mod above the working directory.
func ModuleRoot() (string, error) {
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
			return "", fmt.Errorf("no go.mod above %s", dir)
		}
		dir = parent
	}
}

// Tx is one call to the deployed contract.
type Tx struct {
	From string `json:"from,omitempty"`
	Data string `json:"data"`
}

type Result struct {
	OK   bool   `json:"ok"`
	Gas  uint64 `json:"gas"`
	Exec uint64 `json:"exec"`
	Ret  string `json:"ret"`
}

// selector is the 4-byte selector of a function or error signature.
func selector(sig string) [4]byte {
	h := sha3.NewLegacyKeccak256()
	h.Write([]byte(sig))
	var s [4]byte
	copy(s[:], h.Sum(nil))
	return s
}

func (r Result) Bytes(t testing.TB) []byte {
	t.Helper()
	b, err := hex.DecodeString(strings.TrimPrefix(r.Ret, "0x"))
	if err != nil {
		t.Fatalf("return data %q: %v", r.Ret, err)
	}
	return b
}

type Output struct {
	Owner     string   `json:"owner"`
	Address   string   `json:"address"`
	DeployGas uint64   `json:"deployGas"`
	Results   []Result `json:"results"`
}

// Run deploys the contract with ctor and runs calls in order, in block 0.
func (e EVM) Run(t testing.TB, ctor []byte, calls []Tx) Output {
	t.Helper()
	return e.run(t, map[string]any{"ctor": "0x" + hex.EncodeToString(ctor), "calls": calls}, len(calls))
}

// RunInBlock is Run with every call in block number; BLOCKHASH of an
// earlier block n (among the last 256) is [BlockHash](n).
func (e EVM) RunInBlock(t testing.TB, number uint64, ctor []byte, calls []Tx) Output {
	t.Helper()
	return e.run(t, map[string]any{"ctor": "0x" + hex.EncodeToString(ctor), "calls": calls, "block": number}, len(calls))
}

// BlockHash is the hash of block n in evm.mjs's stand-in chain: sha256 of
// n as a 32-byte big-endian word.
func BlockHash(n uint64) [32]byte {
	var w [32]byte
	binary.BigEndian.PutUint64(w[24:], n)
	return sha256.Sum256(w[:])
}

func (e EVM) run(t testing.TB, input map[string]any, ncalls int) Output {
	t.Helper()
	in, err := json.Marshal(input)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, e.node, filepath.Join(e.dir, "evm.mjs"))
	cmd.Env = append(os.Environ(), "CONTRACT_NODE_MODULES="+e.modules)
	cmd.Stdin = bytes.NewReader(in)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("node evm.mjs: %v\n%s", err, stderr.String())
	}
	var o Output
	if err := json.Unmarshal(out, &o); err != nil {
		t.Fatalf("node evm.mjs output: %v\n%s", err, out)
	}
	if len(o.Results) != ncalls {
		t.Fatalf("node evm.mjs: %d results for %d calls", len(o.Results), ncalls)
	}
	return o
}

func Hex(b []byte) string { return "0x" + hex.EncodeToString(b) }

// errSel returns the selector of a custom error of MileageMining.sol.
func errSel(sig string) string {
	s := selector(sig)
	return hex.EncodeToString(s[:])
}

// customErrors are the errors of MileageMining.sol (and Ownable's).
var customErrors = []string{
	"UnknownDevice(address)", "BadSignature(address)", "SeqMismatch(uint64,uint64)", "PrevMismatch(bytes32,bytes32)",
	"ZeroBatches()", "SpanTooLong(uint32)", "UnknownFlags(uint32)", "BadModes(uint256)", "ModesSum(uint256,uint64)",
	"AlreadyDrawn(uint64)", "NoTickets(uint64)", "ZeroWinners()", "NoBlockHash(uint256)", "OwnableUnauthorizedAccount(address)",
}

// RevertName names the custom error of revert data, for messages.
func RevertName(ret string) string {
	for _, e := range customErrors {
		if strings.HasPrefix(strings.TrimPrefix(ret, "0x"), errSel(e)) {
			return e + " " + ret
		}
	}
	return ret
}

// WantRevert checks that r reverted with the custom error sig.
func WantRevert(t *testing.T, what string, r Result, sig string) {
	t.Helper()
	if r.OK {
		t.Errorf("%s: accepted, expected a revert with %s", what, sig)
		return
	}
	if got := strings.TrimPrefix(r.Ret, "0x"); !strings.HasPrefix(got, errSel(sig)) {
		t.Errorf("%s: reverted with %s, expected %s (0x%s)", what, RevertName(r.Ret), sig, errSel(sig))
	}
}

// NewKey makes a secp256k1 key file and loads it.
func NewKey(t testing.TB) *signer.FileKey {
	t.Helper()
	p := filepath.Join(t.TempDir(), "key.pem")
	if _, err := signer.GenerateKeyFile(p); err != nil {
		t.Fatal(err)
	}
	k, err := signer.LoadKeyFile(p)
	if err != nil {
		t.Fatal(err)
	}
	return k
}
