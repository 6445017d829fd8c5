package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/csop/tbox/hil"
	"github.com/csop/tbox/signer"
)

// The guest's load: CLU_Odometer (0x541) of the sample profile, 10,000.00
// km and valid, and ESP_Speed (0x220), 50.00 km/h and valid. Both pass
// tboxd's kernel filter, so every frame sent is a frame tboxd receives.
const (
	odometerFrame = "541#000F424080000000"
	speedFrame    = "220#1388000080000000"
)

// guestPlan is what one boot measures.
type guestPlan struct {
	ColdRuns int     // tboxd starts, each timed from exec to its first frame
	Frames   int     // frames of the full-load phase, half odometer, half speed
	GapMS    float64 // cangen's gap between frames, per generator; 0 is as fast as it can
	// ColdGapMS is the gap of the frames flowing while tboxd starts: the
	// first frame waits for the next one, half of it on average.
	ColdGapMS float64
}

// guestScript is the guest's measurement. Its HIL-BENCH lines are read by
// parseGuest; t0 is taken in the shell just before exec, the other times
// are tboxd's own log timestamps, so the shell's polling does not count.
func guestScript(p guestPlan) string {
	odoID, odoData, _ := strings.Cut(odometerFrame, "#")
	spdID, spdData, _ := strings.Cut(speedFrame, "#")
	return fmt.Sprintf(`
cpu() { set -- $(cat /proc/$1/stat); echo $((${14} + ${15})); }
ucpu() { set -- $(cat /proc/$1/stat); echo ${14}; }
# busybox date has no %%N: adjtimex reads the clock to the microsecond
us() { echo "$1" | awk '/tv_sec/ {s=$2} /tv_usec/ {u=$2} END {printf "%%d%%06d", s, u}'; }
hwm() { awk '/^VmHWM/ {print $2}' /proc/$1/status; }
waitlog() { # file pattern pid tenths
	n=0
	until grep -q "$2" "$1" 2>/dev/null; do
		kill -0 $3 2>/dev/null || return 1
		n=$((n+1)); [ $n -gt $4 ] && return 1
		sleep 0.1
	done
}
echo "HIL-BENCH clock clk_tck=$(getconf CLK_TCK 2>/dev/null || echo 100) now_us=$(us "$(adjtimex)")"

# Cold start: frames already flowing, tboxd started on a
# state directory that exists from the second run on, as after a key-off.
cangen vcan0 -I %[1]s -L 8 -D %[2]s -g %[9]s &
gpid=$!
i=1
while [ $i -le %[5]d ]; do
	raw=$(adjtimex)
	tboxd --config /etc/tbox/tboxd.toml > /tmp/cold$i.log 2>&1 &
	pid=$!
	waitlog /tmp/cold$i.log 'msg="first frame"' $pid 600 || echo "HIL-BENCH error run=$i no first frame within 60 s"
	kill -TERM $pid; wait $pid
	echo "HIL-BENCH cold run=$i t0_us=$(us "$raw")"
	grep -E 'msg="(tboxd started|first frame)"' /tmp/cold$i.log | sed 's/^/HIL-BENCH log /'
	i=$((i+1))
done
kill $gpid; wait $gpid 2>/dev/null

# Full bus load: tboxd and candump (filtered to the same two IDs, printing
# to a file in RAM) on the same frames.
tboxd --config /etc/tbox/tboxd.toml > /tmp/load.log 2>&1 &
pid=$!
waitlog /tmp/load.log 'msg="tboxd started"' $pid 600 || echo "HIL-BENCH error tboxd did not start"
candump -L -r 8388608 vcan0,%[1]s:7FF,%[3]s:7FF > /tmp/candump.log &
cpid=$!
sleep 1
tc0=$(cpu $pid); cc0=$(cpu $cpid); tu0=$(ucpu $pid); cu0=$(ucpu $cpid); s0=$(us "$(adjtimex)")
cangen vcan0 -I %[1]s -L 8 -D %[2]s -g %[7]s -n %[6]d &
g1=$!
cangen vcan0 -I %[3]s -L 8 -D %[4]s -g %[7]s -n %[6]d &
g2=$!
wait $g1; wait $g2
s1=$(us "$(adjtimex)")
sleep 2
tc1=$(cpu $pid); cc1=$(cpu $cpid); tu1=$(ucpu $pid); cu1=$(ucpu $cpid)
th=$(hwm $pid); ch=$(hwm $cpid)
kill -TERM $pid; wait $pid
kill $cpid; wait $cpid 2>/dev/null
echo "HIL-BENCH load sent=%[8]d start=$s0 end=$s1 tboxd_ticks=$((tc1-tc0)) candump_ticks=$((cc1-cc0)) tboxd_user_ticks=$((tu1-tu0)) candump_user_ticks=$((cu1-cu0)) tboxd_hwm_kb=$th candump_hwm_kb=$ch candump_frames=$(wc -l < /tmp/candump.log)"
grep -E 'msg="(tboxd stopped|CAN counters)"' /tmp/load.log | sed 's/^/HIL-BENCH log /'
grep -E 'level=(WARN|ERROR)' /tmp/load.log | grep -v -e 'no mqtt.broker' -e 'wall clock untrustworthy' | head -5 | sed 's/^/HIL-BENCH warn /'
`, odoID, odoData, spdID, spdData, p.ColdRuns, p.Frames/2, strconv.FormatFloat(p.GapMS, 'f', -1, 64), p.Frames/2*2, strconv.FormatFloat(p.ColdGapMS, 'f', -1, 64))
}

