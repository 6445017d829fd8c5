package uplink

import (
	"context"
	"encoding/json"
	"errors"
	"log/slog"
	"maps"
	"net"
	"slices"
	"sort"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/csop/tbox/signer"
	mqtt "github.com/eclipse/paho.mqtt.golang"
)

// Message is one attestation in the outbox: its seq and its wire form
// (README §C1), published as is. Wire is not modified by the uplink and
// must not be modified by the outbox after Pending returns it.
type Message struct {
	Seq    uint64
	Digest [32]byte // the digest signed for it: what a receipt must name
	Wire   []byte
}

// Outbox is the durable queue of attestations the uplink drains.
type Outbox interface {
	// Pending returns up to limit unacked messages with seq > after,
	// oldest first.
	Pending(after uint64, limit int) ([]Message, error)
	// Ack records the collector's verified receipt: every seq <= r.Seq is
	// stored for good and may be removed; r is the car's proof of that.
	Ack(r signer.Receipt) error
	// Nack records the collector's refusal of seq, with its reason; the
	// message is kept.
	Nack(seq uint64, reason string) error
}

// Stats is a snapshot of the uplink for the diagnostic shell.
type Stats struct {
	Connected        bool
	ConnectedSince   time.Time // zero when not connected
	Attempts         uint64    // connection attempts
	Reconnects       uint64    // successful connections after the first
	LastConnectError error     // the last failed attempt or lost connection; nil if none yet
	LastConnectAt    time.Time // when LastConnectError happened

	Publishes   uint64 // attestations published (re-publishes included)
	Acks        uint64 // collector acks applied to the outbox
	LastAcked   uint64 // highest seq acked
	AckTimeouts uint64 // times the window was re-published for want of an ack
	InFlight    int    // published, not yet acked or nacked

	Nacks          uint64 // collector refusals received
	LastNackSeq    uint64
	LastNackReason string

	// Ignored counts the ack/nack payloads ignored, by kind (Ignored*
	// constants: oversize, malformed, forged, digest, unknown); none of
	// them changed anything on the flash.
	Ignored      map[string]uint64
	LastIgnored  string // the last one: topic, kind and why (outside text, escape it to show)
	OutboxErrors uint64 // failed Pending, Ack or Nack calls
}

// HealthReport is the retained JSON published on csop/v1/<device>/health
// at each connection, every HealthInterval, and with status "offline" at a
// clean stop. The broker publishes {"status":"offline","device":...} (the
// MQTT will, also retained) when the connection drops uncleanly.
type HealthReport struct {
	_ [0]func() // not comparable: no generated equality function (tboxd size)

	Status     string `json:"status"`   // "online" or "offline"
	Device     string `json:"device"`   // the device address
	Time       int64  `json:"time"`     // unix seconds, the T-Box's clock
	Uptime     int64  `json:"uptime_s"` // seconds since the uplink was made
	LastAcked  uint64 `json:"last_acked"`
	InFlight   int    `json:"in_flight"`
	Nacks      uint64 `json:"nacks"`
	Reconnects uint64 `json:"reconnects"`
	Agent      any    `json:"agent,omitempty"` // Config.Health(): version, outbox depth, ...
}

// Topics returns the MQTT topics of a device (README §C2).
func Topics(device string) (att, ack, nack, health string) {
	p := "csop/v1/" + device + "/"
	return p + "att", p + "ack", p + "nack", p + "health"
}

const (
	// stableAfter is how long a connection must last for the next
	// reconnect to start again from BackoffMin; a broker that accepts and
	// drops at once keeps the backoff growing.
	stableAfter = 5 * time.Second
	// outboxRetryDelay is the pause after a failed Pending.
	outboxRetryDelay = time.Second
	// maxQueuedNacks bounds the nacks waiting for the Run goroutine; more
	// are dropped (the message stays in flight, is re-published after
	// AckTimeout and refused again).
	maxQueuedNacks = 1024
	// goodbyeTimeout bounds the wait for the offline report at a stop.
	goodbyeTimeout = time.Second
	// connectLogEvery throttles the Warn log of a repeated connect error.
	connectLogEvery = time.Minute
)

