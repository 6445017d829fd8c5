// Command benchtable runs the project's benchmarks and prints them as one
// markdown table: the figures README quotes, reproducible with `make bench`.
package main

import (
	"bufio"
	"bytes"
	"context"
	"debug/elf"
	"errors"
	"flag"
	"fmt"
	"io"
	"math"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"runtime"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/csop/tbox/hil"
)

// row is one line of the table: a benchmark and the target the issues set
// for it.
type row struct {
	what    string
	pkg     string   // go package of the benchmark
	bench   string   // benchmark name regexp
	metrics []string // metrics to show, besides allocs/op; the first is compared with the peer
	peer    string   // prefix of the sub-benchmarks that measure a peer in the same run ("einride/")
	target  string
	// median: the benchmark measures its own ratio side by side (metrics[0]);
	// it runs medianCount times and each sub-benchmark shows its median
	// round by that ratio.
	median    bool
	benchtime string // overrides -benchtime for this row
}

var rows = []row{
	{what: "candump parse + filter (1 core)", pkg: "./can/", bench: "^BenchmarkReaderFilter$", metrics: []string{"frames/s"}, target: ">= 5,000,000 frames/s, 0 allocs/frame"},
	{what: "DBC decode + mileage update (1 core)", pkg: "./agent/", bench: "^BenchmarkDecodeMileage$", metrics: []string{"frames/s", "allocs/frame"}, target: ">= 5,000,000 frames/s, 0 allocs/frame"},
	{what: "DBC decode, same frames as einride/can-go", pkg: "./agent/profile/", bench: "^BenchmarkDecode$", metrics: []string{"frames/s"}, peer: "einride/", target: ">= 1x einride"},
	{what: "mileage engine update alone", pkg: "./agent/mileage/", bench: "^BenchmarkOdometerUpdate$", metrics: []string{"frames/s"}, target: "0 allocs"},
	{what: "sign attestation (1 core)", pkg: "./signer/", bench: "^BenchmarkSign$", metrics: []string{"sigs/s"}, target: ">= 20,000 /s"},
	{what: "verify attestation (1 core)", pkg: "./signer/", bench: "^BenchmarkVerify$", metrics: []string{"verifies/s"}, target: "reported"},
	{what: "outbox append with fsync", pkg: "./store/", bench: "^BenchmarkAppendFsync$", metrics: []string{"appends/s", "fsyncs/op"}, target: "reported"},
	{what: "outbox per driven hour (eMMC wear)", pkg: "./store/", bench: "^BenchmarkDrivenHour$", metrics: []string{"fsyncs/h", "written-B/h", "disk-B/h"}, target: "reported"},
	{what: "drain 10,000-attestation backlog via mosquitto", pkg: "./agent/uplink/", bench: "^BenchmarkDrain$", metrics: []string{"msgs/s"}, target: ">= 1,000 /s"},
	{what: "collector verification (1 core)", pkg: "./cmd/collector/internal/collect/", bench: "^BenchmarkProcess$", metrics: []string{"verifications/s"}, target: ">= 5,000 /s"},
	{what: "collector: verified attestations stored, durable commits (1 core; x-bare: against the bare signature check of the same attestations, interleaved)", pkg: "./cmd/collector/internal/collect/", bench: "^BenchmarkStore$", metrics: []string{"x-bare", "attestations/s", "bare/s", "commit-ms/group", "cpu-µs/attestation"}, median: true, benchtime: "8192x", target: ">= 0.8x the bare signature check, bbolt and PostgreSQL"},
	{what: "signature check against a cached device key (1 core; x-warm: table, x-field: bare key, x-cold: nothing cached; speedup over signer.Verify, side by side)", pkg: "./signer/sigcache/", bench: "^BenchmarkSideBySide$", metrics: []string{"x-warm", "x-field", "x-cold", "warm-µs", "field-µs", "cold-µs", "ref-µs", "table-µs"}, median: true, benchtime: "3000x", target: "reported; cold >= 1x"},
	{what: "collectors on one PostgreSQL: 2 against 1 (GOMAXPROCS 2; x-one: median of 5 alternating rounds)", pkg: "./cmd/collector/internal/collect/", bench: "^BenchmarkScale$", metrics: []string{"x-one", "one/s", "two/s"}, median: true, benchtime: "20000x", target: "ratio reported"},
}

