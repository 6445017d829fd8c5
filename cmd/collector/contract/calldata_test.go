package contract

import (
	"encoding/hex"
	"testing"

	"github.com/csop/tbox/signer"
)

// TestSelector: the selectors are Solidity's (well-known ERC-20 ones).
func TestSelector(t *testing.T) {
	for sig, want := range map[string]string{
		"transfer(address,uint256)": "a9059cbb",
		"balanceOf(address)":        "70a08231",
	} {
		s := Selector(sig)
		if got := hex.EncodeToString(s[:]); got != want {
			t.Errorf("Selector(%q) = %s, expected %s", sig, got, want)
		}
	}
}

// TestSubmitLayout checks the ABI layout of submit's calldata word by word
// for an attestation with two modes (the EVM tests check that the contract
// accepts it).
func TestSubmitLayout(t *testing.T) {
	a := &signer.Attestation{V: 1, Device: signer.Address{0xaa}, Seq: 7, Batch: 2811234, Batches: 1, Meters: 10412,
		Modes: []signer.ModeMeters{{Mode: "ECO", Meters: 2412}, {Mode: "SPORT", Meters: 8000}}, Prev: [32]byte{1}, Flags: 0x10}
	a.Sig[64] = 27
	d := Submit(a)
	sel := Selector(SubmitSig)
	if string(d[:4]) != string(sel[:]) || (len(d)-4)%32 != 0 {
		t.Fatalf("calldata of %d bytes, selector %x", len(d), d[:4])
	}
	w := func(i int) uint64 { // word i after the selector, as a small integer
		for _, b := range d[4+32*i : 4+32*i+24] {
			if b != 0 {
				t.Fatalf("word %d is not a small integer: %x", i, d[4+32*i:4+32*i+32])
			}
		}
		var v uint64
		for _, b := range d[4+32*i+24 : 4+32*i+32] {
			v = v<<8 | uint64(b)
		}
		return v
	}
	// head: offset of the tuple (0x40), offset of sig
	if w(0) != 64 {
		t.Errorf("tuple offset %d", w(0))
	}
	tup := 2 // the tuple starts at word 2
	if w(tup+1) != 7 || w(tup+2) != 2811234 || w(tup+3) != 1 || w(tup+4) != 10412 || w(tup+7) != 0x10 {
		t.Errorf("tuple fields: seq %d batch %d batches %d meters %d flags %d", w(tup+1), w(tup+2), w(tup+3), w(tup+4), w(tup+7))
	}
	if d[4+32*tup+12] != 0xaa {
		t.Errorf("device word %x", d[4+32*tup:4+32*tup+32])
	}
	modes := tup + int(w(tup+5))/32
	if w(modes) != 2 {
		t.Fatalf("modes length %d", w(modes))
	}
	for i, m := range a.Modes {
		el := modes + 1 + int(w(modes+1+i))/32
		str := el + int(w(el))/32
		if w(el+1) != m.Meters || w(str) != uint64(len(m.Mode)) || string(d[4+32*(str+1):4+32*(str+1)+len(m.Mode)]) != m.Mode {
			t.Errorf("mode %d: meters %d, name length %d", i, w(el+1), w(str))
		}
	}
	sig := int(w(1)) / 32 // offsets count from the start of the arguments (word 0)
	if w(sig) != 65 || d[4+32*(sig+1)+64] != 27 {
		t.Errorf("sig: length %d", w(sig))
	}
	if len(d) != 4+32*(sig+1+3) {
		t.Errorf("calldata of %d bytes, expected the sig's 3 words last", len(d))
	}
}

// FuzzDecodeDraw: return data from a chain never panics the decoder, and
// what it accepts has the wins it claims.
func FuzzDecodeDraw(f *testing.F) {
	good := make([]byte, 64+32+128)
	good[31] = 10 // total
	good[63] = 64 // offset
	good[95] = 1  // one win
	good[64+32+31] = 3
	f.Add(good)
	f.Add([]byte{})
	f.Add(make([]byte, 64))
	f.Fuzz(func(t *testing.T, b []byte) {
		_, wins, err := DecodeDraw(b)
		if err == nil && len(wins)*128 > len(b) {
			t.Fatalf("%d wins from %d bytes", len(wins), len(b))
		}
	})
}
