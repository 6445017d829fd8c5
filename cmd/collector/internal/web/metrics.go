package web

import (
	"errors"
	"fmt"
	"io"
	"math"
	"runtime"
	"sort"
	"strconv"
	"strings"
	"sync/atomic"
	"time"

	"github.com/csop/tbox/cmd/collector/internal/collect"
	"github.com/csop/tbox/signer"
)

// histogram is a Prometheus histogram of durations with fixed buckets,
// safe for concurrent use.
type histogram struct {
	bounds []float64       // upper bounds in seconds, ascending
	counts []atomic.Uint64 // per bucket (not cumulative); the last is +Inf
	sumNs  atomic.Uint64
}

func newHistogram(bounds ...float64) *histogram {
	return &histogram{bounds: bounds, counts: make([]atomic.Uint64, len(bounds)+1)}
}

func (h *histogram) observe(d time.Duration) {
	if d < 0 {
		d = 0
	}
	s := d.Seconds()
	i := sort.SearchFloat64s(h.bounds, s) // first bound >= s: le is inclusive
	h.counts[i].Add(1)
	h.sumNs.Add(uint64(d))
}

// write writes the histogram's samples, with labels (`op="commit"`, or "").
func (h *histogram) write(w io.Writer, name, labels string) {
	sep := ""
	if labels != "" {
		sep = ","
	}
	var cum uint64
	for i, b := range h.bounds {
		cum += h.counts[i].Load()
		fmt.Fprintf(w, "%s_bucket{%s%sle=%q} %d\n", name, labels, sep, strconv.FormatFloat(b, 'g', -1, 64), cum)
	}
	cum += h.counts[len(h.bounds)].Load()
	fmt.Fprintf(w, "%s_bucket{%s%sle=\"+Inf\"} %d\n", name, labels, sep, cum)
	br := ""
	if labels != "" {
		br = "{" + labels + "}"
	}
	fmt.Fprintf(w, "%s_sum%s %s\n", name, br, strconv.FormatFloat(float64(h.sumNs.Load())/1e9, 'g', -1, 64))
	fmt.Fprintf(w, "%s_count%s %d\n", name, br, cum)
}

// Refusal reasons, the label of csop_collector_refused_total: the first
// sentinel the nack's reason matches (errors.Is), "other" for none.
var refusalReasons = []struct {
	err   error
	label string
}{
	{signer.ErrMalformed, "malformed"},
	{signer.ErrUnknownVersion, "unknown_version"},
	{signer.ErrUnknownFlags, "unknown_flags"},
	{signer.ErrBadModes, "bad_modes"},
	{signer.ErrModesSum, "modes_sum"},
	{signer.ErrBadSignature, "bad_signature"},
	{signer.ErrHighS, "high_s"},
	{signer.ErrSignerMismatch, "signer_mismatch"},
	{signer.ErrPrevMismatch, "prev_mismatch"},
	{collect.ErrTopic, "topic"},
	{collect.ErrUnknownDevice, "unknown_device"},
	{collect.ErrFork, "fork"},
	{collect.ErrBroken, "chain_break"},
}

const otherReason = "other"

// RefusalReason returns the metric label for a nack's reason.
func RefusalReason(err error) string {
	for _, r := range refusalReasons {
		if errors.Is(err, r.err) {
			return r.label
		}
	}
	return otherReason
}

// metrics are the counters and histograms the Observer keeps.
type metrics struct {
	attMsgs, healthMsgs, otherMsgs atomic.Uint64
	groups, groupErrors            atomic.Uint64
	acks                           atomic.Uint64
	refused                        map[string]*atomic.Uint64 // fixed keys: refusalReasons and "other"
	verify                         *histogram
	commit                         *histogram
	read                           *histogram // the status page's ledger reads
}

func newMetrics() *metrics {
	m := &metrics{
		refused: map[string]*atomic.Uint64{otherReason: new(atomic.Uint64)},
		verify:  newHistogram(0.00005, 0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.1),
		commit:  newHistogram(0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 10),
		read:    newHistogram(0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 10),
	}
	for _, r := range refusalReasons {
		m.refused[r.label] = new(atomic.Uint64)
	}
	return m
}

// Counters is what the running collector counts itself.
type Counters interface {
	Counts() collect.Counts
	Subscribed() bool
	KeyCache() collect.KeyCache
}

