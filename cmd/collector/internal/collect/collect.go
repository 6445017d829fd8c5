// Package collect is the reference collector: it verifies attestations from MQTT, stores them in the ledger, acks or nacks them and runs the Stone draw.
//
// # Checks
//
// An attestation on csop/v1/<device>/att is accepted when, in this order:
//
//  1. it parses (signer.ParseWire) and <device> is its device;
//  2. the device is on the registry allowlist;
//  3. its fields and signature verify for the configured chain ID;
//  4. its seq is the device's stored head + 1 and its prev is the digest
//     stored for seq-1 (32 zero bytes for seq 1);
//  5. its span starts no earlier than the last batch of the previous span:
//     batch(N) >= batch(N-1) + batches(N-1) - 1 (spans are consecutive in
//     time and may share the batch where one ended and the next began);
//  6. its span ends no later than the batch after the current one
//     (clock skew): batch + batches - 1 <= now/600 + 1;
//  7. the meters are possible at the maximum speed: the tickets the span
//     gives its first batch (ceil(meters/batches), see package draw) plus
//     what the device's earlier spans already have in that batch do not
//     exceed max_speed_kmh × 1000 / 6 m (600 s at that speed); the other
//     batches of the span get at most as much. So no batch is credited with
//     more than one batch of driving at the maximum speed, however the
//     distance is split into spans.
//
// A seq at or below the head is a duplicate when its digest is the stored
// one (acked again, not stored twice) and a fork otherwise (nacked "fork",
// logged as an error and recorded; the stored attestation is never
// replaced). A prev that contradicts the stored seq-1 is also recorded as
// fork evidence. A seq beyond head + 1 is nacked "gap: expected seq N".
//
// # Acks
//
// Messages are handled in groups (up to Config.MaxGroup, or what arrives
// within Config.MaxDelay of the first): the checks that need no state run
// first, then the chain checks and the writes of the whole group run in one
// bbolt transaction, and only after it commits are acks and nacks
// published. An ack is cumulative: its seq N is the device's highest
// stored seq, and every seq <= N is stored. Acks and nacks are signed
// receipts and refusals (receipts.go); acks are retained.
//
// # Shared subscriptions
//
// The collector subscribes to $share/collectors/csop/v1/+/att, so several
// collectors on one broker split the messages. They must share one store:
// the chain checks read what the others wrote. A bbolt file is single
// process, so collectors splitting one broker's load run in one process on
// one [ledger.Ledger] (bbolt serializes their write transactions), or use a
// shared database in a deployment beyond this reference.
package collect

import (
	"encoding/json"
	"fmt"
	"log/slog"
	"strings"
	"sync/atomic"
	"time"

	"github.com/csop/tbox/cmd/collector/internal/draw"
	"github.com/csop/tbox/cmd/collector/internal/ledger"
	"github.com/csop/tbox/signer"
)

// Defaults for zero Config fields.
const (
	DefaultMaxSpeedKmh = 300
	DefaultWinners     = 100
	DefaultGrace       = time.Hour
	DefaultMaxGroup    = 256
	DefaultMaxDelay    = 5 * time.Millisecond
	DefaultDrawEvery   = time.Minute
)

// maxReason bounds a nack reason.
const maxReason = 512

// Config configures a Collector. Zero fields take the defaults.
type Config struct {
	ChainID     uint64
	Allow       Allowlist
	MaxSpeedKmh uint64 // DefaultMaxSpeedKmh if zero

	Seed      draw.Seed
	Winners   int           // N winning tickets per batch; DefaultWinners if zero
	Grace     time.Duration // a batch is drawn this long after its end (zero: at its end; DefaultGrace is the configuration's default)
	DrawEvery time.Duration // how often closed batches are looked for; DefaultDrawEvery if zero

	MaxGroup int           // messages per transaction; DefaultMaxGroup if zero
	MaxDelay time.Duration // wait for more messages after the first; DefaultMaxDelay if zero

	Now func() time.Time // the clock; time.Now if nil

	// Signer signs every ack and nack Run publishes (signing_key, see
	// receipts.go); Run refuses to start without one.
	Signer signer.Signer
}

// Collector verifies, stores and answers attestations. It is safe for
// concurrent use: several collectors may share one ledger.
type Collector struct {
	l   *ledger.Ledger
	cfg Config
	log *slog.Logger

	received, accepted, duplicates, refused atomic.Uint64
	subscribed                              atomic.Bool
}