// sizeBuild is how the size rows build: static, stripped, as `make arm`
// and `make arm64` do but without the version stamp.
const sizeBuild = `CGO_ENABLED=0 GOOS=linux GOARCH=<arch> [GOARM=7] go build -trimpath -buildvcs=false -ldflags "-s -w"`

func main() {
	benchtime := flag.String("benchtime", "1s", "go test -benchtime")
	host := flag.Bool("host", true, "run the Go benchmarks")
	sizes := flag.Bool("sizes", true, "build tboxd for linux/arm and linux/arm64 and report the sizes")
	guest := flag.Bool("guest", true, "measure tboxd in the emulated T-Box (cold start, RSS, CPU per frame)")
	coldRuns := flag.Int("cold-runs", 5, "tboxd starts timed in the guest")
	loadFrames := flag.Int("load-frames", 60000, "frames sent in the guest's full-load phase")
	loadGap := flag.Float64("load-gap-ms", 0, "cangen's gap per generator (two generators) in the full-load phase; 0 sends as fast as the guest can")
	coldGap := flag.Float64("cold-gap-ms", 5, "cangen's gap while tboxd starts")
	fieldLoad := flag.String("fieldload", "TestFieldFullBusLoad", "the ./hil/ field test whose HIL-METRIC figures to show (peak RSS and CPU per frame at full bus load); empty for none")
	backlog := flag.String("backlog", "TestBacklogDrainUnderLoad", "the ./hil/rig/ test whose HIL-METRIC figures to show (peak RSS at full bus load with a backlog draining); empty for none")
	backlogSize := flag.Int("backlog-size", 10000, "attestations in that test's backlog (TBOX_BACKLOG)")
	verbose := flag.Bool("v", false, "echo the guest's console to stderr")
	flag.Parse()
	ctx := context.Background()
	start := time.Now()

	var out []string
	add := func(what, result, peer, target string) {
		out = append(out, fmt.Sprintf("| %s | %s | %s | %s |", what, cell(result), cell(peer), cell(target)))
	}
	if *host {
		for _, r := range rows {
			fmt.Fprintf(os.Stderr, "benchtable: %s %s\n", r.pkg, r.bench)
			subs, err := runBench(r, *benchtime)
			if err != nil {
				add(r.what, "error: "+err.Error(), "", r.target)
				continue
			}
			res, peer := formatRow(r, subs)
			add(r.what, res, peer, r.target)
		}
	}
	if *sizes {
		for _, arch := range []string{"arm", "arm64"} {
			fmt.Fprintf(os.Stderr, "benchtable: sizes for linux/%s\n", arch)
			res, peer := sizeRow(arch)
			add("tboxd's own code above the library floor, static stripped, linux/"+arch, res, peer, "<= 1 MiB above the floor")
		}
	}
	if *guest {
		fmt.Fprintln(os.Stderr, "benchtable: the emulated T-Box (about 30 s)")
		var progress io.Writer
		if *verbose {
			progress = os.Stderr
		}
		g, err := runGuest(ctx, guestPlan{ColdRuns: *coldRuns, Frames: *loadFrames, GapMS: *loadGap, ColdGapMS: *coldGap}, progress)
		for _, r := range guestRows(g, err) {
			add(r[0], r[1], r[2], r[3])
		}
	}
	if *fieldLoad != "" {
		for _, r := range fieldLoadRows(ctx, *fieldLoad) {
			add(r[0], r[1], r[2], r[3])
		}
	}
	if *backlog != "" {
		for _, r := range backlogRows(ctx, *backlog, *backlogSize) {
			add(r[0], r[1], r[2], r[3])
		}
	}

	fmt.Printf("Machine: %s, %d cores (%s/%s), %s\n", cpuModel(), runtime.NumCPU(), runtime.GOOS, runtime.GOARCH, goVersion())
	fmt.Printf("Command: `make bench` (go run ./hil/benchtable -benchtime %s), %s, took %v\n\n", *benchtime,
		time.Now().UTC().Format("2006-01-02 15:04 MST"), time.Since(start).Round(time.Second))
	fmt.Println("| row | result | peer, same run | target |")
	fmt.Println("|---|---|---|---|")
	for _, l := range out {
		fmt.Println(l)
	}
	fmt.Println()
	fmt.Println("Go benchmarks: go test -run '^$' -bench <row> -benchmem -cpu 1 -benchtime " + *benchtime + ".")
	fmt.Println("Sizes: " + sizeBuild + "; the peer column is hil/benchtable/floor, the libraries tboxd must link used minimally.")
	if *guest {
		fmt.Println("Guest rows: the emulated T-Box (qemu-system-arm, Cortex-A15, TCG, 1 CPU, 256 MiB) running the GOARM=7 tboxd on vcan0 " +
			"fed by can-utils cangen (CLU_Odometer and ESP_Speed frames, both in tboxd's kernel filter); no broker configured.")
	}
}

