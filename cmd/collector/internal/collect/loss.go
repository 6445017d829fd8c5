package collect

import (
	"encoding/json"
	"errors"
	"fmt"

	"github.com/csop/tbox/cmd/collector/internal/ledger"
	"github.com/csop/tbox/signer"
)

// HealthTopic is the subscription for the agents' retained health
// reports, read for loss announcements. It is not shared: retained
// messages are not delivered to shared subscriptions, and every collector
// may record an announcement (recording it again changes nothing).
const HealthTopic = "csop/v1/+/health"

// MaxHealthBytes bounds a health report the collector parses.
const MaxHealthBytes = 16 << 10

// maxLossSpan bounds an announced loss: more seqs than an outbox can hold
// is not a loss report but an error (or an attempt to skip a chain ahead).
const maxLossSpan = 10_000_000

// ErrLoss: a health report whose loss announcement cannot be used.
var ErrLoss = errors.New("bad loss announcement")

// announcement is a device's loss announcement from its health report.
type announcement struct {
	dev      signer.Address
	from, to uint64
}

// ParseLoss reads the loss announcement of a health report (README §C2;
// the agent's part is documented by the project):
//
//	{"status":"online","device":"0x...",...,"maybe_lost":{"from":F,"to":T}}
//
// The object may also sit in the report's "agent" part. ok is false when
// the report announces nothing; an error names what is wrong with an
// announcement that is there.
func ParseLoss(payload []byte) (from, to uint64, ok bool, err error) {
	if len(payload) > MaxHealthBytes {
		return 0, 0, false, fmt.Errorf("health report of %d bytes, at most %d: %w", len(payload), MaxHealthBytes, ErrLoss)
	}
	type loss struct {
		From *uint64 `json:"from"`
		To   *uint64 `json:"to"`
	}
	var r struct {
		MaybeLost *loss           `json:"maybe_lost"`
		Agent     json.RawMessage `json:"agent"`
	}
	if err := json.Unmarshal(payload, &r); err != nil {
		return 0, 0, false, fmt.Errorf("health report: %w: %v", ErrLoss, err)
	}
	if r.MaybeLost == nil && len(r.Agent) > 0 && r.Agent[0] == '{' {
		var ag struct {
			MaybeLost *loss `json:"maybe_lost"`
		}
		if err := json.Unmarshal(r.Agent, &ag); err != nil {
			return 0, 0, false, fmt.Errorf("health report agent part: %w: %v", ErrLoss, err)
		}
		r.MaybeLost = ag.MaybeLost
	}
	l := r.MaybeLost
	if l == nil {
		return 0, 0, false, nil
	}
	switch {
	case l.From == nil || l.To == nil:
		return 0, 0, false, fmt.Errorf("maybe_lost needs from and to: %w", ErrLoss)
	case *l.From == 0 || *l.To < *l.From:
		return 0, 0, false, fmt.Errorf("maybe_lost from %d to %d, expected 1 <= from <= to: %w", *l.From, *l.To, ErrLoss)
	case *l.To-*l.From >= maxLossSpan:
		return 0, 0, false, fmt.Errorf("maybe_lost from %d to %d is more than %d seqs: %w", *l.From, *l.To, maxLossSpan, ErrLoss)
	}
	return *l.From, *l.To, true, nil
}

// healthMessage reports whether m is a health report, and the loss it
// announces for a device on the allowlist, if any.
func (c *Collector) healthMessage(m Message) (*announcement, bool) {
	seg, kind, ok := splitTopic(m.Topic)
	if !ok || kind != "health" {
		return nil, false
	}
	dev, ok := parseAddress(seg)
	if !ok || !isAddressText(seg, dev) || !c.cfg.Allow.Allowed(dev) {
		return nil, true
	}
	from, to, ok, err := ParseLoss(m.Payload)
	if err != nil {
		c.log.Warn("health report ignored", "device", dev, "err", err)
		return nil, true
	}
	if !ok {
		return nil, true
	}
	return &announcement{dev: dev, from: from, to: to}, true
}

// announce records a loss announcement and gives up a gap it covers.
func (c *Collector) announce(tx ledger.Tx, an announcement) (outcome, error) {
	var o outcome
	changed, err := tx.AnnounceLoss(an.dev, ledger.Loss{From: an.from, To: an.to, At: c.cfg.Now().UTC()})
	if err != nil {
		return o, err
	}
	if changed {
		c.log.Warn("device announced seqs that may be lost (outbox re-seeded)", "device", an.dev, "from", an.from, "to", an.to)
	}
	o, err = c.drain(tx, an.dev)
	o.ack = o.stored > 0
	return o, err
}
