package profile

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io/fs"
	"math"
	"os"
	"path"
	"path/filepath"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/BurntSushi/toml"
	"go.einride.tech/can/pkg/dbc"

	"github.com/csop/tbox/can"
)

// Kind is what a reading measures.
type Kind uint8

// The kinds of reading, in profile order.
const (
	Odometer  Kind = iota // meters
	DriveMode             // raw value, with the mode's name
	Speed                 // km/h
	numKinds
)

// String returns the name used in the profile and in tboxctl decode's JSON:
// "odometer", "drive_mode" or "speed".
func (k Kind) String() string {
	switch k {
	case Odometer:
		return "odometer"
	case DriveMode:
		return "drive_mode"
	case Speed:
		return "speed"
	}
	return "kind(" + strconv.Itoa(int(k)) + ")"
}

// Reading is one value decoded from a frame.
type Reading struct {
	Kind  Kind
	Time  time.Time // the frame's time
	Bus   string    // the frame's bus
	Value float64   // odometer in meters, speed in km/h, drive mode's raw value
	Mode  string    // drive mode's name (DBC value table, or MODE_<n>); empty for other kinds
}

// DefaultMaxSpeedKmh is the plausibility limit when the profile sets none.
const DefaultMaxSpeedKmh = 300

// Profile is a loaded, validated vehicle profile. It is immutable and safe
// for concurrent use; each goroutine that decodes needs its own Decoder.
type Profile struct {
	file      string
	dbcFile   string
	maxSpeed  float64
	sigs      [numKinds]*signal
	biometric []can.Key
	warnings  []string
}

// signal is one compiled profile signal.
type signal struct {
	kind       Kind
	message    string
	name       string
	bus        string
	key        can.Key
	size       uint8 // DBC message size in bytes
	unit       string
	f          field
	mux        *field // multiplexer switch, when the signal is multiplexed
	muxValue   uint64
	scale      float64 // physical (normal unit) = value*scale + offset
	offset     float64
	factor     float64 // DBC factor and offset, for encoding
	dbcOffset  float64
	unitScale  float64
	modeNames  map[int64]string
	modeValues map[string]uint64
	smallModes []string // names for raw values 0..2^length-1 when length <= 8
}

// SignalInfo describes a profile signal.
type SignalInfo struct {
	Kind    Kind
	Message string
	Signal  string
	Bus     string // "" for the agent's default bus
	Key     can.Key
	Unit    string // unit as found in the DBC or the profile override
}

type sectionConfig struct {
	Message string `toml:"message"`
	Signal  string `toml:"signal"`
	Unit    string `toml:"unit"`
	Bus     string `toml:"bus"`
}

type fileConfig struct {
	DBC       string         `toml:"dbc"`
	Odometer  *sectionConfig `toml:"odometer"`
	DriveMode *sectionConfig `toml:"drive_mode"`
	Speed     *sectionConfig `toml:"speed"`
	Privacy   struct {
		BiometricMessages []string `toml:"biometric_messages"`
	} `toml:"privacy"`
	Plausibility struct {
		MaxSpeedKmh *float64 `toml:"max_speed_kmh"`
	} `toml:"plausibility"`
}

// Load reads the profile at path and the DBC it names (relative to the
// profile's directory).
func Load(path string) (*Profile, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, &ConfigError{File: path, Err: fmt.Errorf("%w: profile: %w", ErrMissing, err)}
	}
	dir := filepath.Dir(path)
	return parse(path, data, func(name string) (string, []byte, error) {
		p := name
		if !filepath.IsAbs(p) {
			p = filepath.Join(dir, filepath.FromSlash(name))
		}
		b, err := os.ReadFile(p)
		return p, b, err
	})
}

// LoadFS is Load on a file system, for profiles embedded in a binary or
// built in tests.
func LoadFS(fsys fs.FS, name string) (*Profile, error) {
	data, err := fs.ReadFile(fsys, name)
	if err != nil {
		return nil, &ConfigError{File: name, Err: fmt.Errorf("%w: profile: %w", ErrMissing, err)}
	}
	dir := path.Dir(name)
	return parse(name, data, func(n string) (string, []byte, error) {
		p := path.Join(dir, n)
		b, err := fs.ReadFile(fsys, p)
		return p, b, err
	})
}

var tomlLine = regexp.MustCompile(`line (\d+)`)

