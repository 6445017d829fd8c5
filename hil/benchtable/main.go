// Command benchtable runs the project's benchmarks and prints them as one
// markdown table: the figures README quotes, reproducible with `make bench`.
package main

import (
	"bufio"
	"bytes"
	"flag"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
)

// row is one line of the table: a benchmark and the target the issues set
// for it.
type row struct {
	what    string
	pkg     string   // go package of the benchmark
	bench   string   // benchmark name regexp
	metrics []string // metrics to show, besides allocs/op
	target  string
}

var rows = []row{
	{"candump parse + filter (1 core)", "./can/", "^BenchmarkReaderFilter$", []string{"frames/s"}, ">= 5,000,000 frames/s, 0 allocs/frame"},
	{"DBC decode + mileage update (1 core)", "./agent/", "^BenchmarkDecodeMileage$", []string{"frames/s", "allocs/frame"}, ">= 5,000,000 frames/s, 0 allocs/frame"},
	{"decode: ours vs einride, same frames, same run", "./agent/profile/", "^BenchmarkDecode$", []string{"frames/s"}, ">= 1x einride"},
	{"mileage engine update alone", "./agent/mileage/", "^BenchmarkOdometerUpdate$", []string{"frames/s"}, "0 allocs"},
	{"sign attestation (1 core)", "./signer/", "^BenchmarkSign$", []string{"sigs/s"}, ">= 20,000 /s"},
	{"verify attestation (1 core)", "./signer/", "^BenchmarkVerify$", []string{"verifies/s"}, "reported"},
	{"outbox append with fsync", "./store/", "^BenchmarkAppendFsync$", []string{"appends/s", "fsyncs/op"}, "reported"},
	{"outbox per driven hour (eMMC wear)", "./store/", "^BenchmarkDrivenHour$", []string{"fsyncs/h", "written-B/h", "disk-B/h"}, "reported"},
	{"drain 10,000-attestation backlog via mosquitto", "./agent/uplink/", "^BenchmarkDrain$", []string{"msgs/s"}, ">= 1,000 /s"},
	{"collector verification (1 core)", "./cmd/collector/internal/collect/", "^BenchmarkProcess$", []string{"verifications/s"}, ">= 5,000 /s"},
}

func main() {
	benchtime := flag.String("benchtime", "1s", "go test -benchtime")
	flag.Parse()
	fmt.Printf("Machine: %s/%s, %d CPUs, %s\n\n", runtime.GOOS, runtime.GOARCH, runtime.NumCPU(), cpuModel())
	fmt.Println("| row | result | target |")
	fmt.Println("|---|---|---|")
	for _, r := range rows {
		res, err := runBench(r, *benchtime)
		if err != nil {
			res = "error: " + err.Error()
		}
		fmt.Printf("| %s | %s | %s |\n", r.what, res, r.target)
	}
	for _, arch := range []string{"arm", "arm64"} {
		fmt.Printf("| static stripped tboxd, linux/%s | %s | <= 6 MiB |\n", arch, binSize(arch))
	}
}

// runBench runs one benchmark on one core and formats every sub-benchmark's
// chosen metric and allocations.
func runBench(r row, benchtime string) (string, error) {
	if _, err := os.Stat(r.pkg); err != nil {
		return "", fmt.Errorf("no package %s yet", r.pkg)
	}
	cmd := exec.Command("go", "test", "-run", "^$", "-bench", r.bench, "-benchmem",
		"-benchtime", benchtime, "-cpu", "1", r.pkg)
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Run(); err != nil {
		return "", fmt.Errorf("%v: %s", err, lastLine(out.String()))
	}
	var parts []string
	sc := bufio.NewScanner(&out)
	for sc.Scan() {
		f := strings.Fields(sc.Text())
		if len(f) < 3 || !strings.HasPrefix(f[0], "Benchmark") {
			continue
		}
		name := strings.TrimSuffix(f[0], "-1")
		if i := strings.IndexByte(name, '/'); i >= 0 {
			name = name[i+1:]
		} else {
			name = ""
		}
		var vals []string
		for i := 2; i+1 < len(f); i += 2 {
			unit := f[i+1]
			if unit == "allocs/op" || contains(r.metrics, unit) {
				vals = append(vals, humanize(f[i])+" "+unit)
			}
		}
		s := strings.Join(vals, ", ")
		if name != "" {
			s = name + ": " + s
		}
		parts = append(parts, s)
	}
	if len(parts) == 0 {
		return "", fmt.Errorf("no benchmark matched %s", r.bench)
	}
	return strings.Join(parts, "; "), nil
}

func humanize(v string) string {
	f, err := strconv.ParseFloat(v, 64)
	if err != nil || f < 10000 {
		return v
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

func binSize(arch string) string {
	dir, err := os.MkdirTemp("", "benchtable")
	if err != nil {
		return "error: " + err.Error()
	}
	defer os.RemoveAll(dir)
	out := filepath.Join(dir, "tboxd")
	cmd := exec.Command("go", "build", "-trimpath", "-ldflags", "-s -w", "-o", out, "./cmd/tboxd")
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0", "GOOS=linux", "GOARCH="+arch, "GOARM=7")
	if b, err := cmd.CombinedOutput(); err != nil {
		return "error: " + lastLine(string(b))
	}
	st, err := os.Stat(out)
	if err != nil {
		return "error: " + err.Error()
	}
	return fmt.Sprintf("%.2f MiB", float64(st.Size())/(1<<20))
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

func lastLine(s string) string {
	s = strings.TrimSpace(s)
	if i := strings.LastIndexByte(s, '\n'); i >= 0 {
		return s[i+1:]
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
