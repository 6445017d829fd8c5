package contract

import (
	"bytes"
	"context"
	"math/big"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/csop/tbox/agent/profile"
	"github.com/csop/tbox/cmd/collector/contract/evmtest"
	"github.com/csop/tbox/cmd/collector/internal/draw"
	"github.com/csop/tbox/hil/vehicle"
	"github.com/csop/tbox/signer"
	"golang.org/x/crypto/sha3"
)

const chainID = 20220807

var seed = draw.Seed{0x5e, 0xed, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16, 17, 18, 19, 20, 21, 22, 23, 24, 25, 26, 27, 28, 29, 30}

// replay builds tboxctl and returns the attestations `tboxctl replay` prints
// for a simulated drive of the sample EV, signed by a fresh key.
func replay(t *testing.T, tboxctl string, s vehicle.Scenario) []*signer.Attestation {
	t.Helper()
	root, err := evmtest.ModuleRoot()
	if err != nil {
		t.Fatal(err)
	}
	prof := filepath.Join(root, "agent", "profile", "testdata", "ev.toml")
	p, err := profile.Load(prof)
	if err != nil {
		t.Fatal(err)
	}
	var log bytes.Buffer
	sink := vehicle.NewLogSink(&log)
	if _, err := s.Frames(p, sink.WriteFrame); err != nil {
		t.Fatal(err)
	}
	if err := sink.Flush(); err != nil {
		t.Fatal(err)
	}
	key := filepath.Join(t.TempDir(), "device.pem")
	if _, err := signer.GenerateKeyFile(key); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, tboxctl, "replay", "--profile", prof, "--key", key, "--chain-id", "20220807")
	cmd.Stdin = &log
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("tboxctl replay: %v\n%s", err, stderr.String())
	}
	var atts []*signer.Attestation
	for i, l := range strings.Split(strings.TrimSuffix(string(out), "\n"), "\n") {
		a, err := signer.ParseWire([]byte(l))
		if err != nil {
			t.Fatalf("replay line %d: %v", i+1, err)
		}
		atts = append(atts, a)
	}
	return atts
}

func buildTboxctl(t *testing.T) string {
	t.Helper()
	bin := filepath.Join(t.TempDir(), "tboxctl")
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	out, err := exec.CommandContext(ctx, "go", "build", "-o", bin, "github.com/csop/tbox/cmd/tboxctl").CombinedOutput()
	if err != nil {
		t.Fatalf("go build tboxctl: %v\n%s", err, out)
	}
	return bin
}

// goDraw runs the collector's draw over atts for batch b.
func goDraw(t *testing.T, atts []*signer.Attestation, b uint64, n int) *draw.Result {
	t.Helper()
	var es []draw.Entry
	for _, a := range atts {
		if s := draw.Share(a.Batch, a.Batches, a.Meters, b); s > 0 {
			es = append(es, draw.Entry{Device: a.Device, Seq: a.Seq, Tickets: s})
		}
	}
	r, err := draw.Run(seed, b, es, n)
	if err != nil {
		t.Fatalf("go draw of batch %d: %v", b, err)
	}
	return r
}

// sameDraw compares the contract's draw of a batch with the Go collector's.
func sameDraw(t *testing.T, b uint64, ret []byte, want *draw.Result) {
	t.Helper()
	total, wins, err := DecodeDraw(ret)
	if err != nil {
		t.Fatalf("batch %d: %v", b, err)
	}
	if total != want.Total || len(wins) != len(want.Wins) {
		t.Fatalf("batch %d: contract %d tickets, %d wins; go %d tickets, %d wins", b, total, len(wins), want.Total, len(want.Wins))
	}
	for i, w := range wins {
		g := want.Wins[i]
		if w.Ticket != g.Ticket || w.Device != g.Device || w.Seq != g.Seq || w.Micro != g.Micro {
			t.Errorf("batch %d win %d: contract %+v, go %+v", b, i, w, g)
		}
	}
}

