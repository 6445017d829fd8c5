// Package web serves the collector's status page and its Prometheus
// metrics.
//
// # Pages
//
//	GET /           devices (last seen, chain head, verdicts, held, breaks,
//	                forks), the last draws and a chart of eligible km per
//	                batch; ?page=N pages the device table
//	GET /metrics    Prometheus text format (0.0.4)
//
// The page is rendered on the server with html/template (every string
// from outside is escaped) and an inline SVG chart: no script, no external
// asset, and a Content-Security-Policy that allows neither.
//
// # Bounds
//
// The device table shows [PageSize] devices a page; the draws list the
// last [MaxDraws]; the chart covers the last [ChartBatches] batches. At
// most two pages are rendered at once (a third request is answered 503),
// and the http.Server has read, write and idle timeouts.
//
// # What it reads
//
// The ledger through [Source] (a small read-only interface; [Bolt] is its
// adapter over the bbolt ledger), the collector's own counters through
// [Counters], and what [collect.Observer] tells it: the health reports
// (csop/v1/<device>/health) and attestations of registered devices, for
// their last-seen times. Those are kept in memory, per collector process.
package web

import (
	"context"
	_ "embed"
	"errors"
	"fmt"
	"html/template"
	"log/slog"
	"net"
	"net/http"
	"strconv"
	"sync/atomic"
	"time"

	"github.com/csop/tbox/cmd/collector/internal/collect"
	"github.com/csop/tbox/cmd/collector/internal/draw"
)

// Bounds of the status page.
const (
	PageSize     = 100 // devices per page
	MaxDraws     = 20  // recorded draws listed
	ChartBatches = 144 // batches in the chart: 24 h
	maxRendering = 2   // pages rendered at once
)

// Timeouts of the http.Server.
const (
	readHeaderTimeout = 5 * time.Second
	readTimeout       = 10 * time.Second
	writeTimeout      = 30 * time.Second
	idleTimeout       = 60 * time.Second
	shutdownTimeout   = 5 * time.Second
	maxHeaderBytes    = 16 << 10
)

// Config configures a [Server].
type Config struct {
	Source Source            // the ledger
	Allow  collect.Allowlist // the registry: only its devices' health is kept
	// MaxSeen bounds the devices whose last-seen times are kept;
	// DefaultMaxSeen if zero.
	MaxSeen int
	Now     func() time.Time // time.Now if nil
	Log     *slog.Logger
}

// Server is the status page and the metrics. It implements
// [collect.Observer]; give it to the collector's Config.Observer, and the
// collector to [Server.SetCounters].
type Server struct {
	src      Source
	now      func() time.Time
	log      *slog.Logger
	start    time.Time
	m        *metrics
	seen     *tracker
	counters atomic.Pointer[Counters]
	render   chan struct{} // semaphore of maxRendering
	tmpl     *template.Template
}

var _ collect.Observer = (*Server)(nil)

//go:embed status.html
var statusHTML string

// New returns a Server.
func New(cfg Config) (*Server, error) {
	if cfg.Source == nil || cfg.Allow == nil {
		return nil, errors.New("web: Source and Allow are required")
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.Log == nil {
		cfg.Log = slog.New(slog.DiscardHandler)
	}
	t, err := template.New("status").Funcs(funcs).Parse(statusHTML)
	if err != nil {
		return nil, fmt.Errorf("status template: %w", err)
	}
	return &Server{src: cfg.Source, now: cfg.Now, log: cfg.Log, start: cfg.Now(), m: newMetrics(),
		seen: newTracker(cfg.Allow, cfg.MaxSeen), render: make(chan struct{}, maxRendering), tmpl: t}, nil
}

// SetCounters gives the server the running collector's own counters.
func (s *Server) SetCounters(c Counters) { s.counters.Store(&c) }

// Handler returns the server's routes.
func (s *Server) Handler() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /{$}", s.status)
	mux.HandleFunc("GET /metrics", s.metrics)
	return securityHeaders(mux)
}

func securityHeaders(h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		hd := w.Header()
		hd.Set("Content-Security-Policy", "default-src 'none'; style-src 'unsafe-inline'; img-src data:; base-uri 'none'; form-action 'none'; frame-ancestors 'none'")
		hd.Set("X-Content-Type-Options", "nosniff")
		hd.Set("Referrer-Policy", "no-referrer")
		hd.Set("Cache-Control", "no-store")
		h.ServeHTTP(w, r)
	})
}

