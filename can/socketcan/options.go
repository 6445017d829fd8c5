package socketcan

import (
	"errors"
	"fmt"
	"log/slog"
	"net"
	"os"
	"sync/atomic"
	"time"

	"github.com/csop/tbox/can"
)

// Errors. An error from this package is an *OpError naming the interface;
// test for these with errors.Is.
var (
	// ErrNotSupported: the OS has no SocketCAN.
	ErrNotSupported = errors.New("SocketCAN not supported")
	// ErrNoInterface: no network interface has the name given to Open.
	ErrNoInterface = errors.New("no such network interface")
	// ErrDown: the interface exists but is not up.
	ErrDown = errors.New("interface is down")
	// ErrFDDisabled: a CAN FD frame was written on a Conn opened without WithFD(true).
	ErrFDDisabled = errors.New("CAN FD frames not enabled on this socket (open with WithFD(true))")
	// ErrNoFD: WithFD(true) on an interface whose MTU cannot carry a CAN
	// FD frame (a classic controller, or a vcan left at MTU 16).
	ErrNoFD = errors.New("interface cannot carry CAN FD frames")
	// ErrClosed: the Conn was closed. It matches net.ErrClosed and os.ErrClosed too.
	ErrClosed error = closedError{}
)

type closedError struct{}

func (closedError) Error() string { return "use of closed CAN connection" }

func (closedError) Is(target error) bool { return target == net.ErrClosed || target == os.ErrClosed }

// OpError is the error of an operation on an interface.
type OpError struct {
	Op    string // "open", "read", "write", "close"
	Iface string
	Err   error
}

func (e *OpError) Error() string { return fmt.Sprintf("socketcan %s: %s: %v", e.Iface, e.Op, e.Err) }

func (e *OpError) Unwrap() error { return e.Err }

// opError returns an *OpError; one call rather than the literal at each of
// ~25 error returns (tboxd size).
//
//go:noinline
func opError(op, iface string, err error) error {
	return &OpError{Op: op, Iface: iface, Err: err}
}

// Option configures Open.
type Option func(*options)

type options struct {
	_ [0]func() // not comparable: no generated equality function (tboxd size)

	filter     *can.Filter // nil: every data frame
	errMask    uint32
	fd         bool
	reopen     bool
	backoffMin time.Duration
	backoffMax time.Duration
	rcvbuf     int
	eventBuf   int
	coalesce   time.Duration
	log        *slog.Logger
}

// Default reopen backoff.
const (
	DefaultBackoffMin = 50 * time.Millisecond
	DefaultBackoffMax = 2 * time.Second
)

func defaultOptions() options {
	return options{
		errMask:    ErrClassAll,
		reopen:     true,
		backoffMin: DefaultBackoffMin,
		backoffMax: DefaultBackoffMax,
		eventBuf:   64,
		log:        slog.New(slog.DiscardHandler),
	}
}

// WithFilter installs the allowlist as the kernel's CAN_RAW_FILTER: only its
// data frames reach the socket. An empty allowlist receives no data frames.
// A nil filter, like an empty one, passes nothing. Without this option every
// data frame is received.
func WithFilter(f *can.Filter) Option {
	return func(o *options) {
		if f == nil {
			f = can.NewFilter()
		}
		o.filter = f
	}
}

// WithErrorFrames sets which error classes (ErrClass...) the kernel reports
// as events (CAN_ERR_FILTER). The default is ErrClassAll; 0 turns error
// reporting off.
func WithErrorFrames(mask uint32) Option {
	return func(o *options) { o.errMask = mask & ErrClassAll }
}

// WithFD enables CAN FD frames (CAN_RAW_FD_FRAMES) for reading and writing:
// the socket then receives struct canfd_frame (72 bytes) beside classic
// frames. Open (and every reopen) then requires the interface's MTU to be
// CANFD_MTU (72), failing with ErrNoFD otherwise: the kernel accepts the
// socket option on any interface but would never deliver an FD frame on a
// classic one, and refuse each FD write with EINVAL.
func WithFD(on bool) Option { return func(o *options) { o.fd = on } }

// CAN MTUs of an interface (linux/can.h): a classic controller has CANMTU,
// one that carries CAN FD frames CANFDMTU, a CAN XL one more.
const (
	CANMTU   = classicMTU
	CANFDMTU = fdMTU
)

