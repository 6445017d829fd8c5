package rig

import (
	"context"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"
)

// fdPace is how much faster than real time the FD drive plays.
const fdPace = 8

// TestFDDrive plays the CAN FD sample car (ev_fd.toml: the odometer in
// bytes 8 to 11 of a 16-byte FD frame, the speed in bytes 50 and 51 of a
// 64-byte one, the drive mode in an 8-byte FD frame) on the emulated
// T-Box's kernel vcan0. First, with vcan0 set to the classic MTU of 16 (a
// vcan starts at 72; a classic controller has 16), tboxd must refuse to start, naming vcan0 and the MTU it needs. Then vcan0 is
// set back to MTU 72 (CANFD_MTU) and a three-minute drive, with noise and the
// biometric DMS_FaceFD on the bus, plays at 8x: the meters attested equal
// vsim's truth, which they can only do if tboxd's socket read the FD
// frames (the odometer is in no classic frame).
func TestFDDrive(t *testing.T) {
	r := newRig(t)
	ctx := context.Background()
	t0 := time.Now()
	start := time.Now().Add(-20 * time.Minute).Truncate(time.Minute)
	d := Drive{Seed: 31, Start: start, Duration: 3 * time.Minute, Pace: fdPace, NoParking: true,
		SpeedHz: 5, ModeHz: 1, Noise: 1, Biometric: true}
	td := filepath.Dir(r.Bins.Profile)
	// vcan starts at CANFD_MTU: it is set to the classic MTU first, as a
	// classic controller has, then to 72.
	script := ScriptClockSync + `ip link set vcan0 down && ip link set vcan0 mtu 16 && ip link set vcan0 up || { echo "RIG-ERROR vcan0 mtu 16"; exit 93; }
timeout 30 tboxd --config ` + GuestConfig + ` > /tmp/nofd.log 2>&1
echo "RIG-FD-REFUSED $?"
grep -h 'vcan0' /tmp/nofd.log | tail -n 2 | sed 's/^/RIG-NOFD /'
ip link set vcan0 down && ip link set vcan0 mtu 72 && ip link set vcan0 up || { echo "RIG-ERROR vcan0 mtu 72"; exit 93; }
echo "RIG-FD-MTU $(cat /sys/class/net/vcan0/mtu)"
` + ScriptStartTboxd + d.Script() + ScriptStopTboxd + "wait\n[ $vrc -eq 0 ]\n"
	g, err := r.Boot(ctx, GuestOptions{
		Script: script,
		Tboxd:  &Tboxd{TimeScale: fdPace},
		Files: map[string]string{
			GuestProfile:            filepath.Join(td, "ev_fd.toml"),
			GuestEtc + "/ev_fd.dbc": filepath.Join(td, "ev_fd.dbc"),
		},
		Clock:   start.Add(-time.Minute),
		Timeout: d.Wall() + 2*time.Minute,
		OnLine: lineLogger(t, "guest: ", func(l string) bool {
			return interesting(l) || strings.HasPrefix(l, "vsim:") || strings.HasPrefix(l, "RIG-")
		}),
	})
	if err != nil {
		t.Fatal(err)
	}
	res, gerr := g.Wait()
	if gerr != nil {
		t.Errorf("guest: %v", gerr)
	}
	lines := g.Lines()
	var refused, nofd, mtu string
	fdOn := false
	for _, l := range lines {
		switch {
		case strings.HasPrefix(l, "RIG-FD-REFUSED "):
			refused = strings.TrimPrefix(l, "RIG-FD-REFUSED ")
		case strings.HasPrefix(l, "RIG-NOFD "):
			nofd += l + "\n"
		case strings.HasPrefix(l, "RIG-FD-MTU "):
			mtu = strings.TrimPrefix(l, "RIG-FD-MTU ")
		case strings.Contains(l, `msg="CAN FD frames enabled"`) && strings.Contains(l, "bus=vcan0"):
			fdOn = true
		}
	}
	if refused == "" || refused == "0" {
		t.Errorf("tboxd with the FD profile on vcan0 at MTU 16 exited %q, want a failure", refused)
	}
	for _, want := range []string{"vcan0", "cannot carry CAN FD frames", "MTU 16", "72"} {
		if !strings.Contains(nofd, want) {
			t.Errorf("tboxd's refusal does not say %q:\n%s", want, nofd)
		}
	}
	if mtu != "72" {
		t.Fatalf("vcan0's MTU is %q after ip link set mtu 72", mtu)
	}
	if !fdOn {
		t.Error("tboxd did not log that CAN FD frames are enabled on vcan0")
	}
	f := ParseConsole(lines)
	if f.VsimExit != 0 || f.TboxdExit != 0 || f.Truth == nil {
		t.Fatalf("guest: vsim exit %d, tboxd exit %d, truth %v; want 0, 0 and vsim's truth", f.VsimExit, f.TboxdExit, f.Truth != nil)
	}
	var meters int64
	for _, kv := range f.Attested {
		m, _ := strconv.ParseInt(kv["meters"], 10, 64)
		meters += m
	}
	if meters != f.Truth.Meters || meters == 0 {
		t.Errorf("attested %d m over the FD drive; the truth is %d m (floor(%v) - floor(%v))", meters, f.Truth.Meters, f.Truth.HighWater, f.Truth.FirstOdometer)
	}
	// The kernel filter held on the FD socket: tboxd received exactly the
	// profile's frames, none of the noise or of DMS_FaceFD.
	profileFrames := f.Truth.Frames.Odometer + f.Truth.Frames.Speed + f.Truth.Frames.DriveMode
	received := -1
	for _, l := range lines {
		if kv := LogFields(l); kv["msg"] == "CAN counters" && kv["bus"] == "vcan0" {
			received, _ = strconv.Atoi(kv["frames"])
		}
	}
	if f.Truth.Frames.Biometric == 0 || f.Truth.Frames.Noise == 0 {
		t.Errorf("the drive had %d biometric and %d noise frames, want some of each", f.Truth.Frames.Biometric, f.Truth.Frames.Noise)
	}
	if received != profileFrames {
		t.Errorf("tboxd received %d frames on vcan0; the drive sent %d of the profile's messages (of %d in all)", received, profileFrames, f.Truth.Frames.Total)
	}
	t.Logf("FD drive: %v of driving at %dx in %v (guest ready in %v); %d frames (%d biometric); %d attestations, %d m = truth %d m; %s; whole %v",
		d.Duration, fdPace, res.Duration.Round(time.Second), res.BootTime.Round(time.Millisecond), f.Truth.Frames.Total, f.Truth.Frames.Biometric,
		len(f.Attested), meters, f.Truth.Meters, flagSummary(f.Attested), since(t0))
}
