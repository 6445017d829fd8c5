package contract_test

import (
	"encoding/binary"
	"path/filepath"
	"testing"
	"time"

	"github.com/csop/tbox/cmd/collector/contract"
	"github.com/csop/tbox/cmd/collector/contract/evmtest"
	"github.com/csop/tbox/cmd/collector/internal/collect"
	"github.com/csop/tbox/cmd/collector/internal/draw"
	"github.com/csop/tbox/cmd/collector/internal/ledger"
	"github.com/csop/tbox/signer"
)

// allowOnly is the collector's allowlist of one device.
type allowOnly signer.Address

func (a allowOnly) Allowed(d signer.Address) bool { return d == signer.Address(a) }

// TestCollectorReceiptOnChain: the ack and the nack the Go collector
// publishes to a car (collect.Process, then collect.SignedPayload, the
// bytes of csop/v1/<device>/ack and /nack), parsed and checked as the car
// checks them, verify on chain with verifyReceipt / verifyRefusal; the
// receipt's digest is the chain head the contract itself computed for the
// same attestations; a tampered receipt, one signed by another key and one
// from a collector key the owner removed do not verify.
func TestCollectorReceiptOnChain(t *testing.T) {
	t.Parallel()
	e := evmtest.Require(t)
	dev, coll, other := evmtest.NewKey(t), evmtest.NewKey(t), evmtest.NewKey(t)
	b := draw.Genesis + 200_000
	now := time.Unix(int64(b+2)*600, 0)

	l, err := ledger.Open(filepath.Join(t.TempDir(), "c.db"), &ledger.Options{ChainID: chainID, NoSync: true})
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	c, err := collect.New(l, collect.Config{ChainID: chainID, Allow: allowOnly(dev.Address()), Signer: coll, Now: func() time.Time { return now }}, nil)
	if err != nil {
		t.Fatal(err)
	}
	att := "csop/v1/" + dev.Address().String() + "/att"
	var atts []*signer.Attestation
	prev := [32]byte{}
	for seq := uint64(1); seq <= 2; seq++ {
		a := &signer.Attestation{V: signer.Version, Device: dev.Address(), Seq: seq, Batch: b + seq - 1, Batches: 1, Meters: 3000 + seq,
			Modes: []signer.ModeMeters{{Mode: "ECO", Meters: 1000}, {Mode: "SPORT", Meters: 2000 + seq}}, Prev: prev}
		if err := signer.Sign(dev, chainID, a); err != nil {
			t.Fatal(err)
		}
		prev = signer.Digest(chainID, a)
		atts = append(atts, a)
	}
	// A fork of seq 2: properly signed and chained, so only the stored
	// chain refuses it (a signed nack).
	fork := &signer.Attestation{V: signer.Version, Device: dev.Address(), Seq: 2, Batch: b + 1, Batches: 1, Meters: 9,
		Modes: []signer.ModeMeters{{Mode: "ECO", Meters: 9}}, Prev: atts[1].Prev}
	if err := signer.Sign(dev, chainID, fork); err != nil {
		t.Fatal(err)
	}
	var msgs []collect.Message
	for _, a := range atts {
		msgs = append(msgs, collect.Message{Topic: att, Payload: a.AppendWire(nil)})
	}
	replies, err := c.Process(msgs)
	if err != nil {
		t.Fatal(err)
	}
	nacks, err := c.Process([]collect.Message{{Topic: att, Payload: fork.AppendWire(nil)}})
	if err != nil {
		t.Fatal(err)
	}
	var ackWire, nackWire []byte
	for _, r := range append(replies, nacks...) {
		p, err := collect.SignedPayload(coll, chainID, r)
		if err != nil {
			t.Fatal(err)
		}
		switch {
		case r.Ack() && r.Seq == 2:
			ackWire = p
		case !r.Ack() && r.Seq == 2:
			nackWire = p
		}
	}
	if ackWire == nil || nackWire == nil {
		t.Fatalf("the collector did not ack seq 2 and nack its fork: %+v %+v", replies, nacks)
	}
	// What the car does with them (agent/uplink): parse, then verify
	// against its collector_addresses.
	collectors := []signer.Address{coll.Address()}
	rc, err := signer.ParseReceipt(dev.Address(), ackWire)
	if err != nil {
		t.Fatalf("ack %s: %v", ackWire, err)
	}
	if _, err := signer.VerifyReceipt(chainID, rc, collectors); err != nil {
		t.Fatalf("ack %s: the car refuses it: %v", ackWire, err)
	}
	if rc.Digest != signer.Digest(chainID, atts[1]) {
		t.Fatalf("ack of seq 2 carries digest %x, the attestation's is %x", rc.Digest, signer.Digest(chainID, atts[1]))
	}
	rf, err := signer.ParseRefusal(dev.Address(), nackWire)
	if err != nil {
		t.Fatalf("nack %s: %v", nackWire, err)
	}
	if _, err := signer.VerifyRefusal(chainID, rf, collectors); err != nil {
		t.Fatalf("nack %s: the car refuses it: %v", nackWire, err)
	}
	t.Logf("collector's ack %s; nack %s", ackWire, nackWire)

	// devices(address) returns (registered, seq, head).
	devicesCall := func(a signer.Address) []byte {
		s := contract.Selector("devices(address)")
		out := append(s[:], make([]byte, 12)...)
		return append(out, a[:]...)
	}
	badSig := rc.Sig
	badSig[5] ^= 0x40
	otherSig, err := other.SignDigest(rc.SigningDigest(chainID))
	if err != nil {
		t.Fatal(err)
	}
	digest2 := rc.Digest
	digest2[31] ^= 1
	checks := []struct {
		what string
		data []byte
		want bool
	}{
		{"the collector's ack", contract.VerifyReceipt(rc.Device, rc.Seq, rc.Digest, rc.Sig), true},
		{"the ack with seq+1", contract.VerifyReceipt(rc.Device, rc.Seq+1, rc.Digest, rc.Sig), false},
		{"the ack with a changed digest", contract.VerifyReceipt(rc.Device, rc.Seq, digest2, rc.Sig), false},
		{"the ack for another device", contract.VerifyReceipt(other.Address(), rc.Seq, rc.Digest, rc.Sig), false},
		{"the ack with a flipped signature bit", contract.VerifyReceipt(rc.Device, rc.Seq, rc.Digest, badSig), false},
		{"the ack signed by an unregistered key", contract.VerifyReceipt(rc.Device, rc.Seq, rc.Digest, otherSig), false},
		{"the collector's nack", contract.VerifyRefusal(rf.Device, rf.Seq, rf.Digest, rf.Reason, rf.Sig), true},
		{"the nack with another reason", contract.VerifyRefusal(rf.Device, rf.Seq, rf.Digest, "bad signature", rf.Sig), false},
		{"the nack's signature as a receipt", contract.VerifyReceipt(rf.Device, rf.Seq, rf.Digest, rf.Sig), false},
	}
	calls := []evmtest.Tx{
		{Data: evmtest.Hex(contract.SetDevice(dev.Address(), true))},
		{Data: evmtest.Hex(contract.SetCollector(coll.Address(), true))},
	}
	for _, a := range atts {
		calls = append(calls, evmtest.Tx{Data: evmtest.Hex(contract.Submit(a))})
	}
	head := len(calls)
	calls = append(calls, evmtest.Tx{Data: evmtest.Hex(devicesCall(dev.Address()))})
	first := len(calls)
	for _, c := range checks {
		calls = append(calls, evmtest.Tx{Data: evmtest.Hex(c.data)})
	}
	// The owner removes the collector key (a rotation): its receipts no
	// longer verify.
	calls = append(calls,
		evmtest.Tx{Data: evmtest.Hex(contract.SetCollector(coll.Address(), false))},
		evmtest.Tx{Data: evmtest.Hex(contract.VerifyReceipt(rc.Device, rc.Seq, rc.Digest, rc.Sig))},
	)
	out := e.Run(t, contract.Constructor(chainID, seed, 10), calls)
	for i, r := range out.Results[:head] {
		if !r.OK {
			t.Fatalf("call %d reverted: %s", i, evmtest.RevertName(r.Ret))
		}
	}
	// The chain's head is the digest the collector's receipt names.
	h := out.Results[head].Bytes(t)
	if len(h) != 96 || h[31] != 1 || binary.BigEndian.Uint64(h[56:64]) != 2 || [32]byte(h[64:96]) != rc.Digest {
		t.Errorf("devices(%s) = %x; expected registered, seq 2, head %x (the receipt's digest)", dev.Address(), h, rc.Digest)
	}
	verified := func(r evmtest.Result) bool {
		b := r.Bytes(t)
		return r.OK && len(b) == 32 && b[31] == 1
	}
	for i, c := range checks {
		r := out.Results[first+i]
		if !r.OK || verified(r) != c.want {
			t.Errorf("%s: verified %v (ok %v, %s), expected %v", c.what, verified(r), r.OK, r.Ret, c.want)
		}
	}
	if r := out.Results[len(calls)-1]; !r.OK || verified(r) {
		t.Errorf("the ack after the owner removed its collector key: verified %v (ok %v), expected false", verified(r), r.OK)
	}
}