// bench is one (sub-)benchmark's result line.
type bench struct {
	name string             // sub-benchmark name, "" for the top level
	vals map[string]float64 // unit -> value
	keys []string           // units in output order
}

// runBench runs one benchmark on one core.
func runBench(r row, benchtime string) ([]bench, error) {
	if _, err := os.Stat(r.pkg); err != nil {
		return nil, fmt.Errorf("no package %s yet", r.pkg)
	}
	if r.benchtime != "" {
		benchtime = r.benchtime
	}
	args := []string{"test", "-run", "^$", "-bench", r.bench, "-benchmem", "-benchtime", benchtime, "-cpu", "1"}
	if r.median {
		args = append(args, "-count", strconv.Itoa(medianCount))
	} else if r.peer != "" {
		// Ours and the peer's alternate peerRounds times; each keeps its
		// best round. Another tenant's load only ever slows a round, so the
		// best of several, taken in turns, compares the two fairly.
		args = append(args, "-count", strconv.Itoa(peerRounds))
	}
	cmd := exec.Command("go", append(args, r.pkg)...)
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Run(); err != nil {
		return nil, fmt.Errorf("%v: %s", err, lastLine(out.String()))
	}
	pick := bestRounds
	if r.median {
		pick = medianRounds
	}
	subs := pick(parseBench(out.String()), r.metrics[0])
	if len(subs) == 0 {
		return nil, fmt.Errorf("no benchmark matched %s", r.bench)
	}
	return subs, nil
}

// peerRounds is how many rounds a row with a peer runs.
const peerRounds = 5

// medianCount is how many rounds a row with median runs.
const medianCount = 5

// medianRounds keeps, of the rounds of each sub-benchmark, the one whose
// metric (a ratio the benchmark measured side by side) is the median, in
// the order the sub-benchmarks first ran.
func medianRounds(subs []bench, metric string) []bench {
	var names []string
	by := map[string][]bench{}
	for _, b := range subs {
		if _, ok := by[b.name]; !ok {
			names = append(names, b.name)
		}
		by[b.name] = append(by[b.name], b)
	}
	out := make([]bench, 0, len(names))
	for _, n := range names {
		rs := by[n]
		sort.SliceStable(rs, func(i, j int) bool { return rs[i].vals[metric] < rs[j].vals[metric] })
		out = append(out, rs[len(rs)/2])
	}
	return out
}

// bestRounds keeps, of the rounds of each sub-benchmark, the one with the
// highest metric (a rate), in the order the sub-benchmarks first ran.
func bestRounds(subs []bench, metric string) []bench {
	var out []bench
	at := map[string]int{}
	for _, b := range subs {
		i, ok := at[b.name]
		switch {
		case !ok:
			at[b.name] = len(out)
			out = append(out, b)
		case b.vals[metric] > out[i].vals[metric]:
			out[i] = b
		}
	}
	return out
}

// parseBench reads go test -bench output run with -cpu 1.
func parseBench(out string) []bench {
	var subs []bench
	sc := bufio.NewScanner(strings.NewReader(out))
	for sc.Scan() {
		f := strings.Fields(sc.Text())
		if len(f) < 4 || !strings.HasPrefix(f[0], "Benchmark") {
			continue
		}
		if _, err := strconv.ParseInt(f[1], 10, 64); err != nil {
			continue // not a result line
		}
		b := bench{vals: map[string]float64{}}
		if _, sub, ok := strings.Cut(f[0], "/"); ok {
			b.name = sub
		}
		for i := 2; i+1 < len(f); i += 2 {
			v, err := strconv.ParseFloat(f[i], 64)
			if err != nil {
				continue
			}
			b.vals[f[i+1]] = v
			b.keys = append(b.keys, f[i+1])
		}
		subs = append(subs, b)
	}
	return subs
}

