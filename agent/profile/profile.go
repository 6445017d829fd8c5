package profile

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"math"
	"os"
	"path"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"syscall"
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
	fd         bool  // the message travels as CAN FD frames
	unit       string
	f          field
	mux        *field      // multiplexer switch, when the signal is multiplexed
	muxRanges  [][2]uint64 // switch values at which the signal is present
	scale      float64     // physical (normal unit) = value*scale + offset
	offset     float64
	factor     float64 // DBC factor and offset, for encoding
	dbcOffset  float64
	unitScale  float64
	modeNames  map[int64]string
	modeValues map[string]uint64
	smallModes []string // names for raw values 0..2^length-1 when length <= 8
	// namedRaws are the raw values (bits) that the value table of an
	// odometer or speed signal names (SNA, Invalid, Init): not readings.
	namedRaws []uint64
	// poll is set for an odometer the agent asks for (source obd or uds):
	// the signal is then the response's value, key the response ID.
	poll *Poll
}

// SignalInfo describes a profile signal.
type SignalInfo struct {
	Kind    Kind
	Message string
	Signal  string
	Bus     string // "" for the agent's default bus
	Key     can.Key
	Unit    string // unit as found in the DBC or the profile override
	FD      bool   // the message travels as CAN FD frames (see Profile.FD)
}