// checkFDMTU reports whether an interface of MTU mtu can carry CAN FD
// frames, with an error that says what to do when it cannot.
func checkFDMTU(iface string, mtu int) error {
	if mtu >= CANFDMTU {
		return nil
	}
	return errorf("%w: %s has MTU %d, want %d (a CAN FD controller: `ip link set %s type can bitrate 500000 dbitrate 2000000 fd on`; a vcan: `ip link set %s mtu 72` while it is down)", ErrNoFD, iface, mtu, CANFDMTU, iface, iface)
}

// WithReopen sets the backoff with which a Conn reopens its socket after the
// interface went down or disappeared: minDelay doubling up to maxDelay.
// minDelay <= 0
// disables reopening: a read then fails with an error matching ErrDown or
// the kernel's error.
func WithReopen(minDelay, maxDelay time.Duration) Option {
	return func(o *options) {
		if minDelay <= 0 {
			o.reopen = false
			return
		}
		o.reopen = true
		o.backoffMin, o.backoffMax = minDelay, max(minDelay, maxDelay)
	}
}

// WithReceiveBuffer sets the socket's receive buffer (SO_RCVBUF, forced
// beyond rmem_max with SO_RCVBUFFORCE when privileged). The kernel doubles
// the value for its bookkeeping; each queued frame costs several hundred
// bytes of it.
func WithReceiveBuffer(bytes int) Option { return func(o *options) { o.rcvbuf = bytes } }

// WithCoalesce lets frames gather in the socket for up to d before the
// reader waits for them again: when a receive emptied the socket's queue,
// the next one is made no sooner than d after it. Frames keep their kernel
// receive times and arrive in one batch instead of one wake-up each, which
// is most of their cost when they come one at a time (a car's odometer and
// speed frames). d bounds the added latency; the receive buffer must hold d
// of traffic (8 MiB holds seconds of a saturated bus). 0, the default,
// reads each frame as it comes.
func WithCoalesce(d time.Duration) Option { return func(o *options) { o.coalesce = max(d, 0) } }

// WithEventBuffer sets the capacity of the Events channel (default 64).
// Events that do not fit are counted in Stats().EventsDropped.
func WithEventBuffer(n int) Option { return func(o *options) { o.eventBuf = max(n, 1) } }

// WithLogger sets the logger for reopen attempts and interface state
// changes. The default discards.
func WithLogger(l *slog.Logger) Option {
	return func(o *options) {
		if l != nil {
			o.log = l
		}
	}
}

// Stats are a Conn's counters since Open. All are cumulative.
type Stats struct {
	Frames        uint64 // data frames received
	Bytes         uint64 // payload bytes of those frames
	ErrorFrames   uint64 // error frames received (decoded into events)
	Malformed     uint64 // kernel messages of an unexpected size, skipped
	Reads         uint64 // receive system calls that returned messages (Frames/Reads frames per call)
	Dropped       uint64 // frames the kernel dropped because the receive buffer was full (SO_RXQ_OVFL)
	EventsDropped uint64 // events that found the Events channel full
	Reopens       uint64 // successful reopens after the interface went down
	TxFrames      uint64 // frames written
	TxBytes       uint64 // payload bytes written
	TxRetries     uint64 // writes retried because the TX queue was full (ENOBUFS)
	events        [numKinds]uint64
}

// Count returns how many events of the kind were seen (delivered or not).
func (s Stats) Count(k Kind) uint64 {
	if int(k) >= len(s.events) {
		return 0
	}
	return s.events[k]
}

type counters struct {
	_ [0]func() // not comparable: no generated equality function (tboxd size)

	frames, bytes, errorFrames, malformed, dropped, eventsDropped atomic.Uint64
	reads                                                         atomic.Uint64
	reopens, txFrames, txBytes, txRetries                         atomic.Uint64
	events                                                        [numKinds]atomic.Uint64
}

func (c *counters) snapshot() Stats {
	s := Stats{
		Frames: c.frames.Load(), Bytes: c.bytes.Load(), ErrorFrames: c.errorFrames.Load(),
		Malformed: c.malformed.Load(), Reads: c.reads.Load(), Dropped: c.dropped.Load(), EventsDropped: c.eventsDropped.Load(),
		Reopens: c.reopens.Load(), TxFrames: c.txFrames.Load(), TxBytes: c.txBytes.Load(),
		TxRetries: c.txRetries.Load(),
	}
	for i := range c.events {
		s.events[i] = c.events[i].Load()
	}
	return s
}

// backoff doubles a delay from min up to max.
type backoff struct{ cur, min, max time.Duration }

func (b *backoff) next() time.Duration {
	d := b.cur
	if d < b.min {
		d = b.min
	}
	b.cur = min(d*2, b.max)
	return min(d, b.max)
}

func (b *backoff) reset() { b.cur = b.min }