// formatRow gives the result cell (our sub-benchmarks) and the peer cell
// (r.peer's, each with our figure as a multiple of the peer's).
func formatRow(r row, subs []bench) (result, peer string) {
	show := func(b bench) string {
		var vals []string
		for _, unit := range b.keys {
			if unit == "allocs/op" || contains(r.metrics, unit) {
				vals = append(vals, humanize(b.vals[unit])+" "+unit)
			}
		}
		return strings.Join(vals, ", ")
	}
	var res, peers []string
	for _, b := range subs {
		if r.peer != "" && strings.HasPrefix(b.name, r.peer) {
			continue
		}
		name := b.name
		if r.peer != "" {
			// "tbox/bus-mix": the mix is what tells the lines apart
			if _, mix, ok := strings.Cut(name, "/"); ok {
				name = mix
			}
		}
		s := show(b)
		if name != "" {
			s = name + ": " + s
		}
		res = append(res, s)
		if r.peer == "" {
			continue
		}
		for _, p := range subs {
			if !strings.HasPrefix(p.name, r.peer) || strings.TrimPrefix(p.name, r.peer) != name {
				continue
			}
			ps := strings.TrimSuffix(r.peer, "/") + " " + name + ": " + show(p)
			m := r.metrics[0]
			if ours, theirs := b.vals[m], p.vals[m]; ours > 0 && theirs > 0 {
				ps += fmt.Sprintf(" (ours %.2fx)", ours/theirs)
			}
			peers = append(peers, ps)
		}
	}
	return strings.Join(res, "; "), strings.Join(peers, "; ")
}

// sizeRow builds tboxd and the library floor for arch, one after the
// other, each into its own temporary directory. The file sizes move in
// 64 KiB steps (the ELF segments are aligned to 64 KiB), so the row gives
// the content too: the allocated sections' bytes, which move with the code.
func sizeRow(arch string) (result, peer string) {
	tboxd, tboxdContent, err := buildSize(arch, "./cmd/tboxd")
	if err != nil {
		return "error: " + err.Error(), ""
	}
	floor, floorContent, err := buildSize(arch, "./hil/benchtable/floor")
	if err != nil {
		return mib(tboxd), "error: " + err.Error()
	}
	return fmt.Sprintf("%s (content %s)", mib(tboxd-floor), kib(tboxdContent-floorContent)),
		fmt.Sprintf("tboxd %s in all (content %s); the required libraries alone (hil/benchtable/floor) %s (content %s)",
			mib(tboxd), kib(tboxdContent), mib(floor), kib(floorContent))
}

// buildSize builds pkg for linux/arch as the size rows do and returns the
// file's size and its content: the bytes of its allocated sections (code,
// data, tables) that occupy the file, the section headers' sum as `readelf
// -SW` lists them.
func buildSize(arch, pkg string) (file, content int64, err error) {
	dir, err := os.MkdirTemp("", "benchtable-size")
	if err != nil {
		return 0, 0, err
	}
	defer os.RemoveAll(dir)
	out := filepath.Join(dir, "bin")
	cmd := exec.Command("go", "build", "-trimpath", "-buildvcs=false", "-ldflags", "-s -w", "-o", out, pkg)
	env := []string{"CGO_ENABLED=0", "GOOS=linux", "GOARCH=" + arch}
	if arch == "arm" {
		env = append(env, "GOARM=7")
	}
	cmd.Env = append(cleanEnv(), env...)
	if b, err := cmd.CombinedOutput(); err != nil {
		return 0, 0, fmt.Errorf("go build %s for linux/%s: %v: %s", pkg, arch, err, firstLine(string(b)))
	}
	st, err := os.Stat(out)
	if err != nil {
		return 0, 0, err
	}
	content, err = elfContent(out)
	return st.Size(), content, err
}

