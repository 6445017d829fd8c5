package web

import (
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/csop/tbox/cmd/collector/internal/collect"
	"github.com/csop/tbox/signer"
)

// fakeSource is an in-memory Source for the page's own tests (the real
// ledger is behind it in TestMetricsCountWhatWasSent and TestBolt).
type fakeSource struct {
	devs    []Device
	draws   []Draw
	meters  map[uint64]uint64
	block   chan struct{} // when not nil, Totals waits for it
	entered chan struct{} // with block: Totals sends here before waiting
}

func (f *fakeSource) Devices(offset, limit int) ([]Device, int, error) {
	offset = min(offset, len(f.devs))
	end := min(offset+limit, len(f.devs))
	return f.devs[offset:end], len(f.devs), nil
}

func (f *fakeSource) Draws(n int) ([]Draw, error) { return f.draws[:min(n, len(f.draws))], nil }

func (f *fakeSource) MetersPerBatch(last uint64, n int) ([]BatchMeters, error) {
	var out []BatchMeters
	for b := last + 1 - uint64(n); b <= last; b++ {
		out = append(out, BatchMeters{Batch: b, Meters: f.meters[b]})
	}
	return out, nil
}

func (f *fakeSource) Totals() (Totals, error) {
	if f.block != nil {
		f.entered <- struct{}{}
		<-f.block
	}
	return Totals{Devices: len(f.devs)}, nil
}

func addr(i int) signer.Address {
	var a signer.Address
	a[18], a[19] = byte(i>>8), byte(i)
	a[0] = 0xaa
	return a
}

func newTestServer(t *testing.T, src Source, allow collect.Allowlist) (*Server, *httptest.Server) {
	t.Helper()
	s, err := New(Config{Source: src, Allow: allow, Log: testLog(t)})
	if err != nil {
		t.Fatal(err)
	}
	hs := httptest.NewServer(s.Handler())
	t.Cleanup(hs.Close)
	return s, hs
}

// TestHostileHealthStringsAreEscaped: the status and agent version come
// from the devices' health reports, i.e. from outside; the page shows
// them as text, never as markup.
func TestHostileHealthStringsAreEscaped(t *testing.T) {
	dev := addr(1)
	src := &fakeSource{devs: []Device{{Address: dev, Head: 3, Attestations: 3}}}
	s, hs := newTestServer(t, src, allowSet{dev: true})
	status := `<script>alert(1)</script>`
	version := `"><img src=x onerror=alert(2)>&amp;`
	s.Observe(&collect.Group{Messages: []collect.Message{{
		Topic:   "csop/v1/" + dev.String() + "/health",
		Payload: []byte(fmt.Sprintf(`{"status":%q,"agent":{"version":%q}}`, status, version)),
	}}})
	code, body := fetch(t, hs.URL+"/")
	if code != 200 {
		t.Fatalf("%d %s", code, body)
	}
	for _, bad := range []string{"<script", "<img", "onerror=alert(2)>"} {
		if strings.Contains(body, bad) {
			t.Errorf("page contains %q unescaped", bad)
		}
	}
	rows := deviceRows(t, body)
	if len(rows) != 1 || rows[0]["status"] != status || rows[0]["agent"] != version {
		t.Errorf("rows %v: want the hostile strings shown as text", rows)
	}
}

func TestStatusPagePaginates(t *testing.T) {
	src := &fakeSource{}
	for i := range PageSize + 7 {
		src.devs = append(src.devs, Device{Address: addr(i), Head: uint64(i)})
	}
	_, hs := newTestServer(t, src, allowSet{})
	_, p1 := fetch(t, hs.URL+"/")
	_, p2 := fetch(t, hs.URL+"/?page=2")
	r1, r2 := deviceRows(t, p1), deviceRows(t, p2)
	if len(r1) != PageSize || len(r2) != 7 {
		t.Fatalf("rows per page: %d and %d, want %d and 7", len(r1), len(r2), PageSize)
	}
	if r2[0]["device"] != addr(PageSize).String() {
		t.Errorf("page 2 starts with %s, want %s", r2[0]["device"], addr(PageSize))
	}
	if !strings.Contains(p1, "page 1 of 2") || !strings.Contains(p2, "page 2 of 2") {
		t.Error("no page indicator")
	}
	_, p3 := fetch(t, hs.URL+"/?page=3")
	if len(deviceRows(t, p3)) != 0 {
		t.Error("page 3 has rows")
	}
	for _, q := range []string{"0", "-1", "x", "99999999999"} {
		if code, _ := fetch(t, hs.URL+"/?page="+q); code != http.StatusBadRequest {
			t.Errorf("page=%s: %d, want 400", q, code)
		}
	}
}