// Uplink drains an Outbox to the broker and applies the collector's acks.
type Uplink struct {
	cfg     *resolved
	ob      Outbox
	log     *slog.Logger
	clock   clock
	backoff Backoff
	started time.Time
	topic   struct {
		_                      [0]func() // not comparable: no generated equality function (tboxd size)
		att, ack, nack, health string
	}
	will []byte

	wake     chan struct{} // Notify; one slot
	redial   chan struct{} // Reconnect; one slot
	retry    chan struct{} // RetryNacked; one slot
	inbox    inbox         // replies from the paho goroutine
	highSent atomic.Uint64 // highest seq ever published
	running  atomic.Bool

	mu            sync.Mutex
	st            Stats
	everConnected bool // the next connection is a reconnect

	// Owned by the Run goroutine.
	acked      uint64               // highest ack applied to the outbox
	nacked     map[uint64]time.Time // refused seq -> when to publish it again
	lastWarn   string               // the last connect error logged at Warn
	lastWarnAt time.Time
	quietFails int // failed attempts logged at Debug since

	devAddr      signer.Address
	ignoredLogAt map[string]time.Time // per kind; under mu
}

// New returns an Uplink for cfg draining ob. It validates cfg (see
// [Config.Validate]) but does not connect.
func New(cfg Config, ob Outbox) (*Uplink, error) {
	if ob == nil {
		return nil, ErrNoOutbox
	}
	r, err := cfg.resolve()
	if err != nil {
		return nil, err
	}
	if len(r.Collectors) == 0 {
		return nil, cfgErr("collector_addresses", "", ErrCollectors, nil, "missing; want the address(es) of the collector key(s) whose signed receipts may remove attestations")
	}
	dev, err := signer.ParseAddress(r.Device)
	if err != nil {
		return nil, cfgErr("device", r.Device, ErrDevice, err, "not an address")
	}
	u := &Uplink{
		cfg:     r,
		ob:      ob,
		log:     r.Logger,
		clock:   systemClock{},
		backoff: Backoff{Min: r.BackoffMin, Max: r.BackoffMax},
		wake:    make(chan struct{}, 1),
		redial:  make(chan struct{}, 1),
		retry:   make(chan struct{}, 1),
		inbox:   inbox{ready: make(chan struct{}, 1)},
		nacked:  make(map[uint64]time.Time),

		devAddr:      dev,
		ignoredLogAt: make(map[string]time.Time),
	}
	u.acked, u.st.LastAcked = r.AckedThrough, r.AckedThrough
	u.started = u.clock.Now()
	u.topic.att, u.topic.ack, u.topic.nack, u.topic.health = Topics(r.Device)
	// As json.Marshal writes the map {"status": "offline", "device": ...}
	// (keys sorted); the device is 0x and hex digits, validated above.
	u.will = []byte(`{"device":"` + r.Device + `","status":"offline"}`)
	return u, nil
}

// Notify tells the uplink that the outbox has something new. It never
// blocks: a wake-up already pending absorbs it.
func (u *Uplink) Notify() {
	select {
	case u.wake <- struct{}{}:
	default:
	}
}

// Reconnect asks the uplink to drop its connection and connect again at
// once, without waiting out the backoff (a technician's "reconnect"). It
// never blocks; a request already pending absorbs it. A connection made
// after the call satisfies it: while disconnected, the next attempt is
// made now. Nothing is lost: every unacked attestation is published again
// on the new connection.
func (u *Uplink) Reconnect() { signal(u.redial) }

// RetryNacked asks the uplink to publish the attestations the collector
// refused now, instead of after Config.NackRetry. It never blocks; while
// disconnected the retry happens on the next connection.
func (u *Uplink) RetryNacked() { signal(u.retry) }

// signal fills a one-slot channel unless it is full.
func signal(c chan struct{}) {
	select {
	case c <- struct{}{}:
	default:
	}
}

// errRedial ends a session on Reconnect's request.
var errRedial = errors.New("reconnect requested")

// Stats returns a snapshot of the uplink's counters.
func (u *Uplink) Stats() Stats {
	u.mu.Lock()
	defer u.mu.Unlock()
	st := u.st
	st.Ignored = maps.Clone(u.st.Ignored)
	return st
}

