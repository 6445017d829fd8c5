package web

import (
	"bytes"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/csop/tbox/cmd/collector/internal/collect"
	"github.com/csop/tbox/signer"
)

// clock is a settable clock.
type clock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *clock) now() time.Time { c.mu.Lock(); defer c.mu.Unlock(); return c.t }
func (c *clock) add(d time.Duration) {
	c.mu.Lock()
	c.t = c.t.Add(d)
	c.mu.Unlock()
}

// TestMetricsCountWhatWasSent drives a real collector over a real bbolt
// ledger with the status server as its Observer, sends it a known mix of
// attestations and health reports, and checks that /metrics, parsed as
// Prometheus would, counts exactly that.
func TestMetricsCountWhatWasSent(t *testing.T) {
	l := newLedger(t)
	clk := &clock{t: time.Now()}
	a, b := newDevice(t, nowBatch()-20), newDevice(t, nowBatch()-20)
	allow := allowSet{a.addr: true}
	s, err := New(Config{Source: &Bolt{L: l}, Allow: allow, Now: clk.now, Log: testLog(t)})
	if err != nil {
		t.Fatal(err)
	}
	c, err := collect.New(l, collect.Config{ChainID: testChainID, Allow: allow, GapTimeout: time.Minute, Now: clk.now, Observer: s}, testLog(t))
	if err != nil {
		t.Fatal(err)
	}
	s.SetCounters(c)
	hs := httptest.NewServer(s.Handler())
	defer hs.Close()

	process := func(msgs ...collect.Message) []collect.Reply {
		t.Helper()
		r, err := c.Process(msgs)
		if err != nil {
			t.Fatal(err)
		}
		return r
	}
	att := func(d *device, wire []byte) collect.Message {
		return collect.Message{Topic: d.topic("att"), Payload: wire}
	}
	health := func(topic, payload string) collect.Message {
		return collect.Message{Topic: topic, Payload: []byte(payload)}
	}

	// Stored: seqs 1-3 of a, in two groups; seq 1 again: a duplicate.
	w1 := a.next(1000)
	process(att(a, w1), att(a, a.next(2000)))
	process(att(a, a.next(3000)), att(a, w1))
	// Held: seq 5 without seq 4.
	a.next(4000) // seq 4 is never sent
	process(att(a, a.next(5000)))
	// Refused: unknown device (2), malformed (1), a tampered signature (1).
	process(att(b, b.next(100)), att(b, b.next(100)), collect.Message{Topic: a.topic("att"), Payload: []byte("not json")})
	bad := a.next(6000)
	a.seq-- // seq 6 again below, properly signed
	a.prev = signerDigestOf(t, bad, true)
	i := bytes.Index(bad, []byte(`"sig":"0x`)) + 10
	if bad[i] == '0' { // one hex digit of r changed: still hex, another signature
		bad[i] = '1'
	} else {
		bad[i] = '0'
	}
	process(att(a, bad))
	// A chain break: the gap times out while seq 6 arrives.
	clk.add(2 * time.Minute)
	process(att(a, a.next(6000)))
	// Health: one good report, then what a hostile client could send.
	process(
		health(a.topic("health"), `{"status":"online","device":"`+a.addr.String()+`","agent":{"version":"1.2.3"}}`),
		health(b.topic("health"), `{"status":"online"}`),                                          // unregistered
		health(a.topic("health"), `{"status":"`+strings.Repeat("x", collect.MaxHealthBytes)+`"}`), // oversized
		health(a.topic("health"), `{"status":`),                                                   // malformed
		health(a.topic("health"), `[1,2]`),                                                        // malformed
		health("csop/v1/0xZZ/health", `{"status":"online"}`),                                      // topic names no device
		health(a.topic("health"), `{"status":"online","device":"`+b.addr.String()+`"}`),           // device is not the topic's
	)

	e := scrape(t, hs.URL)
	want := map[string]float64{
		`csop_collector_received_total{topic="att"}`:                 10,
		`csop_collector_received_total{topic="health"}`:              7,
		`csop_collector_stored_total`:                                5, // 1-3, then 5 and 6 after the break
		`csop_collector_duplicates_total`:                            1,
		`csop_collector_held_total`:                                  1,
		`csop_collector_breaks_total`:                                1,
		`csop_collector_refused_total{reason="unknown_device"}`:      2,
		`csop_collector_refused_total{reason="malformed"}`:           1,
		`csop_collector_health_ignored_total{reason="unregistered"}`: 1,
		`csop_collector_health_ignored_total{reason="oversized"}`:    1,
		`csop_collector_health_ignored_total{reason="malformed"}`:    2,
		`csop_collector_health_ignored_total{reason="topic"}`:        2,
		`csop_collector_ledger_errors_total`:                         0,
		`csop_collector_devices_seen`:                                1,
		// a's seqs 1, 2 (its first: recovered; then young: a table),
		// then 3, the copy of 1, 5, the tampered 6 (the table does not
		// show it: recovered too, for the reference's error) and 6;
		// b is unknown: refused before any signature check.
		`csop_collector_signature_checks_total{path="recovery"}`: 2,
		`csop_collector_signature_checks_total{path="table"}`:    5,
		`csop_collector_signature_checks_total{path="key"}`:      0,
		`csop_collector_key_cache_devices{tier="keys"}`:          1,
		`csop_collector_key_cache_devices{tier="tables"}`:        1,
	}
	for k, v := range want {
		if got := e.get(t, k); got != v {
			t.Errorf("%s = %g, want %g", k, got, v)
		}
	}
	if got := e.get(t, `csop_collector_refused_total{reason="bad_signature"}`) + e.get(t, `csop_collector_refused_total{reason="signer_mismatch"}`); got != 1 {
		t.Errorf("refused for the tampered signature: %g, want 1", got)
	}
	var refused float64
	for k, v := range e.samples {
		if strings.HasPrefix(k, "csop_collector_refused_total{") {
			refused += v
		}
	}
	if refused != 4 || float64(c.Counts().Refused) != refused {
		t.Errorf("refused in all: metrics %g, collector %d, want 4", refused, c.Counts().Refused)
	}
	if n := e.histogram(t, "csop_collector_verify_seconds", ""); n != 10 {
		t.Errorf("verify latency observations: %g, want one per att message (10)", n)
	}
	if n := e.histogram(t, "csop_collector_ledger_seconds", `op="commit",`); n != 4 {
		t.Errorf("ledger commit observations: %g, want one per group with an attestation past the stateless checks (4)", n)
	}
	e.histogram(t, "csop_collector_ledger_seconds", `op="read",`)
	for name, typ := range map[string]string{"csop_collector_stored_total": "counter", "csop_collector_verify_seconds": "histogram", "csop_collector_subscribed": "gauge"} {
		if e.types[name] != typ {
			t.Errorf("TYPE of %s: %q, want %q", name, e.types[name], typ)
		}
	}

	// The page shows a's chain as stored and its health; b stored nothing.
	code, body := fetch(t, hs.URL+"/")
	if code != 200 {
		t.Fatalf("status page: %d %s", code, body)
	}
	rows := deviceRows(t, body)
	if len(rows) != 1 || rows[0]["device"] != a.addr.String() {
		t.Fatalf("device rows %v, want a's only", rows)
	}
	r := rows[0]
	for col, v := range map[string]string{"head (receipted)": "6", "attestations": "5", "held": "0", "breaks": "1", "forks": "0", "status": "online", "agent": "1.2.3", "last health": "0s ago"} {
		if r[col] != v {
			t.Errorf("column %q = %q, want %q (row %v)", col, r[col], v, r)
		}
	}
	if after := scrape(t, hs.URL); after.histogram(t, "csop_collector_ledger_seconds", `op="read",`) < 1 {
		t.Error("the page's ledger read was not observed")
	}
}

// signerDigestOf returns the digest of a wire-form attestation (prev=true:
// of its prev field).
func signerDigestOf(t testing.TB, wire []byte, prev bool) [32]byte {
	t.Helper()
	a, err := signer.ParseWire(wire)
	if err != nil {
		t.Fatal(err)
	}
	if prev {
		return a.Prev
	}
	return signer.Digest(testChainID, a)
}

func TestHistogramBuckets(t *testing.T) {
	h := newHistogram(0.001, 0.01)
	for _, d := range []time.Duration{0, time.Millisecond, 2 * time.Millisecond, time.Second, -time.Second} {
		h.observe(d)
	}
	var buf bytes.Buffer
	h.write(&buf, "x_seconds", "")
	want := "x_seconds_bucket{le=\"0.001\"} 3\nx_seconds_bucket{le=\"0.01\"} 4\nx_seconds_bucket{le=\"+Inf\"} 5\nx_seconds_sum 1.003\nx_seconds_count 5\n"
	if buf.String() != want {
		t.Errorf("histogram:\n%s\nwant:\n%s", buf.String(), want)
	}
}