// batchesOf lists the batches the attestations credit, ascending.
func batchesOf(atts []*signer.Attestation) []uint64 {
	var bs []uint64
	for _, a := range atts {
		for j := range uint64(a.Batches) {
			if draw.Share(a.Batch, a.Batches, a.Meters, a.Batch+j) > 0 {
				bs = append(bs, a.Batch+j)
			}
		}
	}
	slices.Sort(bs)
	return slices.Compact(bs)
}

// TestReplayOnChain submits what `tboxctl replay` prints for two cars
// driving at the same time: every attestation is accepted, and the
// contract's winners of every batch equal the Go collector's draw.
func TestReplayOnChain(t *testing.T) {
	t.Parallel()
	e := evmtest.Require(t)
	tboxctl := buildTboxctl(t)
	start := time.Unix(int64(draw.Genesis+100_000)*600, 0)
	var atts []*signer.Attestation
	for i, sc := range []vehicle.Scenario{
		{Seed: 9, Start: start, Duration: 2 * time.Hour, ModeChanges: true, StopAndGo: true, Rollbacks: 1, Gaps: 1, OdometerHz: 5, SpeedHz: 5, ModeHz: 1},
		{Seed: 10, Start: start.Add(17 * time.Minute), Duration: 90 * time.Minute, ModeChanges: true, OdometerHz: 5, SpeedHz: 5, ModeHz: 1},
	} {
		as := replay(t, tboxctl, sc)
		if len(as) < 5 {
			t.Fatalf("drive %d: %d attestations", i, len(as))
		}
		atts = append(atts, as...)
	}
	// The EIP-712 hashing of ModeMeters[] is only tested by attestations
	// with several modes.
	if !slices.ContainsFunc(atts, func(a *signer.Attestation) bool { return len(a.Modes) >= 2 }) {
		t.Fatal("no replayed attestation has two modes or more")
	}
	devices := map[signer.Address]bool{}
	var calls []evmtest.Tx
	for _, a := range atts {
		if !devices[a.Device] {
			devices[a.Device] = true
			calls = append(calls, evmtest.Tx{Data: evmtest.Hex(SetDevice(a.Device, true))})
		}
	}
	firstSubmit := len(calls)
	// The two cars' attestations interleaved by batch, as they would arrive.
	order := slices.Clone(atts)
	slices.SortStableFunc(order, func(x, y *signer.Attestation) int { return int(int64(x.Batch) - int64(y.Batch)) })
	for _, a := range order {
		calls = append(calls, evmtest.Tx{Data: evmtest.Hex(Submit(a))})
	}
	bs := batchesOf(atts)
	firstPreview := len(calls)
	for _, b := range bs {
		calls = append(calls, evmtest.Tx{Data: evmtest.Hex(Preview(b))})
	}
	drawn := bs[len(bs)/2]
	calls = append(calls, evmtest.Tx{Data: evmtest.Hex(Draw(drawn))}, evmtest.Tx{Data: evmtest.Hex(Draw(drawn))})

	const n = 100
	out := e.Run(t, Constructor(chainID, seed, n), calls)
	var maxGas, sumGas uint64
	for i, a := range order {
		r := out.Results[firstSubmit+i]
		if !r.OK {
			t.Fatalf("device %s seq %d batch %d refused: %s", a.Device, a.Seq, a.Batch, evmtest.RevertName(r.Ret))
		}
		sumGas += r.Gas
		maxGas = max(maxGas, r.Gas)
	}
	for i, b := range bs {
		r := out.Results[firstPreview+i]
		if !r.OK {
			t.Fatalf("preview of batch %d reverted: %s", b, r.Ret)
		}
		sameDraw(t, b, r.Bytes(t), goDraw(t, atts, b, n))
	}
	d := out.Results[len(calls)-2]
	if !d.OK {
		t.Fatalf("draw of batch %d reverted: %s", drawn, d.Ret)
	}
	sameDraw(t, drawn, d.Bytes(t), goDraw(t, atts, drawn, n))
	evmtest.WantRevert(t, "second draw of a batch", out.Results[len(calls)-1], "AlreadyDrawn(uint64)")
	gd := goDraw(t, atts, drawn, n)
	t.Logf("deploy %d gas; %d attestations of 2 devices accepted, submit %d gas on average, %d at most; draw of batch %d (N=%d, %d attestations, %d tickets): %d gas; %d batches match the Go draw",
		out.DeployGas, len(atts), sumGas/uint64(len(atts)), maxGas, drawn, n, gd.Entries, gd.Total, d.Gas, len(bs))
}