type sectionConfig struct {
	_ [0]func() // not comparable: no generated equality function (tboxd size)

	Message string `toml:"message"`
	Signal  string `toml:"signal"`
	Unit    string `toml:"unit"`
	Bus     string `toml:"bus"`
	FD      *bool  `toml:"fd"`
	pollConfig
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
//
// Both reads are bounded: a profile above MaxProfileSize or a DBC above
// MaxDBCSize is refused with ErrTooLarge, and a path that is not a regular
// file (a directory, /dev/zero, a FIFO) with ErrNotRegular, before anything
// is read.
func Load(path string) (*Profile, error) {
	data, err := ReadFileLimit(path, MaxProfileSize)
	if err != nil {
		return nil, dbErrorf(path, 0, "", "profile: %w", err)
	}
	dir := filepath.Dir(path)
	return parse(path, data, func(name string) (string, []byte, error) {
		p := name
		if !filepath.IsAbs(p) {
			p = filepath.Join(dir, filepath.FromSlash(name))
		}
		b, err := ReadFileLimit(p, MaxDBCSize)
		return p, b, err
	})
}

// ReadFileLimit reads a regular file of at most limit bytes. A missing file
// wraps ErrMissing (and fs.ErrNotExist), anything but a regular file
// ErrNotRegular, a larger one ErrTooLarge; it never reads more than limit+1
// bytes, however the file grows meanwhile.
//
// The file is opened non-blocking: open(2) of a named pipe without a writer
// waits for one, forever (a profile's dbc = "/tmp/fifo" hung tboxctl and
// tboxd in open, deaf to SIGTERM). A regular file ignores the flag.
func ReadFileLimit(path string, limit int64) ([]byte, error) {
	f, err := os.OpenFile(path, os.O_RDONLY|syscall.O_NONBLOCK, 0)
	if err != nil {
		return nil, errorf("%w: %w", ErrMissing, err)
	}
	defer f.Close()
	return readLimited(f, path, limit)
}

// readFSLimit is ReadFileLimit on a file system.
func readFSLimit(fsys fs.FS, name string, limit int64) ([]byte, error) {
	f, err := fsys.Open(name)
	if err != nil {
		return nil, errorf("%w: %w", ErrMissing, err)
	}
	defer f.Close()
	return readLimited(f, name, limit)
}

// readLimited reads an open file for ReadFileLimit and readFSLimit.
func readLimited(f fs.File, path string, limit int64) ([]byte, error) {
	fi, err := f.Stat()
	if err != nil {
		return nil, errorf("%w: %w", ErrMissing, err)
	}
	if !fi.Mode().IsRegular() {
		return nil, errorf("%w: %s is a %s", ErrNotRegular, path, fileKind(fi.Mode()))
	}
	if fi.Size() > limit {
		return nil, errorf("%w: %s has %d bytes, the limit is %d", ErrTooLarge, path, fi.Size(), limit)
	}
	data, err := io.ReadAll(io.LimitReader(f, limit+1))
	if err != nil {
		return nil, errorf("read: %w", err)
	}
	if int64(len(data)) > limit {
		return nil, errorf("%w: %s grew past the limit of %d bytes while read", ErrTooLarge, path, limit)
	}
	return data, nil
}

func fileKind(m fs.FileMode) string {
	switch {
	case m.IsDir():
		return "directory"
	case m&fs.ModeCharDevice != 0:
		return "character device"
	case m&fs.ModeDevice != 0:
		return "device"
	case m&fs.ModeNamedPipe != 0:
		return "named pipe"
	case m&fs.ModeSocket != 0:
		return "socket"
	}
	return "non-regular file (" + m.String() + ")"
}

// LoadFS is Load on a file system, for profiles embedded in a binary or
// built in tests, with the same size limits and regular files only.
func LoadFS(fsys fs.FS, name string) (*Profile, error) {
	data, err := readFSLimit(fsys, name, MaxProfileSize)
	if err != nil {
		return nil, dbErrorf(name, 0, "", "profile: %w", err)
	}
	dir := path.Dir(name)
	return parse(name, data, func(n string) (string, []byte, error) {
		p := path.Join(dir, n)
		b, err := readFSLimit(fsys, p, MaxDBCSize)
		return p, b, err
	})
}

func parse(file string, data []byte, readDBC func(string) (string, []byte, error)) (*Profile, error) {
	var cfg fileConfig
	md, err := toml.Decode(string(data), &cfg)
	if err != nil {
		ce := &ConfigError{File: file, Err: errorf("%w: TOML: %w", ErrSyntax, err)}
		if pe, ok := errors.AsType[toml.ParseError](err); ok {
			ce.Line = pe.Position.Line
			ce.Err = errorf("%w: TOML: %s", ErrSyntax, pe.Message)
		} else if n, ok := tomlLine(err.Error()); ok {
			ce.Line, _ = strconv.Atoi(n)
		}
		return nil, ce
	}
	loc := locator{file: file, data: data}
	if und := md.Undecoded(); len(und) > 0 {
		k := und[0]
		return nil, loc.errorf(k.String(), "%w %q: want dbc, odometer, drive_mode, speed, privacy, plausibility with their documented keys", ErrUnknownKey, k.String())
	}
	if cfg.DBC == "" {
		return nil, loc.errorf("dbc", "%w: dbc = \"file.dbc\" (the DBC, relative to the profile)", ErrMissing)
	}
	dbcPath, dbcData, err := readDBC(cfg.DBC)
	if err != nil {
		if !errors.Is(err, ErrTooLarge) && !errors.Is(err, ErrNotRegular) && !errors.Is(err, ErrMissing) {
			err = errorf("%w: %w", ErrMissing, err)
		}
		return nil, loc.errorf("dbc", "DBC %q: %w", cfg.DBC, err)
	}
	db, err := parseDBC(dbcPath, dbcData)
	if err != nil {
		return nil, err
	}
	p := &Profile{file: file, dbcFile: dbcPath, maxSpeed: DefaultMaxSpeedKmh}
	if v := cfg.Plausibility.MaxSpeedKmh; v != nil {
		if !(*v >= 1) || math.IsInf(*v, 0) || *v > 10000 {
			return nil, loc.errorf("plausibility.max_speed_kmh", "%w: max_speed_kmh = %v, want a speed from 1 to 10000 km/h", ErrValue, *v)
		}
		p.maxSpeed = *v
	}
	bio, err := p.privacyList(loc, db, cfg.Privacy.BiometricMessages)
	if err != nil {
		return nil, err
	}
	used := make(map[can.Key]bool)
	sections := [numKinds]*sectionConfig{cfg.Odometer, cfg.DriveMode, cfg.Speed}
	for k := Kind(0); k < numKinds; k++ {
		sc := sections[k]
		if sc == nil {
			if k == Speed {
				continue
			}
			return nil, loc.errorf(k.String(), "%w: section [%s] with message and signal", ErrMissing, k)
		}
		var s *signal
		if k == Odometer && sc.Source != "" && sc.Source != "frame" {
			s, err = compilePoll(loc, sc, bio)
		} else {
			s, err = compile(loc, db, k, sc, bio)
		}
		if err != nil {
			return nil, err
		}
		if k != Odometer && p.sigs[Odometer] != nil && p.sigs[Odometer].poll != nil && s.key == p.sigs[Odometer].key {
			return nil, loc.errorf(k.String()+".message", "%w: message %s has ID 0x%s, the odometer's response_id", ErrValue, s.message, s.key)
		}
		p.sigs[k] = s
		used[s.key] = true
	}
	p.warnings = append(db.notes, db.problemWarnings(used, ", which the profile does not use")...)
	// The gate's invariant, checked once more on what will be received.
	for _, b := range p.biometric {
		if used[b] {
			return nil, dbErrorf(file, 0, "", "%w: ID 0x%s would be received", ErrBiometric, b)
		}
	}
	return p, nil
}

// bioEntry is why a bus ID is biometric.
type bioEntry struct {
	_ [0]func() // not comparable: no generated equality function (tboxd size)

	msg *dbc.MessageDef // the biometric message; nil for an ID listed by hex alone
	why string
}

// privacyList resolves [privacy] biometric_messages and records every bus ID
// that carries a biometric message: listed by name or hex ID, or matching
// the deny-list. The gate is on IDs, not names: whatever message name the
// profile uses, its ID must not be one of these.
func (p *Profile) privacyList(loc locator, db *database, names []string) (map[can.Key]bioEntry, error) {
	bio := make(map[can.Key]bioEntry)
	add := func(k can.Key, e bioEntry) { addBio(bio, k, e) }
	for _, n := range names {
		found := false
		for _, m := range db.messages {
			if string(m.Name) != n {
				continue
			}
			found = true
			if k, ok := db.keys[m]; ok {
				add(k, bioEntry{msg: m, why: fmt.Sprintf("it is listed in privacy.biometric_messages as %q", n)})
			}
		}
		if found {
			continue
		}
		if strings.HasPrefix(n, "0x") || strings.HasPrefix(n, "0X") {
			k, err := can.ParseKey(n)
			if err != nil {
				return nil, loc.errorf("privacy.biometric_messages", "%w: %w", ErrValue, err)
			}
			add(k, bioEntry{why: fmt.Sprintf("ID 0x%s is listed in privacy.biometric_messages as %q", k, n)})
			continue
		}
		return nil, loc.errorf("privacy.biometric_messages", "%w %q in %s: want a DBC message name or a hex ID such as \"0x5A1\"", ErrUnknownMessage, n, db.file)
	}
	for _, m := range db.messages {
		k, ok := db.keys[m]
		if !ok {
			continue
		}
		if why, bad := db.biometric(m); bad {
			add(k, bioEntry{msg: m, why: "it is biometric: " + why})
		}
	}
	// A comment counts for its ID even when no BO_ spells the ID that way
	// (CM_ BO_ 13274 beside BO_ 2147496922: the same 29-bit ID).
	for id, c := range db.msgComment {
		if w, bad := biometricMatch(c); bad {
			if k, _, err := messageKey(id); err == nil {
				add(k, bioEntry{why: fmt.Sprintf("a comment on message ID %d in %s, %q, matches %q", uint32(id), db.file, c, w)})
			}
		}
	}
	for r, c := range db.sigComment {
		if w, bad := biometricMatchIn(c, r.name); bad {
			if k, _, err := messageKey(r.id); err == nil {
				add(k, bioEntry{why: fmt.Sprintf("a comment on signal %s of message ID %d in %s, %q, matches %q", r.name, uint32(r.id), db.file, c, w)})
			}
		}
	}
	for k := range bio {
		p.biometric = append(p.biometric, k)
	}
	can.SortKeys(p.biometric)
	return bio, nil
}

// addBio records why k is biometric, unless it already has a reason. Not
// inlined at privacyList's 4 calls (tboxd size).
//
//go:noinline
func addBio(bio map[can.Key]bioEntry, k can.Key, e bioEntry) {
	if _, ok := bio[k]; !ok {
		bio[k] = e
	}
}

// problemsOn returns the statements the reader could not read that belong to
// a message on bus ID k, whatever DBC ID spelled it, in line order.
func (db *database) problemsOn(k can.Key) []problem {
	var out []problem
	for id, ps := range db.problems {
		if mk, _, err := messageKey(id); err == nil && mk == k {
			out = append(out, ps...)
		}
	}
	sort.Sort(byLine(out))
	return out
}

// byLine sorts problems by line through sort.Sort, which tboxd links
// anyway, where each sort.Slice use would link a sort of its own.
type byLine []problem

func (p byLine) Len() int           { return len(p) }
func (p byLine) Swap(i, j int)      { p[i], p[j] = p[j], p[i] }
func (p byLine) Less(i, j int) bool { return p[i].line < p[j].line }

func compile(loc locator, db *database, k Kind, sc *sectionConfig, bio map[can.Key]bioEntry) (*signal, error) {
	sec := k.String()
	fMsg, fSig := sec+".message", sec+".signal" // the fields errors name
	if err := sc.pollConfig.onlyFrame(loc, sec); err != nil {
		return nil, err
	}
	if sc.Message == "" {
		return nil, loc.errorf(fMsg, "%w: message = \"<DBC message name>\"", ErrMissing)
	}
	if sc.Signal == "" {
		return nil, loc.errorf(fSig, "%w: signal = \"<DBC signal name>\"", ErrMissing)
	}
	if sc.Bus != "" && !isBusName(sc.Bus) {
		return nil, loc.errorf(sec+".bus", "%w: bus %q, want an interface name such as \"can1\"", ErrValue, sc.Bus)
	}
	m := db.byName[sc.Message]
	if m == nil {
		hint := ""
		if s := db.suggestMessage(sc.Message); s != "" {
			hint = fmt.Sprintf(" (did you mean %q?)", s)
		}
		return nil, loc.errorf(fMsg, "%w %q: not in %s%s", ErrUnknownMessage, sc.Message, db.file, hint)
	}
	where := fmt.Sprintf("%s:%d", db.file, m.Pos.Line)
	for _, o := range db.messages {
		if o != m && string(o.Name) == sc.Message {
			return nil, loc.errorf(fMsg, "%w: message name %s is defined twice, at %s and %s:%d: which one is meant cannot be told", ErrValue, m.Name, where, db.file, o.Pos.Line)
		}
	}
	if why, bad := db.badID[m]; bad {
		return nil, dbErrorf(db.file, m.Pos.Line, fMsg, "%w: message %s: %s", ErrSignal, m.Name, why)
	}
	key := db.keys[m]
	// The privacy gate comes first: a biometric ID is refused whatever else
	// is wrong with the section, and whatever name the profile gives it.
	if e, ok := bio[key]; ok {
		switch {
		case e.msg == m:
			return nil, loc.errorf(fMsg, "%w: message %s (ID 0x%s, %s): %s", ErrBiometric, m.Name, key, where, e.why)
		case e.msg != nil:
			return nil, loc.errorf(fMsg, "%w: message %s (ID 0x%s, %s) is an alias of message %s (%s:%d) on the same ID, and %s: %s", ErrBiometric, m.Name, key, where, e.msg.Name, db.file, e.msg.Pos.Line, e.msg.Name, e.why)
		default:
			return nil, loc.errorf(fMsg, "%w: message %s (%s): %s", ErrBiometric, m.Name, where, e.why)
		}
	}
	// The gate must judge every statement of a message the agent receives:
	// one it could not read is an error here, not a warning.
	if ps := db.problemsOn(key); len(ps) > 0 {
		return nil, dbErrorf(db.file, ps[0].line, fMsg, "%w: DBC: %s (message %s, ID 0x%s, is used by the profile)", ErrSyntax, ps[0].msg, m.Name, key)
	}
	sd := db.signal(m, sc.Signal)
	if sd == nil {
		var names []string
		for _, s := range m.Signals {
			names = append(names, string(s.Name))
		}
		return nil, loc.errorf(fSig, "%w %q: message %s (%s) has %s", ErrUnknownSignal, sc.Signal, m.Name, where, strings.Join(names, ", "))
	}
	sigWhere := fmt.Sprintf("%s:%d", db.file, sd.Pos.Line)
	enc := encInt
	switch db.valueTypes[sigRef{m.MessageID, sc.Signal}] {
	case dbc.SignalValueTypeFloat32:
		enc = encFloat32
	case dbc.SignalValueTypeFloat64:
		enc = encFloat64
	}
	f, err := newField(sd.StartBit, sd.Size, sd.IsBigEndian, sd.IsSigned, enc, m.Size)
	if err != nil {
		return nil, dbErrorf(db.file, sd.Pos.Line, fSig, "signal %s of %s: %w", sd.Name, m.Name, err)
	}
	if sd.Factor == 0 || math.IsNaN(sd.Factor) || math.IsInf(sd.Factor, 0) || math.IsNaN(sd.Offset) || math.IsInf(sd.Offset, 0) {
		return nil, dbErrorf(db.file, sd.Pos.Line, fSig, "%w: signal %s of %s has factor %v and offset %v, want a finite non-zero factor", ErrSignal, sd.Name, m.Name, sd.Factor, sd.Offset)
	}
	s := &signal{
		kind: k, message: string(m.Name), name: string(sd.Name), bus: sc.Bus,
		key: key, size: uint8(m.Size), f: f,
		factor: sd.Factor, dbcOffset: sd.Offset, unitScale: 1, unit: sd.Unit,
	}
	if s.fd, err = frameFormat(loc, db, m, sc, sec); err != nil {
		return nil, err
	}
	if err := s.multiplex(db, m, sd, fSig); err != nil {
		return nil, err
	}
	switch k {
	case DriveMode:
		if enc != encInt {
			return nil, dbErrorf(db.file, sd.Pos.Line, fSig, "%w: drive mode signal %s is a float; want an integer with a value table", ErrSignal, sd.Name)
		}
		if sc.Unit != "" {
			return nil, loc.errorf(sec+".unit", "%w: a drive mode has no unit, found unit = %q", ErrUnit, sc.Unit)
		}
		s.modes(db.valueTables[sigRef{m.MessageID, sc.Signal}])
		s.scale, s.offset = 1, 0
	default:
		u, field := sd.Unit, fSig
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
				return nil, loc.errorf(field, "%w: unit = %q, want %s", ErrUnit, u, want)
			}
			return nil, loc.errorf(field, "%w: signal %s of message %s (%s) has unit %q, want %s; or set unit = \"...\" in [%s]", ErrUnit, sd.Name, m.Name, sigWhere, u, want, sec)
		}
		s.unit, s.unitScale = u, scale
		s.scale, s.offset = clean(sd.Factor*scale), clean(sd.Offset*scale)
		s.notReadings(db.valueTables[sigRef{m.MessageID, sc.Signal}])
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
	return SignalInfo{Kind: k, Message: s.message, Signal: s.name, Bus: s.bus, Key: s.key, Unit: s.unit, FD: s.fd}, true
}

