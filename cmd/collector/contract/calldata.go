// Package contract holds MileageMining.sol, the on-chain verifier of the
// attestations (README §C1) and the Stone draw (README §C6), its test driver
// (evm.mjs, run by node in @ethereumjs/vm), and the ABI encoding of its calls
// from Go, which `collector export` prints so that an operator can anchor a
// batch's attestations on a chain.
package contract

import (
	"encoding/binary"
	"fmt"

	"github.com/csop/tbox/signer"
	"golang.org/x/crypto/sha3"
)

// Function signatures of MileageMining.sol, as the ABI names them.
const (
	SubmitSig        = "submit((address,uint64,uint64,uint32,uint64,(string,uint64)[],bytes32,uint32),bytes)"
	DrawSig          = "draw(uint64)"
	PreviewSig       = "preview(uint64)"
	SetDeviceSig     = "setDevice(address,bool)"
	SetCollectorSig  = "setCollector(address,bool)"
	VerifyReceiptSig = "verifyReceipt(address,uint64,bytes32,bytes)"
	VerifyRefusalSig = "verifyRefusal(address,uint64,bytes32,string,bytes)"
)

// Selector returns the 4-byte function selector of an ABI signature.
func Selector(sig string) [4]byte {
	h := sha3.NewLegacyKeccak256()
	h.Write([]byte(sig))
	var s [4]byte
	copy(s[:], h.Sum(nil))
	return s
}

// word is one 32-byte ABI word.
type word [32]byte

func uintW(v uint64) word {
	var w word
	binary.BigEndian.PutUint64(w[24:], v)
	return w
}

func addrW(a signer.Address) word {
	var w word
	copy(w[12:], a[:])
	return w
}

func boolW(b bool) word {
	if b {
		return uintW(1)
	}
	return word{}
}

// bytesTail encodes a dynamic bytes or string value: its length, then the
// bytes right-padded to a whole number of words.
func bytesTail(b []byte) []byte {
	w := uintW(uint64(len(b)))
	out := append([]byte(nil), w[:]...)
	out = append(out, b...)
	if r := len(b) % 32; r != 0 {
		out = append(out, make([]byte, 32-r)...)
	}
	return out
}

// encode lays out ABI values: a static value is a word in the head; a
// dynamic one (non-nil tail) is an offset in the head and its tail after.
type part struct {
	static  *word
	dynamic []byte
}

func st(w word) part    { return part{static: &w} }
func dyn(b []byte) part { return part{dynamic: b} }
func encode(ps ...part) []byte {
	head := make([]byte, 0, 32*len(ps))
	var tail []byte
	for _, p := range ps {
		if p.static != nil {
			head = append(head, p.static[:]...)
			continue
		}
		off := uintW(uint64(32*len(ps) + len(tail)))
		head = append(head, off[:]...)
		tail = append(tail, p.dynamic...)
	}
	return append(head, tail...)
}

// attestationTuple encodes the MileageAttestation tuple (a dynamic tuple,
// for its ModeMeters[]).
func attestationTuple(a *signer.Attestation) []byte {
	modes := make([]part, len(a.Modes))
	for i, m := range a.Modes {
		modes[i] = dyn(encode(dyn(bytesTail([]byte(m.Mode))), st(uintW(m.Meters))))
	}
	n := uintW(uint64(len(a.Modes)))
	arr := append(n[:], encode(modes...)...)
	return encode(
		st(addrW(a.Device)),
		st(uintW(a.Seq)),
		st(uintW(a.Batch)),
		st(uintW(uint64(a.Batches))),
		st(uintW(a.Meters)),
		dyn(arr),
		st(word(a.Prev)),
		st(uintW(uint64(a.Flags))),
	)
}

func call(sig string, ps ...part) []byte {
	s := Selector(sig)
	return append(s[:], encode(ps...)...)
}

