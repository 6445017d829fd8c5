package rig

import (
	"bytes"
	"fmt"
	"os"
	"strings"
	"time"

	"github.com/csop/tbox/agent/profile"
	"github.com/csop/tbox/can"
	"github.com/csop/tbox/hil/vehicle"
)

// Bus is the default bus named in the rig's frames.
const Bus = "can0"

// Drive is a seeded drive of the vehicle simulator, played in the guest by
// vsim (Script) and replayed on the host for the truth (Scenario): both
// read these fields, so they agree frame for frame.
type Drive struct {
	Seed     int64
	Start    time.Time
	Duration time.Duration
	// Pace is vsim --pace: the drive plays Pace times faster than it was
	// driven; tboxd's can.time_scale must be the same.
	Pace float64
	// Frame rates while the car is awake; 0 is vsim's default (odometer
	// 10 Hz, speed 50 Hz, drive mode 5 Hz).
	OdometerHz, SpeedHz, ModeHz float64
	Noise                       int  // unrelated messages on the bus
	NoParking                   bool // one trip, no parked periods
	Biometric                   bool // the profile's biometric messages with vehicle.BiometricMarker
	NoTraffic                   bool // no stop-and-go
	// SilentAt and SilentFor: the odometer (or the ECU of a polled one)
	// falls silent for SilentFor from SilentAt into the drive.
	SilentAt, SilentFor time.Duration
	// Iface is the guest's CAN interface vsim plays on; default vcan0.
	Iface string
	// Profile is the profile's path in the guest; default GuestProfile.
	Profile string
}

// Scenario is the drive for vehicle.Scenario.Frames.
func (d Drive) Scenario() vehicle.Scenario {
	return vehicle.Scenario{
		Seed: d.Seed, Start: d.Start, Duration: d.Duration, Bus: Bus,
		Parking: !d.NoParking, ModeChanges: true, StopAndGo: !d.NoTraffic, Noise: d.Noise, Biometric: d.Biometric,
		OdometerHz: d.OdometerHz, SpeedHz: d.SpeedHz, ModeHz: d.ModeHz, SilentAt: d.SilentAt, SilentFor: d.SilentFor,
	}
}

// VsimArgs is the vsim command line of the drive onto vcan0, its truth
// written to truth.
func (d Drive) VsimArgs(truth string) string {
	iface, prof := d.Iface, d.Profile
	if iface == "" {
		iface = "vcan0"
	}
	if prof == "" {
		prof = GuestProfile
	}
	args := []string{
		"vsim", "--profile", prof, "--seed", fmt.Sprint(d.Seed), "--duration", d.Duration.String(),
		"--start", d.Start.UTC().Format(time.RFC3339), "--iface", iface, "--pace", fmt.Sprint(d.Pace),
		"--noise", fmt.Sprint(d.Noise), "--bus", Bus, "--truth", truth,
	}
	for _, r := range []struct {
		flag string
		v    float64
	}{{"--odometer-hz", d.OdometerHz}, {"--speed-hz", d.SpeedHz}, {"--mode-hz", d.ModeHz}} {
		if r.v > 0 {
			args = append(args, r.flag, fmt.Sprint(r.v))
		}
	}
	if d.NoParking {
		args = append(args, "--parking=false")
	}
	if d.Biometric {
		args = append(args, "--biometric")
	}
	if d.NoTraffic {
		args = append(args, "--traffic=false")
	}
	if d.SilentFor > 0 {
		args = append(args, "--silent-at", d.SilentAt.String(), "--silent-for", d.SilentFor.String())
	}
	return strings.Join(args, " ")
}

// Script plays the drive on the second core and prints RIG-VSIM-EXIT and
// RIG-TRUTH (vsim's truth, one line of JSON); $vrc is vsim's status.
func (d Drive) Script() string {
	return `echo "RIG-DRIVE-START"
taskset 2 ` + d.VsimArgs("/tmp/truth.json") + `
vrc=$?
echo "RIG-VSIM-EXIT $vrc"
echo "RIG-TRUTH $(tr -d ' \n' < /tmp/truth.json)"
`
}

// Wall is how long the drive takes to play.
func (d Drive) Wall() time.Duration { return time.Duration(float64(d.Duration) / d.Pace) }

// Credit is one credit of the README §C1 rule: a reading that raised the
// odometer's high-water mark.
type Credit struct {
	Time   time.Time
	Meters int64
	Mode   string
}

// Ledger applies the README §C1 rule to frames as they come: the truth of
// what a perfect agent attests for them.
type Ledger struct {
	dec     *profile.Decoder
	buf     []profile.Reading
	mode    string
	started bool
	hwm     float64

	First, Last float64 // first and last odometer readings, meters
	Frames      int
	Credits     []Credit
}