func TestStatusPageHeadersAndMethods(t *testing.T) {
	_, hs := newTestServer(t, &fakeSource{}, allowSet{})
	resp, err := http.Get(hs.URL + "/")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if csp := resp.Header.Get("Content-Security-Policy"); !strings.Contains(csp, "default-src 'none'") {
		t.Errorf("CSP %q", csp)
	}
	if ct := resp.Header.Get("Content-Type"); ct != "text/html; charset=utf-8" {
		t.Errorf("Content-Type %q", ct)
	}
	resp, err = http.Post(hs.URL+"/", "text/plain", strings.NewReader("x"))
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusMethodNotAllowed {
		t.Errorf("POST /: %d, want 405", resp.StatusCode)
	}
	if code, _ := fetch(t, hs.URL+"/nothing"); code != http.StatusNotFound {
		t.Errorf("/nothing: %d, want 404", code)
	}
}

// TestStatusPageBoundsRendering: while two pages wait on the ledger, a
// third request is refused at once instead of queueing.
func TestStatusPageBoundsRendering(t *testing.T) {
	src := &fakeSource{block: make(chan struct{}), entered: make(chan struct{})}
	_, hs := newTestServer(t, src, allowSet{})
	var wg sync.WaitGroup
	codes := make(chan int, maxRendering)
	for range maxRendering {
		wg.Add(1)
		go func() {
			defer wg.Done()
			resp, err := http.Get(hs.URL + "/") // not fetch: no t.Fatal off the test goroutine
			if err != nil {
				codes <- -1
				return
			}
			resp.Body.Close()
			codes <- resp.StatusCode
		}()
	}
	for range maxRendering { // both requests hold a slot and wait on the ledger
		select {
		case <-src.entered:
		case <-time.After(10 * time.Second):
			t.Fatal("the pages did not reach the ledger in 10 s")
		}
	}
	if code, _ := fetch(t, hs.URL+"/"); code != http.StatusServiceUnavailable {
		t.Errorf("a third page while two render: %d, want 503", code)
	}
	if code, _ := fetch(t, hs.URL+"/metrics"); code != 200 {
		t.Errorf("/metrics while pages render: %d", code)
	}
	close(src.block)
	wg.Wait()
	close(codes)
	for c := range codes {
		if c != 200 {
			t.Errorf("a waiting page: %d", c)
		}
	}
}

func TestChartLayout(t *testing.T) {
	c := newChart([]BatchMeters{{Batch: 10, Meters: 0}, {Batch: 11, Meters: 500}, {Batch: 12, Meters: 1000, Drawn: true}})
	if len(c.Bars) != 3 || c.Bars[0].H != 0 || c.Bars[2].H != float64(chartBase-chartTop) || c.Bars[1].H != float64(chartBase-chartTop)/2 {
		t.Fatalf("bars %+v", c.Bars)
	}
	if c.MaxLabel != "1.000 km" || c.TotalLabel != "1.500 km" || !c.Bars[2].Drawn {
		t.Errorf("labels %q %q", c.MaxLabel, c.TotalLabel)
	}
	for _, b := range c.Bars {
		if b.X < chartLeft || b.X+b.W > chartW || b.Y+b.H != chartBase {
			t.Errorf("bar %+v outside the plot", b)
		}
	}
	if e := newChart(nil); !e.Empty || len(e.Bars) != 0 {
		t.Errorf("empty chart %+v", e)
	}
}