// Resolution returns one raw step of kind k's signal in the normal unit
// (meters, km/h, or 1 for a drive mode). It is 0 for float signals.
func (p *Profile) Resolution(k Kind) float64 {
	if p.Has(k) && p.sigs[k].poll != nil {
		return p.sigs[k].scale
	}
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

// FD reports whether a bus ("" for the default bus) carries a profile
// message as CAN FD frames: one longer than 8 bytes, one the DBC's
// VFrameFormat marks as FD, or one whose section says fd = true. The
// agent's socket on that bus must then read CAN FD frames, and the
// interface must be able to carry them.
func (p *Profile) FD(bus string) bool {
	for _, s := range p.sigs {
		if s != nil && s.bus == bus && s.fd {
			return true
		}
	}
	return false
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

// int64s sorts through sort.Sort (see byLine).
type int64s []int64

func (v int64s) Len() int           { return len(v) }
func (v int64s) Swap(i, j int)      { v[i], v[j] = v[j], v[i] }
func (v int64s) Less(i, j int) bool { return v[i] < v[j] }

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
	sort.Sort(int64s(vals))
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

// Not inlined: an error path called from many places, kept as one copy.
//
//go:noinline
func (l locator) err(field string, err error) error {
	return &ConfigError{File: l.file, Line: l.line(field), Field: field, Err: err}
}

// dbErrorf returns a *ConfigError about file (at line and field, when
// known): one non-inlined call at each error return (tboxd size).
//
//go:noinline
func dbErrorf(file string, line int, field, format string, a ...any) error {
	return &ConfigError{File: file, Line: line, Field: field, Err: fmt.Errorf(format, a...)}
}

// errorf is err(field, fmt.Errorf(format, a...)): one call at each of the
// many error returns rather than two (tboxd size).
//
//go:noinline
func (l locator) errorf(field, format string, a ...any) error {
	return l.err(field, fmt.Errorf(format, a...))
}

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
		if name, ok := tableHeader(t); ok {
			cur = name
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

// multiplex compiles the multiplexing of signal sd: simple (m<n> under the
// message's one switch M) or extended (SG_MUL_VAL_ names the switch and the
// ranges). A switch that is itself multiplexed (nested) is refused.
func (s *signal) multiplex(db *database, m *dbc.MessageDef, sd *dbc.SignalDef, field string) error {
	mv, extended := db.muxVals[sigRef{m.MessageID, string(sd.Name)}]
	if !sd.IsMultiplexed && !extended {
		return nil
	}
	var sw *dbc.SignalDef
	ranges := [][2]uint64{{sd.MultiplexerSwitch, sd.MultiplexerSwitch}}
	if extended {
		sw = db.signal(m, mv.sw)
		if sw == nil || !sw.IsMultiplexerSwitch {
			return dbErrorf(db.file, mv.line, field, "%w: SG_MUL_VAL_ of signal %s names %s, which is not a multiplexer switch of message %s", ErrSignal, sd.Name, mv.sw, m.Name)
		}
		ranges = mv.ranges
	} else {
		for i := range m.Signals {
			if !m.Signals[i].IsMultiplexerSwitch {
				continue
			}
			if sw != nil {
				return dbErrorf(db.file, sd.Pos.Line, field, "%w: signal %s is multiplexed (m%d) but message %s has several switches and no SG_MUL_VAL_ names one", ErrSignal, sd.Name, sd.MultiplexerSwitch, m.Name)
			}
			sw = &m.Signals[i]
		}
		if sw == nil {
			return dbErrorf(db.file, sd.Pos.Line, field, "%w: signal %s is multiplexed (m%d) but message %s has no multiplexer switch (M)", ErrSignal, sd.Name, sd.MultiplexerSwitch, m.Name)
		}
	}
	if sw.IsMultiplexed {
		return dbErrorf(db.file, sw.Pos.Line, field, "%w: signal %s is under switch %s, which is itself multiplexed: nested multiplexing is not supported", ErrSignal, sd.Name, sw.Name)
	}
	mf, err := newField(sw.StartBit, sw.Size, sw.IsBigEndian, false, encInt, m.Size)
	if err != nil {
		return dbErrorf(db.file, sw.Pos.Line, field, "multiplexer %s of %s: %w", sw.Name, m.Name, err)
	}
	for _, r := range ranges {
		if r[0] > mf.mask {
			return dbErrorf(db.file, sd.Pos.Line, field, "%w: multiplexer value %d does not fit the %d-bit switch %s", ErrSignal, r[0], sw.Size, sw.Name)
		}
	}
	s.mux, s.muxRanges = &mf, ranges
	return nil
}

// notReadings records the raw values an odometer or speed value table names.
// A float signal's table names decoded values; those are compared as the
// raw bits of the same float.
//
// Some DBCs write the physical value of the all-ones "SNA" pattern instead
// of the raw one (Tesla's community Model 3 file: VAL_ 4294967 "SNA" on a
// 32-bit, 0.001 km odometer, whose all-ones raw is 4294967.295 km). A value
// equal to the whole part of the all-ones raw's physical value (DBC factor
// and offset) marks the all-ones raw instead.
func (s *signal) notReadings(table []dbc.ValueDescriptionDef) {
	var allOnes float64
	if s.f.enc == encInt {
		allOnes = math.Trunc(s.f.value(s.f.mask)*s.factor + s.dbcOffset)
	}
	for _, vd := range table {
		if s.f.enc == encInt && vd.Value == allOnes && uint64(int64(vd.Value))&s.f.mask != s.f.mask {
			// Read as written: the raw value itself (4294.967 km) is a reading.
			s.namedRaws = append(s.namedRaws, s.f.mask)
			continue
		}
		var raw uint64
		switch s.f.enc {
		case encFloat32:
			raw = uint64(math.Float32bits(float32(vd.Value)))
		case encFloat64:
			raw = math.Float64bits(vd.Value)
		default:
			if vd.Value != math.Trunc(vd.Value) {
				continue
			}
			raw = uint64(int64(vd.Value)) & s.f.mask
		}
		s.namedRaws = append(s.namedRaws, raw)
	}
}
