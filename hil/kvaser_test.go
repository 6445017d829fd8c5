package hil

import (
	"context"
	"encoding/hex"
	"math"
	"net"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/csop/tbox/agent/shell"
	"github.com/csop/tbox/signer"
)

// The arm64 T-Box with real CAN controllers (the Kvaser machine): vsim on
// can0, tboxd on can1, two qemu kvaser_pci cards on one qemu can-bus, the
// kernel's sja1000 driver, 500 kbit/s set over rtnetlink by tboxctl link.

// reLink is a line of tboxctl link.
var reLink = regexp.MustCompile(`^(can\d): kind=can up=(true|false) state=(\S+) bitrate=(\d+) restart-ms=(\d+) txerr=(\d+) rxerr=(\d+)$`)

// kvaserLinks prints each port's link and packet counters, marked with tag.
func kvaserLinks(tag string) string {
	return `for i in can0 can1; do
	echo "HIL-LINK-` + tag + ` $(tboxctl link --iface $i)"
	echo "HIL-PKTS-` + tag + ` $i $(cat /sys/class/net/$i/statistics/tx_packets) $(cat /sys/class/net/$i/statistics/rx_packets)"
done
`
}

// linkLines returns the parsed HIL-LINK-<tag> lines by port.
func linkLines(t *testing.T, lines []string, tag string) map[string][]string {
	t.Helper()
	out := map[string][]string{}
	for _, l := range lines {
		if rest, ok := strings.CutPrefix(l, "HIL-LINK-"+tag+" "); ok {
			m := reLink.FindStringSubmatch(rest)
			if m == nil {
				t.Fatalf("tboxctl link printed %q", rest)
			}
			out[m[1]] = m
		}
	}
	return out
}

// packets returns tx and rx of a port from the HIL-PKTS-<tag> lines.
func packets(lines []string, tag, port string) (tx, rx int64) {
	for _, l := range lines {
		f := strings.Fields(strings.TrimPrefix(l, "HIL-PKTS-"+tag+" "))
		if strings.HasPrefix(l, "HIL-PKTS-"+tag+" ") && len(f) == 3 && f[0] == port {
			tx, _ = strconv.ParseInt(f[1], 10, 64)
			rx, _ = strconv.ParseInt(f[2], 10, 64)
		}
	}
	return tx, rx
}

// checkLinks requires both ports up, error-active, at the default bit rate
// and restart-ms.
func checkLinks(t *testing.T, links map[string][]string, when string) {
	t.Helper()
	for _, port := range []string{"can0", "can1"} {
		m := links[port]
		switch {
		case m == nil:
			t.Errorf("%s: no tboxctl link line for %s", when, port)
		case m[2] != "true" || m[3] != "error-active" || m[4] != strconv.Itoa(DefaultBitrate) || m[5] != strconv.Itoa(DefaultRestartMS):
			t.Errorf("%s: %s is up=%s %s at %s bit/s restart-ms %s; want up, error-active, %d bit/s, restart-ms %d",
				when, port, m[2], m[3], m[4], m[5], DefaultBitrate, DefaultRestartMS)
		}
	}
}

