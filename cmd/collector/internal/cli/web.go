package cli

import (
	"context"
	"fmt"
	"log/slog"
	"net"
	"strconv"

	"github.com/csop/tbox/cmd/collector/internal/collect"
	"github.com/csop/tbox/cmd/collector/internal/ledger"
	"github.com/csop/tbox/cmd/collector/internal/web"
)

// checkHTTP checks the http listen address: host:port, the host a loopback
// address or "localhost" unless public (the page has no authentication:
// put it behind a reverse proxy that has, or a firewall).
func checkHTTP(addr string, public bool) error {
	if addr == "" {
		if public {
			return fmt.Errorf("http_public is set but http is empty; expected a listen address such as \"127.0.0.1:8080\"")
		}
		return nil
	}
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		return fmt.Errorf("expected host:port such as \"127.0.0.1:8080\", found %q", addr)
	}
	if p, err := strconv.ParseUint(port, 10, 16); err != nil || (p == 0 && port != "0") {
		return fmt.Errorf("expected a port number from 0 to 65535, found %q", port)
	}
	if public {
		return nil
	}
	if host == "localhost" {
		return nil
	}
	if ip := net.ParseIP(host); ip != nil && ip.IsLoopback() {
		return nil
	}
	return fmt.Errorf("%q is not a loopback address; the status page has no authentication: listen on 127.0.0.1 or ::1, or set http_public = true to serve it on %q", addr, host)
}

// statusPage is run's status page and metrics, when http is configured.
type statusPage struct {
	s  *web.Server
	ln net.Listener
}

// openStatusPage listens on cfg.HTTP (so that a taken port fails at start)
// and returns nil when http is not configured.
func openStatusPage(cfg *Config, l ledger.Ledger, allow collect.Allowlist, log *slog.Logger) (*statusPage, error) {
	if cfg.HTTP == "" {
		return nil, nil
	}
	s, err := web.New(web.Config{Source: &web.Bolt{L: l}, Allow: allow, Log: log.With("part", "http")})
	if err != nil {
		return nil, err
	}
	ln, err := net.Listen("tcp", cfg.HTTP)
	if err != nil {
		return nil, fmt.Errorf("status page: %w", err)
	}
	return &statusPage{s: s, ln: ln}, nil
}

// observer returns what the collector tells, or nil without a page.
func (p *statusPage) observer() collect.Observer {
	if p == nil {
		return nil
	}
	return p.s
}

// serve serves until ctx is done; without a page it returns at once.
func (p *statusPage) serve(ctx context.Context, c *collect.Collector, log *slog.Logger) error {
	if p == nil {
		return nil
	}
	p.s.SetCounters(c)
	log.Info("status page listening", "http", "http://"+p.ln.Addr().String()+"/", "metrics", "http://"+p.ln.Addr().String()+"/metrics")
	return p.s.Serve(ctx, p.ln)
}

// close releases the listener when serve never ran.
func (p *statusPage) close() {
	if p != nil {
		p.ln.Close()
	}
}