func parse(file string, data []byte, readDBC func(string) (string, []byte, error)) (*Profile, error) {
	var cfg fileConfig
	md, err := toml.Decode(string(data), &cfg)
	if err != nil {
		ce := &ConfigError{File: file, Err: fmt.Errorf("%w: TOML: %w", ErrSyntax, err)}
		var pe toml.ParseError
		if errors.As(err, &pe) {
			ce.Line = pe.Position.Line
			ce.Err = fmt.Errorf("%w: TOML: %s", ErrSyntax, pe.Message)
		} else if m := tomlLine.FindStringSubmatch(err.Error()); m != nil {
			ce.Line, _ = strconv.Atoi(m[1])
		}
		return nil, ce
	}
	loc := locator{file: file, data: data}
	if und := md.Undecoded(); len(und) > 0 {
		k := und[0]
		return nil, loc.err(k.String(), fmt.Errorf("%w %q: want dbc, odometer, drive_mode, speed, privacy, plausibility with their documented keys", ErrUnknownKey, k.String()))
	}
	if cfg.DBC == "" {
		return nil, loc.err("dbc", fmt.Errorf("%w: dbc = \"file.dbc\" (the DBC, relative to the profile)", ErrMissing))
	}
	dbcPath, dbcData, err := readDBC(cfg.DBC)
	if err != nil {
		return nil, loc.err("dbc", fmt.Errorf("%w: DBC %q: %w", ErrMissing, cfg.DBC, err))
	}
	db, err := parseDBC(dbcPath, dbcData)
	if err != nil {
		return nil, err
	}
	p := &Profile{file: file, dbcFile: dbcPath, maxSpeed: DefaultMaxSpeedKmh, warnings: db.warnings}
	if v := cfg.Plausibility.MaxSpeedKmh; v != nil {
		if !(*v >= 1) || math.IsInf(*v, 0) || *v > 10000 {
			return nil, loc.err("plausibility.max_speed_kmh", fmt.Errorf("%w: max_speed_kmh = %v, want a speed from 1 to 10000 km/h", ErrValue, *v))
		}
		p.maxSpeed = *v
	}
	listed, err := p.privacyList(loc, db, cfg.Privacy.BiometricMessages)
	if err != nil {
		return nil, err
	}
	sections := [numKinds]*sectionConfig{cfg.Odometer, cfg.DriveMode, cfg.Speed}
	for k := Kind(0); k < numKinds; k++ {
		sc := sections[k]
		if sc == nil {
			if k == Speed {
				continue
			}
			return nil, loc.err(k.String(), fmt.Errorf("%w: section [%s] with message and signal", ErrMissing, k))
		}
		s, err := compile(loc, db, k, sc, listed)
		if err != nil {
			return nil, err
		}
		p.sigs[k] = s
	}
	return p, nil
}

// privacyList resolves [privacy] biometric_messages and records every DBC
// message that counts as biometric (listed or matching the deny-list).
func (p *Profile) privacyList(loc locator, db *database, names []string) (map[dbc.MessageID]string, error) {
	listed := make(map[dbc.MessageID]string)
	keys := make(map[can.Key]bool)
	for _, n := range names {
		if m, ok := db.byName[n]; ok {
			listed[m.MessageID] = n
			keys[keyOf(m.MessageID)] = true
			continue
		}
		if strings.HasPrefix(n, "0x") || strings.HasPrefix(n, "0X") {
			k, err := can.ParseKey(n)
			if err != nil {
				return nil, loc.err("privacy.biometric_messages", fmt.Errorf("%w: %w", ErrValue, err))
			}
			keys[k] = true
			id := dbc.MessageID(k.ID)
			if k.Extended {
				id |= 0x80000000
			}
			listed[id] = n
			continue
		}
		return nil, loc.err("privacy.biometric_messages", fmt.Errorf("%w %q in %s: want a DBC message name or a hex ID such as \"0x5A1\"", ErrUnknownMessage, n, db.file))
	}
	for _, m := range db.messages {
		if _, ok := db.biometric(m); ok {
			keys[keyOf(m.MessageID)] = true
		}
	}
	for k := range keys {
		p.biometric = append(p.biometric, k)
	}
	sort.Slice(p.biometric, func(i, j int) bool {
		a, b := p.biometric[i], p.biometric[j]
		if a.Extended != b.Extended {
			return !a.Extended
		}
		return a.ID < b.ID
	})
	return listed, nil
}

func keyOf(id dbc.MessageID) can.Key {
	return can.Key{ID: id.ToCAN(), Extended: id.IsExtended()}
}

