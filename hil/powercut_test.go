package hil

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/csop/tbox/agent/profile"
	"github.com/csop/tbox/hil/vehicle"
	"github.com/csop/tbox/signer"
)

// powerCutChainID is the EIP-712 chain ID the guest signs for.
const powerCutChainID = 20220807

// The kinds of power cut, by the moment qemu is killed.
const (
	cutBoot = "boot" // a fixed delay after qemu starts: during kernel boot, module load or the mount of /data
	cutMid  = "mid"  // a random moment of the replay: a delay after HIL-READY
	cutFeed = "feed" // just after the guest starts feeding the n-th chunk of the boot (from the 2nd): an earlier batch's attestation is being signed and written
	cutLine = "line" // just after the n-th new attestation line of the boot: the store has just committed, the printed marker is being written
)

// powerCut is one planned cut.
type powerCut struct {
	kind  string
	n     int           // feed, line: the n-th such line of the boot
	delay time.Duration // after the trigger (qemu start, HIL-READY, or the n-th line)
}

func (c powerCut) String() string {
	switch c.kind {
	case cutFeed, cutLine:
		return fmt.Sprintf("%s #%d +%v", c.kind, c.n, c.delay.Round(time.Millisecond))
	}
	return fmt.Sprintf("%s +%v", c.kind, c.delay.Round(time.Millisecond))
}

// planCuts returns a shuffled plan of power cuts, the same for a seed.
func planCuts(rng *rand.Rand) []powerCut {
	dur := func(lo, hi time.Duration) time.Duration { return lo + time.Duration(rng.Int64N(int64(hi-lo))) }
	var plan []powerCut
	for range 4 {
		plan = append(plan, powerCut{kind: cutBoot, delay: dur(500*time.Millisecond, 4500*time.Millisecond)})
	}
	for range 5 {
		plan = append(plan, powerCut{kind: cutMid, delay: dur(0, 4*time.Second)})
	}
	for range 6 {
		plan = append(plan, powerCut{kind: cutFeed, n: 2 + rng.IntN(3), delay: dur(0, 200*time.Millisecond)})
	}
	for range 6 {
		plan = append(plan, powerCut{kind: cutLine, n: 1 + rng.IntN(3), delay: dur(0, 30*time.Millisecond)})
	}
	rng.Shuffle(len(plan), func(i, j int) { plan[i], plan[j] = plan[j], plan[i] })
	return plan
}

// ledger collects the attestation lines seen on the guest's console across
// boots and checks them as they come: each line parses and carries a valid
// signature of the device, a seq is never printed with two different
// contents (a fork), prev links to the digest of seq-1, and within one boot
// the lines go up by one.
type ledger struct {
	chainID uint64
	device  signer.Address
	wire    map[uint64]string
	att     map[uint64]*signer.Attestation
	max     uint64

	reprints     int // lines identical to one printed before (after a cut)
	consoleGaps  int // a boot's first line beyond max+1: lines lost with a cut
	linesPerBoot []int
}

func newLedger(chainID uint64, device signer.Address) *ledger {
	return &ledger{chainID: chainID, device: device, wire: map[uint64]string{}, att: map[uint64]*signer.Attestation{}}
}

func isAttestation(line string) bool { return strings.HasPrefix(line, `{"v":`) }

// boot checks the attestation lines of one boot and returns how many were
// new.
func (l *ledger) boot(n int, lines []string) (fresh int, err error) {
	var last uint64
	count := 0
	for _, line := range lines {
		if !isAttestation(line) {
			continue
		}
		count++
		a, err := signer.ParseWire([]byte(line))
		if err != nil {
			return fresh, fmt.Errorf("boot %d: console line %q: %w", n, line, err)
		}
		if err := signer.Verify(l.chainID, a); err != nil {
			return fresh, fmt.Errorf("boot %d: seq %d: %w", n, a.Seq, err)
		}
		if a.Device != l.device {
			return fresh, fmt.Errorf("boot %d: seq %d: device %s, want %s", n, a.Seq, a.Device, l.device)
		}
		if last != 0 && a.Seq != last+1 {
			return fresh, fmt.Errorf("boot %d: seq %d printed after seq %d, want %d", n, a.Seq, last, last+1)
		}
		if last == 0 && a.Seq > l.max+1 {
			l.consoleGaps++
		}
		last = a.Seq
		if old, ok := l.wire[a.Seq]; ok {
			if old != line {
				return fresh, fmt.Errorf("boot %d: fork at seq %d:\n  printed before: %s\n  printed now:    %s", n, a.Seq, old, line)
			}
			l.reprints++
			continue
		}
		var zero [32]byte
		if a.Seq == 1 && a.Prev != zero {
			return fresh, fmt.Errorf("boot %d: seq 1 has prev %x, want zero", n, a.Prev)
		}
		if p, ok := l.att[a.Seq-1]; ok && a.Prev != signer.Digest(l.chainID, p) {
			return fresh, fmt.Errorf("boot %d: seq %d: prev %x is not the digest of seq %d", n, a.Seq, a.Prev, a.Seq-1)
		}
		if s, ok := l.att[a.Seq+1]; ok && s.Prev != signer.Digest(l.chainID, a) {
			return fresh, fmt.Errorf("boot %d: seq %d (seen before) has a prev that is not the digest of seq %d printed now", n, a.Seq+1, a.Seq)
		}
		l.wire[a.Seq], l.att[a.Seq] = line, a
		l.max = max(l.max, a.Seq)
		fresh++
	}
	l.linesPerBoot = append(l.linesPerBoot, count)
	return fresh, nil
}

