package rig

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/csop/tbox/hil"
	"github.com/csop/tbox/signer"
)

// binDir holds the binaries the scenarios share; removed after the tests.
var (
	binOnce sync.Once
	binDir  string
	bins    *Bins
	binErr  error
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m, goleak.Cleanup(func(int) {
		if binDir != "" {
			os.RemoveAll(binDir)
		}
	}))
}

// newRig returns a rig for a scenario, skipping only where the emulated
// T-Box cannot run at all (as the hil tests do) or with -short.
func newRig(t *testing.T) *Rig {
	t.Helper()
	if testing.Short() {
		t.Skip("a field scenario boots the emulated T-Box for a minute or more")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Minute)
	defer cancel()
	if _, err := hil.Prepare(ctx); errors.Is(err, hil.ErrUnavailable) && os.Getenv("CI") == "" {
		t.Skipf("emulated T-Box: %v", err)
	}
	binOnce.Do(func() {
		if binDir, binErr = os.MkdirTemp("", "tbox-rig-bin-"); binErr != nil {
			return
		}
		t0 := time.Now()
		bins, binErr = Build(ctx, binDir)
		t.Logf("built the rig's binaries in %v", since(t0))
	})
	if binErr != nil {
		t.Fatalf("build: %v", binErr)
	}
	r, err := New(ctx, Options{Dir: t.TempDir(), Bins: bins, Log: t.Logf})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(r.Close)
	return r
}

// lineLogger sends the console lines that pass keep to t.Log.
func lineLogger(t *testing.T, prefix string, keep func(string) bool) func(string) {
	return func(l string) {
		if keep == nil || keep(l) {
			t.Log(prefix + l)
		}
	}
}

// interesting are the console lines worth a test log: everything but the
// per-attestation noise and the truth JSON.
func interesting(l string) bool {
	return !strings.HasPrefix(l, "RIG-TRUTH ") && !strings.Contains(l, "msg=\"attestation published\"")
}

// flagCounts counts the flags of attestations.
func flagCounts(atts map[uint64]*signer.Attestation) string {
	n := map[string]int{}
	for _, a := range atts {
		for _, f := range signer.FlagNames(a.Flags) {
			n[f]++
		}
	}
	if len(n) == 0 {
		return "none"
	}
	var out []string
	for f, c := range n {
		out = append(out, fmt.Sprintf("%s %d", f, c))
	}
	sort.Strings(out)
	return strings.Join(out, ", ")
}

// checkDelivery asserts what every scenario relies on at the backend: the
// capture shows each seq 1..n first published in order, identical copies
// only, no refusal, everything acked; the collector's store holds exactly
// those attestations, chained, with no fork; `collector audit` and
// `tboxctl verify` on the capture agree.
func checkDelivery(t *testing.T, ctx context.Context, r *Rig, tr *Traffic) {
	t.Helper()
	for _, p := range tr.Problems {
		t.Errorf("mqtt capture: %s", p)
	}
	for _, n := range tr.Nacks {
		t.Errorf("refused by the collector: %s", n)
	}
	n := uint64(len(tr.Order))
	if n == 0 {
		t.Fatal("no attestation in the MQTT capture")
	}
	if !tr.InOrder() {
		t.Errorf("first deliveries in the order %v, want 1..%d", tr.Order, n)
	}
	if tr.AckedThrough != n {
		t.Errorf("the collector acked through seq %d, the capture holds seqs 1..%d", tr.AckedThrough, n)
	}
	for seq, a := range tr.Atts {
		var sum uint64
		for _, m := range a.Modes {
			sum += m.Meters
		}
		if sum != a.Meters {
			t.Errorf("seq %d: modes sum to %d m, meters %d", seq, sum, a.Meters)
		}
		if err := signer.Verify(ChainID, a); err != nil {
			t.Errorf("seq %d: %v", seq, err)
		}
	}
	st, err := ReadStore(r.Path("collector.db"))
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range st.Check(r.Device) {
		t.Error(p)
	}
	stored := st.Devices[r.Device]
	if uint64(len(stored)) != n {
		t.Errorf("the collector stored %d attestations, the capture carried %d", len(stored), n)
	}
	for _, s := range stored {
		if w, ok := tr.Wires[s.Seq]; !ok || !bytes.Equal(w, s.Wire) {
			t.Errorf("seq %d: stored %s, published %s", s.Seq, s.Wire, w)
		}
	}
	if err := r.CollectorAudit(ctx); err != nil {
		t.Errorf("collector audit: %v", err)
	}
	wires := r.Path("published.jsonl")
	if err := tr.WriteWires(wires); err != nil {
		t.Fatal(err)
	}
	if err := r.VerifyWires(ctx, wires); err != nil {
		t.Errorf("tboxctl verify on the capture: %v", err)
	}
}
