package shell

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"strings"
	"sync"
	"time"

	"github.com/csop/tbox/signer"
	"github.com/csop/tbox/store"
)

// Defaults of Config.
const (
	DefaultBaud         = 115200
	DefaultIdleTimeout  = 10 * time.Minute
	DefaultUnlockTTL    = 10 * time.Minute
	DefaultChallengeTTL = 5 * time.Minute
	DefaultMaxLine      = 256
	DefaultMaxFailures  = 3
	DefaultLockoutBase  = 10 * time.Second
	DefaultLockoutMax   = 15 * time.Minute
	DefaultReopenMin    = 200 * time.Millisecond
	DefaultReopenMax    = 5 * time.Second
	defaultOutput       = 64 << 10 // bytes of output queued for a slow terminal
)

// Config configures a Shell. Zero fields take the defaults above.
type Config struct {
	_ [0]func() // not comparable: no generated equality function (tboxd size)

	Device string // serial device for Run, e.g. /dev/ttyS1 or /dev/hvc0
	Baud   int

	// IdleTimeout resets a session (service mode locks again) after this
	// long without input.
	IdleTimeout time.Duration
	// ServiceKey is the maker's service public key (see ParseServiceKey);
	// empty disables service mode.
	ServiceKey string
	// UnlockTTL is how long service mode stays unlocked.
	UnlockTTL time.Duration
	// ChallengeTTL is how long a challenge can be answered.
	ChallengeTTL time.Duration
	// MaxLine is the longest command line in bytes; longer lines are
	// refused whole.
	MaxLine int
	// MaxFailures failed unlocks in a row start a lockout of LockoutBase,
	// doubling with each further failure up to LockoutMax.
	MaxFailures int
	LockoutBase time.Duration
	LockoutMax  time.Duration
	// ReopenMin and ReopenMax bound Run's backoff between attempts to
	// (re)open the serial device.
	ReopenMin, ReopenMax time.Duration
}

func (c *Config) defaults() {
	def := func(d *time.Duration, v time.Duration) {
		if *d <= 0 {
			*d = v
		}
	}
	if c.Baud <= 0 {
		c.Baud = DefaultBaud
	}
	def(&c.IdleTimeout, DefaultIdleTimeout)
	def(&c.UnlockTTL, DefaultUnlockTTL)
	def(&c.ChallengeTTL, DefaultChallengeTTL)
	def(&c.LockoutBase, DefaultLockoutBase)
	def(&c.LockoutMax, DefaultLockoutMax)
	def(&c.ReopenMin, DefaultReopenMin)
	def(&c.ReopenMax, DefaultReopenMax)
	if c.MaxLine <= 0 {
		c.MaxLine = DefaultMaxLine
	}
	if c.MaxFailures <= 0 {
		c.MaxFailures = DefaultMaxFailures
	}
}

// Outbox is what the shell reads of the durable outbox (*store.Store).
type Outbox interface {
	Get(seq uint64) (store.Record, error)
	Last() (seq uint64, digest [32]byte)
}

// ReceiptKeeper is an Outbox that keeps the collector's last receipt
// (*store.Store): `att show` prints it as the car's proof.
type ReceiptKeeper interface {
	LastReceipt() ([]byte, error)
}

// Logs returns up to n recent log lines, oldest first (*LogRing).
type Logs interface {
	Lines(n int) []string
}

// Clock is the shell's time source for unlock expiry and the lockout.
type Clock interface {
	Now() time.Time
}

type systemClock struct{}

func (systemClock) Now() time.Time { return time.Now() }

// Deps are the parts of the agent the shell shows and acts on. Every field
// is optional: a command whose dependency is nil answers "not available".
// None of them may block for long: the shell calls them from its own
// goroutine, and they should read snapshots.
type Deps struct {
	Device  signer.Address
	Version string
	ChainID uint64 // for selftest's check of the last attestation

	Status      func() Status
	Outbox      Outbox
	Key         signer.Signer // the device key: selftest signs SelftestDigest with it, nothing else
	ConfigText  func() string // the configuration, secrets already redacted
	ProfileText func() string
	Logs        Logs

	// Service actions, run only in service mode.
	UploadNow   func()                 // wake the uplink to drain the outbox now
	Reconnect   func() error           // drop and re-establish the MQTT connection
	ReopenCAN   func(bus string) error // reopen a CAN socket ("" for every bus)
	RetryNacked func() error           // re-publish refused attestations now
	Flush       func() error           // make the last checkpoint durable now

	Clock  Clock        // nil: the system clock
	Logger *slog.Logger // nil: discard
}