// resumeBatch is the first batch the next boot must be fed: the batch of
// the last attestation seen. The store is at least that far (a line is
// printed only once durable), and the replay skips frames before its
// resume time, so feeding from there gives it every frame it still needs.
func (l *ledger) resumeBatch() int64 {
	if l.max == 0 {
		return 0
	}
	return int64(l.att[l.max].Batch)
}

// TestPowerCut is the acceptance test for the whole machine: the
// emulated T-Box replays a long drive into its state on a virtio disk
// (cache=writethrough) and qemu is SIGKILLed at least 20 times, at seeded
// moments from kernel boot to right after an attestation is written; each
// boot resumes the chain. The attestation lines seen on the console must
// never fork and must chain; after a last boot that runs the drive to its
// end, the store holds seq 1..N, contiguous, every prev linking, verify
// clean, every line ever printed identical to the stored one, and the
// meters summing to the drive's ground truth exactly.
//
// A line printed again after a cut is allowed when it is byte-identical:
// replay keeps its "printed" marker unsynced, so a power cut (unlike a
// killed process) can lose it and the next boot reprints the last durable
// lines. Lines differing for one seq are a fork and fail the test. The
// console itself may lose the tail a guest wrote just before the cut; the
// store read in the last boot is the authority for contiguity, and the
// figures count any seq never seen on the console.
//
// The guest is fed the drive from the batch of the last attestation seen
// (the replay skips older frames itself), one chunk per batch with a 0.3 s
// pause, so that a boot lives long enough to be cut mid-replay; the last
// boot feeds the rest without pauses.
//
// HIL_POWERCUT_SEED changes the seed of the kill plan (default 1).
func TestPowerCut(t *testing.T) {
	k := prepare(t)
	ctx := context.Background()
	t0 := time.Now()
	dir := t.TempDir()

	seed := uint64(1)
	if s := os.Getenv("HIL_POWERCUT_SEED"); s != "" {
		v, err := strconv.ParseUint(s, 10, 64)
		if err != nil {
			t.Fatalf("HIL_POWERCUT_SEED=%q: want an unsigned integer", s)
		}
		seed = v
	}
	rng := rand.New(rand.NewPCG(seed, 0x70c))
	plan := planCuts(rng)

	// The drive: 16 simulated hours with parked periods, about 35 batches
	// with distance, one gzipped candump chunk per batch.
	tomlPath, dbcPath, err := evProfile()
	if err != nil {
		t.Fatal(err)
	}
	prof, err := profile.Load(tomlPath)
	if err != nil {
		t.Fatal(err)
	}
	chunks := filepath.Join(dir, "drive")
	if err := os.Mkdir(chunks, 0o755); err != nil {
		t.Fatal(err)
	}
	drv, err := writeChunkedDrive(chunks, prof, vehicle.Scenario{
		Seed: 11, Start: time.Date(2026, 1, 1, 8, 0, 0, 0, time.UTC), Duration: 16 * time.Hour,
		Bus: "can0", Parking: true, ModeChanges: true, StopAndGo: true,
	})
	if err != nil {
		t.Fatal(err)
	}
	keyPath := filepath.Join(dir, "device.key")
	device, err := signer.GenerateKeyFile(keyPath)
	if err != nil {
		t.Fatal(err)
	}
	bin := filepath.Join(dir, "tboxctl")
	if err := CrossBuild(ctx, "./cmd/tboxctl", bin); err != nil {
		t.Fatal(err)
	}
	disk := filepath.Join(dir, "disk.img")
	if err := MakeDisk(disk, 64); err != nil {
		t.Fatal(err)
	}
	files := map[string]string{
		"/bin/tboxctl":      bin,
		"/drive/ev.toml":    tomlPath,
		"/drive/ev.dbc":     dbcPath,
		"/drive/device.key": keyPath,
	}
	for host := range drv.Files {
		files["/drive/"+filepath.Base(host)] = host
	}
	t.Logf("drive: %d frames, %d batches with frames, %.1f MB of candump, truth %d m in %d batches; device %s; kill seed %d; prepared in %v",
		drv.Truth.Frames.Total, len(drv.Batches), float64(drv.Bytes)/1e6, drv.Truth.Meters, len(drv.Truth.Batches), device, seed, since(t0))

	replay := fmt.Sprintf("tboxctl replay --chain-id %d --profile /drive/ev.toml --key /drive/device.key --state %s/state",
		powerCutChainID, DataDir)
	// script feeds the chunks from batch `from` on; pause is a shell command
	// run after each chunk ("sleep 0.3" paces the replay so that it runs long
	// enough to be cut at varied moments, ":" does not).
	script := func(from int64, pause string) string {
		var list []string
		for _, b := range drv.Batches {
			if b >= from {
				list = append(list, strconv.FormatInt(b, 10))
			}
		}
		return fmt.Sprintf(`cd /drive
for b in %s; do echo "HIL-FEED $b" >&2; zcat $b.gz; %s; done | %s
echo "HIL-REPLAY-EXIT $?"
`, strings.Join(list, " "), pause, replay)
	}

	led := newLedger(powerCutChainID, device)
	type bootFigure struct {
		cut     string
		at      time.Duration // qemu start to kill
		ready   bool
		lines   int
		fresh   int
		feeds   int
		outcome string
	}
	var figs []bootFigure
	cuts, boots := 0, 0
	isFeed := func(l string) bool { return strings.HasPrefix(l, "HIL-FEED ") }
	for _, cut := range plan {
		boots++
		bootN := boots
		con := newConsoleLines(func(l string) {
			if !isAttestation(l) && !isFeed(l) {
				t.Logf("guest %d: %s", bootN, l)
			}
		})
		r, err := k.Start(ctx, Options{
			Files: files, Disk: disk, Timeout: 2 * time.Minute, Console: con,
			Script: script(led.resumeBatch(), "sleep 0.3"),
		})
		if err != nil {
			t.Fatal(err)
		}
		start := time.Now()
		ended := make(chan struct{})
		var res *Result
		var werr error
		go func() { res, werr = r.Wait(); close(ended) }()

		wctx, cancel := context.WithTimeout(ctx, 90*time.Second)
		var trig error
		switch cut.kind {
		case cutBoot:
		case cutMid:
			trig = con.waitLine(wctx, ended, 1, func(l string) bool { return strings.HasPrefix(l, "HIL-READY") })
		case cutFeed:
			trig = con.waitLine(wctx, ended, cut.n, isFeed)
		case cutLine:
			seen := led.max
			trig = con.waitLine(wctx, ended, cut.n, func(l string) bool {
				a, err := signer.ParseWire([]byte(l))
				return isAttestation(l) && err == nil && a.Seq > seen
			})
		}
		cancel()
		if trig == nil {
			select {
			case <-time.After(cut.delay):
			case <-ended:
			}
		}
		at := time.Since(start)
		r.Kill()
		<-ended

		lines := con.Lines()
		fig := bootFigure{cut: cut.String(), at: at}
		for _, l := range lines {
			fig.ready = fig.ready || strings.HasPrefix(l, "HIL-READY")
			if isAttestation(l) {
				fig.lines++
			}
			if isFeed(l) {
				fig.feeds++
			}
		}
		switch {
		case errors.Is(werr, ErrNoExit):
			fig.outcome = "cut"
			cuts++
		case werr == nil:
			fig.outcome = fmt.Sprintf("ran to the end (exit %d) before the cut", res.ExitCode)
		default:
			t.Fatalf("boot %d (%s): %v", bootN, cut, werr)
		}
		fresh, err := led.boot(bootN, lines)
		fig.fresh = fresh
		figs = append(figs, fig)
		if err != nil {
			t.Fatal(err)
		}
		if trig != nil && !errors.Is(trig, errEnded) {
			t.Fatalf("boot %d (%s): waiting for the trigger: %v", bootN, cut, trig)
		}
	}

	// The last boot runs the rest of the drive at full speed and prints the
	// store.
	boots++
	finalN := boots
	con := newConsoleLines(func(l string) {
		if !isAttestation(l) && !isFeed(l) {
			t.Logf("guest %d: %s", finalN, l)
		}
	})
	final := script(led.resumeBatch(), ":") + fmt.Sprintf(`tboxctl outbox --state %[1]s/state > /tmp/outbox.jsonl; echo "HIL-OUTBOX-EXIT $?"
echo HIL-OUTBOX-BEGIN; cat /tmp/outbox.jsonl; echo HIL-OUTBOX-END
tboxctl verify --chain-id %[2]d --device %[3]s /tmp/outbox.jsonl; echo "HIL-VERIFY-EXIT $?"
`, DataDir, powerCutChainID, device)
	res, err := k.Boot(ctx, Options{Files: files, Disk: disk, Timeout: 3 * time.Minute, Console: con, Script: final})
	if err != nil {
		t.Fatalf("final boot: %v", err)
	}
	lines := con.Lines()
	var replayLines []string
	for i, l := range lines {
		if strings.HasPrefix(l, "HIL-READY") {
			replayLines = lines[i+1:]
			break
		}
	}
	if end := indexOf(replayLines, "HIL-OUTBOX-BEGIN"); end >= 0 {
		replayLines = replayLines[:end]
	}
	fresh, err := led.boot(finalN, replayLines)
	if err != nil {
		t.Fatal(err)
	}
	finalFig := bootFigure{cut: "none (final)", at: res.Duration, ready: true, lines: led.linesPerBoot[len(led.linesPerBoot)-1], fresh: fresh, outcome: "ran to the end"}
	for _, l := range replayLines {
		if isFeed(l) {
			finalFig.feeds++
		}
	}
	figs = append(figs, finalFig)
	for _, want := range []string{"HIL-REPLAY-EXIT 0", "HIL-OUTBOX-EXIT 0", "HIL-VERIFY-EXIT 0"} {
		if indexOf(lines, want) < 0 {
			t.Errorf("final boot: no %q line", want)
		}
	}

	// The store after the final boot.
	outbox, ok := between(lines, "HIL-OUTBOX-BEGIN", "HIL-OUTBOX-END")
	if !ok {
		t.Fatal("final boot: no outbox between HIL-OUTBOX-BEGIN and HIL-OUTBOX-END")
	}
	cc := signer.NewChainChecker(powerCutChainID, signer.WithDevice(device))
	var meters int64
	perBatch := map[int64]int64{}
	stored := map[uint64]string{}
	flagged := 0
	for i, line := range outbox {
		a, err := signer.ParseWire([]byte(line))
		if err != nil {
			t.Fatalf("outbox line %d: %v", i+1, err)
		}
		if a.Seq != uint64(i+1) {
			t.Fatalf("outbox line %d holds seq %d, want %d: the chain is not contiguous from 1", i+1, a.Seq, i+1)
		}
		for _, p := range cc.Check(a) {
			t.Errorf("outbox: %v", p)
		}
		stored[a.Seq] = line
		meters += int64(a.Meters)
		perBatch[int64(a.Batch)] += int64(a.Meters)
		if a.Flags != 0 {
			flagged++
		}
	}
	if len(outbox) == 0 {
		t.Fatal("final boot: the outbox is empty")
	}
	for seq, line := range led.wire {
		if s, ok := stored[seq]; !ok {
			t.Errorf("seq %d was printed on the console but is not in the store", seq)
		} else if s != line {
			t.Errorf("fork at seq %d: printed %s\nstored %s", seq, line, s)
		}
	}
	neverPrinted := 0
	for seq := range stored {
		if _, ok := led.wire[seq]; !ok {
			neverPrinted++
		}
	}
	if meters != drv.Truth.Meters {
		t.Errorf("the chain credits %d m in total, the ground truth is %d m", meters, drv.Truth.Meters)
	}
	batchDiff := 0
	for _, b := range drv.Truth.Batches {
		if perBatch[b.Batch] != b.Meters {
			batchDiff++
		}
	}

	// Figures.
	for i, f := range figs {
		t.Logf("boot %2d: %-26s at %6v ready=%-5v feeds=%2d lines=%2d new=%2d  %s",
			i+1, f.cut, f.at.Round(10*time.Millisecond), f.ready, f.feeds, f.lines, f.fresh, f.outcome)
	}
	kinds := map[string]int{}
	for i, f := range figs[:len(figs)-1] {
		if f.outcome == "cut" {
			kinds[plan[i].kind]++
		}
	}
	var ks []string
	for kind, n := range kinds {
		ks = append(ks, fmt.Sprintf("%s %d", kind, n))
	}
	sort.Strings(ks)
	t.Logf("power cuts: %d (%s) in %d boots; attestations: %d (%d flagged), %d m = truth %d m; reprinted after a cut: %d lines; seqs never seen on the console: %d; boots whose first line skipped seqs: %d; batches whose attested meters differ from the truth's split: %d of %d; total time %v",
		cuts, strings.Join(ks, ", "), boots, len(outbox), flagged, meters, drv.Truth.Meters, led.reprints, neverPrinted, led.consoleGaps,
		batchDiff, len(drv.Truth.Batches), since(t0))
	if cuts < 20 {
		t.Errorf("only %d power cuts landed (the drive ended first in the other boots); want at least 20", cuts)
	}
}

func indexOf(lines []string, s string) int {
	for i, l := range lines {
		if l == s {
			return i
		}
	}
	return -1
}