var busName = regexp.MustCompile(`^[A-Za-z0-9_.:-]{1,15}$`)

func compile(loc locator, db *database, k Kind, sc *sectionConfig, listed map[dbc.MessageID]string) (*signal, error) {
	sec := k.String()
	if sc.Message == "" {
		return nil, loc.err(sec+".message", fmt.Errorf("%w: message = \"<DBC message name>\"", ErrMissing))
	}
	if sc.Signal == "" {
		return nil, loc.err(sec+".signal", fmt.Errorf("%w: signal = \"<DBC signal name>\"", ErrMissing))
	}
	if sc.Bus != "" && !busName.MatchString(sc.Bus) {
		return nil, loc.err(sec+".bus", fmt.Errorf("%w: bus %q, want an interface name such as \"can1\"", ErrValue, sc.Bus))
	}
	m := db.byName[sc.Message]
	if m == nil {
		hint := ""
		if s := db.suggestMessage(sc.Message); s != "" {
			hint = fmt.Sprintf(" (did you mean %q?)", s)
		}
		return nil, loc.err(sec+".message", fmt.Errorf("%w %q: not in %s%s", ErrUnknownMessage, sc.Message, db.file, hint))
	}
	where := fmt.Sprintf("%s:%d", db.file, m.Pos.Line)
	// The privacy gate comes first: a biometric message is refused whatever
	// else is wrong with the section.
	if n, ok := listed[m.MessageID]; ok {
		return nil, loc.err(sec+".message", fmt.Errorf("%w: message %s (ID 0x%s, %s) is listed in privacy.biometric_messages as %q", ErrBiometric, m.Name, keyOf(m.MessageID), where, n))
	}
	if why, ok := db.biometric(m); ok {
		return nil, loc.err(sec+".message", fmt.Errorf("%w: message %s (ID 0x%s, %s) is biometric: %s", ErrBiometric, m.Name, keyOf(m.MessageID), where, why))
	}
	sd := db.signal(m, sc.Signal)
	if sd == nil {
		var names []string
		for _, s := range m.Signals {
			names = append(names, string(s.Name))
		}
		return nil, loc.err(sec+".signal", fmt.Errorf("%w %q: message %s (%s) has %s", ErrUnknownSignal, sc.Signal, m.Name, where, strings.Join(names, ", ")))
	}
	sigWhere := fmt.Sprintf("%s:%d", db.file, sd.Pos.Line)
	if err := m.MessageID.Validate(); err != nil {
		return nil, &ConfigError{File: db.file, Line: m.Pos.Line, Field: sec + ".message", Err: fmt.Errorf("%w: %w", ErrSignal, err)}
	}
	enc := encInt
	switch db.valueTypes[sigRef{m.MessageID, sc.Signal}] {
	case dbc.SignalValueTypeFloat32:
		enc = encFloat32
	case dbc.SignalValueTypeFloat64:
		enc = encFloat64
	}
	f, err := newField(sd.StartBit, sd.Size, sd.IsBigEndian, sd.IsSigned, enc, m.Size)
	if err != nil {
		return nil, &ConfigError{File: db.file, Line: sd.Pos.Line, Field: sec + ".signal", Err: fmt.Errorf("signal %s of %s: %w", sd.Name, m.Name, err)}
	}
	if sd.Factor == 0 || math.IsNaN(sd.Factor) || math.IsInf(sd.Factor, 0) || math.IsNaN(sd.Offset) || math.IsInf(sd.Offset, 0) {
		return nil, &ConfigError{File: db.file, Line: sd.Pos.Line, Field: sec + ".signal", Err: fmt.Errorf("%w: signal %s of %s has factor %v and offset %v, want a finite non-zero factor", ErrSignal, sd.Name, m.Name, sd.Factor, sd.Offset)}
	}
	s := &signal{
		kind: k, message: string(m.Name), name: string(sd.Name), bus: sc.Bus,
		key: keyOf(m.MessageID), size: uint8(m.Size), f: f,
		factor: sd.Factor, dbcOffset: sd.Offset, unitScale: 1, unit: sd.Unit,
	}
	if sd.IsMultiplexed {
		var sw *dbc.SignalDef
		for i := range m.Signals {
			if m.Signals[i].IsMultiplexerSwitch {
				sw = &m.Signals[i]
				break
			}
		}
		if sw == nil {
			return nil, &ConfigError{File: db.file, Line: sd.Pos.Line, Field: sec + ".signal", Err: fmt.Errorf("%w: signal %s is multiplexed (m%d) but message %s has no multiplexer switch (M)", ErrSignal, sd.Name, sd.MultiplexerSwitch, m.Name)}
		}
		mf, err := newField(sw.StartBit, sw.Size, sw.IsBigEndian, false, encInt, m.Size)
		if err != nil {
			return nil, &ConfigError{File: db.file, Line: sw.Pos.Line, Field: sec + ".signal", Err: fmt.Errorf("multiplexer %s of %s: %w", sw.Name, m.Name, err)}
		}
		if sd.MultiplexerSwitch > mf.mask {
			return nil, &ConfigError{File: db.file, Line: sd.Pos.Line, Field: sec + ".signal", Err: fmt.Errorf("%w: multiplexer value %d does not fit the %d-bit switch %s", ErrSignal, sd.MultiplexerSwitch, sw.Size, sw.Name)}
		}
		s.mux, s.muxValue = &mf, sd.MultiplexerSwitch
	}
	switch k {
	case DriveMode:
		if enc != encInt {
			return nil, &ConfigError{File: db.file, Line: sd.Pos.Line, Field: sec + ".signal", Err: fmt.Errorf("%w: drive mode signal %s is a float; want an integer with a value table", ErrSignal, sd.Name)}
		}
		if sc.Unit != "" {
			return nil, loc.err(sec+".unit", fmt.Errorf("%w: a drive mode has no unit, found unit = %q", ErrUnit, sc.Unit))
		}
		s.modes(db.valueTables[sigRef{m.MessageID, sc.Signal}])
		s.scale, s.offset = 1, 0
	default:
		u, field := sd.Unit, sec+".signal"
		if sc.Unit != "" {
			u, field = sc.Unit, sec+".unit"
		}
		scale, ok := unitScale(k, u)
		if !ok {
			want := "m, km or mi"
			if k == Speed {
				want = "km/h, kph, m/s or mph"
			}
			if sc.Unit != "" {
				return nil, loc.err(field, fmt.Errorf("%w: unit = %q, want %s", ErrUnit, u, want))
			}
			return nil, loc.err(field, fmt.Errorf("%w: signal %s of message %s (%s) has unit %q, want %s; or set unit = \"...\" in [%s]", ErrUnit, sd.Name, m.Name, sigWhere, u, want, sec))
		}
		s.unit, s.unitScale = u, scale
		s.scale, s.offset = clean(sd.Factor*scale), clean(sd.Offset*scale)
	}
	return s, nil
}