// receiptDigest is the EIP-712 digest of a MileageReceipt (README §C2).
func receiptDigest(device signer.Address, seq uint64, dg [32]byte) [32]byte {
	return typed(keccak([]byte("MileageReceipt(address device,uint64 seq,bytes32 digest)")), addrW(device), uintW(seq), word(dg))
}

// refusalDigest is the EIP-712 digest of a MileageRefusal (README §C2).
func refusalDigest(device signer.Address, seq uint64, dg [32]byte, reason string) [32]byte {
	return typed(keccak([]byte("MileageRefusal(address device,uint64 seq,bytes32 digest,string reason)")), addrW(device), uintW(seq), word(dg), keccak([]byte(reason)))
}

func typed(typeHash word, fields ...word) [32]byte {
	st := keccak(append([][]byte{typeHash[:]}, wordsBytes(fields)...)...)
	sep := signer.DomainSeparator(chainID)
	return keccak([]byte{0x19, 0x01}, sep[:], st[:])
}

func wordsBytes(ws []word) [][]byte {
	out := make([][]byte, len(ws))
	for i := range ws {
		out[i] = ws[i][:]
	}
	return out
}

func keccak(parts ...[]byte) word {
	h := sha3.NewLegacyKeccak256()
	for _, p := range parts {
		h.Write(p)
	}
	var w word
	h.Sum(w[:0])
	return w
}