func (u *Uplink) stat(f func(*Stats)) {
	u.mu.Lock()
	f(&u.st)
	u.mu.Unlock()
}

// Run connects, drains the outbox and reconnects with backoff until ctx is
// done; then it publishes an offline health report, disconnects cleanly
// and returns nil. It returns ErrRunning if the Uplink is already running.
func (u *Uplink) Run(ctx context.Context) error {
	if !u.running.CompareAndSwap(false, true) {
		return ErrRunning
	}
	defer u.running.Store(false)
	attempt := 0
	for ctx.Err() == nil {
		up, err := u.session(ctx)
		if ctx.Err() != nil {
			break
		}
		if errors.Is(err, errRedial) {
			attempt = 0
			continue
		}
		if up >= stableAfter {
			attempt = 0
		}
		d := u.backoff.Delay(attempt)
		attempt++
		u.log.Debug("mqtt reconnect scheduled", "broker", u.cfg.Broker, "in", d.Round(time.Millisecond), "attempt", attempt, "err", err)
		select {
		case <-ctx.Done():
		case <-u.clock.After(d):
		case <-u.redial:
			attempt = 0
		}
	}
	return nil
}

// session is one MQTT connection's state.
type session struct {
	c           mqtt.Client
	lost        chan error
	cursor      uint64   // highest seq published (or skipped) in this pass
	inflight    []flight // in publish order
	nextHealth  time.Time
	outboxRetry time.Time // after a failed Pending: no Pending before this
}

type flight struct {
	seq uint64
	at  time.Time
}

func (u *Uplink) clientOptions(lost chan error) *mqtt.ClientOptions {
	c := u.cfg
	o := mqtt.NewClientOptions().
		AddBroker(c.Broker).
		SetClientID(c.Device).
		SetProtocolVersion(4).
		// The outbox is the source of truth and everything unacked is
		// re-published after a reconnect, so the broker keeps no session.
		SetCleanSession(true).
		SetAutoReconnect(false).
		SetConnectRetry(false).
		SetResumeSubs(false).
		SetOrderMatters(true).
		SetKeepAlive(c.KeepAlive).
		SetPingTimeout(min(c.KeepAlive/2, 10*time.Second)).
		SetConnectTimeout(c.ConnectTimeout).
		SetWriteTimeout(c.ConnectTimeout).
		SetDialer(&net.Dialer{Timeout: c.ConnectTimeout, KeepAlive: 30 * time.Second}).
		SetBinaryWill(u.topic.health, u.will, 0, true).
		SetConnectionLostHandler(func(_ mqtt.Client, err error) {
			select {
			case lost <- err:
			default:
			}
		})
	if c.tls != nil {
		o.SetTLSConfig(c.tls.Clone())
	}
	return o
}

// session runs one connection until it is lost or ctx is done, and
// returns how long it was up.
func (u *Uplink) session(ctx context.Context) (time.Duration, error) {
	lost := make(chan error, 1)
	c := mqtt.NewClient(u.clientOptions(lost))
	u.stat(func(s *Stats) { s.Attempts++ })
	tok := c.Connect()
	select {
	case <-tok.Done():
	case <-ctx.Done():
		<-tok.Done() // bounded by ConnectTimeout
		if tok.Error() == nil {
			c.Disconnect(0)
		}
		return 0, nil
	}
	if err := tok.Error(); err != nil {
		err = errorf("connect %s: %w", u.cfg.Broker, err)
		u.connectFailed(err)
		return 0, err
	}
	if err := u.subscribe(ctx, c, lost); err != nil {
		c.Disconnect(0)
		if ctx.Err() != nil {
			return 0, nil
		}
		u.connectFailed(err)
		return 0, err
	}
	since := u.clock.Now()
	u.mu.Lock()
	u.st.Connected, u.st.ConnectedSince = true, since
	if u.everConnected {
		u.st.Reconnects++
	}
	u.everConnected = true
	u.mu.Unlock()
	select {
	case <-u.redial: // this is the new connection that was asked for
	default:
	}
	u.log.Info("mqtt connected", "broker", u.cfg.Broker, "client_id", u.cfg.Device, "last_acked", u.acked)

	s := &session{c: c, lost: lost, cursor: u.acked}
	err := u.serve(ctx, s)
	up := u.clock.Now().Sub(since)
	u.stat(func(st *Stats) {
		st.Connected, st.ConnectedSince, st.InFlight = false, time.Time{}, 0
		if err != nil && !errors.Is(err, errRedial) {
			st.LastConnectError, st.LastConnectAt = err, u.clock.Now()
		}
	})
	switch {
	case errors.Is(err, errRedial):
		u.log.Info("mqtt reconnecting on request", "broker", u.cfg.Broker, "after", up.Round(time.Millisecond))
	case err != nil:
		u.log.Warn("mqtt connection lost", "broker", u.cfg.Broker, "after", up.Round(time.Millisecond), "err", err)
	}
	return up, err
}