// Status is a snapshot of the agent for the status command.
type Status struct {
	Started        time.Time // the agent's start, for the uptime
	ClockUntrusted bool      // the wall clock is not trustworthy (attestations get CLOCK)

	Buses        []BusStatus
	Frames       uint64    // profile frames handed to the mileage engine
	LastFrame    time.Time // zero if none yet
	SourceErrors uint64    // CAN sources that stopped with an error

	// NotReadings are the profile frames that gave no reading (README §C1).
	NotReadings NotReadingStatus

	// Batch is the open span of the mileage engine, when known.
	Batch BatchStatus

	Outbox OutboxStatus
	Uplink UplinkStatus

	// Poll is the odometer request, when the profile's odometer is asked
	// for (source "obd" or "uds").
	Poll PollStatus
}

// PollStatus is the odometer request of a polled car.
type PollStatus struct {
	_ [0]func() // not comparable: no generated equality function (tboxd size)

	Known             bool
	Source            string // "obd" or "uds"
	Bus               string
	Transport         string // "kernel" (ISO-TP socket) or "user" (ISO-TP over a raw socket)
	Request, Response string // hex IDs
	Period            time.Duration
	Requests, Answers uint64
	Timeouts          uint64
	Negative, Pending uint64
	Refused           uint64 // answers that could not be read
	SendErrors        uint64 // requests the bus refused
	Blocked           uint64 // frames the guard kept off the bus (userspace ISO-TP)
	LastNRC           byte
	Silent            bool // the ECU stopped answering
	LastAnswer        time.Time
}

// NotReadingStatus counts, for the odometer and the speed, the frames that
// credit nothing: a raw value the DBC's value table names (SNA, Init,
// Invalid, ...) and a frame that cannot be decoded. Known false when the
// agent does not expose them.
type NotReadingStatus struct {
	_ [0]func() // not comparable: no generated equality function (tboxd size)

	Known                              bool
	OdometerNamed, OdometerUndecodable uint64
	SpeedNamed, SpeedUndecodable       uint64
}

// BusStatus is one CAN input.
type BusStatus struct {
	_ [0]func() // not comparable: no generated equality function (tboxd size)

	Name         string
	State        string // "up", "down", "log replay", ...
	Frames       uint64 // frames received (after the kernel filter)
	Dropped      uint64 // frames the kernel dropped (receive buffer full)
	ErrorFrames  uint64
	BusOff       uint64 // bus-off events
	ErrorPassive uint64 // error-passive events
	Reopens      uint64
	// Controller is a real CAN controller's link as the kernel reports
	// it (state, bit rate, restart-ms, error counters); "" on vcan and
	// for a log.
	Controller string
}

// BatchStatus is the mileage engine's open span; Known false when the
// agent does not expose it.
type BatchStatus struct {
	_ [0]func() // not comparable: no generated equality function (tboxd size)

	Known   bool
	Batch   uint64 // first batch of the open span
	Batches uint64 // batches it covers so far
	Meters  uint64 // distance counted so far
	Flags   uint32 // flags observed so far
	// Candidate is how far above the high-water mark a pending JUMP
	// candidate reads, in meters; 0 when none is pending.
	Candidate float64
}

// OutboxStatus is the durable outbox.
type OutboxStatus struct {
	_ [0]func() // not comparable: no generated equality function (tboxd size)

	Head         uint64 // last seq made
	AckedThrough uint64
	Depth        int
	Bytes        int64
	MaxBytes     int64
	Oldest       time.Time // oldest pending attestation; zero if none
	Full         bool
	Nacks        uint64
	LastNack     store.Nack
	// Lost is the range of seqs a re-seed from the sidecar may have lost
	// (the database was damaged); empty if none.
	Lost store.LostRange
}