// TestRefusedOnChain: tampered, forged, replayed, forked and malformed
// attestations revert with the error naming why; catch-up spans are spread
// over their batches as the Go draw spreads them; a collector's receipt and
// refusal verify on chain, another key's do not.
func TestRefusedOnChain(t *testing.T) {
	t.Parallel()
	e := evmtest.Require(t)
	devA, devB, coll := evmtest.NewKey(t), evmtest.NewKey(t), evmtest.NewKey(t)
	b0 := draw.Genesis + 5
	chain := map[signer.Address][32]byte{}
	seqs := map[signer.Address]uint64{}
	// next signs the next attestation of k's chain (not yet submitted).
	mk := func(k *signer.FileKey, batch uint64, batches uint32, modes ...signer.ModeMeters) *signer.Attestation {
		t.Helper()
		a := &signer.Attestation{V: signer.Version, Device: k.Address(), Seq: seqs[k.Address()] + 1, Batch: batch, Batches: batches, Modes: modes, Prev: chain[k.Address()]}
		for _, m := range modes {
			a.Meters += m.Meters
		}
		if batches > 1 {
			a.Flags = signer.FlagCatchup
		}
		if err := signer.Sign(k, chainID, a); err != nil {
			t.Fatal(err)
		}
		return a
	}
	accept := func(a *signer.Attestation) {
		seqs[a.Device] = a.Seq
		chain[a.Device] = signer.Digest(chainID, a)
	}
	eco := func(m uint64) signer.ModeMeters { return signer.ModeMeters{Mode: "ECO", Meters: m} }
	sport := func(m uint64) signer.ModeMeters { return signer.ModeMeters{Mode: "SPORT", Meters: m} }

	type step struct {
		what    string
		from    string
		data    []byte
		wantErr string // "" = accepted
	}
	var steps []step
	var atts []*signer.Attestation // the accepted ones
	ok := func(what string, a *signer.Attestation) {
		steps = append(steps, step{what: what, data: Submit(a)})
		atts = append(atts, a)
		accept(a)
	}
	bad := func(what string, data []byte, err string) {
		steps = append(steps, step{what: what, data: data, wantErr: err})
	}

	steps = append(steps,
		step{what: "setDevice by a stranger", from: devA.Address().String(), data: SetDevice(devA.Address(), true), wantErr: "OwnableUnauthorizedAccount(address)"},
		step{what: "setCollector by a stranger", from: devA.Address().String(), data: SetCollector(devA.Address(), true), wantErr: "OwnableUnauthorizedAccount(address)"},
		step{what: "setSeed by a stranger", from: devA.Address().String(), data: call("setSeed(bytes32)", st(word{1})), wantErr: "OwnableUnauthorizedAccount(address)"},
		step{what: "setWinners by a stranger", from: devA.Address().String(), data: call("setWinners(uint32)", st(uintW(1))), wantErr: "OwnableUnauthorizedAccount(address)"},
		step{what: "register A", data: SetDevice(devA.Address(), true)},
		step{what: "register B", data: SetDevice(devB.Address(), true)},
		step{what: "register collector", data: SetCollector(coll.Address(), true)},
	)
	// An unregistered key signing its own chain.
	stranger := evmtest.NewKey(t)
	bad("unknown device", Submit(mk(stranger, b0, 1, eco(100))), "UnknownDevice(address)")

	a1 := mk(devA, b0, 1, eco(400), sport(800))
	ok("A seq 1", a1)
	bad("replayed A seq 1", Submit(a1), "SeqMismatch(uint64,uint64)")

	tampered := mk(devA, b0+1, 1, eco(1000))
	tampered.Meters, tampered.Modes = 9000, []signer.ModeMeters{eco(9000)}
	bad("tampered meters", Submit(tampered), "BadSignature(address)")

	forged := mk(devA, b0+1, 1, eco(1000))
	if err := signer.Sign(devA, chainID, forged); err != nil {
		t.Fatal(err)
	}
	fd := signer.Digest(chainID, forged)
	if forged.Sig, _ = devB.SignDigest(fd); forged.Sig == (signer.Signature{}) {
		t.Fatal("sign")
	}
	bad("A's attestation signed by B", Submit(forged), "BadSignature(address)")

	highS := mk(devA, b0+1, 1, eco(1000))
	highS.Sig = flipS(highS.Sig)
	bad("high-s signature", Submit(highS), "BadSignature(address)")

	wrongChain := mk(devA, b0+1, 1, eco(1000))
	wrongChain.Sig, _ = devA.SignDigest(signer.Digest(1, wrongChain))
	bad("signed for another chain ID", Submit(wrongChain), "BadSignature(address)")

	unsorted := &signer.Attestation{V: 1, Device: devA.Address(), Seq: 2, Batch: b0 + 1, Batches: 1, Meters: 300, Modes: []signer.ModeMeters{sport(100), eco(200)}, Prev: chain[devA.Address()]}
	unsorted.Sig, _ = devA.SignDigest(signer.Digest(chainID, unsorted))
	bad("modes not sorted", Submit(unsorted), "BadModes(uint256)")
	badSum := &signer.Attestation{V: 1, Device: devA.Address(), Seq: 2, Batch: b0 + 1, Batches: 1, Meters: 301, Modes: []signer.ModeMeters{eco(300)}, Prev: chain[devA.Address()]}
	badSum.Sig, _ = devA.SignDigest(signer.Digest(chainID, badSum))
	bad("modes do not sum to meters", Submit(badSum), "ModesSum(uint256,uint64)")
	badFlags := &signer.Attestation{V: 1, Device: devA.Address(), Seq: 2, Batch: b0 + 1, Batches: 1, Meters: 300, Modes: []signer.ModeMeters{eco(300)}, Prev: chain[devA.Address()], Flags: 0x40}
	badFlags.Sig, _ = devA.SignDigest(signer.Digest(chainID, badFlags))
	bad("unknown flag", Submit(badFlags), "UnknownFlags(uint32)")

	// A catch-up span of 3 batches, 1001 m: 334, 334, 333 tickets.
	a2 := mk(devA, b0+1, 3, eco(1001))
	ok("A seq 2, catch-up", a2)
	// A fork: another seq 2, properly signed and chained.
	fork := &signer.Attestation{V: 1, Device: devA.Address(), Seq: 2, Batch: b0 + 1, Batches: 1, Meters: 5, Modes: []signer.ModeMeters{eco(5)}, Prev: a2.Prev}
	if err := signer.Sign(devA, chainID, fork); err != nil {
		t.Fatal(err)
	}
	bad("fork of A seq 2", Submit(fork), "SeqMismatch(uint64,uint64)")
	// A seq 3 that chains to the fork instead of the accepted seq 2.
	forkNext := &signer.Attestation{V: 1, Device: devA.Address(), Seq: 3, Batch: b0 + 4, Batches: 1, Meters: 5, Modes: []signer.ModeMeters{eco(5)}, Prev: signer.Digest(chainID, fork)}
	if err := signer.Sign(devA, chainID, forkNext); err != nil {
		t.Fatal(err)
	}
	bad("seq 3 on the fork", Submit(forkNext), "PrevMismatch(bytes32,bytes32)")
	gap := mk(devA, b0+4, 1, eco(5))
	gap.Seq = 4
	if err := signer.Sign(devA, chainID, gap); err != nil {
		t.Fatal(err)
	}
	bad("seq gap", Submit(gap), "SeqMismatch(uint64,uint64)")

	// B: a span of 2 batches with an odd remainder, then one inside A's span.
	ok("B seq 1, catch-up", mk(devB, b0, 2, eco(7), sport(4)))
	ok("B seq 2", mk(devB, b0+2, 1, sport(2500)))
	// A mode name of more than one word, not ASCII: the string's hash and
	// its padding in calldata.
	ok("A seq 3", mk(devA, b0+3, 1, eco(20), signer.ModeMeters{Mode: "Überland-Modus, mehr als 32 Bytes lang", Meters: 3}))
	// No modes at all (a flag, no distance): ModeMeters[] hashes as keccak256("").
	a4 := &signer.Attestation{V: 1, Device: devA.Address(), Seq: 4, Batch: b0 + 3, Batches: 1, Prev: chain[devA.Address()], Flags: signer.FlagGap}
	if err := signer.Sign(devA, chainID, a4); err != nil {
		t.Fatal(err)
	}
	ok("A seq 4, no modes", a4)
	// The owner removes B: B's next attestation is refused until B is back,
	// and then its chain continues where it was.
	steps = append(steps, step{what: "remove B", data: SetDevice(devB.Address(), false)})
	bad("B seq 3 while removed", Submit(mk(devB, b0+3, 1, eco(10))), "UnknownDevice(address)")
	steps = append(steps, step{what: "B back", data: SetDevice(devB.Address(), true)})
	// Receipts (README §C2).
	head := chain[devA.Address()]
	rsig, err := coll.SignDigest(receiptDigest(devA.Address(), 4, head))
	if err != nil {
		t.Fatal(err)
	}
	bsig, _ := devB.SignDigest(receiptDigest(devA.Address(), 4, head))
	nsig, _ := coll.SignDigest(refusalDigest(devA.Address(), 2, fork.Prev, "fork"))
	receipts := []struct {
		what string
		data []byte
		want bool
	}{
		{"collector's receipt", VerifyReceipt(devA.Address(), 4, head, rsig), true},
		{"receipt for another seq", VerifyReceipt(devA.Address(), 3, head, rsig), false},
		{"receipt signed by a device key", VerifyReceipt(devA.Address(), 4, head, bsig), false},
		{"collector's refusal", VerifyRefusal(devA.Address(), 2, fork.Prev, "fork", nsig), true},
		{"refusal with another reason", VerifyRefusal(devA.Address(), 2, fork.Prev, "bad signature", nsig), false},
	}
	for _, r := range receipts {
		steps = append(steps, step{what: r.what, data: r.data})
	}
	var calls []evmtest.Tx
	for _, s := range steps {
		calls = append(calls, evmtest.Tx{From: s.from, Data: evmtest.Hex(s.data)})
	}
	bs := []uint64{b0, b0 + 1, b0 + 2, b0 + 3}
	for _, b := range bs {
		calls = append(calls, evmtest.Tx{Data: evmtest.Hex(Draw(b))})
	}
	calls = append(calls, evmtest.Tx{Data: evmtest.Hex(Draw(b0 + 4))})
	// After the draw of b0+3, an attestation for it is accepted but late:
	// the batch's tickets stay what the draw used.
	late := mk(devB, b0+3, 1, eco(900000))
	calls = append(calls, evmtest.Tx{Data: evmtest.Hex(Submit(late))}, evmtest.Tx{Data: evmtest.Hex(Preview(b0 + 3))})
	const n = 7
	out := e.Run(t, Constructor(chainID, seed, n), calls)

	for i, s := range steps[:len(steps)-len(receipts)] {
		r := out.Results[i]
		if s.wantErr == "" {
			if !r.OK {
				t.Errorf("%s: reverted %s", s.what, r.Ret)
			}
			continue
		}
		evmtest.WantRevert(t, s.what, r, s.wantErr)
	}
	for i, r := range receipts {
		res := out.Results[len(steps)-len(receipts)+i]
		got := res.OK && len(res.Bytes(t)) == 32 && res.Bytes(t)[31] == 1
		if !res.OK || got != r.want {
			t.Errorf("%s: verified %v (ok %v, %s), expected %v", r.what, got, res.OK, res.Ret, r.want)
		}
	}
	for i, b := range bs {
		r := out.Results[len(steps)+i]
		if !r.OK {
			t.Fatalf("draw of batch %d reverted: %s", b, r.Ret)
		}
		sameDraw(t, b, r.Bytes(t), goDraw(t, atts, b, n))
	}
	evmtest.WantRevert(t, "draw of a batch without tickets", out.Results[len(calls)-3], "NoTickets(uint64)")
	if r := out.Results[len(calls)-2]; !r.OK {
		t.Errorf("late attestation for a drawn batch: reverted %s", r.Ret)
	}
	if r := out.Results[len(calls)-1]; !r.OK {
		t.Errorf("preview of b0+3 after a late attestation: reverted %s", r.Ret)
	} else {
		sameDraw(t, b0+3, r.Bytes(t), goDraw(t, atts, b0+3, n))
	}
}

