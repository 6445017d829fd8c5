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
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/csop/tbox/signer/signertest"
)

// TestEthersReceiptInterop checks receipts and refusals signed here with
// ethers v6 (TypedDataEncoder.hash, verifyTypedData, Wallet.signTypedData),
// so that anyone can check a car's proof with an Ethereum tool.
func TestEthersReceiptInterop(t *testing.T) {
	ethers := signertest.RequireEthers(t)
	script := filepath.Join(filepath.Dir(ethers.Script), "receipts.mjs")

	path := filepath.Join(t.TempDir(), "collector.key")
	if _, err := GenerateKeyFile(path); err != nil {
		t.Fatal(err)
	}
	fileKey, err := LoadKeyFile(path)
	if err != nil {
		t.Fatal(err)
	}
	cow := testKey(t, cowKey)
	dev := testKey(t, collectorKey).Address()

	type input struct {
		ChainID uint64          `json:"chainId"`
		Device  string          `json:"device"`
		Kind    string          `json:"kind"`
		Seq     string          `json:"seq"`
		Wire    json.RawMessage `json:"wire"`
		Key     string          `json:"key,omitempty"`
	}
	type vector struct {
		chainID uint64
		signer  Address
		digest  [32]byte
		sig     Signature
		key     string
	}
	var vectors []vector
	var in bytes.Buffer
	enc := json.NewEncoder(&in)
	for _, k := range []struct {
		s   Signer
		hex string
	}{{fileKey, ""}, {cow, "0x" + cowKey}} {
		for _, seq := range []uint64{1, 7, 1<<64 - 1} {
			for _, reason := range []string{"", "fork: seq 7 is stored with digest 0xab", "bad \"quote\"\\\n\tservice unlocked \u2028 运动 \x01"} {
				for _, chainID := range []uint64{20220807, 1} {
					digest := hex32(strings.Repeat(hex.EncodeToString([]byte{byte(seq), byte(len(reason))}), 16))
					r := &Receipt{Device: dev, Seq: seq, Digest: digest}
					if err := SignReceipt(k.s, chainID, r); err != nil {
						t.Fatal(err)
					}
					n := &Refusal{Device: dev, Seq: seq, Digest: digest, Reason: reason}
					if err := SignRefusal(k.s, chainID, n); err != nil {
						t.Fatal(err)
					}
					for _, v := range []struct {
						kind string
						wire []byte
						d    [32]byte
						sig  Signature
					}{{"ack", r.AppendWire(nil), r.SigningDigest(chainID), r.Sig}, {"nack", n.AppendWire(nil), n.SigningDigest(chainID), n.Sig}} {
						if err := enc.Encode(input{chainID, dev.String(), v.kind, strconv.FormatUint(seq, 10), v.wire, k.hex}); err != nil {
							t.Fatal(err)
						}
						vectors = append(vectors, vector{chainID, k.s.Address(), v.d, v.sig, k.hex})
					}
				}
			}
		}
	}
	inPath := filepath.Join(t.TempDir(), "receipts.jsonl")
	if err := os.WriteFile(inPath, in.Bytes(), 0o600); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	var stderr bytes.Buffer
	cmd := exec.CommandContext(ctx, ethers.Node, script, ethers.Prefix, inPath)
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("node receipts.mjs: %v\n%s", err, stderr.Bytes())
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
			t.Fatal("more output lines than vectors")
		}
		v := vectors[i]
		if r.Digest != "0x"+hex.EncodeToString(v.digest[:]) {
			t.Errorf("vector %d: ethers digest %s, ours 0x%x", i, r.Digest, v.digest)
		}
		if r.Recovered != v.signer.String() {
			t.Errorf("vector %d: ethers recovers %s, signer %s", i, r.Recovered, v.signer)
		}
		if v.key != "" && (r.EthersSig == nil || *r.EthersSig != v.sig.String()) {
			t.Errorf("vector %d: ethers signs %v, we sign %s", i, r.EthersSig, v.sig)
		}
	}
	if i != len(vectors) {
		t.Fatalf("ethers checked %d of %d vectors\n%s", i, len(vectors), stderr.Bytes())
	}
	t.Logf("ethers agrees on %d receipts and refusals", i)
}