// UplinkStatus is the MQTT uplink.
type UplinkStatus struct {
	Enabled        bool
	Connected      bool
	ConnectedSince time.Time
	Reconnects     uint64
	LastError      string
	LastErrorAt    time.Time
	InFlight       int
	Publishes      uint64
	LastAcked      uint64
	Nacks          uint64
	LastNackSeq    uint64
	LastNackReason string
	Ignored        map[string]uint64 // forged or foreign acks/nacks, by kind
	LastIgnored    string            // outside text: shown escaped
}

// Shell is the diagnostic shell. One Shell serves one port; the unlock
// rate limit is shared by all of its sessions.
type Shell struct {
	cfg     Config
	deps    Deps
	service signer.Address
	hasKey  bool
	clock   Clock
	log     *slog.Logger
	limit   limiter
	cmds    []command
}

// New returns a shell. It fails only on a malformed cfg.ServiceKey
// (ErrBadServiceKey).
func New(cfg Config, deps Deps) (*Shell, error) {
	cfg.defaults()
	s := &Shell{cfg: cfg, deps: deps, clock: deps.Clock, log: deps.Logger}
	if s.clock == nil {
		s.clock = systemClock{}
	}
	if s.log == nil {
		s.log = slog.New(slog.DiscardHandler)
	}
	if cfg.ServiceKey != "" {
		a, err := ParseServiceKey(cfg.ServiceKey)
		if err != nil {
			return nil, err
		}
		s.service, s.hasKey = a, true
	}
	s.limit = limiter{max: cfg.MaxFailures, base: cfg.LockoutBase, cap: cfg.LockoutMax}
	s.cmds = commandTable[:]
	return s, nil
}

// Serve runs one session on rw until ctx is done (ctx.Err()), the peer
// ends the stream (nil) or rw fails (the error). Input is read and output
// written by two goroutines of Serve's own, so a terminal that stops
// reading never stalls the session; if one of them is still blocked in rw
// when Serve returns, it ends when the caller closes rw.
func (s *Shell) Serve(ctx context.Context, rw io.ReadWriter) error {
	_, err := s.serve(ctx, rw)
	return err
}

// serve is Serve; wait waits for its reader and writer goroutines (after
// the caller has closed rw, if they are blocked in it).
func (s *Shell) serve(ctx context.Context, rw io.ReadWriter) (wait func(), err error) {
	ctx, cancel := context.WithCancel(ctx)
	var wg sync.WaitGroup
	in := make(chan []byte)
	fail := make(chan error, 2)
	out := newOutQueue(defaultOutput)

	wg.Add(2)
	go func() { // reader
		defer wg.Done()
		for {
			buf := make([]byte, 512)
			n, err := rw.Read(buf)
			if n > 0 {
				select {
				case in <- buf[:n]:
				case <-ctx.Done():
					return
				}
			}
			if err != nil {
				fail <- err
				return
			}
		}
	}()
	drain := make(chan struct{}) // the session ended cleanly: write what is queued, then stop
	wdone := make(chan struct{})
	go func() { // writer
		defer wg.Done()
		defer close(wdone)
		var buf []byte
		for {
			last := false
			select {
			case <-out.ready:
			case <-drain:
				last = true
			case <-ctx.Done():
				return
			}
			buf = out.take(buf)
			if len(buf) > 0 {
				if _, err := rw.Write(buf); err != nil {
					fail <- errorf("write: %w", err)
					return
				}
			}
			if last {
				return
			}
		}
	}()

	ss := &session{sh: s, out: out, ed: newEditor(s.cfg.MaxLine)}
	err = ss.loop(ctx, in, fail)
	if err == nil { // the peer ended the stream: let the last output go out
		close(drain)
		select {
		case <-wdone:
		case <-ctx.Done():
		}
	}
	cancel()
	return wg.Wait, err
}

// session is one technician's session: the line editor, the pending
// challenge and the unlock.
type session struct {
	_ [0]func() // not comparable: no generated equality function (tboxd size)

	sh       *Shell
	out      *outQueue
	ed       *editor
	chal     *Challenge
	chalAt   time.Time
	unlocked time.Time // service mode until this instant; zero: locked
	notified bool      // the expiry of the unlock was announced
}

