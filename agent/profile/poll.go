package profile

import (
	"errors"
	"fmt"
	"math"
	"time"

	"github.com/csop/tbox/can"
	"github.com/csop/tbox/can/diag"
	"github.com/csop/tbox/can/isotp"
)

// Limits of [odometer] period for an odometer that is asked for.
const (
	MinPollPeriod     = 100 * time.Millisecond // the rate bound: never more than 10 requests a second
	MaxPollPeriod     = time.Hour
	DefaultPollPeriod = time.Second
)

// Poll is an odometer the agent asks for (README "Contracts", [odometer]
// source = "obd" or "uds"): the request it sends, the only response it
// admits, and how the value reads.
type Poll struct {
	Source   string  // "obd" or "uds"
	Bus      string  // "" for the agent's default bus
	Request  can.Key // where requests go: the only ID the agent writes
	Response can.Key // the only ID admitted for the odometer
	Query    diag.Query
	Scale    float64 // km per raw unit
	Period   time.Duration
}

// Payload returns the request's bytes: 01 PID or 22 DID.
func (p *Poll) Payload() []byte { return p.Query.Request() }

// Meters converts a raw value to meters.
func (p *Poll) Meters(raw uint64) float64 { return float64(raw) * clean(p.Scale*1000) }

// Raw converts meters to the raw value an ECU reports (floored to one
// unit); it fails when the value does not fit the configured length.
func (p *Poll) Raw(meters float64) (uint64, error) {
	step := clean(p.Scale * 1000)
	r := math.Floor(meters/step + 1e-9)
	hi := math.Ldexp(1, 8*p.Query.Length) - 1
	if !(r >= 0) || r > hi {
		return 0, errorf("%w: %v m is raw %v, outside [0, %v] of %d bytes", ErrValue, meters, r, hi, p.Query.Length)
	}
	return uint64(r), nil
}

// Poll returns the odometer's polling, when the profile's odometer is asked
// for rather than broadcast.
func (p *Profile) Poll() (*Poll, bool) {
	s := p.sigs[Odometer]
	if s == nil || s.poll == nil {
		return nil, false
	}
	c := *s.poll
	return &c, true
}

// pollConfig holds the [odometer] keys of revision 2.
type pollConfig struct {
	_ [0]func() // not comparable: no generated equality function (tboxd size)

	Source     string   `toml:"source"`
	RequestID  *int64   `toml:"request_id"`
	ResponseID *int64   `toml:"response_id"`
	PID        *int64   `toml:"pid"`
	DID        *int64   `toml:"did"`
	Length     *int64   `toml:"length"`
	Scale      *float64 `toml:"scale"`
	Period     string   `toml:"period"`
}

// onlyFrame refuses polling keys in a section that reads a frame.
func (c *pollConfig) onlyFrame(loc locator, sec string) error {
	if c.Source != "" && c.Source != "frame" {
		return loc.errorf(sec+".source", "%w: source = %q, want \"frame\", \"obd\" or \"uds\" (obd and uds only under [odometer])", ErrValue, c.Source)
	}
	for _, k := range []struct {
		name string
		set  bool
	}{{"request_id", c.RequestID != nil}, {"response_id", c.ResponseID != nil}, {"pid", c.PID != nil}, {"did", c.DID != nil},
		{"length", c.Length != nil}, {"scale", c.Scale != nil}, {"period", c.Period != ""}} {
		if k.set {
			return loc.errorf(sec+"."+k.name, "%w: %s is for source = \"obd\" or \"uds\" under [odometer]", ErrValue, k.name)
		}
	}
	return nil
}

// ErrPolled reports an operation that needs a broadcast signal on an odometer
// that is asked for.
var ErrPolled = errors.New("odometer is asked for, not broadcast")

