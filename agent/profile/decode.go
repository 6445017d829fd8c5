package profile

import (
	"sync/atomic"

	"github.com/csop/tbox/can"
)

// maxInterned bounds the per-decoder cache of MODE_<n> names for drive-mode
// signals wider than 8 bits; past it, an unnamed value costs an allocation.
const maxInterned = 1024

// Decoder decodes the profile's signals from frames. It is not safe for
// concurrent use; make one per goroutine with Profile.NewDecoder.
type Decoder struct {
	msgs       []msgDecoder
	ids        uint64   // bit ID%64 set for each message's ID: most other frames are passed over at once
	anyBus     bool     // no bus named and no default bus: a message of no bus matches every bus
	named      []string // buses named explicitly in the profile
	defaultBus string
	interned   map[int64]string
	stats      Stats
	nr         NotReadings
}

type msgDecoder struct {
	id       uint32
	extended bool
	bus      string
	sigs     []*signal
	tp       *pollDecoder // the odometer is asked for: the response ID's ISO-TP
}

// Stats counts a decoder's work.
type Stats struct {
	Readings    uint64 // readings produced
	ShortFrames uint64 // frames of a profile message too short for a signal
	Invalid     uint64 // float signals that decoded to NaN or infinity
	Named       uint64 // odometer or speed raw values the DBC's value table names (SNA, Init, ...)
	Negative    uint64 // negative responses (0x7F) to the odometer's request
	Transport   uint64 // response frames refused by ISO-TP or too short for the value
}

// NotReadings counts, per kind, the frames of a profile message that gave
// no reading (README §C1): a raw odometer or speed value that the DBC's value
// table names (SNA, Invalid, Init, Error, ...), and a frame that cannot be
// decoded (too short for the signal or its multiplexer switch; a float that
// is NaN or infinite). They credit nothing. The counters are atomic: another
// goroutine (the diagnostic shell) may read them while the decoder runs.
type NotReadings struct {
	named       [numKinds]atomic.Uint64
	undecodable [numKinds]atomic.Uint64
}

// Named returns how many raw values of kind k the value table named.
func (n *NotReadings) Named(k Kind) uint64 {
	if k >= numKinds {
		return 0
	}
	return n.named[k].Load()
}

// Undecodable returns how many frames could not be decoded for kind k.
func (n *NotReadings) Undecodable(k Kind) uint64 {
	if k >= numKinds {
		return 0
	}
	return n.undecodable[k].Load()
}

// DecoderOption configures a Decoder.
type DecoderOption func(*Decoder)

// WithDefaultBus names the agent's default bus. A signal without bus = "..."
// then decodes only from frames of that bus (or of no named bus, Bus ""). By
// default such a signal decodes from any bus the profile does not name.
func WithDefaultBus(name string) DecoderOption {
	return func(d *Decoder) { d.defaultBus = name }
}

// NewDecoder returns a decoder of the profile's signals.
func (p *Profile) NewDecoder(opts ...DecoderOption) *Decoder {
	d := &Decoder{}
	for _, o := range opts {
		o(d)
	}
	for _, s := range p.sigs {
		if s == nil {
			continue
		}
		if s.bus != "" && !contains(d.named, s.bus) {
			d.named = append(d.named, s.bus)
		}
		found := false
		for i := range d.msgs {
			m := &d.msgs[i]
			if m.id == s.key.ID && m.extended == s.key.Extended && m.bus == s.bus {
				m.sigs = append(m.sigs, s)
				found = true
				break
			}
		}
		if !found {
			md := msgDecoder{id: s.key.ID, extended: s.key.Extended, bus: s.bus, sigs: []*signal{s}}
			if s.poll != nil {
				md.tp = newPollDecoder(s.poll)
			}
			d.msgs = append(d.msgs, md)
			d.ids |= 1 << (s.key.ID % 64)
		}
	}
	d.anyBus = d.defaultBus == "" && len(d.named) == 0
	return d
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}