func (ss *session) loop(ctx context.Context, in <-chan []byte, fail <-chan error) error {
	idle := time.NewTimer(ss.sh.cfg.IdleTimeout)
	defer idle.Stop()
	ss.banner()
	for {
		select {
		case <-ctx.Done():
			ss.relock("")
			return ctx.Err()
		case err := <-fail:
			ss.relock("")
			if errors.Is(err, io.EOF) {
				return nil
			}
			return err
		case <-idle.C:
			ss.ed.Reset()
			ss.chal = nil
			ss.relock("idle")
			ss.write("\r\n[idle for " + ss.sh.cfg.IdleTimeout.String() + ": session reset]\r\n")
			ss.prompt()
			idle.Reset(ss.sh.cfg.IdleTimeout)
		case chunk := <-in:
			ss.input(chunk)
			idle.Reset(ss.sh.cfg.IdleTimeout)
		}
	}
}

// input feeds bytes to the line editor and runs each line that ends.
func (ss *session) input(chunk []byte) {
	for _, b := range chunk {
		r := ss.ed.Feed(b)
		if e := ss.ed.Echo(); len(e) > 0 {
			ss.out.write(e)
		}
		switch r {
		case editLine:
			ss.line(ss.ed.Line())
			ss.prompt()
		case editTooLong:
			ss.printf("error: line longer than %d bytes: ignored", ss.sh.cfg.MaxLine)
			ss.prompt()
		case editCancel:
			ss.prompt()
		}
	}
}

func (ss *session) banner() {
	d := ss.sh.deps
	ss.printf("CSOP T-Box diagnostic shell %s, device %s. Type help.", orDash(d.Version), d.Device)
	ss.prompt()
}

func (ss *session) prompt() {
	if ss.inService() {
		ss.write("tbox# ")
		return
	}
	ss.write("tbox> ")
}

// printf prints one message, made safe for the terminal, and a CRLF.
func (ss *session) printf(format string, a ...any) {
	ss.write(printable(fmt.Sprintf(format, a...)) + "\r\n")
}

// println writes s as printf("%s", s) would, without fmt (tboxd size).
func (ss *session) println(s string) { ss.write(printable(s) + "\r\n") }

func (ss *session) write(s string) { ss.out.write([]byte(s)) }

func (ss *session) now() time.Time { return ss.sh.clock.Now() }

// inService reports whether service mode is unlocked, announcing its expiry
// once.
func (ss *session) inService() bool {
	if ss.unlocked.IsZero() {
		return false
	}
	if ss.now().Before(ss.unlocked) {
		return true
	}
	ss.unlocked = time.Time{}
	ss.printf("service mode expired: locked")
	ss.sh.log.Info("service mode expired")
	return false
}

func (ss *session) relock(why string) {
	if !ss.unlocked.IsZero() {
		ss.unlocked = time.Time{}
		if why != "" {
			ss.printf("service mode locked (%s)", why)
		}
		ss.sh.log.Info("service mode locked", "why", orDash(why))
	}
}

func orDash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

// line runs one command line.
func (ss *session) line(line string) {
	fields := strings.Fields(line)
	if len(fields) == 0 {
		return
	}
	for i := range fields {
		if i < 2 { // command words are case-insensitive; arguments kept
			fields[i] = strings.ToLower(fields[i])
		}
	}
	c, args := ss.sh.lookup(fields)
	if c == nil {
		if group := ss.sh.group(fields[0]); len(group) > 0 {
			ss.printf("%s: want one of: %s", fields[0], strings.Join(group, ", "))
			return
		}
		ss.printf("unknown command %q: type help", truncate(fields[0], 32))
		return
	}
	if len(args) < c.minArgs || (c.maxArgs >= 0 && len(args) > c.maxArgs) {
		ss.printf("usage: %s", c.usage())
		return
	}
	if c.service && !ss.inService() {
		ss.printf("%s: service mode required: type unlock", c.name())
		return
	}
	if c.service {
		ss.sh.log.Info("service command", "cmd", c.name())
	}
	c.run(ss, args)
}

func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n] + "..."
}