// Submit returns the calldata of submit(attestation, sig) for a.
func Submit(a *signer.Attestation) []byte {
	return call(SubmitSig, dyn(attestationTuple(a)), dyn(bytesTail(a.Sig[:])))
}

// Draw returns the calldata of draw(batch).
func Draw(batch uint64) []byte { return call(DrawSig, st(uintW(batch))) }

// Preview returns the calldata of preview(batch).
func Preview(batch uint64) []byte { return call(PreviewSig, st(uintW(batch))) }

// SetDevice returns the calldata of setDevice(device, registered).
func SetDevice(device signer.Address, registered bool) []byte {
	return call(SetDeviceSig, st(addrW(device)), st(boolW(registered)))
}

// SetCollector returns the calldata of setCollector(collector, registered).
func SetCollector(collector signer.Address, registered bool) []byte {
	return call(SetCollectorSig, st(addrW(collector)), st(boolW(registered)))
}

// VerifyReceipt returns the calldata of verifyReceipt(device, seq, digest, sig).
func VerifyReceipt(device signer.Address, seq uint64, digest [32]byte, sig signer.Signature) []byte {
	return call(VerifyReceiptSig, st(addrW(device)), st(uintW(seq)), st(word(digest)), dyn(bytesTail(sig[:])))
}

// VerifyRefusal returns the calldata of verifyRefusal(device, seq, digest, reason, sig).
func VerifyRefusal(device signer.Address, seq uint64, digest [32]byte, reason string, sig signer.Signature) []byte {
	return call(VerifyRefusalSig, st(addrW(device)), st(uintW(seq)), st(word(digest)),
		dyn(bytesTail([]byte(reason))), dyn(bytesTail(sig[:])))
}

// Constructor returns the ABI-encoded constructor arguments
// (chainId, seed, winners), appended to the creation bytecode.
func Constructor(chainID uint64, seed [32]byte, winners uint32) []byte {
	return encode(st(uintW(chainID)), st(word(seed)), st(uintW(uint64(winners))))
}

// Win is one win as draw and preview return it.
type Win struct {
	Ticket uint64
	Device signer.Address
	Seq    uint64
	Micro  uint64
}

// DecodeDraw decodes the return data of draw or preview:
// (uint256 total, (uint64,address,uint64,uint64)[] wins).
func DecodeDraw(ret []byte) (total uint64, wins []Win, err error) {
	u64 := func(off int) (uint64, error) {
		if off < 0 || off+32 > len(ret) {
			return 0, fmt.Errorf("draw result of %d bytes: word at %d out of range", len(ret), off)
		}
		for _, b := range ret[off : off+24] {
			if b != 0 {
				return 0, fmt.Errorf("draw result: word at %d exceeds 64 bits", off)
			}
		}
		return binary.BigEndian.Uint64(ret[off+24 : off+32]), nil
	}
	if total, err = u64(0); err != nil {
		return 0, nil, err
	}
	off, err := u64(32)
	if err != nil {
		return 0, nil, err
	}
	if off > uint64(len(ret)) {
		return 0, nil, fmt.Errorf("draw result: wins offset %d past %d bytes", off, len(ret))
	}
	n, err := u64(int(off))
	if err != nil {
		return 0, nil, err
	}
	if n > uint64(len(ret))/128 {
		return 0, nil, fmt.Errorf("draw result: %d wins in %d bytes", n, len(ret))
	}
	base := int(off) + 32
	wins = make([]Win, n)
	for i := range wins {
		p := base + 128*i
		var w Win
		if w.Ticket, err = u64(p); err != nil {
			return 0, nil, err
		}
		if p+64 > len(ret) {
			return 0, nil, fmt.Errorf("draw result: win %d out of range", i)
		}
		copy(w.Device[:], ret[p+44:p+64])
		if w.Seq, err = u64(p + 64); err != nil {
			return 0, nil, err
		}
		if w.Micro, err = u64(p + 96); err != nil {
			return 0, nil, err
		}
		wins[i] = w
	}
	return total, wins, nil
}
