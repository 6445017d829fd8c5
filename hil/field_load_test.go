package hil

import (
	"context"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"net"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/csop/tbox/agent/shell"
	"github.com/csop/tbox/signer"
)

// reBusDropped reads a bus line of the shell's status with its drop count.
var reBusDropped = regexp.MustCompile(`(?m)^CAN +vcan0: (\S+), frames (\d+), dropped (\d+),`)

// loadMetric reads the HIL-METRIC line of the load scenario.
var reLoadMetric = regexp.MustCompile(`^HIL-METRIC tboxd_cpu_s=\S+ .*$`)

// metricFields parses "k=v k=v" after the HIL-METRIC tag.
func metricFields(line string) map[string]float64 {
	out := map[string]float64{}
	for _, f := range strings.Fields(strings.TrimPrefix(line, "HIL-METRIC ")) {
		k, v, ok := strings.Cut(f, "=")
		if !ok {
			continue
		}
		if x, err := strconv.ParseFloat(v, 64); err == nil {
			out[k] = x
		}
	}
	return out
}

// TestFieldFullBusLoad is field scenario 7: the bus is flooded while the
// car drives. Three cangen processes send as fast as the guest lets them
// (-g 0, reniced to 19 so that tboxd and vsim keep their cores) on IDs outside the
// profile chosen to test the kernel filter's edges: 0x540 (next to the
// odometer's 0x541), 0x541 as a 29-bit extended ID, and remote frames of
// the speed's 0x220. vsim drives at 10x meanwhile. Judged from the
// outside: the shell's status over /dev/hvc0 shows tboxd received exactly
// the profile frames vsim sent, none more (the filter lets no noise in)
// and none fewer, with the socket's drop counter at 0; the chain's meters
// equal the truth. tboxd's CPU time (utime+stime) and VmHWM are read from
// /proc in the guest and printed as a HIL-METRIC line, beside candump's CPU
// time on the same traffic in the same guest, with the same filter and
// with none: CPU per received frame, against candump.
func TestFieldFullBusLoad(t *testing.T) {
	k := prepare(t)
	t0 := time.Now()
	// At 10x the profile's 50 Hz speed frames come at about 600/s, so the
	// noise dominates the bus even when the host leaves the guest little CPU
	// (2,354 noise frames/s seen on a busy 2-core machine: 2.0x the profile
	// at 20x, where the test had no margin left).
	const pace = 10.0
	r := newFieldRig(t, fieldConf{timeScale: pace, shell: true})

	s := fieldScenario(7, time.Date(2026, 3, 3, 7, 0, 0, 0, time.UTC), 10*time.Minute, 0)
	s.SpeedHz = 50 // the sample car's rate
	h := replayHost(t, r.prof, s)

	script := fieldStart + `
stat() { awk '{print $14+$15}' /proc/$1/stat; }
candump -r 8388608 vcan0,` + profileFilter + ` > /dev/null &
cdf=$!
candump -r 8388608 vcan0 > /dev/null &
cda=$!
sleep 0.5
tx0=$(cat /sys/class/net/vcan0/statistics/tx_packets)
up0=$(cut -d' ' -f1 /proc/uptime)
c0=$(stat $tpid); f0=$(stat $cdf); a0=$(stat $cda)
cangen vcan0 -g 0 -i -I 540 -L 8 -D r &
g1=$!
cangen vcan0 -g 0 -i -e -I 541 -L 8 -D r &
g2=$!
cangen vcan0 -g 0 -i -R -I 220 -L 0 &
g3=$!
renice -n 19 -p $g1 $g2 $g3 > /dev/null
` + fieldDrive("L", s, pace) + `
kill $g1 $g2 $g3
wait $g1 $g2 $g3 2>/dev/null
sleep 0.5
tx1=$(cat /sys/class/net/vcan0/statistics/tx_packets)
up1=$(cut -d' ' -f1 /proc/uptime)
c1=$(stat $tpid); f1=$(stat $cdf); a1=$(stat $cda)
hwm=$(awk '/^VmHWM/ {print $2}' /proc/$tpid/status)
prof=$(tr -d ' \n' < /tmp/truth-L.json | sed -n 's/.*"frames":{"total":\([0-9]*\).*/\1/p')
all=$((tx1-tx0))
echo "HIL-METRIC tboxd_cpu_s=$(awk "BEGIN{printf \"%.2f\", ($c1-$c0)/100}") tboxd_vmhwm_kb=$hwm noise_frames=$((all-prof)) profile_frames=$prof"
echo "HIL-METRIC candump_filtered_cpu_s=$(awk "BEGIN{printf \"%.2f\", ($f1-$f0)/100}") candump_all_cpu_s=$(awk "BEGIN{printf \"%.2f\", ($a1-$a0)/100}") bus_frames=$all window_s=$(awk "BEGIN{printf \"%.2f\", $up1-$up0}")"
echo "HIL-SOFTNET $(awk '{printf "%s ", $2}' /proc/net/softnet_stat)"
echo HIL-LOAD-DONE
n=0
until grep -q 'cmd=flush' /tmp/tboxd.log; do
	n=$((n+1)); if [ $n -gt 600 ]; then echo "HIL-FIELD-ERROR the host's session did not end within 60 s"; break; fi
	sleep 0.1
done
kill $cdf $cda
wait $cdf $cda 2>/dev/null
` + fieldStop

	sock := t.TempDir() + "/diag.sock"
	con := newConsoleLines(func(l string) {
		if !strings.HasPrefix(l, `{"v":`) && !strings.HasPrefix(l, "HIL-TRUTH-") {
			t.Log("guest: " + l)
		}
	})
	run, err := k.Start(context.Background(), Options{
		Files: r.files, Script: script, CanUtils: true, CPUs: 2, Serial: sock,
		Timeout: 4 * time.Minute, Console: con,
	})
	if err != nil {
		t.Fatal(err)
	}
	ended := make(chan struct{})
	var res *Result
	var werr error
	go func() { res, werr = run.Wait(); close(ended) }()
	defer func() {
		run.Kill()
		<-ended
	}()
	var c net.Conn
	for range 100 {
		if c, err = net.Dial("unix", sock); err == nil {
			break
		}
		time.Sleep(100 * time.Millisecond)
	}
	if err != nil {
		t.Fatalf("serial socket: %v", err)
	}
	defer c.Close()
	term := &serialTerm{t: t, c: c}
	if _, err := term.until(reShellPrompt, 2*time.Minute); err != nil {
		t.Fatalf("no shell prompt: %v", err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	if err := con.waitLine(ctx, ended, 1, func(l string) bool { return l == "HIL-LOAD-DONE" }); err != nil {
		t.Fatalf("waiting for the end of the load: %v", err)
	}
	status := term.run("status")
	t.Logf("status after the load:\n%s", status)
	m := reBusDropped.FindStringSubmatch(status)
	engine := number(reEngineFrames, status, 1)
	// Service mode for flush, which tells the guest the session is over.
	mc := regexp.MustCompile(`challenge ([0-9a-f]{114})`).FindStringSubmatch(term.run("unlock"))
	if mc == nil {
		t.Fatal("unlock printed no challenge")
	}
	chal, err := shell.ParseChallenge(mc[1])
	if err != nil {
		t.Fatal(err)
	}
	sig, err := shell.SignUnlock(r.service, chal)
	if err != nil {
		t.Fatal(err)
	}
	if out := term.run("unlock " + hex.EncodeToString(sig[:])); !strings.Contains(out, "service mode unlocked") {
		t.Fatalf("unlock: %q", out)
	}
	if out := term.run("flush"); !strings.Contains(out, "flush: done") {
		t.Errorf("flush: %q", out)
	}
	<-ended
	if werr != nil {
		t.Fatalf("guest: %v", werr)
	}
	g := parseRun(t, r, con.Lines())
	tr, shift := g.drive(t, "L", h, pace)
	t.Logf("attestations (sim times):%s", flagTable(g.atts, shift))

	profileFrames := tr.Frames.Odometer + tr.Frames.Speed + tr.Frames.DriveMode
	if tr.Frames.Total != profileFrames {
		t.Fatalf("vsim sent %d frames, %d of them the profile's: want no noise from vsim", tr.Frames.Total, profileFrames)
	}
	if m == nil {
		t.Fatalf("status has no vcan0 line:\n%s", status)
	}
	frames, _ := strconv.Atoi(m[2])
	dropped, _ := strconv.Atoi(m[3])
	if frames != profileFrames {
		t.Errorf("tboxd's socket received %d frames; vsim sent %d profile frames", frames, profileFrames)
	}
	if engine != int64(profileFrames) {
		t.Errorf("tboxd's engine counted %d frames; vsim sent %d profile frames", engine, profileFrames)
	}
	if dropped != 0 {
		t.Errorf("tboxd's socket dropped %d frames (SO_RXQ_OVFL)", dropped)
	}
	if got := totalMeters(g.atts); got != tr.Meters {
		t.Errorf("the chain credits %d m, the truth is %d m", got, tr.Meters)
	}

	var metric, bench map[string]float64
	for _, l := range g.lines {
		switch {
		case reLoadMetric.MatchString(l):
			metric = metricFields(l)
			t.Log(l)
		case strings.HasPrefix(l, "HIL-METRIC candump_"):
			bench = metricFields(l)
			t.Log(l)
		case strings.HasPrefix(l, "HIL-SOFTNET "):
			t.Logf("%s (per-CPU backlog drops, hex)", l)
		}
	}
	if metric == nil || bench == nil {
		t.Fatal("no HIL-METRIC lines from the guest")
	}
	if int(metric["profile_frames"]) != profileFrames {
		t.Errorf("HIL-METRIC profile_frames=%v, the truth has %d", metric["profile_frames"], profileFrames)
	}
	noise := metric["noise_frames"]
	// The noise rate depends on how much CPU the host leaves the guest
	// (cangen runs at nice 19 so that the car's own frames keep their pace):
	// 5,000 to 17,000 frames/s seen on a shared 2-core machine, 2,354/s in a
	// CI run, 681/s with seven builds beside the emulator (1.36x the
	// profile at 10x). What the scenario needs is a bus whose frames are
	// mostly ones the kernel filter must reject.
	if noise <= float64(profileFrames) {
		t.Errorf("only %.0f noise frames against %d profile frames: the noise did not outnumber the car's frames, the bus was not loaded", noise, profileFrames)
	}
	win := bench["window_s"]
	perFrame := func(cpu, n float64) string {
		if n <= 0 {
			return "-"
		}
		return fmt.Sprintf("%.1f µs", cpu/n*1e6)
	}
	t.Logf("benchmark (CPU per received frame, same traffic, same guest): %.0f frames on vcan0 in %.1f s (%.0f/s; noise %.0f/s, profile %d)\n"+
		"  tboxd (kernel filter, 3 IDs)     %6.2f s CPU  %7d frames received  %s/frame  VmHWM %.0f kB\n"+
		"  candump, same filter, > /dev/null %6.2f s CPU  %7d frames received  %s/frame\n"+
		"  candump, no filter, > /dev/null   %6.2f s CPU  %7.0f frames received  %s/frame",
		bench["bus_frames"], win, bench["bus_frames"]/win, noise/win, profileFrames,
		metric["tboxd_cpu_s"], frames, perFrame(metric["tboxd_cpu_s"], float64(frames)), metric["tboxd_vmhwm_kb"],
		bench["candump_filtered_cpu_s"], profileFrames, perFrame(bench["candump_filtered_cpu_s"], float64(profileFrames)),
		bench["candump_all_cpu_s"], bench["bus_frames"], perFrame(bench["candump_all_cpu_s"], bench["bus_frames"]))
	flags := map[string]int{}
	for _, a := range g.atts {
		for _, f := range signer.FlagNames(a.Flags) {
			flags[f]++
		}
	}
	js, _ := json.Marshal(flags)
	t.Logf("figures: %d attestations, %d m = truth %d m, flags %s; tboxd received %d of %d profile frames, dropped %d; guest ready in %v, boot %v, test %v",
		len(g.atts), totalMeters(g.atts), tr.Meters, js, frames, profileFrames, dropped,
		res.BootTime.Round(time.Millisecond), res.Duration.Round(time.Millisecond), since(t0))
}