// elfContent sums the sizes of the allocated sections of an ELF file that
// have bytes in it (not .bss).
func elfContent(path string) (int64, error) {
	f, err := elf.Open(path)
	if err != nil {
		return 0, err
	}
	defer f.Close()
	var n int64
	for _, s := range f.Sections {
		if s.Flags&elf.SHF_ALLOC != 0 && s.Type != elf.SHT_NOBITS {
			n += int64(s.Size)
		}
	}
	return n, nil
}

// cleanEnv is the environment without the variables that would change a
// cross build (a GOARM meant for another target, GOFLAGS, CC).
func cleanEnv() []string {
	var env []string
	for _, e := range os.Environ() {
		k, _, _ := strings.Cut(e, "=")
		switch k {
		case "GOOS", "GOARCH", "GOARM", "GOARM64", "GOAMD64", "GO386", "GOFLAGS", "CGO_ENABLED", "CC", "CXX":
			continue
		}
		env = append(env, e)
	}
	return env
}

// guestRows are the table's rows for the emulated T-Box.
func guestRows(g *guestFigures, err error) [][4]string {
	const (
		coldWhat = "cold start: exec to first frame processed, emulated T-Box"
		rssWhat  = "peak RSS at full bus load (no broker), emulated T-Box"
		cpuWhat  = "CPU per received frame, emulated T-Box"
	)
	if err != nil {
		why := "error: " + err.Error()
		if errors.Is(err, hil.ErrUnavailable) {
			why = "skipped: " + err.Error()
		}
		why = firstLine(why)
		return [][4]string{{coldWhat, why, "", "reported"}, {rssWhat, why, "", "reported"}, {cpuWhat, why, "", "reported"}}
	}
	var rs [][4]string
	if len(g.Cold) > 0 {
		first := g.Cold[0]
		rs = append(rs, [4]string{coldWhat,
			fmt.Sprintf("%s median of %d (\"tboxd started\" at %s); first start, no state yet: %s",
				ms(median(g.Cold, func(c coldRun) time.Duration { return c.FirstFrame })), len(g.Cold),
				ms(median(g.Cold, func(c coldRun) time.Duration { return c.Started })), ms(first.FirstFrame)),
			"", "reported"})
	}
	rate := "?"
	if g.LoadSeconds > 0 {
		rate = humanize(math.Round(float64(g.Sent) / g.LoadSeconds))
	}
	rs = append(rs, [4]string{rssWhat,
		fmt.Sprintf("tboxd %s VmHWM (%d frames at %s frames/s)", mib(g.TboxdHWM), g.Sent, rate),
		fmt.Sprintf("candump %s VmHWM", mib(g.CandumpHWM)), "<= 16 MiB"})
	per := func(cpu, user time.Duration, frames int64) string {
		if frames <= 0 {
			return "no frames"
		}
		return fmt.Sprintf("%.1f µs/frame (%d frames, %s CPU, %.0f %% of it in the kernel)", float64(cpu.Microseconds())/float64(frames), frames,
			cpu.Round(10*time.Millisecond), 100*float64(cpu-user)/float64(max(cpu, 1)))
	}
	res := "tboxd " + per(g.TboxdCPU, g.TboxdUser, g.TboxdFrames)
	if g.TboxdFrames < g.Sent {
		res += fmt.Sprintf(", %d of %d sent not counted", g.Sent-g.TboxdFrames, g.Sent)
	}
	if g.TboxdReads > 0 {
		res += fmt.Sprintf(", %.1f frames per receive call", float64(g.TboxdFrames)/float64(g.TboxdReads))
	}
	peer := "candump -L to a file " + per(g.CandumpCPU, g.CandumpUser, g.CandumpFrames)
	if g.TboxdFrames > 0 && g.CandumpFrames > 0 && g.CandumpCPU > 0 {
		peer += fmt.Sprintf("; tboxd %.2fx candump's", (float64(g.TboxdCPU)/float64(g.TboxdFrames))/(float64(g.CandumpCPU)/float64(g.CandumpFrames)))
	}
	rs = append(rs, [4]string{cpuWhat, res, peer, "<= 1x candump"})
	for _, p := range g.Problems {
		rs = append(rs, [4]string{"guest note", p, "", ""})
	}
	return rs
}

// reMetric is a HIL-METRIC line of the guest tests, maybe behind t.Log's
// file:line prefix.
var reMetric = regexp.MustCompile(`(?m)HIL-METRIC (.*)$`)

