package hil

import (
	"math"
	"strings"
	"testing"
	"time"

	"github.com/csop/tbox/signer"
)

// TestFieldBusOutage is field scenario 6: the CAN interface disappears
// mid-drive. vsim drives (run 1), then vcan0 is deleted, stays away for a
// second while the car keeps moving, and is created and brought up again;
// once tboxd reports it has reopened its socket, vsim drives on (run 2)
// from an odometer 300 m higher. vsim's own socket dies with the interface,
// hence the two runs. Judged from the outside: tboxd's log shows the loss
// and the reopen by itself, GAP is set in the span where the odometer
// resumed higher after more than 5 s of silence, attestations after the
// outage carry distance, and the chain's meters equal floor(last odometer)
// - floor(first) of what was sent: nothing is lost.
func TestFieldBusOutage(t *testing.T) {
	k := prepare(t)
	t0 := time.Now()
	const pace = 30.0
	r := newFieldRig(t, fieldConf{timeScale: pace})

	start := time.Date(2026, 3, 2, 7, 0, 0, 0, time.UTC)
	s1 := fieldScenario(5, start, 10*time.Minute, 0)
	s1.StopAndGo = false // moving when the bus goes away
	h1 := replayHost(t, r.prof, s1)
	const outage = time.Second
	s2 := fieldScenario(6, s1.Start.Add(s1.Duration).Add(outage*pace), 10*time.Minute, (h1.truth.LastOdometer+300)/1000)
	s2.StopAndGo = false
	h2 := replayHost(t, r.prof, s2)
	if h2.truth.FirstOdometer <= h1.truth.HighWater {
		t.Fatalf("run 2 starts at %.2f m, not above run 1's high-water mark %.2f m", h2.truth.FirstOdometer, h1.truth.HighWater)
	}

	script := fieldStart + fieldDrive("R1", s1, pace) + `
ip link del vcan0 && echo "HIL-BUS vcan0 deleted"
sleep 1
ip link add dev vcan0 type vcan && ip link set vcan0 up && echo "HIL-BUS vcan0 back"
n=0
until grep -q 'msg="CAN interface up again"' /tmp/tboxd.log; do
	n=$((n+1)); if [ $n -gt 100 ]; then echo "HIL-FIELD-ERROR tboxd did not reopen vcan0 within 10 s"; break; fi
	sleep 0.1
done
` + fieldDrive("R2", s2, pace) + fieldStop
	lines, res := bootField(t, k, r, script, 3*time.Minute)
	g := parseRun(t, r, lines)
	tr1, shift1 := g.drive(t, "R1", h1, pace)
	tr2, shift2 := g.drive(t, "R2", h2, pace)
	t.Logf("attestations (sim times of run 1):%s", flagTable(g.atts, shift1))

	// tboxd's log: the loss and the reopen, in that order.
	down, up := -1, -1
	for i, l := range lines {
		if strings.Contains(l, `msg="CAN interface down, reopening"`) && down < 0 {
			down = i
		}
		if strings.Contains(l, `msg="CAN interface up again"`) && up < 0 {
			up = i
		}
	}
	switch {
	case down < 0:
		t.Error(`tboxd's log lacks "CAN interface down, reopening"`)
	case up < 0:
		t.Error(`tboxd's log lacks "CAN interface up again"`)
	case up < down:
		t.Error("tboxd logged the interface up again before it went down")
	}

	// GAP where the odometer resumed, distance after it, nothing lost.
	resume := h2.first.Time.Add(shift2)
	if ok, seen := flagsNear(g.atts, signer.FlagGap, resume); !ok {
		t.Errorf("no GAP in the span where the odometer resumed after the outage: %s", seen)
	}
	// Run 2 lasts a whole batch, so at least one span starts after the
	// resume: only frames read on the reopened socket can fill it.
	var after int64
	for _, a := range g.atts {
		if from, _ := span(a); !from.Before(resume) {
			after += int64(a.Meters)
		}
	}
	if after == 0 {
		t.Error("no distance attested in the spans after the outage: tboxd counted no frame on the reopened socket")
	}
	want := int64(math.Floor(tr2.LastOdometer) - math.Floor(tr1.FirstOdometer))
	got := totalMeters(g.atts)
	if got != want {
		t.Errorf("the chain credits %d m; floor(last odometer %.2f m) - floor(first %.2f m) = %d m", got, tr2.LastOdometer, tr1.FirstOdometer, want)
	}
	gaps := 0
	for _, a := range g.atts {
		if a.Flags&signer.FlagGap != 0 {
			gaps++
		}
	}
	t.Logf("figures: %d attestations (%d with GAP), %d m = truth %d m (run 1 %d m, outage +%.0f m, run 2 %d m), %d m in spans starting after the resume; outage %v of wall time = %v of driving (resume at sim %s of run 1's clock); guest ready in %v, boot %v, test %v",
		len(g.atts), gaps, got, want, tr1.Meters, tr2.FirstOdometer-tr1.LastOdometer, tr2.Meters, after,
		resume.Sub(h1.truth.End.Add(shift1)).Round(time.Second)/pace, resume.Sub(h1.truth.End.Add(shift1)).Round(time.Second),
		resume.Add(-shift1).UTC().Format("15:04:05"), res.BootTime.Round(time.Millisecond), res.Duration.Round(time.Millisecond), since(t0))
}
