package signer

import (
	"errors"
	"fmt"
	"slices"
	"testing"
)

// makeChain returns n signed attestations of key, seq 1..n, each prev the
// digest of the one before.
func makeChain(t testing.TB, key Signer, n int) []*Attestation {
	t.Helper()
	var chain []*Attestation
	var prev [32]byte
	for i := 1; i <= n; i++ {
		a := sampleAttestation(key, uint64(i))
		a.Prev = prev
		signed(t, key, a)
		prev = Digest(testChainID, a)
		chain = append(chain, a)
	}
	return chain
}

type found struct {
	seq  uint64
	kind error
}

func (f found) String() string { return fmt.Sprintf("seq %d %v", f.seq, f.kind) }

func TestChainChecker(t *testing.T) {
	key := testKey(t, cowKey)
	other := testKey(t, "0000000000000000000000000000000000000000000000000000000000000001")
	c := makeChain(t, key, 6)
	oc := makeChain(t, other, 2)

	// resign re-signs a modified copy of c[i].
	resign := func(i int, modify func(a *Attestation)) *Attestation {
		a := cloneAttestation(c[i])
		modify(a)
		signed(t, key, a)
		return a
	}
	// tamper modifies a copy of c[i] without re-signing.
	tamper := func(i int, modify func(a *Attestation)) *Attestation {
		a := cloneAttestation(c[i])
		modify(a)
		return a
	}
	highS := cloneAttestation(c[2])
	highS.Sig = highSTwin(highS.Sig)

	for _, tc := range []struct {
		name string
		in   []*Attestation
		opts []ChainOption
		want []found
	}{
		{"sound chain", c, nil, nil},
		{"two devices interleaved", []*Attestation{c[0], oc[0], c[1], oc[1], c[2]}, nil, nil},
		{"expected device", c[:3], []ChainOption{WithDevice(key.Address())}, nil},
		{"gap of one", []*Attestation{c[0], c[1], c[3], c[4]}, nil, []found{{4, ErrSeqGap}}},
		{"gap of two", []*Attestation{c[0], c[3], c[4]}, nil, []found{{4, ErrSeqGap}}},
		{"starts late", c[2:], nil, []found{{3, ErrSeqGap}}},
		{"duplicate", []*Attestation{c[0], c[1], c[1], c[2]}, nil, []found{{2, ErrSeqDuplicate}}},
		{"duplicate of an older one", []*Attestation{c[0], c[1], c[2], c[0]}, nil, []found{{1, ErrSeqDuplicate}}},
		{"fork: seq reused with other content", []*Attestation{c[0], c[1], resign(1, func(a *Attestation) { a.Batch++ }), c[2]}, nil,
			[]found{{2, ErrSeqDuplicate}}},
		{"reordering", []*Attestation{c[0], c[1], c[3], c[2], c[4]}, nil, []found{{4, ErrSeqGap}, {3, ErrSeqReorder}}},
		{"prev mismatch", []*Attestation{c[0], c[1], resign(2, func(a *Attestation) { a.Prev[3] ^= 1 }), c[3]}, nil,
			[]found{{3, ErrPrevMismatch}, {4, ErrPrevMismatch}}},
		{"prev mismatch found on a late arrival", []*Attestation{c[0], c[2], resign(1, func(a *Attestation) { a.Meters, a.Modes[0].Meters = a.Meters+1, a.Modes[0].Meters+1 })}, nil,
			[]found{{3, ErrSeqGap}, {2, ErrSeqReorder}, {2, ErrPrevMismatch}}},
		{"seq 1 with a prev", []*Attestation{resign(0, func(a *Attestation) { a.Prev[0] = 1 })}, nil, []found{{1, ErrPrevMismatch}}},
		{"modes do not sum", []*Attestation{c[0], resign(1, func(a *Attestation) {}), tamper(2, func(a *Attestation) { a.Modes[0].Meters-- })}, nil,
			[]found{{3, ErrModesSum}, {3, ErrSignerMismatch}}},
		{"unknown flags", []*Attestation{c[0], tamper(1, func(a *Attestation) { a.Flags |= 0x100 })}, nil,
			[]found{{2, ErrUnknownFlags}, {2, ErrSignerMismatch}}},
		{"changed field", []*Attestation{c[0], tamper(1, func(a *Attestation) { a.Batch++ }), c[2]}, nil,
			[]found{{2, ErrSignerMismatch}, {3, ErrPrevMismatch}}},
		{"high-s twin", []*Attestation{c[0], c[1], highS}, nil, []found{{3, ErrHighS}}},
		{"bad v", []*Attestation{c[0], tamper(1, func(a *Attestation) { a.Sig[64] = 0 })}, nil, []found{{2, ErrBadSignature}}},
		{"wrong device", []*Attestation{c[0], oc[0], c[1]}, []ChainOption{WithDevice(key.Address())}, []found{{1, ErrWrongDevice}}},
		{"seq 0", []*Attestation{c[0], tamper(1, func(a *Attestation) { a.Seq = 0 })}, nil, []found{{0, ErrMalformed}, {0, ErrSignerMismatch}}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ch := NewChainChecker(testChainID, tc.opts...)
			var got []found
			for _, a := range tc.in {
				for _, p := range ch.Check(a) {
					got = append(got, found{p.Seq, p.Kind})
					if !errors.Is(p, p.Kind) || p.Msg == "" || p.Device != a.Device {
						t.Errorf("problem %+v is incomplete", p)
					}
					t.Logf("%v", p)
				}
			}
			if !slices.Equal(got, tc.want) {
				t.Errorf("problems %v, want %v", got, tc.want)
			}
		})
	}
}

func TestChainCheckerResume(t *testing.T) {
	key := testKey(t, cowKey)
	c := makeChain(t, key, 5)
	ch := NewChainChecker(testChainID)
	ch.Resume(key.Address(), 2, Digest(testChainID, c[1]))
	var got []found
	for _, a := range []*Attestation{c[2], c[3], c[1], c[0], c[4]} {
		for _, p := range ch.Check(a) {
			got = append(got, found{p.Seq, p.Kind})
		}
	}
	// c[2] links to the resumed digest; seqs 1 and 2 are re-sends.
	want := []found{{2, ErrSeqDuplicate}, {1, ErrSeqDuplicate}}
	if !slices.Equal(got, want) {
		t.Errorf("problems %v, want %v", got, want)
	}

	// Resuming with the wrong digest shows as a prev mismatch.
	ch = NewChainChecker(testChainID)
	ch.Resume(key.Address(), 2, [32]byte{1})
	if ps := ch.Check(c[2]); len(ps) != 1 || !errors.Is(ps[0], ErrPrevMismatch) {
		t.Errorf("problems %v, want a prev mismatch", ps)
	}
}

func TestProblemError(t *testing.T) {
	key := testKey(t, cowKey)
	c := makeChain(t, key, 3)
	ps := NewChainChecker(testChainID).Check(c[2])
	if len(ps) != 1 {
		t.Fatalf("problems %v", ps)
	}
	if got, want := ps[0].Error(), "seq 3: seq gap: expected seq 1, found 3: seqs 1 to 2 missing"; got != want {
		t.Errorf("Error() = %q, want %q", got, want)
	}
}