func canID(loc locator, field string, v *int64) (can.Key, error) {
	if v == nil {
		return can.Key{}, loc.errorf("odometer."+field, "%w: %s = 0x7E8 (an 11-bit or 29-bit CAN ID)", ErrMissing, field)
	}
	if *v < 0 || *v > can.MaxExtendedID {
		return can.Key{}, loc.errorf("odometer."+field, "%w: %s = %d, want a CAN ID from 0 to 0x1FFFFFFF", ErrValue, field, *v)
	}
	return can.Key{ID: uint32(*v), Extended: *v > can.MaxID}, nil
}

// compilePoll compiles [odometer] with source = "obd" or "uds".
func compilePoll(loc locator, sc *sectionConfig, bio map[can.Key]bioEntry) (*signal, error) {
	c := &sc.pollConfig
	const sec = "odometer"
	if c.Source != "obd" && c.Source != "uds" {
		return nil, loc.errorf(sec+".source", "%w: source = %q, want \"frame\", \"obd\" or \"uds\"", ErrValue, c.Source)
	}
	for _, k := range []struct{ name, v string }{{"message", sc.Message}, {"signal", sc.Signal}, {"unit", sc.Unit}} {
		if k.v != "" {
			return nil, loc.errorf(sec+"."+k.name, "%w: %s = %q with source = %q: an odometer that is asked for has no DBC %s", ErrValue, k.name, k.v, c.Source, k.name)
		}
	}
	if sc.Bus != "" && !isBusName(sc.Bus) {
		return nil, loc.errorf(sec+".bus", "%w: bus %q, want an interface name such as \"can1\"", ErrValue, sc.Bus)
	}
	if sc.FD != nil && *sc.FD {
		return nil, loc.errorf(sec+".fd", "%w: fd = true with source = %q: the agent asks over classic ISO-TP (8-byte frames); ISO-TP over CAN FD is not supported", ErrValue, c.Source)
	}
	p := &Poll{Source: c.Source, Bus: sc.Bus, Period: DefaultPollPeriod}
	var err error
	if p.Request, err = canID(loc, "request_id", c.RequestID); err != nil {
		return nil, err
	}
	if p.Response, err = canID(loc, "response_id", c.ResponseID); err != nil {
		return nil, err
	}
	if p.Request == p.Response {
		return nil, loc.errorf(sec+".response_id", "%w: response_id 0x%s equals request_id", ErrValue, p.Response)
	}
	if e, ok := bio[p.Response]; ok {
		return nil, loc.errorf(sec+".response_id", "%w: response ID 0x%s: %s", ErrBiometric, p.Response, e.why)
	}
	switch c.Source {
	case "obd":
		if c.DID != nil {
			return nil, loc.errorf(sec+".did", "%w: did is for source = \"uds\"; OBD-II asks for a pid", ErrValue)
		}
		if c.PID == nil {
			return nil, loc.errorf(sec+".pid", "%w: pid = 0xA6 (the OBD-II odometer)", ErrMissing)
		}
		if *c.PID < 0 || *c.PID > 0xFF {
			return nil, loc.errorf(sec+".pid", "%w: pid = %d, want 0x00 to 0xFF", ErrValue, *c.PID)
		}
		p.Query = diag.Query{Service: diag.ServiceOBDCurrent, ID: uint16(*c.PID), Length: 4}
		p.Scale = 0.1 // SAE J1979 PID 0xA6: 4 bytes, 0.1 km
		if *c.PID != 0xA6 && (c.Length == nil || c.Scale == nil) {
			return nil, loc.errorf(sec+".pid", "%w: pid 0x%02X is not the odometer 0xA6: set its length and scale", ErrMissing, *c.PID)
		}
	case "uds":
		if c.PID != nil {
			return nil, loc.errorf(sec+".pid", "%w: pid is for source = \"obd\"; UDS asks for a did", ErrValue)
		}
		if c.DID == nil {
			return nil, loc.errorf(sec+".did", "%w: did = 0x2BC (the ReadDataByIdentifier identifier)", ErrMissing)
		}
		if *c.DID < 0 || *c.DID > 0xFFFF {
			return nil, loc.errorf(sec+".did", "%w: did = %d, want 0x0000 to 0xFFFF", ErrValue, *c.DID)
		}
		if c.Length == nil || c.Scale == nil {
			f := "length"
			if c.Length != nil {
				f = "scale"
			}
			return nil, loc.errorf(sec+"."+f, "%w: source = \"uds\" needs length (bytes of the value) and scale (km per unit)", ErrMissing)
		}
		p.Query = diag.Query{Service: diag.ServiceReadDID, ID: uint16(*c.DID)}
	}
	if c.Length != nil {
		if *c.Length < 1 || *c.Length > diag.MaxLength {
			return nil, loc.errorf(sec+".length", "%w: length = %d, want 1 to %d bytes", ErrValue, *c.Length, diag.MaxLength)
		}
		p.Query.Length = int(*c.Length)
	}
	if c.Scale != nil {
		if !(*c.Scale > 0) || *c.Scale > 1000 || math.IsInf(*c.Scale, 0) {
			return nil, loc.errorf(sec+".scale", "%w: scale = %v, want km per raw unit, above 0 and at most 1000", ErrValue, *c.Scale)
		}
		p.Scale = *c.Scale
	}
	if c.Period != "" {
		d, err := time.ParseDuration(c.Period)
		if err != nil || d < MinPollPeriod || d > MaxPollPeriod {
			return nil, loc.errorf(sec+".period", "%w: period = %q, want a duration from %v to %v", ErrValue, c.Period, MinPollPeriod, MaxPollPeriod)
		}
		p.Period = d
	}
	if err := p.Query.Validate(); err != nil {
		return nil, loc.errorf(sec, "%w: %w", ErrValue, err)
	}
	name := fmt.Sprintf("OBD-II PID 0x%02X", p.Query.ID)
	if p.Source == "uds" {
		name = fmt.Sprintf("UDS DID 0x%04X", p.Query.ID)
	}
	return &signal{
		kind: Odometer, message: name, name: "odometer", bus: p.Bus, key: p.Response, size: 8,
		unit: "km", unitScale: 1000, scale: clean(p.Scale * 1000), poll: p,
	}, nil
}

