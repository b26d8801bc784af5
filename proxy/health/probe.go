package health

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"strings"
)

// ErrProbeFailed is wrapped by the error of a probe whose target answered,
// but wrongly (an unexpected HTTP status).
var ErrProbeFailed = errors.New("health probe failed")

// maxProbeBody bounds how much of a probe response is read: enough to let
// the connection close cleanly, never a large body.
const maxProbeBody = 4 << 10

// Target is one endpoint a [Checker] probes.
type Target struct {
	// ID identifies the endpoint in callbacks (the same ID as in the
	// balancer).
	ID string
	// Address is a URL ("http://127.0.0.1:9001") or a host:port; HTTP
	// probes add http:// to a bare host:port, TCP probes use the URL's host.
	Address string
}

// httpProber probes GET <address><path> and expects a status in a range.
type httpProber struct {
	client   *http.Client
	path     string
	host     string
	min, max int
}

// probe runs one HTTP probe; ctx carries the probe timeout.
func (p *httpProber) probe(ctx context.Context, t Target) error {
	u := probeURL(t.Address, p.path)
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
	if err != nil {
		return fmt.Errorf("probe %s: %w", t.ID, err)
	}
	if p.host != "" {
		req.Host = p.host
	}
	req.Header.Set("User-Agent", "bulwark-health/1")
	resp, err := p.client.Do(req)
	if err != nil {
		return fmt.Errorf("probe %s: %w", t.ID, err)
	}
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, maxProbeBody))
	_ = resp.Body.Close()
	if resp.StatusCode < p.min || resp.StatusCode > p.max {
		return fmt.Errorf("probe %s: %w: status %d, want %d-%d", t.ID, ErrProbeFailed, resp.StatusCode, p.min, p.max)
	}
	return nil
}

// probeURL joins an endpoint address and a probe path.
func probeURL(addr, path string) string {
	if !strings.Contains(addr, "://") {
		addr = "http://" + addr
	}
	return strings.TrimRight(addr, "/") + path
}

// tcpProber probes by opening a TCP connection and closing it.
type tcpProber struct {
	dialer net.Dialer
}

// probe runs one TCP connect probe; ctx carries the probe timeout.
func (p *tcpProber) probe(ctx context.Context, t Target) error {
	conn, err := p.dialer.DialContext(ctx, "tcp", hostPort(t.Address))
	if err != nil {
		return fmt.Errorf("probe %s: %w", t.ID, err)
	}
	return conn.Close()
}

// hostPort extracts host:port from a URL, or returns addr unchanged when it
// is not a URL. A URL without a port gets its scheme's default.
func hostPort(addr string) string {
	if !strings.Contains(addr, "://") {
		return addr
	}
	u, err := url.Parse(addr)
	if err != nil || u.Host == "" {
		return addr
	}
	if u.Port() != "" {
		return u.Host
	}
	port := "80"
	if u.Scheme == "https" {
		port = "443"
	}
	return net.JoinHostPort(u.Hostname(), port)
}
