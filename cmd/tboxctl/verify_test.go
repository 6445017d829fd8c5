package main

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/csop/tbox/signer"
)

// signedChain returns n attestations of one device, seq 1..n, each linked
// to the one before, signed for chainID.
func signedChain(t testing.TB, key signer.Signer, chainID uint64, n int) []*signer.Attestation {
	t.Helper()
	var out []*signer.Attestation
	var prev [32]byte
	for i := 1; i <= n; i++ {
		m := uint64(100 * i)
		a := &signer.Attestation{
			V: signer.Version, Device: key.Address(), Seq: uint64(i), Batch: 2833333 + uint64(i), Batches: 1,
			Meters: m, Modes: []signer.ModeMeters{{Mode: "ECO", Meters: m * 2 / 5}, {Mode: "SPORT", Meters: m - m*2/5}},
			Prev: prev,
		}
		resign(t, key, chainID, a)
		prev = signer.Digest(chainID, a)
		out = append(out, a)
	}
	return out
}

func resign(t testing.TB, key signer.Signer, chainID uint64, a *signer.Attestation) {
	t.Helper()
	if err := signer.Sign(key, chainID, a); err != nil {
		t.Fatal(err)
	}
}

// signRaw signs the digest of a without the checks signer.Sign makes.
func signRaw(t testing.TB, key signer.Signer, chainID uint64, a *signer.Attestation) {
	t.Helper()
	sig, err := key.SignDigest(signer.Digest(chainID, a))
	if err != nil {
		t.Fatal(err)
	}
	a.Sig = sig
}

func wireLines(atts ...*signer.Attestation) string {
	var b strings.Builder
	for _, a := range atts {
		b.Write(a.AppendWire(nil))
		b.WriteByte('\n')
	}
	return b.String()
}

func clone(a *signer.Attestation) *signer.Attestation {
	c := *a
	c.Modes = append([]signer.ModeMeters(nil), a.Modes...)
	return &c
}

// problem is one line verify must print: the input line, the seq (0 for a
// line that does not parse) and the kind of problem.
type problem struct {
	line int
	seq  uint64
	kind error
}