// writeMetrics writes the Prometheus text exposition format (version
// 0.0.4).
func (s *Server) writeMetrics(w io.Writer) {
	m := s.m
	var c collect.Counts
	var kc collect.KeyCache
	subscribed := false
	if cs := s.counters.Load(); cs != nil {
		c = (*cs).Counts()
		subscribed = (*cs).Subscribed()
		kc = (*cs).KeyCache()
	}
	counter := func(name, help string, samples ...string) {
		fmt.Fprintf(w, "# HELP %s %s\n# TYPE %s counter\n", name, help, name)
		for _, line := range samples {
			fmt.Fprintln(w, line)
		}
	}
	gauge := func(name, help string, v float64) {
		fmt.Fprintf(w, "# HELP %s %s\n# TYPE %s gauge\n%s %s\n", name, help, name, name, strconv.FormatFloat(v, 'g', -1, 64))
	}
	u := func(name string, v uint64) string { return name + " " + strconv.FormatUint(v, 10) }
	counter("csop_collector_received_total", "MQTT messages received and handled, by topic kind.",
		u(`csop_collector_received_total{topic="att"}`, m.attMsgs.Load()),
		u(`csop_collector_received_total{topic="health"}`, m.healthMsgs.Load()),
		u(`csop_collector_received_total{topic="other"}`, m.otherMsgs.Load()))
	counter("csop_collector_stored_total", "Attestations stored in the ledger.", u("csop_collector_stored_total", c.Accepted))
	counter("csop_collector_duplicates_total", "Copies of stored attestations, receipted again.", u("csop_collector_duplicates_total", c.Duplicates))
	counter("csop_collector_ineligible_total", "Attestations stored with an ineligible verdict.", u("csop_collector_ineligible_total", c.Ineligible))
	counter("csop_collector_held_total", "Attestations held beyond a gap in their chain.", u("csop_collector_held_total", c.Held))
	counter("csop_collector_breaks_total", "Chain breaks recorded.", u("csop_collector_breaks_total", c.Breaks))
	counter("csop_collector_acks_total", "Receipts (acks) to publish.", u("csop_collector_acks_total", m.acks.Load()))
	labels := make([]string, 0, len(m.refused))
	for l := range m.refused {
		labels = append(labels, l)
	}
	sort.Strings(labels)
	var refused []string
	for _, l := range labels {
		refused = append(refused, u(`csop_collector_refused_total{reason="`+l+`"}`, m.refused[l].Load()))
	}
	counter("csop_collector_refused_total", "Attestations refused (nacked), by reason.", refused...)
	var ignored []string
	ic := s.seen.ignoredCounts()
	for _, r := range ignoredReasons {
		ignored = append(ignored, u(`csop_collector_health_ignored_total{reason="`+r+`"}`, ic[r]))
	}
	counter("csop_collector_health_ignored_total", "Health reports ignored, by reason.", ignored...)
	counter("csop_collector_groups_total", "Groups of messages handled in one ledger transaction.", u("csop_collector_groups_total", m.groups.Load()))
	counter("csop_collector_ledger_errors_total", "Ledger transactions that failed (nothing of the group stored).", u("csop_collector_ledger_errors_total", m.groupErrors.Load()))
	fmt.Fprintf(w, "# HELP csop_collector_verify_seconds Stateless checks of one attestation: parse, digest, signature recovery.\n# TYPE csop_collector_verify_seconds histogram\n")
	m.verify.write(w, "csop_collector_verify_seconds", "")
	fmt.Fprintf(w, "# HELP csop_collector_ledger_seconds Ledger latency: commit of one group's transaction, read of the status page.\n# TYPE csop_collector_ledger_seconds histogram\n")
	m.commit.write(w, "csop_collector_ledger_seconds", `op="commit"`)
	m.read.write(w, "csop_collector_ledger_seconds", `op="read"`)
	sub := 0.0
	if subscribed {
		sub = 1
	}
	counter("csop_collector_signature_checks_total", "Signature checks, by path: a device's table, its cached bare key, or recovery (a device not cached or a signature its cached key does not show, refusals included); many recoveries of known devices mean key_cache is smaller than the fleet.",
		u(`csop_collector_signature_checks_total{path="table"}`, kc.TableHits),
		u(`csop_collector_signature_checks_total{path="key"}`, kc.KeyHits),
		u(`csop_collector_signature_checks_total{path="recovery"}`, kc.Recovered))
	fmt.Fprintf(w, "# HELP csop_collector_key_cache_devices Devices in the signature check's caches, by tier (key_cache, table_cache).\n# TYPE csop_collector_key_cache_devices gauge\n")
	fmt.Fprintf(w, "csop_collector_key_cache_devices{tier=\"keys\"} %d\ncsop_collector_key_cache_devices{tier=\"tables\"} %d\n", kc.Keys, kc.Tables)
	gauge("csop_collector_subscribed", "1 when connected to the broker and subscribed.", sub)
	gauge("csop_collector_devices_seen", "Registered devices seen on MQTT since start (health or attestation).", float64(s.seen.len()))
	gauge("csop_collector_start_time_seconds", "Unix time the collector started.", math.Floor(float64(s.start.UnixNano())/1e9))
	gauge("go_goroutines", "Goroutines of the collector process (a leak shows as growth under steady load).", float64(runtime.NumGoroutine()))
}

// Observe implements [collect.Observer]: it counts the group and notes
// the devices seen.
func (s *Server) Observe(g *collect.Group) {
	m := s.m
	now := s.now()
	for _, msg := range g.Messages {
		switch {
		case strings.HasSuffix(msg.Topic, "/att"):
			m.attMsgs.Add(1)
		case strings.HasSuffix(msg.Topic, "/health"):
			m.healthMsgs.Add(1)
			s.seen.health(msg.Topic, msg.Payload, now) // not in the ledger: seen either way
		default:
			m.otherMsgs.Add(1)
		}
	}
	for _, d := range g.Verify {
		m.verify.observe(d)
	}
	if g.Commit > 0 {
		m.commit.observe(g.Commit)
	}
	m.groups.Add(1)
	if g.Err != nil {
		m.groupErrors.Add(1)
		return
	}
	for _, r := range g.Replies {
		if r.Err == nil {
			m.acks.Add(1)
			continue
		}
		m.refused[RefusalReason(r.Err)].Add(1)
	}
	for _, d := range g.Attested {
		s.seen.attested(d, now)
	}
}