// Subscribed reports whether Run is connected to the broker and subscribed.
func (c *Collector) Subscribed() bool { return c.subscribed.Load() }

// Counts are a collector's message counters since it was made.
type Counts struct {
	Received   uint64 // messages handled (committed groups only)
	Accepted   uint64 // attestations stored
	Duplicates uint64 // attestations already stored, acked again
	Refused    uint64 // nacks
}

// Counts returns the counters.
func (c *Collector) Counts() Counts {
	return Counts{c.received.Load(), c.accepted.Load(), c.duplicates.Load(), c.refused.Load()}
}

// New returns a collector storing into l. The ledger's chain ID must be
// cfg.ChainID.
func New(l *ledger.Ledger, cfg Config, log *slog.Logger) (*Collector, error) {
	if cfg.Allow == nil {
		return nil, fmt.Errorf("collector: no allowlist")
	}
	if l.ChainID() != cfg.ChainID {
		return nil, fmt.Errorf("collector: chain ID %d, ledger %s holds chain ID %d: %w", cfg.ChainID, l.Path(), l.ChainID(), ledger.ErrChainID)
	}
	if cfg.MaxSpeedKmh == 0 {
		cfg.MaxSpeedKmh = DefaultMaxSpeedKmh
	}
	if cfg.Winners <= 0 {
		cfg.Winners = DefaultWinners
	}
	if cfg.DrawEvery <= 0 {
		cfg.DrawEvery = DefaultDrawEvery
	}
	if cfg.MaxGroup <= 0 {
		cfg.MaxGroup = DefaultMaxGroup
	}
	if cfg.MaxDelay <= 0 {
		cfg.MaxDelay = DefaultMaxDelay
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return &Collector{l: l, cfg: cfg, log: log}, nil
}

// Message is one MQTT message received.
type Message struct {
	Topic   string
	Payload []byte
}

// Reply is an ack or a nack to publish.
type Reply struct {
	Topic string // csop/v1/<device>/ack or .../nack
	Seq   uint64
	// Digest is the digest signed for the device's attestation Seq: the
	// stored head's for an ack, the refused attestation's for a nack (zero
	// when the payload was no attestation).
	Digest [32]byte
	Err    error // nil for an ack; the reason for a nack
}

// Ack reports whether r is an ack.
func (r Reply) Ack() bool { return r.Err == nil }

// Payload returns {"seq":N} for an ack, {"seq":N,"reason":"..."} for a nack.
func (r Reply) Payload() []byte {
	if r.Err == nil {
		b, _ := json.Marshal(struct {
			Seq uint64 `json:"seq"`
		}{r.Seq})
		return b
	}
	reason := r.Err.Error()
	if len(reason) > maxReason {
		reason = strings.ToValidUTF8(reason[:maxReason], "") + "..."
	}
	b, _ := json.Marshal(struct {
		Seq    uint64 `json:"seq"`
		Reason string `json:"reason"`
	}{r.Seq, reason})
	return b
}

// SubscribeTopic is the shared subscription the collectors split.
const SubscribeTopic = "$share/collectors/csop/v1/+/att"

// topicDevice returns the <device> of csop/v1/<device>/att.
func topicDevice(topic string) (seg string, dev signer.Address, ok bool) {
	parts := strings.Split(topic, "/")
	if len(parts) != 4 || parts[0] != "csop" || parts[1] != "v1" || parts[3] != "att" {
		return "", dev, false
	}
	dev, err := signer.ParseAddress(parts[2])
	if err != nil {
		return "", dev, false
	}
	return parts[2], dev, true
}

// candidate is a message that passed the stateless checks.
type candidate struct {
	seg    string
	a      *signer.Attestation
	digest [32]byte
	wire   []byte
	dup    bool // set by check: stored before
}

// Process handles a group of messages: it checks each, stores the accepted
// ones in one transaction, and returns the replies to publish once that
// transaction has committed: the nacks in message order, then one
// cumulative ack per device that had an attestation accepted or repeated.
// Messages on a topic that names no device get no reply (they are logged).
// An error means the transaction failed: nothing of the group is stored
// and nothing should be published (the devices will send again).
func (c *Collector) Process(msgs []Message) ([]Reply, error) {
	var replies []Reply
	cands := make([]*candidate, 0, len(msgs))
	for _, m := range msgs {
		cand, nack := c.precheck(m)
		if nack != nil {
			replies = append(replies, *nack)
		}
		if cand != nil {
			cands = append(cands, cand)
		}
	}
	var chainReplies []Reply
	var accepted, dups uint64
	if len(cands) > 0 {
		err := c.l.Update(func(tx *ledger.Tx) error {
			chainReplies, accepted, dups = chainReplies[:0], 0, 0
			var ackOrder []signer.Address
			ackSeg := map[signer.Address]string{}
			for _, cd := range cands {
				nack, stored, err := c.decide(tx, cd)
				if err != nil {
					return err
				}
				if stored {
					accepted++
				} else if nack == nil {
					dups++
				}
				if nack != nil {
					chainReplies = append(chainReplies, *nack)
					continue
				}
				if _, ok := ackSeg[cd.a.Device]; !ok {
					ackOrder = append(ackOrder, cd.a.Device)
					ackSeg[cd.a.Device] = cd.seg
				}
			}
			for _, dev := range ackOrder {
				h, err := tx.Head(dev)
				if err != nil {
					return err
				}
				chainReplies = append(chainReplies, Reply{Topic: "csop/v1/" + ackSeg[dev] + "/ack", Seq: h.Seq, Digest: h.Digest})
			}
			return nil
		})
		if err != nil {
			return nil, fmt.Errorf("ledger commit of %d attestations: %w", len(cands), err)
		}
	}
	c.received.Add(uint64(len(msgs)))
	c.accepted.Add(accepted)
	c.duplicates.Add(dups)
	replies = append(replies, chainReplies...)
	for _, r := range replies {
		if r.Err != nil {
			c.refused.Add(1)
		}
	}
	return replies, nil
}

// precheck runs the checks that need no stored state: topic, wire form,
// allowlist, fields and signature.
func (c *Collector) precheck(m Message) (*candidate, *Reply) {
	seg, tdev, ok := topicDevice(m.Topic)
	if !ok {
		c.log.Warn("message on a topic naming no device, ignored", "topic", m.Topic, "bytes", len(m.Payload))
		return nil, nil
	}
	var digest [32]byte // of the refused attestation, for the signed refusal
	nack := func(seq uint64, err error) *Reply {
		c.log.Info("attestation refused", "device", seg, "seq", seq, "reason", err.Error())
		return &Reply{Topic: "csop/v1/" + seg + "/nack", Seq: seq, Digest: digest, Err: err}
	}
	a, err := signer.ParseWire(m.Payload)
	if err != nil {
		return nil, nack(0, err)
	}
	digest = signer.Digest(c.cfg.ChainID, a)
	if a.Device != tdev || seg != a.Device.String() {
		return nil, nack(a.Seq, &refusal{ErrTopic, fmt.Sprintf("%v: topic names device %s, attestation is from %s", ErrTopic, seg, a.Device)})
	}
	if !c.cfg.Allow.Allowed(a.Device) {
		return nil, nack(a.Seq, &refusal{ErrUnknownDevice, fmt.Sprintf("%v: %s is not on the registry allowlist", ErrUnknownDevice, a.Device)})
	}
	if err := signer.Verify(c.cfg.ChainID, a); err != nil {
		return nil, nack(a.Seq, err)
	}
	return &candidate{seg: seg, a: a, digest: digest, wire: m.Payload}, nil
}

// decide runs the chain, batch and plausibility checks of one candidate
// inside the group's transaction and appends it when it passes. It returns
// a nack, or nil for an ack, and whether it stored the attestation now (an
// ack without storing is a duplicate); an error aborts the transaction.
func (c *Collector) decide(tx *ledger.Tx, cd *candidate) (*Reply, bool, error) {
	nack, err := c.check(tx, cd)
	if err != nil || nack != nil || cd.dup {
		return nack, false, err
	}
	if err := tx.Append(cd.a, cd.digest, cd.wire); err != nil {
		return nil, false, err
	}
	c.log.Debug("attestation stored", "device", cd.a.Device, "seq", cd.a.Seq, "batch", cd.a.Batch, "meters", cd.a.Meters)
	return nil, true, nil
}

// check runs the checks that need the stored state; it sets cd.dup for a
// duplicate.
func (c *Collector) check(tx *ledger.Tx, cd *candidate) (*Reply, error) {
	a := cd.a
	nack := func(kind error, format string, args ...any) *Reply {
		err := &refusal{kind, kind.Error() + ": " + fmt.Sprintf(format, args...)}
		c.log.Info("attestation refused", "device", a.Device, "seq", a.Seq, "reason", err.msg)
		return &Reply{Topic: "csop/v1/" + cd.seg + "/nack", Seq: a.Seq, Digest: cd.digest, Err: err}
	}
	h, err := tx.Head(a.Device)
	if err != nil {
		return nil, err
	}
	if a.Seq <= h.Seq {
		stored, _, ok := tx.Stored(a.Device, a.Seq)
		if !ok {
			return nil, fmt.Errorf("device %s: seq %d missing below head %d: %w", a.Device, a.Seq, h.Seq, ledger.ErrCorrupt)
		}
		if stored == cd.digest {
			c.log.Debug("duplicate attestation, acked again", "device", a.Device, "seq", a.Seq)
			cd.dup = true
			return nil, nil
		}
		if err := c.recordFork(tx, cd, "seq", stored); err != nil {
			return nil, err
		}
		return nack(ErrFork, "seq %d is stored with digest 0x%x; this one has digest 0x%x", a.Seq, stored, cd.digest), nil
	}
	if a.Seq > h.Seq+1 {
		return nack(ErrGap, "expected seq %d", h.Seq+1), nil
	}
	if a.Prev != h.Digest { // h.Digest is zero for a device never seen
		if h.Seq == 0 {
			return nack(signer.ErrPrevMismatch, "seq 1 has prev 0x%x, expected 32 zero bytes", a.Prev), nil
		}
		if err := c.recordFork(tx, cd, "prev", h.Digest); err != nil {
			return nil, err
		}
		return nack(signer.ErrPrevMismatch, "prev 0x%x, but seq %d is stored with digest 0x%x (a fork)", a.Prev, h.Seq, h.Digest), nil
	}
	if h.Seq > 0 && a.Batch < h.LastBatch() {
		return nack(ErrBatchOrder, "span starts in batch %d, before batch %d where seq %d's span (batch %d, %d batches) ended",
			a.Batch, h.LastBatch(), h.Seq, h.Batch, h.Batches), nil
	}
	now := draw.BatchOf(c.cfg.Now().Unix())
	if a.Batch > now+1 || uint64(a.Batches)-1 > now+1-a.Batch {
		return nack(ErrFuture, "span batch %d + %d batches ends after batch %d (now is batch %d)", a.Batch, a.Batches, now+1, now), nil
	}
	limit := c.cfg.MaxSpeedKmh * 1000 / 6 // meters in 600 s
	first := draw.Share(a.Batch, a.Batches, a.Meters, a.Batch)
	credited := h.CreditedIn(a.Batch)
	if first > limit || credited > limit-first {
		if credited > 0 {
			return nack(ErrImplausible, "%d m over %d batch(es) puts %d m in batch %d, which already has %d m from earlier spans; at most %d m per batch at %d km/h",
				a.Meters, a.Batches, first, a.Batch, credited, limit, c.cfg.MaxSpeedKmh), nil
		}
		return nack(ErrImplausible, "%d m over %d batch(es) is more than %d m per batch at %d km/h", a.Meters, a.Batches, limit, c.cfg.MaxSpeedKmh), nil
	}
	return nil, nil
}

func (c *Collector) recordFork(tx *ledger.Tx, cd *candidate, kind string, stored [32]byte) error {
	f := ledger.Fork{
		Device: cd.a.Device, Seq: cd.a.Seq, Kind: kind,
		Digest: fmt.Sprintf("0x%x", cd.digest), Stored: fmt.Sprintf("0x%x", stored),
		Wire: string(cd.wire), Received: c.cfg.Now().UTC(),
	}
	isNew, err := tx.RecordFork(f, cd.digest)
	if err != nil {
		return fmt.Errorf("fork record: %w", err)
	}
	if isNew {
		c.log.Error("fork: device signed two attestations where its chain allows one", "device", cd.a.Device, "seq", cd.a.Seq,
			"kind", kind, "digest", f.Digest, "stored", f.Stored)
	}
	return nil
}