// pollDecoder reads an asked-for odometer from the response ID's frames.
type pollDecoder struct {
	p  *Poll
	tp *isotp.Reassembler
}

func newPollDecoder(p *Poll) *pollDecoder {
	// Nothing longer than a positive response is ever kept.
	return &pollDecoder{p: p, tp: isotp.NewReassembler(p.Query.ResponseLen())}
}

// decode feeds one frame of the response ID.
func (d *Decoder) decodePoll(m *msgDecoder, s *signal, f *can.Frame, dst []Reading) []Reading {
	n := min(int(f.Len), can.MaxDataLen)
	if f.Flags&can.FD != 0 {
		d.stats.Transport++
		d.nr.undecodable[Odometer].Add(1)
		return dst
	}
	ev, payload, _ := m.tp.tp.Push(f.Data[:n])
	switch ev {
	case isotp.Dropped:
		d.stats.Transport++
		d.nr.undecodable[Odometer].Add(1)
		return dst
	case isotp.Complete:
	default:
		return dst
	}
	raw, err := s.poll.Query.Parse(payload)
	if err != nil {
		switch {
		case isNegative(err):
			d.stats.Negative++
			d.nr.named[Odometer].Add(1)
		case errors.Is(err, diag.ErrOther):
		default:
			d.stats.Transport++
			d.nr.undecodable[Odometer].Add(1)
		}
		return dst
	}
	d.stats.Readings++
	return append(dst, Reading{Kind: Odometer, Time: f.Time, Bus: f.Bus, Value: s.poll.Meters(raw)})
}

// isNegative reports whether err is an ECU's negative response.
func isNegative(err error) bool {
	_, ok := errors.AsType[*diag.NegativeError](err)
	return ok
}
