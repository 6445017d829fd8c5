package signer

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

	"github.com/csop/tbox/signer/signertest"
)

// TestEthersInterop checks attestations signed here with ethers v6
// (TypedDataEncoder.hash, verifyTypedData, Wallet.signTypedData). It installs
// ethers into <module root>/.cache/npm-ethers once. It is skipped only when
// node or npm is missing; a failed install fails the test.
func TestEthersInterop(t *testing.T) {
	ethers := signertest.RequireEthers(t)
	prefix := ethers.Prefix

	// A real key file, and the EIP-712 example's public test key, which
	// ethers also signs with.
	path := filepath.Join(t.TempDir(), "device.key")
	if _, err := GenerateKeyFile(path); err != nil {
		t.Fatal(err)
	}
	fileKey, err := LoadKeyFile(path)
	if err != nil {
		t.Fatal(err)
	}
	cow := testKey(t, cowKey)

	type input struct {
		ChainID uint64          `json:"chainId"`
		Att     json.RawMessage `json:"att"`
		Key     string          `json:"key,omitempty"`
	}
	type vector struct {
		chainID uint64
		a       *Attestation
		key     string
	}
	var vectors []vector
	for _, k := range []struct {
		s   Signer
		hex string
	}{{fileKey, ""}, {cow, "0x" + cowKey}} {
		for i, a := range []*Attestation{
			{V: 1, Seq: 1, Batch: 2811234, Batches: 1, Meters: 10412, Modes: []ModeMeters{{"ECO", 2412}, {"SPORT", 8000}}},
			{V: 1, Seq: 2, Batch: 2811240, Batches: 6, Meters: 0, Flags: FlagCatchup | FlagClock | FlagGap, Prev: hex32(strings.Repeat("5a", 32))},
			{V: 1, Seq: 1 << 40, Batch: 1<<53 - 1, Batches: 1<<32 - 1, Meters: 1<<53 - 1, Flags: KnownFlags,
				Modes: []ModeMeters{{"MODE_7", 1}, {"UNKNOWN", 1<<53 - 2}}, Prev: hex32(strings.Repeat("ff", 32))},
			{V: 1, Seq: 3, Batch: 1, Batches: 1, Meters: 6, Modes: []ModeMeters{{"Sport \"Plus\"\\", 1}, {"ÉCO", 2}, {"运动\n\t\u2028", 3}}},
		} {
			a.Device = k.s.Address()
			for _, chainID := range []uint64{20220807, 1, uint64(i) + 1<<40} {
				c := cloneAttestation(a)
				if err := Sign(k.s, chainID, c); err != nil {
					t.Fatal(err)
				}
				vectors = append(vectors, vector{chainID, c, k.hex})
			}
		}
	}
	var in bytes.Buffer
	enc := json.NewEncoder(&in)
	for _, v := range vectors {
		if err := enc.Encode(input{v.chainID, v.a.AppendWire(nil), v.key}); err != nil {
			t.Fatal(err)
		}
	}
	inPath := filepath.Join(t.TempDir(), "attestations.jsonl")
	if err := os.WriteFile(inPath, in.Bytes(), 0o600); err != nil {
		t.Fatal(err)
	}

	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	var stderr bytes.Buffer
	cmd := exec.CommandContext(ctx, ethers.Node, ethers.Script, prefix, inPath)
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("node verify.mjs: %v\n%s", err, stderr.Bytes())
	}

	sc := bufio.NewScanner(bytes.NewReader(out))
	i := 0
	for ; sc.Scan(); i++ {
		var r struct {
			Digest, Recovered string
			EthersSig         *string
		}
		if err := json.Unmarshal(sc.Bytes(), &r); err != nil {
			t.Fatalf("output line %d: %v: %s", i+1, err, sc.Bytes())
		}
		if i >= len(vectors) {
			t.Fatalf("more output lines than attestations")
		}
		v := vectors[i]
		d := Digest(v.chainID, v.a)
		if r.Digest != "0x"+hex.EncodeToString(d[:]) {
			t.Errorf("vector %d (chain %d): ethers digest %s, ours 0x%x", i, v.chainID, r.Digest, d)
		}
		if r.Recovered != v.a.Device.String() {
			t.Errorf("vector %d: ethers recovers %s, device %s", i, r.Recovered, v.a.Device)
		}
		if v.key != "" {
			// RFC 6979 on both sides: the very same signature.
			if r.EthersSig == nil || *r.EthersSig != v.a.Sig.String() {
				t.Errorf("vector %d: ethers signs %v, we sign %s", i, r.EthersSig, v.a.Sig)
			}
		}
	}
	if i != len(vectors) {
		t.Fatalf("ethers checked %d of %d attestations\n%s", i, len(vectors), stderr.Bytes())
	}
	t.Logf("ethers %s agrees on %d attestations", prefix, i)
}
