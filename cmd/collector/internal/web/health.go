package web

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"time"
	"unicode/utf8"

	"github.com/csop/tbox/cmd/collector/internal/collect"
	"github.com/csop/tbox/signer"
)

// Why a health report was ignored; the label of
// csop_collector_health_ignored_total.
const (
	ignoredOversized    = "oversized"
	ignoredMalformed    = "malformed"
	ignoredUnregistered = "unregistered"
	ignoredTopic        = "topic"
)

var ignoredReasons = []string{ignoredMalformed, ignoredOversized, ignoredTopic, ignoredUnregistered}

// maxHealthString bounds the strings kept from a health report.
const maxHealthString = 64

// DefaultMaxSeen bounds the devices whose last-seen times are kept.
const DefaultMaxSeen = 1 << 20

// ErrHealth: a health report that cannot be read.
var ErrHealth = errors.New("bad health report")

// HealthReport is what the status page keeps of an agent's health report
// (README §C2): the rest of the report is the agent's business.
type HealthReport struct {
	Status  string // "online", "offline", ... as the agent wrote it (at most 64 bytes)
	Device  string // the "device" field, when present
	Version string // agent.version, when present (at most 64 bytes)
}

// ParseHealth reads a health report: one JSON object of at most
// [collect.MaxHealthBytes] bytes. Strings are kept up to 64 bytes of valid
// UTF-8.
func ParseHealth(payload []byte) (HealthReport, error) {
	var r HealthReport
	if len(payload) > collect.MaxHealthBytes {
		return r, fmt.Errorf("health report of %d bytes, at most %d: %w", len(payload), collect.MaxHealthBytes, ErrHealth)
	}
	p := bytes.TrimSpace(payload)
	if len(p) == 0 || p[0] != '{' {
		return r, fmt.Errorf("health report: expected a JSON object: %w", ErrHealth)
	}
	var w struct {
		Status *string `json:"status"`
		Device *string `json:"device"`
		Agent  *struct {
			Version *string `json:"version"`
		} `json:"agent"`
	}
	if err := json.Unmarshal(p, &w); err != nil {
		return r, fmt.Errorf("health report: %w: %v", ErrHealth, err)
	}
	if w.Status == nil {
		return r, fmt.Errorf("health report: no status: %w", ErrHealth)
	}
	r.Status = clip(*w.Status)
	if w.Device != nil {
		r.Device = clip(*w.Device)
	}
	if w.Agent != nil && w.Agent.Version != nil {
		r.Version = clip(*w.Agent.Version)
	}
	return r, nil
}

func clip(s string) string {
	if len(s) > maxHealthString {
		s = s[:maxHealthString]
	}
	return strings.ToValidUTF8(s, string(utf8.RuneError))
}

// seen is what is known of a device from MQTT since the collector started.
type seen struct {
	health   time.Time // last health report
	report   HealthReport
	attested time.Time // last attestation that passed the checks
}

// tracker keeps the last-seen times of registered devices, bounded by the
// allowlist and by max.
type tracker struct {
	allow collect.Allowlist
	max   int

	mu      sync.Mutex
	seen    map[signer.Address]*seen
	ignored map[string]uint64
	dropped uint64 // reports not kept because the table was full
}

func newTracker(allow collect.Allowlist, max int) *tracker {
	if max <= 0 {
		max = DefaultMaxSeen
	}
	return &tracker{allow: allow, max: max, seen: map[signer.Address]*seen{}, ignored: map[string]uint64{}}
}

// healthSegment returns the <device> segment of csop/v1/<device>/health,
// or ok false when topic is not a health topic.
func healthSegment(topic string) (seg string, ok bool) {
	rest, ok := strings.CutPrefix(topic, "csop/v1/")
	if !ok {
		return "", false
	}
	return strings.CutSuffix(rest, "/health")
}

// health takes one message on a health topic; a report that cannot be used
// is counted by reason and changes nothing.
func (tr *tracker) health(topic string, payload []byte, at time.Time) {
	seg, ok := healthSegment(topic)
	if !ok {
		return
	}
	dev, err := signer.ParseAddress(seg)
	switch {
	case err != nil || dev.String() != seg:
		tr.ignore(ignoredTopic)
		return
	case !tr.allow.Allowed(dev):
		tr.ignore(ignoredUnregistered)
		return
	case len(payload) > collect.MaxHealthBytes:
		tr.ignore(ignoredOversized)
		return
	}
	if len(payload) == 0 {
		return // a retained report being cleared
	}
	r, err := ParseHealth(payload)
	if err != nil {
		tr.ignore(ignoredMalformed)
		return
	}
	if r.Device != "" && !strings.EqualFold(r.Device, seg) {
		tr.ignore(ignoredTopic)
		return
	}
	tr.mu.Lock()
	defer tr.mu.Unlock()
	s := tr.entry(dev)
	if s == nil {
		return
	}
	s.health, s.report = at, r
}

// attested notes an attestation of dev that passed the checks.
func (tr *tracker) attested(dev signer.Address, at time.Time) {
	tr.mu.Lock()
	defer tr.mu.Unlock()
	if s := tr.entry(dev); s != nil {
		s.attested = at
	}
}

// entry returns dev's entry, made if there is room; called with mu held.
func (tr *tracker) entry(dev signer.Address) *seen {
	if s, ok := tr.seen[dev]; ok {
		return s
	}
	if len(tr.seen) >= tr.max {
		for d := range tr.seen { // devices removed from the registry make room
			if !tr.allow.Allowed(d) {
				delete(tr.seen, d)
			}
		}
		if len(tr.seen) >= tr.max {
			tr.dropped++
			return nil
		}
	}
	s := &seen{}
	tr.seen[dev] = s
	return s
}

func (tr *tracker) ignore(reason string) {
	tr.mu.Lock()
	tr.ignored[reason]++
	tr.mu.Unlock()
}

// lookup returns a copy of what is known of dev.
func (tr *tracker) lookup(dev signer.Address) (seen, bool) {
	tr.mu.Lock()
	defer tr.mu.Unlock()
	s, ok := tr.seen[dev]
	if !ok {
		return seen{}, false
	}
	return *s, true
}

// ignoredCounts returns the counts of ignored reports by reason.
func (tr *tracker) ignoredCounts() map[string]uint64 {
	tr.mu.Lock()
	defer tr.mu.Unlock()
	m := make(map[string]uint64, len(ignoredReasons))
	for _, r := range ignoredReasons {
		m[r] = tr.ignored[r]
	}
	return m
}

// quiet is a device that reported health but sent no attestation that
// passed the checks since the collector started.
type quiet struct {
	Address signer.Address
	Health  time.Time
	Status  string
	Version string
}

// quietDevices returns up to limit quiet devices, by address, and how many
// there are.
func (tr *tracker) quietDevices(limit int) ([]quiet, int) {
	tr.mu.Lock()
	var out []quiet
	for d, s := range tr.seen {
		if s.attested.IsZero() && !s.health.IsZero() && tr.allow.Allowed(d) {
			out = append(out, quiet{Address: d, Health: s.health, Status: s.report.Status, Version: s.report.Version})
		}
	}
	tr.mu.Unlock()
	slices.SortFunc(out, func(a, b quiet) int { return bytes.Compare(a.Address[:], b.Address[:]) })
	return out[:min(limit, len(out))], len(out)
}

// len returns the number of devices tracked.
func (tr *tracker) len() int {
	tr.mu.Lock()
	defer tr.mu.Unlock()
	return len(tr.seen)
}
