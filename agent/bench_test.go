package agent_test

import (
	"runtime"
	"testing"
	"time"

	"github.com/csop/tbox/agent"
	"github.com/csop/tbox/agent/profile"
	"github.com/csop/tbox/can"
)

// BenchmarkDecodeMileage measures Attester.Frame, decode and mileage, over
// the sample car's traffic as the kernel filter passes it: per second 10
// odometer, 50 speed and 5 drive-mode frames, at a steady 72 km/h. The
// frames are encoded before the timer starts; the loop only stamps each
// with its time (and the odometer frames with their pre-encoded payload).
// A span closes, and is signed and stored in a MemoryOutbox, once every
// 39,000 frames (a batch); that cost is amortized into ns/op. allocs/frame
// gives the allocations exactly, where allocs/op rounds down.
func BenchmarkDecodeMileage(b *testing.B) {
	p := loadEV(b)
	key := newKey(b)
	att, err := agent.NewAttester(agent.AttesterConfig{ChainID: chainID, Profile: p}, key, &agent.MemoryOutbox{})
	if err != nil {
		b.Fatal(err)
	}
	speed, err := p.Encode(profile.Speed, 72)
	if err != nil {
		b.Fatal(err)
	}
	mode, err := p.Encode(profile.DriveMode, 2)
	if err != nil {
		b.Fatal(err)
	}
	// One second of traffic in time order: a speed frame every 20 ms, an
	// odometer frame every 100 ms (after the speed frame of its slot), a
	// drive-mode frame every 200 ms.
	type slot struct {
		f   can.Frame
		at  time.Duration
		odo bool
	}
	var second []slot
	for ms := 0; ms < 1000; ms += 20 {
		second = append(second, slot{f: speed, at: time.Duration(ms) * time.Millisecond})
		if ms%100 == 0 {
			second = append(second, slot{at: time.Duration(ms+5) * time.Millisecond, odo: true})
		}
		if ms%200 == 0 {
			second = append(second, slot{f: mode, at: time.Duration(ms+10) * time.Millisecond})
		}
	}
	// The odometer payloads for b.N frames: 2 m per frame at 72 km/h.
	odoFrames := b.N/len(second)*10 + 10
	odo := make([][8]byte, odoFrames)
	for i := range odo {
		f, err := p.Encode(profile.Odometer, 50e6+2*float64(i))
		if err != nil {
			b.Fatal(err)
		}
		copy(odo[i][:], f.Data[:8])
	}
	odoTemplate, _ := p.Encode(profile.Odometer, 50e6)
	base := time.Unix(1700000000, 0)
	frames := make([]can.Frame, len(second))
	for i := range second {
		frames[i] = second[i].f
		if second[i].odo {
			frames[i] = odoTemplate
		}
		frames[i].Bus = "can0"
	}

	var ms0, ms1 runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&ms0)
	b.ReportAllocs()
	b.ResetTimer()
	sec, j, oi := 0, 0, 0
	for range b.N {
		f := &frames[j]
		f.Time = base.Add(time.Duration(sec)*time.Second + second[j].at)
		if second[j].odo {
			f.Data = [64]byte{}
			copy(f.Data[:8], odo[oi][:])
			oi++
		}
		if err := att.Frame(f); err != nil {
			b.Fatal(err)
		}
		if j++; j == len(frames) {
			j, sec = 0, sec+1
		}
	}
	b.StopTimer()
	runtime.ReadMemStats(&ms1)
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "frames/s")
	b.ReportMetric(float64(ms1.Mallocs-ms0.Mallocs)/float64(b.N), "allocs/frame")
	if att.Made() == 0 && sec > 600 {
		b.Fatalf("%d s of driving made no attestation", sec)
	}
}