// TestKvaserDrive is a normal drive across real CAN controllers: vsim
// writes the sample car's frames to can0, they cross qemu's can-bus to
// can1 through the sja1000 driver on both ends, and tboxd attests them.
// Run with the arm64 binaries and with the 32-bit ARM (GOARCH=arm) ones,
// which the arm64 kernel runs through COMPAT. Judged: both ports at
// 500 kbit/s error-active before and after; every frame vsim sent left can0
// and arrived on can1; a clean chain whose meters equal the truth.
func TestKvaserDrive(t *testing.T) {
	k := prepare(t)
	for _, c := range []struct {
		goarch string
		class  string // the ELF class byte of /bin/tboxd: 02 for 64-bit, 01 for 32-bit
		drive  time.Duration
	}{
		{"arm64", "02", 5 * time.Minute},
		{"arm", "01", 3 * time.Minute},
	} {
		t.Run(c.goarch, func(t *testing.T) {
			t0 := time.Now()
			const pace = 30.0
			r := newFieldRig(t, fieldConf{timeScale: pace, machine: Kvaser, goarch: c.goarch})
			s := fieldScenario(11, time.Date(2026, 3, 4, 7, 0, 0, 0, time.UTC), c.drive, 1000)
			h := replayHost(t, r.prof, s)
			script := `echo "HIL-ARCH $(uname -m) $(od -An -tx1 -j4 -N1 /bin/tboxd | tr -d ' ') $(od -An -tx1 -j4 -N1 /bin/tboxctl | tr -d ' ')"
` + kvaserLinks("BEFORE") + fieldStart + fieldDriveOn(Kvaser, "K", s, pace) + kvaserLinks("AFTER") + fieldStop
			lines, res := bootField(t, k, r, script, 3*time.Minute)
			g := parseRun(t, r, lines)
			tr, shift := g.drive(t, "K", h, pace)
			t.Logf("attestations (sim times):%s", flagTable(g.atts, shift))

			if arch := g.marker(t, "HIL-ARCH"); arch != "aarch64 "+c.class+" "+c.class {
				t.Errorf("guest machine and ELF classes of tboxd, tboxctl: %q, want aarch64 %s %s", arch, c.class, c.class)
			}
			checkLinks(t, linkLines(t, lines, "BEFORE"), "before the drive")
			checkLinks(t, linkLines(t, lines, "AFTER"), "after the drive")
			tx0, _ := packets(lines, "BEFORE", "can0")
			tx1, _ := packets(lines, "AFTER", "can0")
			_, rx0 := packets(lines, "BEFORE", "can1")
			_, rx1 := packets(lines, "AFTER", "can1")
			if sent := tx1 - tx0; sent != int64(tr.Frames.Total) {
				t.Errorf("can0 transmitted %d frames during the drive; vsim sent %d", sent, tr.Frames.Total)
			}
			if got := rx1 - rx0; got != int64(tr.Frames.Total) {
				t.Errorf("can1 received %d frames during the drive; vsim sent %d on can0", got, tr.Frames.Total)
			}
			if got := totalMeters(g.atts); got != tr.Meters {
				t.Errorf("the chain credits %d m, the truth is %d m", got, tr.Meters)
			}
			t.Logf("figures (%s binaries on the arm64 T-Box, sja1000 at 500 kbit/s): %d frames can0 -> can1, %d attestations, %d m = truth %d m; guest ready in %v, boot %v, test %v",
				c.goarch, tr.Frames.Total, len(g.atts), totalMeters(g.atts), tr.Meters,
				res.BootTime.Round(time.Millisecond), res.Duration.Round(time.Millisecond), since(t0))
		})
	}
}

var reControllerLine = regexp.MustCompile(`(?m)^CAN +can1 controller: (\S+), (\d+) bit/s, restart-ms (\d+), tx errors (\d+), rx errors (\d+)`)
var reCan1Line = regexp.MustCompile(`(?m)^CAN +can1: (.+), frames (\d+), dropped (\d+), error frames (\d+), bus-off (\d+), error-passive (\d+), reopens (\d+)`)