func TestVerify(t *testing.T) {
	keyPath, addr := newKey(t)
	key, err := signer.LoadKeyFile(keyPath)
	if err != nil {
		t.Fatal(err)
	}
	_, otherAddr := newKey(t)
	const id = defaultChainID
	c := signedChain(t, key, id, 5)

	// Mutations of the clean chain.
	badPrev := clone(c[2])
	badPrev.Prev = signer.Digest(id, c[0])
	resign(t, key, id, badPrev)

	// signer.Sign refuses these two: sign their digests directly, as a
	// forger holding the key could.
	badSum := clone(c[4])
	badSum.Modes[1].Meters--
	signRaw(t, key, id, badSum)

	badFlags := clone(c[4])
	badFlags.Flags = 0x40
	signRaw(t, key, id, badFlags)

	tampered := strings.Replace(wireLines(c[1]), fmt.Sprintf(`"batch":%d,`, c[1].Batch), fmt.Sprintf(`"batch":%d,`, c[1].Batch+1), 1)
	if tampered == wireLines(c[1]) {
		t.Fatal("tampering did not change the line")
	}
	tamperedMeters := strings.Replace(wireLines(c[1]), `"batches":1,"meters":200,`, `"batches":1,"meters":2000,`, 1)
	if tamperedMeters == wireLines(c[1]) {
		t.Fatal("tampering did not change the line")
	}
	unknownV := strings.Replace(wireLines(c[0]), `{"v":1,`, `{"v":2,`, 1)

	for _, tc := range []struct {
		name  string
		input string
		args  []string
		want  []problem
		atts  int // attestations the summary counts; 0: not checked
	}{
		{name: "clean chain", input: wireLines(c...)},
		{name: "clean chain, blank lines and CRLF", input: "\n" + strings.ReplaceAll(wireLines(c...), "\n", "\r\n") + "\n \n"},
		{name: "empty input", input: ""},
		{name: "gap", input: wireLines(c[0], c[1], c[3], c[4]),
			want: []problem{{3, 4, signer.ErrSeqGap}}},
		{name: "gap at the start", input: wireLines(c[1], c[2], c[3], c[4]),
			want: []problem{{1, 2, signer.ErrSeqGap}}},
		{name: "identical duplicate", input: wireLines(c[0], c[1], c[1], c[2], c[3], c[4]),
			want: []problem{{3, 2, signer.ErrSeqDuplicate}}},
		{name: "fork: same seq, other content", input: wireLines(c[0], c[1], c[2], badPrev, c[3], c[4]),
			want: []problem{{4, 3, signer.ErrSeqDuplicate}}},
		{name: "reordering", input: wireLines(c[0], c[2], c[1], c[3], c[4]),
			want: []problem{{2, 3, signer.ErrSeqGap}, {3, 2, signer.ErrSeqReorder}}},
		{name: "prev mismatch", input: wireLines(c[0], c[1], badPrev, c[3], c[4]),
			want: []problem{{3, 3, signer.ErrPrevMismatch}, {4, 4, signer.ErrPrevMismatch}}},
		{name: "modes do not sum", input: wireLines(c[0], c[1], c[2], c[3], badSum),
			want: []problem{{5, 5, signer.ErrModesSum}}},
		{name: "unknown flags", input: wireLines(c[0], c[1], c[2], c[3], badFlags),
			want: []problem{{5, 5, signer.ErrUnknownFlags}}},
		{name: "tampered batch", input: wireLines(c[0]) + tampered + wireLines(c[2], c[3], c[4]),
			want: []problem{{2, 2, signer.ErrSignerMismatch}, {3, 3, signer.ErrPrevMismatch}}},
		{name: "tampered meters", input: wireLines(c[0]) + tamperedMeters + wireLines(c[2], c[3], c[4]),
			want: []problem{{2, 2, signer.ErrModesSum}, {2, 2, signer.ErrSignerMismatch}, {3, 3, signer.ErrPrevMismatch}}},
		{name: "unknown version", input: unknownV + wireLines(c[1:]...),
			want: []problem{{1, 0, signer.ErrUnknownVersion}, {2, 2, signer.ErrSeqGap}}},
		{name: "line not JSON", input: wireLines(c[0], c[1]) + "{\"v\":1,\n" + wireLines(c[2], c[3], c[4]),
			want: []problem{{3, 0, signer.ErrMalformed}}, atts: 5},
		{name: "garbage is no attestation", input: "hello\n" + wireLines(c[0]),
			want: []problem{{1, 0, signer.ErrMalformed}}, atts: 1},
		{name: "a later part of a chain", input: wireLines(c[2], c[3], c[4]),
			want: []problem{{1, 3, signer.ErrSeqGap}}, atts: 3},
		{name: "a later part of a chain, --partial", input: wireLines(c[2], c[3], c[4]), args: []string{"--partial"}, atts: 3},
		{name: "--partial still checks the links", input: wireLines(c[2], badPrev, c[4]), args: []string{"--partial"},
			want: []problem{{2, 3, signer.ErrSeqDuplicate}, {3, 5, signer.ErrSeqGap}}, atts: 3},
		{name: "--partial: a gap after the start", input: wireLines(c[1], c[3]), args: []string{"--partial"},
			want: []problem{{2, 4, signer.ErrSeqGap}}, atts: 2},
		{name: "wrong chain id", input: wireLines(c...), args: []string{"--chain-id", "1"},
			want: []problem{
				{1, 1, signer.ErrSignerMismatch},
				{2, 2, signer.ErrSignerMismatch}, {2, 2, signer.ErrPrevMismatch},
				{3, 3, signer.ErrSignerMismatch}, {3, 3, signer.ErrPrevMismatch},
				{4, 4, signer.ErrSignerMismatch}, {4, 4, signer.ErrPrevMismatch},
				{5, 5, signer.ErrSignerMismatch}, {5, 5, signer.ErrPrevMismatch},
			}},
		{name: "right device", input: wireLines(c...), args: []string{"--device", addr.String()}},
		{name: "wrong device", input: wireLines(c...), args: []string{"--device", otherAddr.String()},
			want: []problem{{1, 1, signer.ErrWrongDevice}, {2, 2, signer.ErrWrongDevice}, {3, 3, signer.ErrWrongDevice},
				{4, 4, signer.ErrWrongDevice}, {5, 5, signer.ErrWrongDevice}}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := tboxctl(t, strings.NewReader(tc.input), append([]string{"verify"}, tc.args...)...)
			wantCode := 0
			if len(tc.want) > 0 {
				wantCode = 1
			}
			if r.code != wantCode {
				t.Errorf("exit %d, want %d; stdout %q stderr %q", r.code, wantCode, r.stdout, r.stderr)
			}
			checkProblems(t, "stdin", r.stdout, tc.want)
			if want := plural(len(tc.want), "problem"); !strings.Contains(r.stderr, ", "+want+"\n") {
				t.Errorf("summary %q does not say %q", r.stderr, want)
			}
			if tc.atts > 0 {
				if want := "stdin: " + plural(tc.atts, "attestation") + ", "; !strings.HasPrefix(r.stderr, want) {
					t.Errorf("summary %q does not start %q", r.stderr, want)
				}
			}
		})
	}
}