// guestFigures are the emulated T-Box's measurements.
type guestFigures struct {
	Cold []coldRun // one per tboxd start

	Sent, CandumpFrames, TboxdFrames int64
	TboxdReads                       int64         // receive system calls that returned frames
	LoadSeconds                      float64       // how long the generators took
	TboxdCPU, CandumpCPU             time.Duration // user + system
	TboxdUser, CandumpUser           time.Duration // user only
	TboxdHWM, CandumpHWM             int64         // bytes
	Problems                         []string
}

// coldRun is one start of tboxd: from exec in the shell to its log lines.
type coldRun struct {
	Started, FirstFrame time.Duration
}

// runGuest builds tboxd for the guest, boots it with can-utils and runs
// guestScript.
func runGuest(ctx context.Context, p guestPlan, progress io.Writer) (*guestFigures, error) {
	kit, err := hil.Prepare(ctx)
	if err != nil {
		return nil, err
	}
	root, err := hil.RepoRoot()
	if err != nil {
		return nil, err
	}
	dir, err := os.MkdirTemp("", "benchtable-guest")
	if err != nil {
		return nil, err
	}
	defer os.RemoveAll(dir)
	tboxd := filepath.Join(dir, "tboxd")
	if err := hil.CrossBuild(ctx, "./cmd/tboxd", tboxd); err != nil {
		return nil, err
	}
	keyPath := filepath.Join(dir, "device.key")
	if _, err := signer.GenerateKeyFile(keyPath); err != nil {
		return nil, err
	}
	conf := `profile   = "ev.toml"
key       = "device.key"
state_dir = "/tmp/tbox"
chain_id  = 20220807
shutdown_grace = "1s"

[can]
interface      = "vcan0"
receive_buffer = 8388608
`
	confPath := filepath.Join(dir, "tboxd.toml")
	if err := os.WriteFile(confPath, []byte(conf), 0o644); err != nil {
		return nil, err
	}
	testdata := filepath.Join(root, "agent", "profile", "testdata")
	res, err := kit.Boot(ctx, hil.Options{
		Files: map[string]string{
			"/bin/tboxd":           tboxd,
			"/etc/tbox/tboxd.toml": confPath,
			"/etc/tbox/device.key": keyPath,
			"/etc/tbox/ev.toml":    filepath.Join(testdata, "ev.toml"),
			"/etc/tbox/ev.dbc":     filepath.Join(testdata, "ev.dbc"),
		},
		CanUtils: true,
		Script:   guestScript(p),
		Timeout:  6 * time.Minute,
		Console:  progress,
	})
	if err != nil {
		return nil, err
	}
	if res.ExitCode != 0 {
		return nil, fmt.Errorf("guest script exited with status %d", res.ExitCode)
	}
	return parseGuest(res.Console)
}

// Errors of parseGuest.
var (
	errNoFigures = errors.New("no HIL-BENCH figures in the guest's console")
	errBadFigure = errors.New("malformed HIL-BENCH figure")
)