// connectFailed records a failed attempt. A car may be offline for
// months, retrying every second: the same error is logged at Warn at most
// once per connectLogEvery, with the count of attempts in between.
func (u *Uplink) connectFailed(err error) {
	now := u.clock.Now()
	u.stat(func(s *Stats) { s.LastConnectError, s.LastConnectAt = err, now })
	if msg := err.Error(); msg != u.lastWarn || now.Sub(u.lastWarnAt) >= connectLogEvery {
		u.log.Warn("mqtt connect", "broker", u.cfg.Broker, "err", err, "failed_attempts_since_last_log", u.quietFails)
		u.lastWarn, u.lastWarnAt, u.quietFails = msg, now, 0
		return
	}
	u.quietFails++
	u.log.Debug("mqtt connect", "broker", u.cfg.Broker, "err", err)
}

// subscribe subscribes to the ack and nack topics at QoS 1 and waits for
// the SUBACK.
func (u *Uplink) subscribe(ctx context.Context, c mqtt.Client, lost chan error) error {
	tok := c.SubscribeMultiple(map[string]byte{u.topic.ack: 1, u.topic.nack: 1}, u.onReply)
	select {
	case <-tok.Done():
	case <-ctx.Done():
		return ctx.Err()
	case err := <-lost:
		return errorf("subscribe: connection lost: %w", err)
	case <-u.clock.After(u.cfg.ConnectTimeout):
		return errorf("subscribe %s: no SUBACK within %v", u.topic.ack, u.cfg.ConnectTimeout)
	}
	if err := tok.Error(); err != nil {
		return errorf("subscribe: %w", err)
	}
	if st, ok := tok.(*mqtt.SubscribeToken); ok {
		for topic, code := range st.Result() {
			if code > 2 {
				return errorf("subscribe %s: broker refused (return code %#x)", topic, code)
			}
		}
	}
	return nil
}

// serve publishes and applies replies until the connection is lost (an
// error) or ctx is done (nil, after a clean disconnect).
func (u *Uplink) serve(ctx context.Context, s *session) error {
	u.publishHealth(s, "online")
	for {
		if err := u.fill(s); err != nil {
			s.c.Disconnect(0)
			return err
		}
		u.stat(func(st *Stats) { st.InFlight = len(s.inflight) })
		select {
		case <-ctx.Done():
			u.goodbye(s)
			return nil
		case err := <-s.lost:
			return errorf("connection lost: %w", err)
		case <-u.wake:
		case <-u.redial:
			// A clean DISCONNECT: the broker drops the will, and the next
			// connection publishes "online" at once.
			s.c.Disconnect(0)
			return errRedial
		case <-u.retry:
			u.retryNacked()
		case <-u.inbox.ready:
			u.applyReplies(s)
		case <-u.clock.After(u.nextWait(s)):
			u.onTimer(s)
		}
	}
}