// modes prepares the drive-mode names of a value table.
func (s *signal) modes(table []dbc.ValueDescriptionDef) {
	s.modeNames = make(map[int64]string, len(table))
	s.modeValues = make(map[string]uint64, len(table))
	for _, vd := range table {
		v := int64(vd.Value)
		if _, dup := s.modeNames[v]; dup {
			continue
		}
		s.modeNames[v] = vd.Description
		if _, dup := s.modeValues[vd.Description]; !dup {
			s.modeValues[vd.Description] = uint64(v) & s.f.mask
		}
	}
	if s.f.length <= 8 {
		n := 1 << s.f.length
		s.smallModes = make([]string, n)
		for raw := 0; raw < n; raw++ {
			s.smallModes[raw] = s.modeName(s.f.intRaw(uint64(raw)))
		}
	}
}

// modeName names a raw drive-mode value, allocating for an unnamed one.
func (s *signal) modeName(v int64) string {
	if n, ok := s.modeNames[v]; ok {
		return n
	}
	return "MODE_" + strconv.FormatInt(v, 10)
}

// File returns the profile's path.
func (p *Profile) File() string { return p.file }

// DBCFile returns the path of the profile's DBC.
func (p *Profile) DBCFile() string { return p.dbcFile }

// MaxSpeedKmh returns the plausibility limit of [plausibility].
func (p *Profile) MaxSpeedKmh() float64 { return p.maxSpeed }

// Has reports whether the profile configures kind k (speed is optional).
func (p *Profile) Has(k Kind) bool { return k < numKinds && p.sigs[k] != nil }

// Signal describes the profile's signal of kind k.
func (p *Profile) Signal(k Kind) (SignalInfo, bool) {
	if !p.Has(k) {
		return SignalInfo{}, false
	}
	s := p.sigs[k]
	return SignalInfo{Kind: k, Message: s.message, Signal: s.name, Bus: s.bus, Key: s.key, Unit: s.unit}, true
}