// Stats returns the decoder's counters. Not safe to call while Decode runs
// on another goroutine; NotReadings is.
func (d *Decoder) Stats() Stats { return d.stats }

// NotReadings returns the decoder's counters of frames that gave no
// reading, safe to read from any goroutine.
func (d *Decoder) NotReadings() *NotReadings { return &d.nr }

func (d *Decoder) busMatches(want, got string) bool {
	if want != "" {
		return want == got
	}
	if d.anyBus || got == "" || got == d.defaultBus {
		return true
	}
	return d.defaultBus == "" && !contains(d.named, got)
}

// Decode appends the readings carried by f to dst and returns it. Frames of
// other messages, of another bus or of the wrong identifier format, remote and
// error frames yield nothing. A frame too short for a signal yields nothing for
// that signal and counts in Stats().ShortFrames. Decode allocates nothing when
// dst has room.
func (d *Decoder) Decode(f *can.Frame, dst []Reading) []Reading {
	if d.ids&(1<<(f.ID%64)) == 0 || f.Flags&(can.Remote|can.ErrorFrame) != 0 {
		return dst
	}
	ext := f.Flags&can.Extended != 0
	n := uint8(f.Len)
	if n > can.MaxFDDataLen {
		n = can.MaxFDDataLen
	}
	for i := range d.msgs {
		m := &d.msgs[i]
		if m.id != f.ID || m.extended != ext || !d.busMatches(m.bus, f.Bus) {
			continue
		}
		if m.tp != nil {
			dst = d.decodePoll(m, m.sigs[0], f, dst)
			continue
		}
		for _, s := range m.sigs {
			if s.mux != nil {
				if n < s.mux.minLen {
					d.stats.ShortFrames++
					d.nr.undecodable[s.kind].Add(1)
					continue
				}
				if !s.muxed(s.mux.raw(&f.Data)) {
					continue
				}
			}
			if n < s.f.minLen {
				d.stats.ShortFrames++
				d.nr.undecodable[s.kind].Add(1)
				continue
			}
			raw := s.f.raw(&f.Data)
			if s.namedRaw(raw) {
				d.stats.Named++
				d.nr.named[s.kind].Add(1)
				continue
			}
			r := Reading{Kind: s.kind, Time: f.Time, Bus: f.Bus}
			if s.kind == DriveMode {
				v := s.f.intRaw(raw)
				r.Value = float64(v)
				if s.smallModes != nil {
					r.Mode = s.smallModes[raw]
				} else {
					r.Mode = d.modeName(s, v)
				}
			} else {
				r.Value = s.f.value(raw)*s.scale + s.offset
				if r.Value-r.Value != 0 { // NaN or ±Inf: x-x is NaN, not 0
					d.stats.Invalid++
					d.nr.undecodable[s.kind].Add(1)
					continue
				}
			}
			d.stats.Readings++
			dst = append(dst, r)
		}
	}
	return dst
}

func (d *Decoder) modeName(s *signal, v int64) string {
	if n, ok := s.modeNames[v]; ok {
		return n
	}
	if n, ok := d.interned[v]; ok {
		return n
	}
	n := s.modeName(v)
	if d.interned == nil {
		d.interned = make(map[int64]string)
	}
	if len(d.interned) < maxInterned {
		d.interned[v] = n
	}
	return n
}

// muxed reports whether the signal is present at switch value v.
func (s *signal) muxed(v uint64) bool {
	for _, r := range s.muxRanges {
		if v >= r[0] && v <= r[1] {
			return true
		}
	}
	return false
}

// namedRaw reports whether raw is a value the DBC's value table names, for
// an odometer or speed signal: not a reading.
func (s *signal) namedRaw(raw uint64) bool {
	for _, v := range s.namedRaws {
		if v == raw {
			return true
		}
	}
	return false
}