// fill publishes refused messages whose NackRetry has passed, then the
// oldest unpublished messages up to Window in flight. It returns an error
// only when the connection is unusable.
func (u *Uplink) fill(s *session) error {
	if !s.outboxRetry.IsZero() {
		return nil
	}
	now := u.clock.Now()
	var due []uint64
	for seq, at := range u.nacked {
		if !now.Before(at) && seq <= s.cursor { // the window below reaches the others
			due = append(due, seq)
		}
	}
	// sort.Sort, linked anyway, rather than a sort.Slice or a uint64
	// instance of slices.Sort, each of which links a sort of its own.
	sort.Sort(seqs(due))
	for i, seq := range due {
		if i > 0 && len(s.inflight) >= u.cfg.Window {
			break // one retry may exceed the window, not a flood of them
		}
		msgs, err := u.ob.Pending(seq-1, 1)
		if err != nil {
			u.outboxFailed(s, "pending", err)
			return nil
		}
		delete(u.nacked, seq)
		if len(msgs) == 0 || msgs[0].Seq != seq {
			continue // acked meanwhile
		}
		u.log.Info("republishing refused attestation", "seq", seq)
		if err := u.publish(s, msgs[0], now); err != nil {
			return err
		}
	}
	for len(s.inflight) < u.cfg.Window {
		msgs, err := u.ob.Pending(s.cursor, u.cfg.Window-len(s.inflight))
		if err != nil {
			u.outboxFailed(s, "pending", err)
			return nil
		}
		if len(msgs) == 0 {
			return nil
		}
		for _, m := range msgs {
			if m.Seq <= s.cursor {
				u.outboxFailed(s, "pending", errorf("seq %d after %d: want ascending seqs above %d", m.Seq, s.cursor, s.cursor))
				return nil
			}
			s.cursor = m.Seq
			if at, ok := u.nacked[m.Seq]; ok {
				if now.Before(at) {
					continue // refused: waits for NackRetry
				}
				delete(u.nacked, m.Seq)
			}
			if err := u.publish(s, m, now); err != nil {
				return err
			}
		}
	}
	return nil
}

func (u *Uplink) outboxFailed(s *session, op string, err error) {
	u.log.Error("outbox "+op, "err", err, "retry_in", outboxRetryDelay)
	u.stat(func(st *Stats) { st.OutboxErrors++ })
	if s != nil {
		s.outboxRetry = u.clock.Now().Add(outboxRetryDelay)
	}
}

// publish sends one attestation at QoS 1. The broker's PUBACK is not
// waited for: only the collector's ack counts.
func (u *Uplink) publish(s *session, m Message, now time.Time) error {
	if m.Seq > u.highSent.Load() {
		u.highSent.Store(m.Seq) // before the publish: the ack may beat us back
	}
	tok := s.c.Publish(u.topic.att, 1, false, m.Wire)
	select {
	case <-tok.Done():
		if err := tok.Error(); err != nil {
			return errorf("publish seq %d: %w", m.Seq, err)
		}
	default:
	}
	s.inflight = append(s.inflight, flight{seq: m.Seq, at: now})
	u.stat(func(st *Stats) { st.Publishes++ })
	return nil
}

// nextWait returns the time until the next timed duty: a health report,
// an ack timeout, a due nack retry, an outbox retry.
func (u *Uplink) nextWait(s *session) time.Duration {
	next := s.nextHealth
	if len(s.inflight) > 0 {
		next = earliest(next, s.inflight[0].at.Add(u.cfg.AckTimeout))
	}
	for _, at := range u.nacked {
		next = earliest(next, at)
	}
	if !s.outboxRetry.IsZero() {
		next = earliest(next, s.outboxRetry)
	}
	return max(next.Sub(u.clock.Now()), 0)
}

func earliest(a, b time.Time) time.Time {
	if b.Before(a) {
		return b
	}
	return a
}

func (u *Uplink) onTimer(s *session) {
	now := u.clock.Now()
	if !s.outboxRetry.IsZero() && !now.Before(s.outboxRetry) {
		s.outboxRetry = time.Time{}
	}
	if len(s.inflight) > 0 && !now.Before(s.inflight[0].at.Add(u.cfg.AckTimeout)) {
		u.log.Warn("no ack from the collector; publishing the unacked again",
			"oldest_seq", s.inflight[0].seq, "waited", now.Sub(s.inflight[0].at).Round(time.Millisecond), "from_seq", u.acked+1)
		s.inflight = s.inflight[:0]
		s.cursor = u.acked
		u.stat(func(st *Stats) { st.AckTimeouts++ })
	}
	if !now.Before(s.nextHealth) {
		u.publishHealth(s, "online")
	}
}

