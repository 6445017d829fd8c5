package profile

import (
	"math/rand"
	"os"
	"testing"

	einride "go.einride.tech/can"
	"go.einride.tech/can/pkg/dbc"
	"go.einride.tech/can/pkg/descriptor"

	"github.com/csop/tbox/can"
)

// benchFrames returns a realistic stream: the profile's messages at the
// rates of the sample car (odometer 10 Hz, speed 50 Hz, drive mode 10 Hz)
// and, when noise is set, 20 unrelated messages at 50 Hz each.
func benchFrames(b *testing.B, p *Profile, noise bool) []can.Frame {
	rng := rand.New(rand.NewSource(1))
	var out []can.Frame
	add := func(k Kind, x float64, n int) {
		for i := 0; i < n; i++ {
			v := x + float64(i)
			if k == DriveMode {
				v = float64(i % 4)
			}
			f, err := p.Encode(k, v)
			if err != nil {
				b.Fatal(err)
			}
			f.Bus = "can0"
			out = append(out, f)
		}
	}
	add(Odometer, 12345670, 10)
	add(Speed, 80, 50)
	add(DriveMode, 1, 10)
	if noise {
		for id := uint32(0x100); id < 0x100+20; id++ {
			for i := 0; i < 50; i++ {
				f := can.Frame{ID: id, Len: 8, Bus: "can0"}
				rng.Read(f.Data[:8])
				out = append(out, f)
			}
		}
	}
	rng.Shuffle(len(out), func(i, j int) { out[i], out[j] = out[j], out[i] })
	return out
}

// einrideDecoder decodes the same signals with einride's descriptor package,
// built from the same DBC the way einride's compiler maps a dbc.File into a
// descriptor.Database (internal/generate/compile.go).
type einrideDecoder struct {
	byID map[uint32][]*descriptor.Signal
}

func newEinrideDecoder(b *testing.B, p *Profile) *einrideDecoder {
	data, err := os.ReadFile(p.DBCFile())
	if err != nil {
		b.Fatal(err)
	}
	parser := dbc.NewParser(p.DBCFile(), data)
	if err := parser.Parse(); err != nil {
		b.Fatal(err)
	}
	e := &einrideDecoder{byID: map[uint32][]*descriptor.Signal{}}
	for _, def := range parser.Defs() {
		m, ok := def.(*dbc.MessageDef)
		if !ok {
			continue
		}
		for k := Kind(0); k < numKinds; k++ {
			s := p.sigs[k]
			if s == nil || s.message != string(m.Name) {
				continue
			}
			sd := m.Signals[0]
			for _, x := range m.Signals {
				if string(x.Name) == s.name {
					sd = x
				}
			}
			sig := &descriptor.Signal{
				Name: string(sd.Name), Start: uint8(sd.StartBit), Length: uint8(sd.Size),
				IsBigEndian: sd.IsBigEndian, IsSigned: sd.IsSigned,
				Scale: sd.Factor, Offset: sd.Offset, Min: sd.Minimum, Max: sd.Maximum, Unit: sd.Unit,
			}
			if k == DriveMode {
				for name, v := range s.modeValues {
					sig.ValueDescriptions = append(sig.ValueDescriptions, &descriptor.ValueDescription{Value: int64(v), Description: name})
				}
			}
			e.byID[m.MessageID.ToCAN()] = append(e.byID[m.MessageID.ToCAN()], sig)
		}
	}
	return e
}

func (e *einrideDecoder) decode(f *can.Frame) (n int, sum float64) {
	sigs, ok := e.byID[f.ID]
	if !ok {
		return 0, 0
	}
	var d einride.Data
	copy(d[:], f.Data[:8])
	for _, s := range sigs {
		sum += s.UnmarshalPhysical(d)
		if len(s.ValueDescriptions) > 0 {
			if name, ok := s.UnmarshalValueDescription(d); ok {
				sum += float64(len(name))
			}
		}
		n++
	}
	return n, sum
}

// BenchmarkDecode decodes the same frames with this package and with
// einride's descriptor.Signal.UnmarshalPhysical, side by side.
func BenchmarkDecode(b *testing.B) {
	p := mustLoad(b, "testdata/ev.toml")
	for _, mix := range []struct {
		name  string
		noise bool
	}{{"profile-frames", false}, {"bus-mix", true}} {
		frames := benchFrames(b, p, mix.noise)
		b.Run("tbox/"+mix.name, func(b *testing.B) {
			d := p.NewDecoder()
			buf := make([]Reading, 0, 4)
			var n int
			b.ReportAllocs()
			b.ResetTimer()
			for i := 0; i < b.N; i++ {
				buf = d.Decode(&frames[i%len(frames)], buf[:0])
				n += len(buf)
			}
			b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "frames/s")
			if n == 0 && b.N >= len(frames) {
				b.Fatal("no readings")
			}
		})
		b.Run("einride/"+mix.name, func(b *testing.B) {
			e := newEinrideDecoder(b, p)
			var n int
			var sum float64
			b.ReportAllocs()
			b.ResetTimer()
			for i := 0; i < b.N; i++ {
				k, s := e.decode(&frames[i%len(frames)])
				n += k
				sum += s
			}
			b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "frames/s")
			if (n == 0 || sum == 0) && b.N >= len(frames) {
				b.Fatal("no readings")
			}
		})
	}
}