// TestKvaserBusDownUp: tboxd's controller (can1) goes down mid-drive and
// comes back, on the real driver. qemu's sja1000 emulation (hw/net/can/
// can_sja1000.c, qemu 7.2) cannot be driven into an error state: a
// transmission completes whether or not any node receives it (no ACK), the
// bus-timing registers are ignored (a bit-rate mismatch goes unnoticed),
// the error counters read 0, the status register's error and bus bits are
// never set and error frames are "not supported". So bus-off and
// restart-ms are tested as far as the emulator allows: while can1 is down,
// can0 sends alone on the bus and stays error-active with no errors
// counted (shown, the emulator's limit); a manual restart of a controller
// that restarts by itself (restart-ms 100) is refused by the kernel; and
// tboxd, whose controller went down and up, reopens by itself, reports the
// controller error-active at 500 kbit/s in its shell, counts the reopen and
// loses no distance (GAP where the odometer resumed higher).
func TestKvaserBusDownUp(t *testing.T) {
	k := prepare(t)
	t0 := time.Now()
	const pace = 30.0
	r := newFieldRig(t, fieldConf{timeScale: pace, shell: true, machine: Kvaser})
	start := time.Date(2026, 3, 5, 7, 0, 0, 0, time.UTC)
	s1 := fieldScenario(12, start, 10*time.Minute, 2000)
	s1.StopAndGo = false
	h1 := replayHost(t, r.prof, s1)
	const outage = time.Second
	s2 := fieldScenario(13, s1.Start.Add(s1.Duration).Add(outage*pace), 10*time.Minute, (h1.truth.LastOdometer+300)/1000)
	s2.StopAndGo = false
	h2 := replayHost(t, r.prof, s2)

	script := fieldStart + fieldDriveOn(Kvaser, "R1", s1, pace) + `
ip link set can1 down && echo "HIL-BUS can1 down"
for n in $(seq 50); do cansend can0 123#DEADBEEF || echo "HIL-LONE-SEND-FAILED $n"; done
echo "HIL-LONE $(tboxctl link --iface can0)"
ip link set can1 up && echo "HIL-BUS can1 up"
n=0
until grep -q 'msg="CAN interface up again"' /tmp/tboxd.log; do
	n=$((n+1)); if [ $n -gt 100 ]; then echo "HIL-FIELD-ERROR tboxd did not reopen can1 within 10 s"; break; fi
	sleep 0.1
done
tboxctl link --iface can1 --restart; echo "HIL-RESTART-EXIT $?"
` + fieldDriveOn(Kvaser, "R2", s2, pace) + kvaserLinks("AFTER") + `
echo HIL-STATUS-NOW
n=0
until grep -q 'cmd=flush' /tmp/tboxd.log; do
	n=$((n+1)); if [ $n -gt 600 ]; then echo "HIL-FIELD-ERROR the host's session did not end within 60 s"; break; fi
	sleep 0.1
done
` + fieldStop

	sock := t.TempDir() + "/diag.sock"
	con := newConsoleLines(func(l string) {
		if !strings.HasPrefix(l, `{"v":`) && !strings.HasPrefix(l, "HIL-TRUTH-") {
			t.Log("guest: " + l)
		}
	})
	run, err := k.Start(context.Background(), r.mach.Options(Options{
		Files: r.files, Script: script, CanUtils: true, CPUs: 2, Serial: sock,
		Timeout: 4 * time.Minute, Console: con,
	}))
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
	if err := con.waitLine(ctx, ended, 1, func(l string) bool { return l == "HIL-STATUS-NOW" }); err != nil {
		t.Fatalf("waiting for the end of the drives: %v", err)
	}
	status := term.run("status")
	t.Logf("status after the outage:\n%s", status)
	serviceFlush(t, term, r.service)
	<-ended
	if werr != nil {
		t.Fatalf("guest: %v", werr)
	}
	lines := con.Lines()
	g := parseRun(t, r, lines)
	tr1, shift1 := g.drive(t, "R1", h1, pace)
	tr2, shift2 := g.drive(t, "R2", h2, pace)
	t.Logf("attestations (sim times of run 1):%s", flagTable(g.atts, shift1))

	// The shell: can1 up again, one reopen at least, no error state, and
	// the controller as the kernel reports it.
	m := reCan1Line.FindStringSubmatch(status)
	if m == nil {
		t.Fatalf("status has no can1 line:\n%s", status)
	}
	if m[1] != "up" {
		t.Errorf("status: can1 is %q after it came back, want up", m[1])
	}
	if n, _ := strconv.Atoi(m[7]); n < 1 {
		t.Errorf("status: can1 reopens %d, want at least 1 after the outage", n)
	}
	if m[5] != "0" || m[6] != "0" {
		t.Errorf("status: can1 bus-off %s, error-passive %s; the emulated controller reported no error", m[5], m[6])
	}
	cm := reControllerLine.FindStringSubmatch(status)
	switch {
	case cm == nil:
		t.Errorf("status has no can1 controller line:\n%s", status)
	case cm[1] != "error-active" || cm[2] != strconv.Itoa(DefaultBitrate) || cm[3] != strconv.Itoa(DefaultRestartMS):
		t.Errorf("status: can1 controller %s at %s bit/s restart-ms %s, want error-active at %d, restart-ms %d",
			cm[1], cm[2], cm[3], DefaultBitrate, DefaultRestartMS)
	}
	checkLinks(t, linkLines(t, lines, "AFTER"), "after the outage")

	// The emulator's limit, shown: can0 alone on the bus.
	lone := g.marker(t, "HIL-LONE")
	t.Logf("can0 after 50 frames sent while can1 was down (no receiver, no ACK): %s", lone)
	if indexOfPrefix(lines, "HIL-LONE-SEND-FAILED") >= 0 {
		t.Logf("some sends failed while can0 was alone on the bus: the emulator now models a missing ACK")
	}
	// A controller that restarts by itself (restart-ms) is not restarted
	// by hand: the kernel refuses.
	if rc := g.marker(t, "HIL-RESTART-EXIT"); rc != "1" {
		t.Errorf("tboxctl link --restart on can1 (restart-ms %d, error-active) exited %s, want 1 (the kernel refuses)", DefaultRestartMS, rc)
	}

	// tboxd's log: the loss and the reopen, in that order; GAP where the
	// odometer resumed; nothing lost.
	down, up := -1, -1
	for i, l := range lines {
		if strings.Contains(l, `msg="CAN interface down, reopening"`) && down < 0 {
			down = i
		}
		if strings.Contains(l, `msg="CAN interface up again"`) && up < 0 {
			up = i
		}
	}
	if down < 0 || up < down {
		t.Errorf(`tboxd's log: "CAN interface down, reopening" at line %d, "up again" at %d: want both, in that order`, down, up)
	}
	resume := h2.first.Time.Add(shift2)
	if ok, seen := flagsNear(g.atts, signer.FlagGap, resume); !ok {
		t.Errorf("no GAP in the span where the odometer resumed after the outage: %s", seen)
	}
	want := int64(math.Floor(tr2.LastOdometer) - math.Floor(tr1.FirstOdometer))
	if got := totalMeters(g.atts); got != want {
		t.Errorf("the chain credits %d m; floor(last odometer %.2f m) - floor(first %.2f m) = %d m", got, tr2.LastOdometer, tr1.FirstOdometer, want)
	}
	t.Logf("figures: %d attestations, %d m = truth %d m across can1 down and up; guest ready in %v, boot %v, test %v",
		len(g.atts), totalMeters(g.atts), want, res.BootTime.Round(time.Millisecond), res.Duration.Round(time.Millisecond), since(t0))
}

// serviceFlush unlocks service mode with the rig's service key and runs
// flush, which the guest's script waits for as the end of the session.
func serviceFlush(t *testing.T, term *serialTerm, service *signer.FileKey) {
	t.Helper()
	mc := regexp.MustCompile(`challenge ([0-9a-f]{114})`).FindStringSubmatch(term.run("unlock"))
	if mc == nil {
		t.Fatal("unlock printed no challenge")
	}
	chal, err := shell.ParseChallenge(mc[1])
	if err != nil {
		t.Fatal(err)
	}
	sig, err := shell.SignUnlock(service, chal)
	if err != nil {
		t.Fatal(err)
	}
	if out := term.run("unlock " + hex.EncodeToString(sig[:])); !strings.Contains(out, "service mode unlocked") {
		t.Fatalf("unlock: %q", out)
	}
	if out := term.run("flush"); !strings.Contains(out, "flush: done") {
		t.Errorf("flush: %q", out)
	}
}

func indexOfPrefix(lines []string, p string) int {
	for i, l := range lines {
		if strings.HasPrefix(l, p) {
			return i
		}
	}
	return -1
}