// fieldLoadRows runs the field scenario of a flooded bus (./hil/
// TestFieldFullBusLoad) when it exists and shows its HIL-METRIC figures.
func fieldLoadRows(ctx context.Context, test string) [][4]string {
	what := "full bus load while driving, field scenario (./hil/ " + test + ")"
	list, err := exec.CommandContext(ctx, "go", "test", "-list", "^"+test+"$", "./hil/").CombinedOutput()
	if err != nil || !strings.Contains(string(list), test) {
		return [][4]string{{what, "not run: no " + test + " in ./hil/", "", "reported"}}
	}
	fmt.Fprintf(os.Stderr, "benchtable: go test -count=1 -run '^%s$' -v ./hil/\n", test)
	ctx, cancel := context.WithTimeout(ctx, 8*time.Minute)
	defer cancel()
	out, err := exec.CommandContext(ctx, "go", "test", "-count=1", "-run", "^"+test+"$", "-v", "-timeout", "8m", "./hil/").CombinedOutput()
	if err != nil {
		return [][4]string{{what, "test failed: " + lastLine(string(out)), "", "reported"}}
	}
	return metricRows(test, string(out))
}

// backlogRows runs the rig's backlog scenario (./hil/rig/
// TestBacklogDrainUnderLoad) with a backlog of size attestations and
// shows its figures.
func backlogRows(ctx context.Context, test string, size int) [][4]string {
	what := "peak RSS at full bus load with a backlog draining, emulated T-Box (./hil/rig/ " + test + ")"
	fmt.Fprintf(os.Stderr, "benchtable: TBOX_BACKLOG=%d go test -count=1 -run '^%s$' -v ./hil/rig/\n", size, test)
	ctx, cancel := context.WithTimeout(ctx, 12*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, "go", "test", "-count=1", "-run", "^"+test+"$", "-v", "-timeout", "12m", "./hil/rig/")
	cmd.Env = append(os.Environ(), fmt.Sprintf("TBOX_BACKLOG=%d", size))
	out, err := cmd.CombinedOutput()
	if err != nil {
		return [][4]string{{what, "test failed: " + lastLine(string(out)), "", "<= 16 MiB"}}
	}
	return backlogMetricRows(what, string(out))
}

// backlogMetricRows turns the backlog scenario's HIL-METRIC line into its row.
func backlogMetricRows(what, out string) [][4]string {
	m := map[string]float64{}
	for _, l := range reMetric.FindAllStringSubmatch(out, -1) {
		for k, v := range keyValues(l[1]) {
			if f, err := strconv.ParseFloat(v, 64); err == nil {
				m[k] = f
			}
		}
	}
	for _, k := range []string{"backlog", "drain_s", "tboxd_vmhwm_kb", "profile_frames", "bus_frames", "window_s"} {
		if _, ok := m[k]; !ok || m["window_s"] <= 0 || m["drain_s"] <= 0 {
			return [][4]string{{what, "passed, but printed no complete HIL-METRIC line", "", "<= 16 MiB"}}
		}
	}
	return [][4]string{{what,
		fmt.Sprintf("tboxd %s VmHWM; %s attestations drained in %.1f s (%s/s) while %s bus frames arrived in %.0f s (%s frames/s), %s of them the profile's (none dropped)",
			mib(int64(m["tboxd_vmhwm_kb"])<<10), humanize(m["backlog"]), m["drain_s"], humanize(math.Round(m["backlog"]/m["drain_s"])),
			humanize(m["bus_frames"]), m["window_s"], humanize(math.Round(m["bus_frames"]/m["window_s"])), humanize(m["profile_frames"])),
		"", "<= 16 MiB"}}
}