// NewLedger returns a ledger for the profile's frames.
func NewLedger(p *profile.Profile) *Ledger {
	return &Ledger{dec: p.NewDecoder(profile.WithDefaultBus(Bus)), mode: vehicle.UnknownMode}
}

// Frame credits one frame.
func (l *Ledger) Frame(f *can.Frame) {
	l.Frames++
	l.buf = l.dec.Decode(f, l.buf[:0])
	for _, r := range l.buf {
		switch r.Kind {
		case profile.DriveMode:
			l.mode = r.Mode
		case profile.Odometer:
			if !l.started {
				l.First = r.Value
			}
			l.Last = r.Value
			var m int64
			m, l.hwm = vehicle.Credit(l.started, l.hwm, r.Value)
			l.started = true
			if m > 0 {
				l.Credits = append(l.Credits, Credit{Time: f.Time, Meters: m, Mode: l.mode})
			}
		}
	}
}

// Meters sums the credits, in total and per drive mode.
func (l *Ledger) Meters() (total int64, modes map[string]int64) {
	modes = map[string]int64{}
	for _, c := range l.Credits {
		total += c.Meters
		modes[c.Mode] += c.Meters
	}
	return total, modes
}

// Aligned is a drive's truth aligned on tboxd's compressed time.
type Aligned struct {
	Truth    vehicle.Truth
	Shift    time.Duration               // simulated time -> tboxd's compressed time
	Expected map[uint64]map[string]int64 // batch -> drive mode -> meters
	Meters   int64
	Modes    map[string]int64
}

// AlignTruth replays the drive on the host (the same code and seed as
// vsim, so the same frames) and computes, per batch and drive mode, the
// meters the README §C1 rule credits when every frame counts at the time
// tboxd gave it: the simulated time shifted by the offset between the
// drive's first frame and the compressed time tboxd stamped on it (epoch
// is tboxd's start, first the first frame's kernel time in the guest).
func AlignTruth(p *profile.Profile, d Drive, epoch time.Time, first *can.Frame, guest *vehicle.Truth) (*Aligned, error) {
	if first == nil || epoch.IsZero() || guest == nil {
		return nil, fmt.Errorf("the guest's run is incomplete: nothing to align")
	}
	led := NewLedger(p)
	var match time.Time
	truth, err := d.Scenario().Frames(p, func(f *can.Frame) error {
		if match.IsZero() && led.Frames < 10000 && f.ID == first.ID && f.Len == first.Len &&
			bytes.Equal(f.Data[:f.Len], first.Data[:first.Len]) {
			match = f.Time
		}
		led.Frame(f)
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("host replay of the drive: %w", err)
	}
	if truth.Meters != guest.Meters || truth.Frames != guest.Frames {
		return nil, fmt.Errorf("the host's replay (%d m, %d frames) differs from vsim's run in the guest (%d m, %d frames): cannot align the truth",
			truth.Meters, truth.Frames.Total, guest.Meters, guest.Frames.Total)
	}
	if match.IsZero() {
		return nil, fmt.Errorf("the first frame candump saw in the guest (%03X#%X) is not among the drive's first frames", first.ID, first.Data[:first.Len])
	}
	// tboxd's compressed time of the first frame: epoch + (t - epoch) * pace.
	c0 := epoch.Add(time.Duration(float64(first.Time.Sub(epoch)) * d.Pace))
	a := &Aligned{Truth: truth, Shift: c0.Sub(match), Expected: map[uint64]map[string]int64{}}
	a.Meters, a.Modes = led.Meters()
	for _, c := range led.Credits {
		b := uint64(vehicle.BatchOf(c.Time.Add(a.Shift)))
		if a.Expected[b] == nil {
			a.Expected[b] = map[string]int64{}
		}
		a.Expected[b][c.Mode] += c.Meters
	}
	return a, nil
}

// WriteLog writes frames as a candump -l log for canplayer, their times
// compressed pace times towards the first frame's, so that canplayer plays
// them at the drive's pace.
func WriteLog(path string, frames []can.Frame, pace float64) error {
	var b bytes.Buffer
	w := can.NewWriter(&b)
	var t0 time.Time
	for i := range frames {
		f := frames[i]
		if t0.IsZero() {
			t0 = f.Time
		}
		f.Time = t0.Add(time.Duration(float64(f.Time.Sub(t0)) / pace))
		if err := w.Write(&f); err != nil {
			return fmt.Errorf("%s: frame %d: %w", path, i+1, err)
		}
	}
	if err := w.Flush(); err != nil {
		return err
	}
	return os.WriteFile(path, b.Bytes(), 0o644)
}