// applyReplies applies the verified acks and nacks the paho goroutine
// queued, each only when its digest is the outbox's record of its seq.
func (u *Uplink) applyReplies(s *session) {
	ack, nacks := u.inbox.take()
	if ack != nil && ack.Seq > u.acked {
		if ok := u.matchesRecord(u.topic.ack, ack.Seq, ack.Digest); ok {
			if err := u.ob.Ack(*ack); err != nil {
				// The ack is lost; the re-publish after AckTimeout brings it back.
				u.outboxFailed(nil, "ack", errorf("seq %d: %w", ack.Seq, err))
			} else {
				seq := ack.Seq
				u.acked = seq
				s.inflight = slices.DeleteFunc(s.inflight, func(f flight) bool { return f.seq <= seq })
				for n := range u.nacked {
					if n <= seq {
						delete(u.nacked, n)
					}
				}
				s.cursor = max(s.cursor, seq)
				u.stat(func(st *Stats) { st.Acks++; st.LastAcked = seq })
				u.log.Debug("collector receipt", "seq", seq)
			}
		}
	} else if ack != nil {
		u.log.Debug("receipt for an acked seq", "seq", ack.Seq, "acked", u.acked)
	}
	now := u.clock.Now()
	for _, n := range nacks {
		if n.Seq <= u.acked {
			u.log.Info("collector nack for an acked seq ignored", "seq", n.Seq, "acked", u.acked, "reason", strconv.Quote(n.Reason))
			continue
		}
		if !u.matchesRecord(u.topic.nack, n.Seq, n.Digest) {
			continue
		}
		reason := truncateUTF8(n.Reason, MaxReasonLen)
		if err := u.ob.Nack(n.Seq, reason); err != nil {
			u.outboxFailed(nil, "nack", errorf("seq %d: %w", n.Seq, err))
		}
		u.nacked[n.Seq] = now.Add(u.cfg.NackRetry)
		s.inflight = slices.DeleteFunc(s.inflight, func(f flight) bool { return f.seq == n.Seq })
		u.stat(func(st *Stats) { st.Nacks++; st.LastNackSeq, st.LastNackReason = n.Seq, reason })
		u.log.Warn("attestation refused by the collector", "seq", n.Seq, "reason", strconv.Quote(reason), "retry_in", u.cfg.NackRetry)
	}
}

// matchesRecord reports whether the outbox holds an unacked record of seq
// whose digest is digest; otherwise it counts and logs the reply as
// ignored. It only reads the outbox.
func (u *Uplink) matchesRecord(topic string, seq uint64, digest [32]byte) bool {
	msgs, err := u.ob.Pending(seq-1, 1)
	if err != nil {
		u.outboxFailed(nil, "pending", err)
		return false
	}
	if len(msgs) == 0 || msgs[0].Seq != seq {
		u.ignore(topic, IgnoredUnknown, errorf("%w: seq %d is not an unacked attestation of this device", ErrForeignReply, seq), nil)
		return false
	}
	if msgs[0].Digest != digest {
		u.ignore(topic, IgnoredDigest, errorf("%w: seq %d names digest 0x%x, this device signed 0x%x", ErrForeignReply, seq, digest, msgs[0].Digest), nil)
		return false
	}
	return true
}

// ignore counts an ignored reply and logs it, at most once per
// ignoredLogEvery per kind.
func (u *Uplink) ignore(topic, kind string, err error, p []byte) {
	now := u.clock.Now()
	u.mu.Lock()
	if u.st.Ignored == nil {
		u.st.Ignored = make(map[string]uint64)
	}
	u.st.Ignored[kind]++
	n := u.st.Ignored[kind]
	u.st.LastIgnored = topic + ": " + kind + ": " + err.Error()
	log := now.Sub(u.ignoredLogAt[kind]) >= ignoredLogEvery
	if log {
		u.ignoredLogAt[kind] = now
	}
	u.mu.Unlock()
	if log {
		u.log.Warn("collector reply ignored", "topic", topic, "kind", kind, "payload", excerpt(p), "err", err, "ignored_of_this_kind", n)
	}
}

