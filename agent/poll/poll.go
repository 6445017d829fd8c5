package poll

import (
	"context"
	"errors"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/csop/tbox/agent/profile"
	"github.com/csop/tbox/can/diag"
)

// Timing defaults (ISO 15765-4 allows P2 of 50 ms and P2* of 5 s; the
// answer wait is generous for a slow gateway).
const (
	DefaultTimeout = 500 * time.Millisecond // wait for an answer (P2)
	DefaultP2Star  = 5 * time.Second        // wait after "response pending" (P2*)
	MaxPending     = 3                      // "response pending" accepted per request
	SilentAfter    = 3                      // timeouts in a row before the ECU counts as silent
)

// ErrRate reports a request refused because it came sooner than
// profile.MinPollPeriod after the last one.
var ErrRate = errors.New("request rate bound")

// ErrTimeout reports an answer that did not come in time.
var ErrTimeout = errors.New("no answer in time")

// Transport carries the request and brings back answers: the payloads of
// whole ISO-TP messages from the response ID.
type Transport interface {
	// Send sends the request's payload.
	Send(payload []byte) error
	// Receive returns the next whole message from the response ID, or
	// ctx's error when ctx ends first.
	Receive(ctx context.Context) ([]byte, error)
}

// Stats counts the poller's work. Safe to read from any goroutine.
type Stats struct {
	_ [0]func() // not comparable: no generated equality function (tboxd size)

	Requests  atomic.Uint64 // requests sent
	Answers   atomic.Uint64 // positive answers
	Timeouts  atomic.Uint64 // requests without an answer in time
	Negative  atomic.Uint64 // negative answers (other than pending)
	Pending   atomic.Uint64 // "response pending" (0x78)
	Refused   atomic.Uint64 // answers that could not be read (short, malformed)
	SendErrs  atomic.Uint64 // requests the bus refused (interface down, ...)
	LastNRC   atomic.Uint32 // the last negative response code
	Silent    atomic.Bool   // SilentAfter timeouts in a row, and no answer since
	LastReply atomic.Int64  // unix nanos of the last positive answer
}

// Option configures a Poller.
type Option func(*Poller)

// WithTimeout sets the wait for an answer (P2) and after "response
// pending" (P2*).
func WithTimeout(p2, p2star time.Duration) Option {
	return func(p *Poller) { p.timeout, p.p2star = p2, p2star }
}

// WithLogger sets the logger.
func WithLogger(l *slog.Logger) Option { return func(p *Poller) { p.log = l } }

// Poller asks for the odometer at the profile's period.
type Poller struct {
	cfg     profile.Poll
	req     []byte
	tr      Transport
	timeout time.Duration
	p2star  time.Duration
	log     *slog.Logger
	S       Stats

	mu       sync.Mutex
	lastSend time.Time
}

// New returns a poller of the profile's odometer over tr. The request is
// built here, once, from the profile.
func New(cfg *profile.Poll, tr Transport, opts ...Option) *Poller {
	p := &Poller{cfg: *cfg, req: cfg.Payload(), tr: tr, timeout: DefaultTimeout, p2star: DefaultP2Star}
	for _, o := range opts {
		o(p)
	}
	if p.log == nil {
		p.log = slog.New(slog.DiscardHandler)
	}
	p.timeout = min(p.timeout, p.cfg.Period)
	if p.cfg.Period < profile.MinPollPeriod {
		p.cfg.Period = profile.MinPollPeriod
	}
	return p
}

// Period returns the period of the requests.
func (p *Poller) Period() time.Duration { return p.cfg.Period }

// Run asks once per period until ctx is done. It returns nil when ctx
// ends; a bus that refuses a request is counted and retried next period.
func (p *Poller) Run(ctx context.Context) error {
	tick := time.NewTicker(p.cfg.Period)
	defer tick.Stop()
	timeouts := 0
	for {
		err := p.ask(ctx)
		switch {
		case ctx.Err() != nil:
			return nil
		case errors.Is(err, ErrTimeout):
			timeouts++
			if timeouts == SilentAfter {
				p.S.Silent.Store(true)
				p.log.Warn("ECU silent: no answer to the odometer request", "timeouts", timeouts, "request_id", "0x"+p.cfg.Request.String())
			}
		case err == nil:
			if timeouts >= SilentAfter {
				p.log.Info("ECU answers again", "after_timeouts", timeouts)
			}
			timeouts = 0
			p.S.Silent.Store(false)
		default:
			p.log.Debug("odometer request", "err", err)
		}
		select {
		case <-ctx.Done():
			return nil
		case <-tick.C:
		}
	}
}

// send writes the request, never twice within MinPollPeriod.
func (p *Poller) send() error {
	p.mu.Lock()
	defer p.mu.Unlock()
	now := time.Now()
	if !p.lastSend.IsZero() && now.Sub(p.lastSend) < profile.MinPollPeriod {
		return ErrRate
	}
	p.lastSend = now
	if err := p.tr.Send(p.req); err != nil {
		p.S.SendErrs.Add(1)
		return errorf("request: %w", err)
	}
	p.S.Requests.Add(1)
	return nil
}

// ask makes one exchange: the request, then answers until the positive
// one, a final negative one, or the wait ends.
func (p *Poller) ask(ctx context.Context) error {
	if err := p.send(); err != nil {
		return err
	}
	deadline := time.Now().Add(p.timeout)
	pending := 0
	for {
		rctx, cancel := context.WithDeadline(ctx, deadline)
		msg, err := p.tr.Receive(rctx)
		cancel()
		if err != nil {
			if ctx.Err() != nil {
				return ctx.Err()
			}
			if errors.Is(err, context.DeadlineExceeded) {
				p.S.Timeouts.Add(1)
				return ErrTimeout
			}
			return errorf("answer: %w", err)
		}
		_, err = p.cfg.Query.Parse(msg)
		ne, negative := errors.AsType[*diag.NegativeError](err)
		switch {
		case err == nil:
			p.S.Answers.Add(1)
			p.S.LastReply.Store(time.Now().UnixNano())
			return nil
		case negative && ne.Pending():
			p.S.Pending.Add(1)
			if pending++; pending > MaxPending {
				p.S.Timeouts.Add(1)
				return errorf("%w: %d times response pending", ErrTimeout, pending)
			}
			deadline = time.Now().Add(p.p2star)
		case negative:
			p.S.Negative.Add(1)
			p.S.LastNRC.Store(uint32(ne.Code))
			return err
		case errors.Is(err, diag.ErrOther):
			// Another service's answer on the response ID: not ours.
		default:
			p.S.Refused.Add(1)
			return err
		}
	}
}