// checkProblems compares verify's output, one line per problem, with want
// (in any order on one input line, in input order across lines).
func checkProblems(t *testing.T, name, out string, want []problem) {
	t.Helper()
	var lines []string
	if out != "" {
		lines = strings.Split(strings.TrimSuffix(out, "\n"), "\n")
	}
	if len(lines) != len(want) {
		t.Fatalf("%d problem lines, want %d:\n%s", len(lines), len(want), out)
	}
	used := make([]bool, len(lines))
	for _, p := range want {
		prefix := fmt.Sprintf("%s:%d: ", name, p.line)
		if p.seq > 0 {
			prefix += fmt.Sprintf("seq %d: ", p.seq)
		}
		found := false
		for i, l := range lines {
			if !used[i] && strings.HasPrefix(l, prefix) && strings.Contains(l, p.kind.Error()) {
				used[i], found = true, true
				break
			}
		}
		if !found {
			t.Errorf("no line %q... saying %q in\n%s", prefix, p.kind, out)
		}
	}
}

// TestVerifyFile reads the chain from a file and names it in each problem.
func TestVerifyFile(t *testing.T) {
	keyPath, _ := newKey(t)
	key, err := signer.LoadKeyFile(keyPath)
	if err != nil {
		t.Fatal(err)
	}
	c := signedChain(t, key, 7, 3)
	path := filepath.Join(t.TempDir(), "chain.jsonl")
	if err := os.WriteFile(path, []byte(wireLines(c[0], c[2])), 0o600); err != nil {
		t.Fatal(err)
	}
	r := tboxctl(t, nil, "verify", "--chain-id", "7", path)
	if r.code != 1 {
		t.Errorf("exit %d, want 1", r.code)
	}
	checkProblems(t, path, r.stdout, []problem{{2, 3, signer.ErrSeqGap}})

	if err := os.WriteFile(path, []byte(wireLines(c...)), 0o600); err != nil {
		t.Fatal(err)
	}
	if r := tboxctl(t, nil, "verify", "--chain-id", "7", path); r.code != 0 || r.stdout != "" {
		t.Errorf("clean file: exit %d, stdout %q", r.code, r.stdout)
	}
	if r := tboxctl(t, nil, "verify", filepath.Join(t.TempDir(), "no-such.jsonl")); r.code != 2 || !strings.Contains(r.stderr, "no-such.jsonl") {
		t.Errorf("missing file: exit %d, stderr %q; want 2 naming it", r.code, r.stderr)
	}
}

// TestVerifyLongLine: a line longer than any attestation is one problem,
// not a stop.
func TestVerifyLongLine(t *testing.T) {
	keyPath, _ := newKey(t)
	key, err := signer.LoadKeyFile(keyPath)
	if err != nil {
		t.Fatal(err)
	}
	c := signedChain(t, key, defaultChainID, 1)
	in := wireLines(c...) + strings.Repeat("x", 2*signer.MaxWireSize) + "\n"
	r := tboxctl(t, strings.NewReader(in), "verify")
	if r.code != 1 || r.stdout == "" {
		t.Errorf("exit %d, stdout %q; want 1 and a problem", r.code, r.stdout)
	}
}

// FuzzVerify feeds verify arbitrary input: it never panics, and it answers
// with 0 (no problem) or 1 (one line per problem), never 2.
func FuzzVerify(f *testing.F) {
	keyPath, _ := newKey(f)
	key, err := signer.LoadKeyFile(keyPath)
	if err != nil {
		f.Fatal(err)
	}
	c := signedChain(f, key, defaultChainID, 3)
	f.Add([]byte(wireLines(c...)))
	f.Add([]byte(wireLines(c[2], c[0])))
	f.Add([]byte("{}\n\n{\"v\":1}"))
	f.Add([]byte{0xff, '\n', 0})
	f.Fuzz(func(t *testing.T, in []byte) {
		var out, errb bytes.Buffer
		code := run(t.Context(), []string{"verify"}, bytes.NewReader(in), &out, &errb)
		if code != 0 && code != 1 {
			t.Fatalf("exit %d: %s", code, errb.String())
		}
		if (code == 0) != (out.Len() == 0) {
			t.Fatalf("exit %d with output %q", code, out.String())
		}
	})
}

// TestProblemKinds keeps the kinds verify reports distinct, so that the
// substring checks above cannot match the wrong problem.
func TestProblemKinds(t *testing.T) {
	kinds := []error{signer.ErrSeqGap, signer.ErrSeqDuplicate, signer.ErrSeqReorder, signer.ErrPrevMismatch,
		signer.ErrModesSum, signer.ErrUnknownFlags, signer.ErrSignerMismatch, signer.ErrWrongDevice,
		signer.ErrUnknownVersion, signer.ErrMalformed}
	for i, a := range kinds {
		for j, b := range kinds {
			if i != j && (strings.Contains(a.Error(), b.Error()) || errors.Is(a, b)) {
				t.Errorf("%q contains %q", a, b)
			}
		}
	}
}