// Resolution returns one raw step of kind k's signal in the normal unit
// (meters, km/h, or 1 for a drive mode). It is 0 for float signals.
func (p *Profile) Resolution(k Kind) float64 {
	if !p.Has(k) || p.sigs[k].f.enc != encInt {
		return 0
	}
	return math.Abs(p.sigs[k].scale)
}

// Warnings returns what Load had to work around in the DBC.
func (p *Profile) Warnings() []string { return append([]string(nil), p.warnings...) }

// Buses returns the distinct buses of the profile's signals, sorted; ""
// stands for the agent's default bus.
func (p *Profile) Buses() []string {
	seen := map[string]bool{}
	var out []string
	for _, s := range p.sigs {
		if s != nil && !seen[s.bus] {
			seen[s.bus] = true
			out = append(out, s.bus)
		}
	}
	sort.Strings(out)
	return out
}

// Filter returns the receive allowlist of a bus ("" for the default bus):
// exactly the messages of the profile's signals on that bus.
func (p *Profile) Filter(bus string) *can.Filter {
	var keys []can.Key
	for _, s := range p.sigs {
		if s != nil && s.bus == bus {
			keys = append(keys, s.key)
		}
	}
	return can.NewFilter(keys...)
}

// BiometricKeys returns the DBC messages the profile treats as biometric: the
// ones listed in [privacy] and the ones matching the deny-list. None of them
// can be in a Filter.
func (p *Profile) BiometricKeys() []can.Key { return append([]can.Key(nil), p.biometric...) }

// ModeValue returns the raw value of a drive mode name: a value-table name or
// "MODE_<n>".
func (p *Profile) ModeValue(name string) (uint64, bool) {
	s := p.sigs[DriveMode]
	if s == nil {
		return 0, false
	}
	if v, ok := s.modeValues[name]; ok {
		return v, true
	}
	if n, ok := strings.CutPrefix(name, "MODE_"); ok {
		v, err := strconv.ParseInt(n, 10, 64)
		if err != nil {
			return 0, false
		}
		lo, hi := s.f.rawRange()
		if float64(v) < lo || float64(v) > hi {
			return 0, false
		}
		if named, ok := s.modeNames[v]; ok && named != name {
			return 0, false
		}
		return uint64(v) & s.f.mask, true
	}
	return 0, false
}

// ModeName returns the name of a raw drive-mode value.
func (p *Profile) ModeName(raw int64) string {
	s := p.sigs[DriveMode]
	if s == nil {
		return "MODE_" + strconv.FormatInt(raw, 10)
	}
	return s.modeName(raw)
}

// ModeNames returns the names of the drive-mode value table, by raw value.
func (p *Profile) ModeNames() []string {
	s := p.sigs[DriveMode]
	if s == nil {
		return nil
	}
	vals := make([]int64, 0, len(s.modeNames))
	for v := range s.modeNames {
		vals = append(vals, v)
	}
	sort.Slice(vals, func(i, j int) bool { return vals[i] < vals[j] })
	out := make([]string, len(vals))
	for i, v := range vals {
		out[i] = s.modeNames[v]
	}
	return out
}

// locator finds the line of a profile key for error messages.
type locator struct {
	file string
	data []byte
}

func (l locator) err(field string, err error) error {
	return &ConfigError{File: l.file, Line: l.line(field), Field: field, Err: err}
}

var tableHeader = regexp.MustCompile(`^\s*\[\s*([A-Za-z0-9_.-]+)\s*\]`)

// line returns the line of "table.key" (or of a top-level key, or of a table
// header when key is the table name), 0 when not found.
func (l locator) line(field string) int {
	table, key := "", field
	if i := strings.LastIndexByte(field, '.'); i >= 0 {
		table, key = field[:i], field[i+1:]
	}
	sc := bufio.NewScanner(bytes.NewReader(l.data))
	cur, n, header := "", 0, 0
	for sc.Scan() {
		n++
		t := strings.TrimSpace(sc.Text())
		if m := tableHeader.FindStringSubmatch(t); m != nil {
			cur = m[1]
			if table == "" && cur == key {
				header = n
			}
			if cur == table && header == 0 {
				header = n
			}
			continue
		}
		if cur != table {
			continue
		}
		if k, _, ok := strings.Cut(t, "="); ok && strings.Trim(strings.TrimSpace(k), `"'`) == key {
			return n
		}
	}
	return header
}
