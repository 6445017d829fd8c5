package contract

import (
	"testing"

	"github.com/csop/tbox/cmd/collector/contract/evmtest"
	"github.com/csop/tbox/cmd/collector/internal/draw"
	"github.com/csop/tbox/signer"
)

// TestSeedFromBlock: setSeedFromBlock takes the seed from BLOCKHASH (the
// owner's only, one of the last 256 blocks, NoBlockHash otherwise), and the
// draw with that seed equals the Go collector's draw with the block hash as
// its configured seed.
func TestSeedFromBlock(t *testing.T) {
	t.Parallel()
	e := evmtest.Require(t)
	const block = 5000
	b := draw.Genesis + 42
	var atts []*signer.Attestation
	calls := []evmtest.Tx{}
	for i := range 3 {
		k := evmtest.NewKey(t)
		a := &signer.Attestation{V: 1, Device: k.Address(), Seq: 1, Batch: b, Batches: 1, Meters: uint64(500 + 300*i),
			Modes: []signer.ModeMeters{{Mode: "ECO", Meters: uint64(500 + 300*i)}}}
		if err := signer.Sign(k, chainID, a); err != nil {
			t.Fatal(err)
		}
		atts = append(atts, a)
		calls = append(calls, evmtest.Tx{Data: evmtest.Hex(SetDevice(a.Device, true))}, evmtest.Tx{Data: evmtest.Hex(Submit(a))})
	}
	setFrom := func(n uint64) []byte { return call("setSeedFromBlock(uint256)", st(uintW(n))) }
	refused := []struct {
		what, from string
		n          uint64
		err        string
	}{
		{"by a stranger", atts[0].Device.String(), block - 10, "OwnableUnauthorizedAccount(address)"},
		{"the current block", "", block, "NoBlockHash(uint256)"},
		{"a future block", "", block + 1, "NoBlockHash(uint256)"},
		{"a block 257 back", "", block - 257, "NoBlockHash(uint256)"},
	}
	first := len(calls)
	for _, r := range refused {
		calls = append(calls, evmtest.Tx{From: r.from, Data: evmtest.Hex(setFrom(r.n))})
	}
	calls = append(calls,
		evmtest.Tx{Data: evmtest.Hex(setFrom(block - 256))}, // the oldest it can read
		evmtest.Tx{Data: evmtest.Hex(setFrom(block - 10))},
		evmtest.Tx{Data: evmtest.Hex(call("seed()"))},
		evmtest.Tx{Data: evmtest.Hex(Draw(b))},
	)
	const n = 20
	out := e.RunInBlock(t, block, Constructor(chainID, seed, n), calls)
	for i, r := range out.Results[:first] {
		if !r.OK {
			t.Fatalf("call %d reverted: %s", i, evmtest.RevertName(r.Ret))
		}
	}
	for i, r := range refused {
		evmtest.WantRevert(t, "setSeedFromBlock "+r.what, out.Results[first+i], r.err)
	}
	rs := out.Results[first+len(refused):]
	for i, r := range rs {
		if !r.OK {
			t.Fatalf("call %d after the refused ones reverted: %s", i, evmtest.RevertName(r.Ret))
		}
	}
	want := evmtest.BlockHash(block - 10)
	if got := rs[2].Bytes(t); string(got) != string(want[:]) {
		t.Fatalf("seed() = %x after setSeedFromBlock(%d), expected its hash %x", got, block-10, want)
	}
	var es []draw.Entry
	for _, a := range atts {
		es = append(es, draw.Entry{Device: a.Device, Seq: a.Seq, Tickets: a.Meters})
	}
	gd, err := draw.Run(draw.Seed(want), b, es, n)
	if err != nil {
		t.Fatal(err)
	}
	sameDraw(t, b, rs[3].Bytes(t), gd)
}
