package hil

import (
	"testing"
	"time"

	"github.com/csop/tbox/signer"
)

// TestFieldOdometerGlitch is issue 14 (a) in the emulated T-Box: in the
// middle of a drive, one frame 541#FFFFFFFFFFFFFFFF (the odometer's raw
// 0xFFFFFFFF, what anything on the OBD port can send) is injected on vcan0
// beside vsim's odometer. The glitch is a JUMP candidate that the next
// real frame dismisses: the chain's meters equal the drive's truth, a span
// carries JUMP, none carries ROLLBACK, and every span of the drive credits
// distance (before the candidate rule, the glitch became the high-water
// mark: 42,949,672,950 m credited, then 0 m with ROLLBACK for ever).
func TestFieldOdometerGlitch(t *testing.T) {
	k := prepare(t)
	t0 := time.Now()
	const pace = 60.0
	r := newFieldRig(t, fieldConf{timeScale: pace})
	start := time.Date(2026, 3, 1, 7, 0, 0, 0, time.UTC)
	s := fieldScenario(5, start, 30*time.Minute, 0)
	h := replayHost(t, r.prof, s)

	// vsim starts half a second after the injector; 15 s at 60x is 15
	// minutes into the 30-minute drive.
	script := fieldStart + `(sleep 15.5; cansend vcan0 541#FFFFFFFFFFFFFFFF && echo HIL-GLITCH-SENT) &
gpid=$!
` + fieldDrive("A", s, pace) + "wait $gpid\n" + fieldStop
	lines, res := bootField(t, k, r, script, 3*time.Minute)
	if indexOf(lines, "HIL-GLITCH-SENT") < 0 {
		t.Fatal("cansend did not send the glitch frame")
	}
	g := parseRun(t, r, lines)
	tr, shift := g.drive(t, "A", h, pace)
	t.Logf("attestations (sim times):%s", flagTable(g.atts, shift))

	if got := totalMeters(g.atts); got != tr.Meters {
		t.Errorf("the chain credits %d m; the drive's truth is %d m", got, tr.Meters)
	}
	// The drive's own odometer never steps back (checked on the host), so
	// any ROLLBACK would be the glitch's doing.
	for i := 1; i < len(h.odo); i++ {
		if h.odo[i].m < h.odo[i-1].m {
			t.Fatalf("seed %d: the drive's odometer steps back at %v: pick a seed without", s.Seed, h.odo[i].t)
		}
	}
	firstJump, jumps := -1, 0
	for i, a := range g.atts {
		if a.Flags&signer.FlagRollback != 0 {
			t.Errorf("seq %d (batch %d, %d m): ROLLBACK", a.Seq, a.Batch, a.Meters)
		}
		if a.Flags&signer.FlagJump != 0 {
			jumps++
			if firstJump < 0 {
				firstJump = i
			}
		}
		if i > 0 && i < len(g.atts)-1 && a.Meters == 0 {
			t.Errorf("seq %d (batch %d): 0 m in the middle of the drive", a.Seq, a.Batch)
		}
	}
	// The glitch's span has JUMP. Emulated-CPU stalls, multiplied by the
	// pace, can make real frames look too fast too, so JUMP elsewhere is
	// tolerated here (the host replay test, TestReplayGlitchFrame in
	// cmd/tboxctl, pins it to the glitch's span alone).
	if jumps == 0 {
		t.Error("no attestation with JUMP: the glitch frame was not seen")
	}
	t.Logf("figures: %d attestations, %d m (truth %d m), %d with JUMP; guest ready in %v, boot %v, test %v",
		len(g.atts), totalMeters(g.atts), tr.Meters, jumps, res.BootTime.Round(time.Millisecond), res.Duration.Round(time.Millisecond), since(t0))
}
