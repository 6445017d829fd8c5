package contract

import (
	"testing"

	"github.com/csop/tbox/cmd/collector/contract/evmtest"
	"github.com/csop/tbox/cmd/collector/internal/draw"
	"github.com/csop/tbox/signer"
)

// TestHalvingOnChain: the contract's drop(b) and the wins' µStone equal the
// Go draw's across the halvings (README §C6): before genesis (nothing), the
// first batch of eras 0, 1 and 2, the last batch of era 0, era 28 (the last
// with a drop: 1 µStone), era 29 (the first without) and era 40.
func TestHalvingOnChain(t *testing.T) {
	t.Parallel()
	e := evmtest.Require(t)
	k := evmtest.NewKey(t)
	bs := []uint64{
		draw.Genesis - 1,
		draw.Genesis,
		draw.Genesis + draw.EraBatches - 1,
		draw.Genesis + draw.EraBatches,
		draw.Genesis + 2*draw.EraBatches + 7,
		draw.Genesis + 28*draw.EraBatches,
		draw.Genesis + 29*draw.EraBatches,
		draw.Genesis + 40*draw.EraBatches,
	}
	calls := []evmtest.Tx{{Data: evmtest.Hex(SetDevice(k.Address(), true))}}
	var atts []*signer.Attestation
	prev := [32]byte{}
	for i, b := range bs {
		m := uint64(1000 + i)
		a := &signer.Attestation{V: 1, Device: k.Address(), Seq: uint64(i + 1), Batch: b, Batches: 1, Meters: m,
			Modes: []signer.ModeMeters{{Mode: "ECO", Meters: m}}, Prev: prev}
		if err := signer.Sign(k, chainID, a); err != nil {
			t.Fatal(err)
		}
		prev = signer.Digest(chainID, a)
		atts = append(atts, a)
		calls = append(calls, evmtest.Tx{Data: evmtest.Hex(Submit(a))})
	}
	first := len(calls)
	for _, b := range bs {
		calls = append(calls, evmtest.Tx{Data: evmtest.Hex(call("drop(uint64)", st(uintW(b))))}, evmtest.Tx{Data: evmtest.Hex(Draw(b))})
	}
	const n = 7 // does not divide the drops: the first wins get one µStone more
	out := e.Run(t, Constructor(chainID, seed, n), calls)
	for i, r := range out.Results {
		if !r.OK {
			t.Fatalf("call %d reverted: %s", i, evmtest.RevertName(r.Ret))
		}
	}
	for i, b := range bs {
		ret := out.Results[first+2*i].Bytes(t)
		var want word
		want = uintW(draw.Drop(b))
		if string(ret) != string(want[:]) {
			t.Errorf("drop(%d) (era %d) = %x, Go %d", b, (b-draw.Genesis)/draw.EraBatches, ret, draw.Drop(b))
		}
		sameDraw(t, b, out.Results[first+2*i+1].Bytes(t), goDraw(t, atts, b, n))
	}
	drops := make([]uint64, len(bs))
	for i, b := range bs {
		drops[i] = draw.Drop(b)
	}
	if drops[0] != 0 || drops[3]*2 > drops[2] || drops[5] == 0 || drops[6] != 0 || drops[7] != 0 {
		t.Fatalf("the batches do not span the halvings: drops %d", drops)
	}
}
