package vehicle

import (
	"math"
	"sort"
	"time"

	"github.com/csop/tbox/agent/profile"
	"github.com/csop/tbox/can"
)

// BatchSeconds is the length of a Stone-drop batch: batch = floor(unix/600).
const BatchSeconds = 600

// UnknownMode names the drive mode before the first drive-mode frame.
const UnknownMode = "UNKNOWN"

// Truth is what a perfect agent attests for a scenario, computed the way
// README §C1 defines it from the odometer frames themselves: a reading above
// the high-water mark credits floor(new) - floor(old) meters to the batch of
// the frame's time and to the drive mode of the last drive-mode frame.
type Truth struct {
	Seed  int64     `json:"seed"`
	Start time.Time `json:"start"`
	End   time.Time `json:"end"`
	// FirstOdometer and LastOdometer are the first and last odometer
	// readings in meters, HighWater the highest.
	FirstOdometer float64 `json:"first_odometer_m"`
	LastOdometer  float64 `json:"last_odometer_m"`
	HighWater     float64 `json:"high_water_m"`
	// Meters is floor(HighWater) - floor(FirstOdometer), the sum of Batches.
	Meters int64 `json:"meters"`
	// TrueDistance is the distance the simulated car drove, in meters.
	TrueDistance float64 `json:"true_distance_m"`
	Batches      []Batch `json:"batches"`
	Frames       Counts  `json:"frames"`
	// Track samples the true (physical) odometer once a minute while the
	// car is awake.
	Track []TrackPoint `json:"track"`
	// Polled is what the ECU answered a tester on a live bus (Scenario.ECU):
	// then the truth of the mileage, since what was credited depends on
	// when the tester asked.
	Polled *PolledTruth `json:"polled,omitempty"`
}

// Batch is the credited distance of one batch.
type Batch struct {
	Batch  int64        `json:"batch"`
	Meters int64        `json:"meters"`
	Modes  []ModeMeters `json:"modes"` // sorted by name, no zero entries; sum = Meters
}

// ModeMeters is the distance driven in one drive mode.
type ModeMeters struct {
	Mode   string `json:"mode"`
	Meters int64  `json:"meters"`
}

// TrackPoint is the true odometer at a time.
type TrackPoint struct {
	Time   time.Time `json:"t"`
	Meters float64   `json:"m"`
}

// Counts counts the frames of a scenario by origin.
type Counts struct {
	Total     int `json:"total"`
	Odometer  int `json:"odometer"` // including a second device's
	Second    int `json:"second_device"`
	Speed     int `json:"speed"`
	DriveMode int `json:"drive_mode"`
	Noise     int `json:"noise"`
	Biometric int `json:"biometric"`
}

type truthBuilder struct {
	t        Truth
	d        *profile.Decoder
	buf      []profile.Reading
	mode     string
	started  bool
	hwm      float64
	batches  map[int64]map[string]int64
	lastTick time.Time
}

func newTruthBuilder(p *profile.Profile, s Scenario) *truthBuilder {
	return &truthBuilder{
		t:       Truth{Seed: s.Seed, Start: s.Start, End: s.Start.Add(s.Duration)},
		d:       p.NewDecoder(profile.WithDefaultBus(s.Bus)),
		buf:     make([]profile.Reading, 0, 4),
		mode:    UnknownMode,
		batches: map[int64]map[string]int64{},
	}
}

// Credit applies README §C1's rule to an odometer reading: it returns the
// meters to credit and the new high-water mark. The first reading only sets
// the mark.
func Credit(started bool, hwm, reading float64) (meters int64, newHWM float64) {
	if !started {
		return 0, reading
	}
	if reading <= hwm {
		return 0, hwm
	}
	return int64(math.Floor(reading) - math.Floor(hwm)), reading
}

// BatchOf returns the batch of a time: floor(unix/600).
func BatchOf(t time.Time) int64 {
	u := t.Unix()
	b := u / BatchSeconds
	if u < 0 && u%BatchSeconds != 0 {
		b--
	}
	return b
}

func (b *truthBuilder) observe(f *can.Frame, kind int, trueOdometer float64) {
	c := &b.t.Frames
	c.Total++
	switch kind {
	case srcOdometer:
		c.Odometer++
	case srcSecond:
		c.Odometer++
		c.Second++
	case srcSpeed:
		c.Speed++
	case srcMode:
		c.DriveMode++
	case srcNoise:
		c.Noise++
	case srcBiometric:
		c.Biometric++
	}
	if b.lastTick.IsZero() || f.Time.Sub(b.lastTick) >= time.Minute {
		b.lastTick = f.Time
		b.t.Track = append(b.t.Track, TrackPoint{Time: f.Time, Meters: trueOdometer})
	}
	b.buf = b.d.Decode(f, b.buf[:0])
	for _, r := range b.buf {
		switch r.Kind {
		case profile.DriveMode:
			b.mode = r.Mode
		case profile.Odometer:
			if !b.started {
				b.t.FirstOdometer = r.Value
			}
			m, hwm := Credit(b.started, b.hwm, r.Value)
			b.started, b.hwm = true, hwm
			b.t.LastOdometer = r.Value
			if m > 0 {
				bm := b.batches[BatchOf(r.Time)]
				if bm == nil {
					bm = map[string]int64{}
					b.batches[BatchOf(r.Time)] = bm
				}
				bm[b.mode] += m
			}
		}
	}
}

func (b *truthBuilder) truth(trueDistance float64) Truth {
	t := b.t
	t.HighWater = b.hwm
	t.TrueDistance = trueDistance
	if b.started {
		t.Meters = int64(math.Floor(b.hwm) - math.Floor(t.FirstOdometer))
	}
	t.Batches = SortBatches(b.batches)
	return t
}

// SortBatches turns batch -> mode -> meters into Batches, sorted by batch,
// modes sorted by name, zero entries left out.
func SortBatches(m map[int64]map[string]int64) []Batch {
	var out []Batch
	for id, modes := range m {
		b := Batch{Batch: id}
		for name, v := range modes {
			if v == 0 {
				continue
			}
			b.Modes = append(b.Modes, ModeMeters{Mode: name, Meters: v})
			b.Meters += v
		}
		if b.Meters == 0 {
			continue
		}
		sort.Slice(b.Modes, func(i, j int) bool { return b.Modes[i].Mode < b.Modes[j].Mode })
		out = append(out, b)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Batch < out[j].Batch })
	return out
}