// retryNacked makes every refused attestation due now; fill publishes them.
func (u *Uplink) retryNacked() {
	now := u.clock.Now()
	for seq := range u.nacked {
		u.nacked[seq] = now
	}
	u.log.Info("republishing refused attestations on request", "count", len(u.nacked))
}

// onReply runs on paho's goroutine: it checks the size, parses and
// verifies the signature, and queues; the Run goroutine checks the digest
// against the outbox and applies. Nothing here touches the flash.
func (u *Uplink) onReply(_ mqtt.Client, m mqtt.Message) {
	topic, p := m.Topic(), m.Payload()
	if topic != u.topic.ack && topic != u.topic.nack {
		return
	}
	ack, nack, kind, err := checkReply(p, topic == u.topic.nack, u.devAddr, u.cfg.ChainID, u.cfg.Collectors)
	if err != nil {
		if kind == IgnoredOversize {
			p = nil // not even quoted
		}
		u.ignore(topic, kind, err, p)
		return
	}
	if ack != nil {
		u.inbox.putAck(ack)
		return
	}
	if !u.inbox.putNack(nack) {
		u.log.Warn("collector nack dropped: queue full", "seq", nack.Seq)
	}
}

// publishHealth publishes the retained health report and schedules the next.
func (u *Uplink) publishHealth(s *session, status string) mqtt.Token {
	now := u.clock.Now()
	st := u.Stats()
	rep := HealthReport{
		Status:     status,
		Device:     u.cfg.Device,
		Time:       now.Unix(),
		Uptime:     int64(now.Sub(u.started) / time.Second),
		LastAcked:  u.acked,
		InFlight:   len(s.inflight),
		Nacks:      st.Nacks,
		Reconnects: st.Reconnects,
	}
	if u.cfg.Health != nil {
		rep.Agent = u.cfg.Health()
	}
	b, err := json.Marshal(rep)
	if err != nil {
		u.log.Error("health report: agent part not encodable", "err", err)
		rep.Agent = nil
		b, _ = json.Marshal(rep)
	}
	s.nextHealth = now.Add(u.cfg.HealthInterval)
	return s.c.Publish(u.topic.health, 0, true, b)
}

// goodbye publishes the offline report and disconnects cleanly (the broker
// then discards the will).
func (u *Uplink) goodbye(s *session) {
	tok := u.publishHealth(s, "offline")
	if !tok.WaitTimeout(goodbyeTimeout) {
		u.log.Warn("offline health report not sent", "within", goodbyeTimeout)
	}
	s.c.Disconnect(250)
	u.log.Info("mqtt disconnected", "broker", u.cfg.Broker)
}

// inbox hands verified replies from the paho goroutine to the Run
// goroutine without blocking either: acks are cumulative, so only the
// highest is kept; nacks queue up to maxQueuedNacks.
type inbox struct {
	mu    sync.Mutex
	ack   *signer.Receipt
	nacks []*signer.Refusal
	ready chan struct{} // one slot
}

func (b *inbox) putAck(r *signer.Receipt) {
	b.mu.Lock()
	if b.ack == nil || r.Seq > b.ack.Seq {
		b.ack = r
	}
	b.mu.Unlock()
	b.signal()
}

func (b *inbox) putNack(n *signer.Refusal) bool {
	b.mu.Lock()
	ok := len(b.nacks) < maxQueuedNacks
	if ok {
		b.nacks = append(b.nacks, n)
	}
	b.mu.Unlock()
	b.signal()
	return ok
}

func (b *inbox) signal() {
	select {
	case b.ready <- struct{}{}:
	default:
	}
}

func (b *inbox) take() (ack *signer.Receipt, nacks []*signer.Refusal) {
	b.mu.Lock()
	defer b.mu.Unlock()
	ack, nacks = b.ack, b.nacks
	b.ack, b.nacks = nil, nil
	return ack, nacks
}

// seqs sorts sequence numbers through sort.Sort.
type seqs []uint64

func (s seqs) Len() int           { return len(s) }
func (s seqs) Swap(i, j int)      { s[i], s[j] = s[j], s[i] }
func (s seqs) Less(i, j int) bool { return s[i] < s[j] }
