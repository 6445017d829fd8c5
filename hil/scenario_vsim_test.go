package hil

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/csop/tbox/can"
)

// hostBuild builds a command for this machine into out.
func hostBuild(ctx context.Context, pkg, out string) error {
	root, err := RepoRoot()
	if err != nil {
		return err
	}
	cmd := exec.CommandContext(ctx, "go", "build", "-o", out, pkg)
	cmd.Dir = root
	if b, err := cmd.CombinedOutput(); err != nil {
		return fmt.Errorf("go build %s: %w\n%s", pkg, err, b)
	}
	return nil
}

// readFrames parses a candump log.
func readFrames(name string, b []byte) ([]can.Frame, error) {
	r := can.NewReader(bytes.NewReader(b))
	var out []can.Frame
	for r.Receive() {
		out = append(out, *r.Frame())
	}
	if err := r.Err(); err != nil {
		return nil, fmt.Errorf("%s: %w", name, err)
	}
	return out, nil
}

// TestVsimOnVCAN plays a seeded drive with the ARM vsim onto the guest's
// kernel vcan0 (--iface vcan0 --pace 10), captures the bus with candump, and
// requires the capture to be exactly the frames the host's vsim writes to a
// log for the same seed (same IDs, flags and payloads, in order), at the
// requested pace. At --pace 20 (1,300 frames/s with candump capturing) the
// emulated CPU of a busy host fell behind (27 s for 15 s with either
// socketcan version): the pace is what is checked here, not the emulator's
// throughput, so the drive is played at 650 frames/s.
func TestVsimOnVCAN(t *testing.T) {
	k := prepare(t)
	ctx := context.Background()
	dir := t.TempDir()
	tomlPath, dbcPath, err := evProfile()
	if err != nil {
		t.Fatal(err)
	}
	const pace = 10.0
	const duration = 5 * time.Minute
	flags := fmt.Sprintf("--seed 5 --duration %v --start 2026-03-01T07:00:00Z --parking=false --noise 0", duration)

	armVsim, hostVsim := filepath.Join(dir, "vsim-arm"), filepath.Join(dir, "vsim")
	if err := CrossBuild(ctx, "./cmd/vsim", armVsim); err != nil {
		t.Fatal(err)
	}
	if err := hostBuild(ctx, "./cmd/vsim", hostVsim); err != nil {
		t.Fatal(err)
	}
	hostLog := filepath.Join(dir, "host.log")
	cmd := exec.CommandContext(ctx, hostVsim, append([]string{"--profile", tomlPath, "--log", hostLog}, strings.Fields(flags)...)...)
	if b, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("host vsim: %v\n%s", err, b)
	}
	disk := filepath.Join(dir, "disk.img")
	if err := MakeDisk(disk, 16); err != nil {
		t.Fatal(err)
	}
	// candump gets a 16 MiB receive buffer (SO_RCVBUFFORCE, as root) and
	// writes to tmpfs, so that a busy build machine slowing the guest does
	// not make it drop frames; the capture is copied to the disk for the host.
	script := fmt.Sprintf(`candump -r 16777216 -L vcan0 > /tmp/cap.log &
dump=$!
sleep 1
vsim --profile /drive/ev.toml --iface vcan0 --pace %v %s
rc=$?
sleep 1
kill $dump
wait
cp /tmp/cap.log /data/cap.log
echo "HIL-VSIM-EXIT $rc"
`, pace, flags)
	res, err := k.Boot(ctx, Options{
		Files:    map[string]string{"/bin/vsim": armVsim, "/drive/ev.toml": tomlPath, "/drive/ev.dbc": dbcPath},
		Script:   script,
		Disk:     disk,
		CanUtils: true,
		Timeout:  3 * time.Minute,
		Console:  &logWriter{t: t, prefix: "guest: "},
	})
	if err != nil {
		t.Fatalf("boot: %v", err)
	}
	if !strings.Contains(res.Console, "HIL-VSIM-EXIT 0") {
		t.Fatal("vsim --iface vcan0 did not exit 0 in the guest")
	}

	hb, err := os.ReadFile(hostLog)
	if err != nil {
		t.Fatal(err)
	}
	want, err := readFrames("host vsim log", hb)
	if err != nil {
		t.Fatal(err)
	}
	gb, err := DiskFile(disk, "/cap.log")
	if err != nil {
		t.Fatal(err)
	}
	got, err := readFrames("guest candump capture", gb)
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != len(want) {
		t.Errorf("candump captured %d frames on vcan0, the host's vsim wrote %d", len(got), len(want))
	}
	for i := range min(len(got), len(want)) {
		g, w := &got[i], &want[i]
		if g.ID != w.ID || g.Flags != w.Flags || g.Len != w.Len || g.Data != w.Data {
			t.Fatalf("frame %d: captured %03X flags %v len %d % X, host vsim wrote %03X flags %v len %d % X",
				i+1, g.ID, g.Flags, g.Len, g.Data[:g.Len], w.ID, w.Flags, w.Len, w.Data[:w.Len])
		}
	}
	if len(got) < 2 || len(want) < 2 {
		t.Fatalf("too few frames to check the pace: captured %d, wanted %d", len(got), len(want))
	}
	span := got[len(got)-1].Time.Sub(got[0].Time)
	wantSpan := time.Duration(float64(want[len(want)-1].Time.Sub(want[0].Time)) / pace)
	if span < wantSpan*9/10 || span > wantSpan*3/2 {
		t.Errorf("the capture spans %v of wall time; %v of drive at --pace %v should take %v", span, duration, pace, wantSpan)
	}
	t.Logf("vsim --iface vcan0 --pace %v in the ARM guest: %d frames captured by candump, identical to the host's log; %v of drive in %v (want %v); boot ready in %v, done in %v",
		pace, len(got), duration, span.Round(time.Millisecond), wantSpan.Round(time.Millisecond),
		res.BootTime.Round(time.Millisecond), res.Duration.Round(time.Millisecond))
}