// flipS returns the high-s twin of a low-s signature (s' = n - s, v flipped),
// which ecrecover accepts and OpenZeppelin's ECDSA refuses.
func flipS(sig signer.Signature) signer.Signature {
	n, _ := new(big.Int).SetString("fffffffffffffffffffffffffffffffebaaedce6af48a03bbfd25e8cd0364141", 16)
	s := new(big.Int).SetBytes(sig[32:64])
	s.Sub(n, s)
	out := sig
	s.FillBytes(out[32:64])
	out[64] ^= 1 // 27 <-> 28
	return out
}

// TestGas measures the gas of submit and draw and holds them to bounds that
// leave room in a block (30M gas): a plain submit, the longest catch-up
// span the contract takes (MAX_SPAN_BATCHES = 144 batches), and the draw of
// N = 100 wins over 50 attestations.
func TestGas(t *testing.T) {
	t.Parallel()
	e := evmtest.Require(t)
	b0 := draw.Genesis + 1000
	var calls []evmtest.Tx
	var keys []*signer.FileKey
	for range 50 {
		k := evmtest.NewKey(t)
		keys = append(keys, k)
		calls = append(calls, evmtest.Tx{Data: evmtest.Hex(SetDevice(k.Address(), true))})
	}
	sign := func(k *signer.FileKey, seq uint64, prev [32]byte, batch uint64, batches uint32, meters uint64) *signer.Attestation {
		a := &signer.Attestation{V: 1, Device: k.Address(), Seq: seq, Batch: batch, Batches: batches, Meters: meters,
			Modes: []signer.ModeMeters{{Mode: "ECO", Meters: meters / 3}, {Mode: "SPORT", Meters: meters - meters/3}}, Prev: prev}
		if batches > 1 {
			a.Flags = signer.FlagCatchup
		}
		if err := signer.Sign(k, chainID, a); err != nil {
			t.Fatal(err)
		}
		return a
	}
	var atts []*signer.Attestation
	first := len(calls)
	for i, k := range keys { // every device's seq 1 in b0
		a := sign(k, 1, [32]byte{}, b0, 1, uint64(1000+37*i))
		atts = append(atts, a)
		calls = append(calls, evmtest.Tx{Data: evmtest.Hex(Submit(a))})
	}
	second := sign(keys[0], 2, signer.Digest(chainID, atts[0]), b0+1, 1, 4200)
	long := sign(keys[0], 3, signer.Digest(chainID, second), b0+2, 144, 144*4000+77)
	tooLong := sign(keys[1], 2, signer.Digest(chainID, atts[1]), b0+2, 145, 145*4000)
	atts = append(atts, second, long)
	calls = append(calls,
		evmtest.Tx{Data: evmtest.Hex(Submit(second))},
		evmtest.Tx{Data: evmtest.Hex(Submit(long))},
		evmtest.Tx{Data: evmtest.Hex(Submit(tooLong))},
		evmtest.Tx{Data: evmtest.Hex(Draw(b0))},
		evmtest.Tx{Data: evmtest.Hex(Draw(b0 + 100))},
	)
	const n = 100
	out := e.Run(t, Constructor(chainID, seed, n), calls)
	rs := out.Results[first:]
	for i, r := range rs[:len(rs)-1] {
		if i == len(keys)+2 {
			evmtest.WantRevert(t, "span of 145 batches", r, "SpanTooLong(uint32)")
			continue
		}
		if !r.OK {
			t.Fatalf("call %d reverted: %s", first+i, r.Ret)
		}
	}
	firstSubmit, nextSubmit, longSubmit := rs[0].Gas, rs[len(keys)].Gas, rs[len(keys)+1].Gas
	drawGas := rs[len(keys)+3].Gas
	sameDraw(t, b0, rs[len(keys)+3].Bytes(t), goDraw(t, atts, b0, n))
	// b0+100 is inside the long span only: one attestation holds every ticket.
	sameDraw(t, b0+100, rs[len(keys)+4].Bytes(t), goDraw(t, atts, b0+100, n))
	t.Logf("gas: deploy %d; submit %d (device's first), %d (next), %d (catch-up over 144 batches); draw N=%d over %d attestations %d, over 1 attestation %d",
		out.DeployGas, firstSubmit, nextSubmit, longSubmit, n, len(keys), drawGas, rs[len(keys)+4].Gas)
	for _, c := range []struct {
		what     string
		gas, max uint64
	}{
		{"first submit", firstSubmit, 250_000},
		{"next submit", nextSubmit, 200_000},
		{"catch-up submit over 144 batches", longSubmit, 8_000_000},
		{"draw of 100 wins over 50 attestations", drawGas, 3_000_000},
	} {
		if c.gas > c.max {
			t.Errorf("%s: %d gas, expected at most %d", c.what, c.gas, c.max)
		}
	}
}