// parseGuest reads the HIL-BENCH lines of guestScript's output.
func parseGuest(console string) (*guestFigures, error) {
	g := &guestFigures{}
	tck := int64(100)
	var t0 int64
	var run coldRun
	inRun := false
	seen := false
	flush := func() {
		if inRun {
			g.Cold = append(g.Cold, run)
		}
		run, inRun = coldRun{}, false
	}
	for _, line := range strings.Split(console, "\n") {
		rest, ok := strings.CutPrefix(strings.TrimSpace(line), "HIL-BENCH ")
		if !ok {
			continue
		}
		seen = true
		kind, rest, _ := strings.Cut(rest, " ")
		kv := keyValues(rest)
		switch kind {
		case "clock":
			if n, err := strconv.ParseInt(kv["clk_tck"], 10, 64); err == nil && n > 0 {
				tck = n
			}
			if _, err := strconv.ParseInt(kv["now_us"], 10, 64); err != nil {
				return nil, fmt.Errorf("%w: guest clock: adjtimex gave %q, want microseconds", errBadFigure, kv["now_us"])
			}
		case "cold":
			flush()
			v, err := strconv.ParseInt(kv["t0_us"], 10, 64)
			if err != nil {
				return nil, fmt.Errorf("%w: cold line %q: t0_us: %v", errBadFigure, line, err)
			}
			t0, inRun = v*1000, true
		case "log":
			lv := keyValues(rest)
			ts, err := time.Parse(time.RFC3339Nano, lv["time"])
			if err != nil {
				return nil, fmt.Errorf("%w: tboxd log line %q: time: %v", errBadFigure, rest, err)
			}
			since := time.Duration(ts.UnixNano() - t0)
			switch lv["msg"] {
			case "tboxd started":
				run.Started = since
			case "first frame":
				run.FirstFrame = since
			case "tboxd stopped":
				g.TboxdFrames, _ = strconv.ParseInt(lv["frames"], 10, 64)
			case "CAN counters":
				n, _ := strconv.ParseInt(lv["reads"], 10, 64)
				g.TboxdReads += n
			}
		case "load":
			flush()
			num := func(k string) int64 {
				v, err := strconv.ParseInt(kv[k], 10, 64)
				if err != nil {
					g.Problems = append(g.Problems, fmt.Sprintf("load line: %s=%q", k, kv[k]))
				}
				return v
			}
			g.Sent = num("sent")
			g.LoadSeconds = float64(num("end")-num("start")) / 1e6
			tick := time.Second / time.Duration(tck)
			g.TboxdCPU = time.Duration(num("tboxd_ticks")) * tick
			g.CandumpCPU = time.Duration(num("candump_ticks")) * tick
			g.TboxdUser = time.Duration(num("tboxd_user_ticks")) * tick
			g.CandumpUser = time.Duration(num("candump_user_ticks")) * tick
			g.TboxdHWM = num("tboxd_hwm_kb") << 10
			g.CandumpHWM = num("candump_hwm_kb") << 10
			g.CandumpFrames = num("candump_frames")
		case "error", "warn":
			g.Problems = append(g.Problems, rest)
		}
	}
	flush()
	if !seen {
		return nil, errNoFigures
	}
	return g, nil
}

// keyValues splits a logfmt-like line (slog's text handler, HIL-BENCH
// lines) into its key=value pairs; values may be double-quoted.
func keyValues(s string) map[string]string {
	kv := map[string]string{}
	for s != "" {
		s = strings.TrimLeft(s, " ")
		k, rest, ok := strings.Cut(s, "=")
		if !ok || strings.ContainsRune(k, ' ') {
			// a bare word: skip it
			if i := strings.IndexByte(s, ' '); i >= 0 {
				s = s[i+1:]
				continue
			}
			break
		}
		var v string
		if strings.HasPrefix(rest, `"`) {
			end := 1
			for end < len(rest) && (rest[end] != '"' || rest[end-1] == '\\') {
				end++
			}
			if u, err := strconv.Unquote(rest[:min(end+1, len(rest))]); err == nil {
				v = u
			} else {
				v = strings.Trim(rest[:min(end+1, len(rest))], `"`)
			}
			s = rest[min(end+1, len(rest)):]
		} else {
			v, s, _ = strings.Cut(rest, " ")
		}
		kv[k] = v
	}
	return kv
}

// median of the durations d picks out of runs; 0 for none.
func median(runs []coldRun, d func(coldRun) time.Duration) time.Duration {
	var v []time.Duration
	for _, r := range runs {
		if x := d(r); x > 0 {
			v = append(v, x)
		}
	}
	if len(v) == 0 {
		return 0
	}
	slices.Sort(v)
	return v[len(v)/2]
}