// metricRows turns TestFieldFullBusLoad's HIL-METRIC lines into the RSS
// and CPU rows; lines it does not know are shown as they are.
func metricRows(test, out string) [][4]string {
	m := map[string]float64{}
	var raw []string
	for _, l := range reMetric.FindAllStringSubmatch(out, -1) {
		raw = append(raw, l[1])
		for k, v := range keyValues(l[1]) {
			if f, err := strconv.ParseFloat(v, 64); err == nil {
				m[k] = f
			}
		}
	}
	has := func(keys ...string) bool {
		for _, k := range keys {
			if _, ok := m[k]; !ok {
				return false
			}
		}
		return true
	}
	if !has("tboxd_cpu_s", "tboxd_vmhwm_kb", "profile_frames", "candump_filtered_cpu_s", "candump_all_cpu_s", "bus_frames", "window_s") ||
		m["profile_frames"] <= 0 || m["bus_frames"] <= 0 || m["window_s"] <= 0 {
		what := "field scenario (./hil/ " + test + ")"
		if len(raw) == 0 {
			return [][4]string{{what, "passed, but printed no HIL-METRIC line", "", "reported"}}
		}
		var rs [][4]string
		for _, l := range raw {
			rs = append(rs, [4]string{what, l, "", "reported"})
		}
		return rs
	}
	load := fmt.Sprintf("%s bus frames in %.0f s (%s frames/s), %s of them the profile's, while driving",
		humanize(m["bus_frames"]), m["window_s"], humanize(math.Round(m["bus_frames"]/m["window_s"])), humanize(m["profile_frames"]))
	us := func(cpu, frames float64) string { return fmt.Sprintf("%.1f µs/frame", cpu*1e6/frames) }
	tboxd := m["tboxd_cpu_s"] / m["profile_frames"]
	filtered := m["candump_filtered_cpu_s"] / m["profile_frames"]
	peer := fmt.Sprintf("candump, same filter: %s; candump, no filter: %s per bus frame", us(m["candump_filtered_cpu_s"], m["profile_frames"]), us(m["candump_all_cpu_s"], m["bus_frames"]))
	if filtered > 0 {
		peer += fmt.Sprintf("; tboxd %.2fx candump's, same filter", tboxd/filtered)
	}
	return [][4]string{
		{"peak RSS at full bus load, field scenario (./hil/ " + test + ")",
			fmt.Sprintf("tboxd %s VmHWM; %s", mib(int64(m["tboxd_vmhwm_kb"])<<10), load), "", "<= 16 MiB"},
		{"CPU per received frame, field scenario (./hil/ " + test + ")",
			fmt.Sprintf("tboxd %s (%.2f s CPU)", us(m["tboxd_cpu_s"], m["profile_frames"]), m["tboxd_cpu_s"]), peer, "<= 1x candump"},
	}
}

func humanize(f float64) string {
	if f < 10000 {
		return strconv.FormatFloat(f, 'f', -1, 64)
	}
	s := strconv.FormatFloat(f, 'f', 0, 64)
	var b strings.Builder
	for i, c := range s {
		if i > 0 && (len(s)-i)%3 == 0 {
			b.WriteByte(',')
		}
		b.WriteRune(c)
	}
	return b.String()
}

func mib(n int64) string { return fmt.Sprintf("%.2f MiB", float64(n)/(1<<20)) }

func kib(n int64) string { return fmt.Sprintf("%.0f KiB", float64(n)/(1<<10)) }

func ms(d time.Duration) string { return fmt.Sprintf("%d ms", d.Milliseconds()) }

// cell makes s safe inside a markdown table cell.
func cell(s string) string {
	if s == "" {
		return "—"
	}
	return strings.ReplaceAll(strings.ReplaceAll(s, "|", `\|`), "\n", " ")
}

func cpuModel() string {
	b, err := os.ReadFile("/proc/cpuinfo")
	if err != nil {
		return "unknown CPU"
	}
	for _, l := range strings.Split(string(b), "\n") {
		if strings.HasPrefix(l, "model name") {
			if i := strings.IndexByte(l, ':'); i >= 0 {
				return strings.TrimSpace(l[i+1:])
			}
		}
	}
	return "unknown CPU"
}

func goVersion() string {
	b, err := exec.Command("go", "env", "GOVERSION").Output()
	if err != nil {
		return runtime.Version()
	}
	return strings.TrimSpace(string(b))
}

func lastLine(s string) string {
	s = strings.TrimSpace(s)
	if i := strings.LastIndexByte(s, '\n'); i >= 0 {
		return s[i+1:]
	}
	return s
}

func firstLine(s string) string {
	s = strings.TrimSpace(s)
	if i := strings.IndexByte(s, '\n'); i >= 0 {
		return s[:i]
	}
	return s
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}