// Serve serves on ln until ctx is done, then shuts down (waiting at most
// 5 s for requests in flight). It closes ln.
func (s *Server) Serve(ctx context.Context, ln net.Listener) error {
	hs := &http.Server{
		Handler:           s.Handler(),
		ReadHeaderTimeout: readHeaderTimeout,
		ReadTimeout:       readTimeout,
		WriteTimeout:      writeTimeout,
		IdleTimeout:       idleTimeout,
		MaxHeaderBytes:    maxHeaderBytes,
		ErrorLog:          slog.NewLogLogger(s.log.Handler(), slog.LevelWarn),
		BaseContext:       func(net.Listener) context.Context { return ctx },
	}
	done := make(chan error, 1)
	go func() { done <- hs.Serve(ln) }()
	select {
	case err := <-done:
		return fmt.Errorf("status page: %w", err)
	case <-ctx.Done():
	}
	sctx, cancel := context.WithTimeout(context.Background(), shutdownTimeout)
	defer cancel()
	if err := hs.Shutdown(sctx); err != nil {
		hs.Close()
	}
	if err := <-done; err != nil && !errors.Is(err, http.ErrServerClosed) {
		return fmt.Errorf("status page: %w", err)
	}
	return nil
}

func (s *Server) metrics(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("Content-Type", "text/plain; version=0.0.4; charset=utf-8")
	s.writeMetrics(w)
}

// deviceRow is one row of the device table.
type deviceRow struct {
	Device
	Health   time.Time // zero: no report since start
	Attested time.Time // zero: none since start
	Status   string
	Version  string
}

// page is the status page's data.
type page struct {
	Now        time.Time
	Totals     Totals
	Devices    []deviceRow
	Page       int
	Pages      int
	Draws      []Draw
	Chart      chart
	Subscribed bool
	Counts     collect.Counts
	Seen       int // devices with a last-seen time
	Quiet      []quiet
	QuietTotal int
}

func (s *Server) status(w http.ResponseWriter, r *http.Request) {
	select {
	case s.render <- struct{}{}:
		defer func() { <-s.render }()
	default:
		http.Error(w, "busy: too many status pages being rendered; retry", http.StatusServiceUnavailable)
		return
	}
	pg := 1
	if v := r.URL.Query().Get("page"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 || n > 1_000_000 {
			http.Error(w, "page: expected a number from 1", http.StatusBadRequest)
			return
		}
		pg = n
	}
	p, err := s.collect(pg)
	if err != nil {
		s.log.Error("status page", "err", err)
		http.Error(w, "ledger read failed; see the collector's log", http.StatusInternalServerError)
		return
	}
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	if err := s.tmpl.Execute(w, p); err != nil {
		s.log.Warn("status page write", "err", err)
	}
}

// collect reads what page pg shows.
func (s *Server) collect(pg int) (*page, error) {
	now := s.now()
	t0 := time.Now()
	defer func() { s.m.read.observe(time.Since(t0)) }()
	p := &page{Now: now.UTC(), Page: pg, Seen: s.seen.len()}
	p.Quiet, p.QuietTotal = s.seen.quietDevices(PageSize)
	if cs := s.counters.Load(); cs != nil {
		p.Counts, p.Subscribed = (*cs).Counts(), (*cs).Subscribed()
	}
	var err error
	if p.Totals, err = s.src.Totals(); err != nil {
		return nil, err
	}
	devs, total, err := s.src.Devices((pg-1)*PageSize, PageSize)
	if err != nil {
		return nil, err
	}
	p.Pages = max(1, (total+PageSize-1)/PageSize)
	for _, d := range devs {
		row := deviceRow{Device: d}
		if sn, ok := s.seen.lookup(d.Address); ok {
			row.Health, row.Attested, row.Status, row.Version = sn.health, sn.attested, sn.report.Status, sn.report.Version
		}
		p.Devices = append(p.Devices, row)
	}
	if p.Draws, err = s.src.Draws(MaxDraws); err != nil {
		return nil, err
	}
	bms, err := s.src.MetersPerBatch(draw.BatchOf(now.Unix()), ChartBatches)
	if err != nil {
		return nil, err
	}
	p.Chart = newChart(bms)
	return p, nil
}

var funcs = template.FuncMap{
	"ago": func(now, t time.Time) string {
		if t.IsZero() {
			return "never"
		}
		d := now.Sub(t).Round(time.Second)
		if d < 0 {
			d = 0
		}
		return d.String() + " ago"
	},
	"utc":   func(t time.Time) string { return t.UTC().Format("2006-01-02 15:04:05Z") },
	"km":    func(m uint64) string { return strconv.FormatFloat(float64(m)/1000, 'f', 3, 64) },
	"stone": draw.FormatMicro,
	"batchTime": func(b uint64) string {
		return time.Unix(int64(b)*600, 0).UTC().Format("2006-01-02 15:04Z")
	},
	"add": func(a, b int) int { return a + b },
}
