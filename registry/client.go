package registry

import (
	"bytes"
	"context"
	"crypto/tls"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"maps"
	"math/rand/v2"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/bulwark-go/bulwark"
)

// ClientConfig configures a Client. Only Addrs is required.
type ClientConfig struct {
	// Addrs are the registry nodes' HTTP addresses ("host:port" or
	// "http://host:port"). The client talks to one at a time and moves to
	// the next on any transport error, 5xx answer or stale read.
	Addrs []string
	// Token is sent as "Authorization: Bearer <Token>" on writes. Default
	// none.
	Token string
	// HTTPClient performs requests. Default: a client of its own (no
	// overall timeout; every request gets a deadline from the Client).
	HTTPClient *http.Client
	// TLS, when set, talks to the nodes over TLS with this config (its
	// certificate for nodes that require one, its RootCAs to check
	// theirs); addresses without a scheme then mean https. Ignored when
	// HTTPClient is set (configure that client's transport instead).
	TLS *tls.Config
	// RequestTimeout bounds each attempt of a non-blocking request.
	// Default 2 s.
	RequestTimeout time.Duration
	// RetryWindow is how long Register and Deregister keep retrying while
	// no node accepts the write (a leader election usually takes well
	// under a second, longer under load), bounded by the caller's context.
	// Default 5 s.
	RetryWindow time.Duration
	// WatchWait is how long one blocking query may wait on the server.
	// Default 30 s.
	WatchWait time.Duration
	// Rand supplies jitter. Default: seeded from the clock. The Client
	// serialises access to it.
	Rand *rand.Rand
	// Logger receives the client's logs. nil discards.
	Logger *slog.Logger
	// Run runs a Registration's renewal loop until ctx ends, and returns
	// once loop has returned for the last time. Nil calls loop(ctx)
	// directly. cmd/bulwark passes one that runs it under the process's
	// supervision tree, so a panic in it is recovered and renewals resume.
	Run func(ctx context.Context, name string, loop func(ctx context.Context) error)
}

// Client talks to a registry cluster: it registers instances (keeping their
// leases renewed) and watches services. It keeps the last good answer per
// service and serves it whenever no node answers, so an outage of the
// registry never empties a consumer's view. A Client is safe for
// concurrent use and owns no goroutines (Registrations and Watch calls own
// theirs).
type Client struct {
	cfg   ClientConfig
	addrs []string
	cur   atomic.Uint32 // index into addrs of the preferred node
	// written is the highest catalog index of a write this Client saw
	// acknowledged; reads pass it as ?min_index= so a Client reads its
	// own writes even from a follower a few entries behind.
	written atomic.Uint64
	hc      *http.Client
	log     *slog.Logger

	mu    sync.Mutex
	rng   *rand.Rand
	cache map[string][]bulwark.Instance // last-known-good per service
}

// NewClient returns a Client for the given nodes.
func NewClient(cfg ClientConfig) (*Client, error) {
	if len(cfg.Addrs) == 0 {
		return nil, fmt.Errorf("%w: ClientConfig.Addrs is empty", ErrInvalid)
	}
	c := &Client{cfg: cfg, hc: cfg.HTTPClient, log: cfg.Logger, rng: cfg.Rand, cache: map[string][]bulwark.Instance{}}
	scheme := "http://"
	if cfg.TLS != nil {
		scheme = "https://"
	}
	for i, a := range cfg.Addrs {
		if !strings.Contains(a, "://") {
			a = scheme + a
		}
		u, err := url.Parse(a)
		if err != nil || u.Host == "" {
			return nil, fmt.Errorf("%w: ClientConfig.Addrs[%d] %q: want host:port or http://host:port", ErrInvalid, i, cfg.Addrs[i])
		}
		c.addrs = append(c.addrs, strings.TrimRight(a, "/"))
	}
	if c.hc == nil {
		c.hc = &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 4, IdleConnTimeout: 30 * time.Second, TLSClientConfig: cfg.TLS}}
	}
	if c.cfg.RequestTimeout <= 0 {
		c.cfg.RequestTimeout = 2 * time.Second
	}
	if c.cfg.RetryWindow <= 0 {
		c.cfg.RetryWindow = 5 * time.Second
	}
	if c.cfg.WatchWait <= 0 {
		c.cfg.WatchWait = 30 * time.Second
	}
	if c.log == nil {
		c.log = slog.New(slog.DiscardHandler)
	}
	if c.rng == nil {
		now := uint64(time.Now().UnixNano())
		c.rng = rand.New(rand.NewPCG(now, now>>17))
	}
	return c, nil
}

// Close releases idle connections of the Client's own HTTP transport. It
// does not stop Registrations or Watch calls; their owners do.
func (c *Client) Close() {
	if c.cfg.HTTPClient == nil {
		c.hc.CloseIdleConnections()
	}
}

// jitter returns d scaled by a random factor in [0.5, 1.5).
func (c *Client) jitter(d time.Duration) time.Duration {
	c.mu.Lock()
	f := 0.5 + c.rng.Float64()
	c.mu.Unlock()
	return time.Duration(float64(d) * f)
}

// rotate moves the preferred node past from (if it still is from).
func (c *Client) rotate(from uint32) {
	c.cur.CompareAndSwap(from, (from+1)%uint32(len(c.addrs)))
}

// apiError is a non-2xx answer.
type apiError struct {
	status int
	msg    string
}

func (e *apiError) Error() string { return fmt.Sprintf("registry: HTTP %d: %s", e.status, e.msg) }

func (e *apiError) Unwrap() error {
	switch e.status {
	case http.StatusBadRequest:
		return ErrInvalid
	case http.StatusUnauthorized, http.StatusForbidden:
		return ErrUnauthorized
	case http.StatusNotFound:
		return ErrNotFound
	case http.StatusServiceUnavailable:
		return ErrNotLeader
	}
	return nil
}

// do sends one request, trying every node once starting with the
// preferred one, and decodes a 200 answer into out. Transport errors and
// 5xx move on to the next node; other answers end the attempt.
func (c *Client) do(ctx context.Context, method, path string, body any, timeout time.Duration, out any) error {
	var payload []byte
	if body != nil {
		var err error
		if payload, err = json.Marshal(body); err != nil {
			return err
		}
	}
	var errs []error
	for range c.addrs {
		i := c.cur.Load() % uint32(len(c.addrs))
		err := c.attempt(ctx, c.addrs[i], method, path, payload, timeout, out)
		if err == nil {
			return nil
		}
		if ctx.Err() != nil {
			return ctx.Err()
		}
		var ae *apiError
		if errors.As(err, &ae) && ae.status < 500 {
			return err
		}
		errs = append(errs, err)
		c.rotate(i)
	}
	return fmt.Errorf("%w: %w", ErrUnavailable, errors.Join(errs...))
}

// sawWrite raises the read-your-writes floor to index.
func (c *Client) sawWrite(index uint64) {
	for {
		cur := c.written.Load()
		if index <= cur || c.written.CompareAndSwap(cur, index) {
			return
		}
	}
}

// write is do for writes: it retries passes over the nodes with backoff
// while no node accepts (ErrUnavailable), for up to RetryWindow. Writes are
// idempotent (a registration replaces the same ID), so repeating one that
// may have committed is harmless.
func (c *Client) write(ctx context.Context, method, path string, body any, out any) error {
	start := time.Now()
	backoff := 50 * time.Millisecond
	for {
		err := c.do(ctx, method, path, body, c.cfg.RequestTimeout, out)
		if wr, ok := out.(*WriteResponse); ok && err == nil {
			c.sawWrite(wr.Index)
		}
		if !errors.Is(err, ErrUnavailable) || time.Since(start) >= c.cfg.RetryWindow {
			return err
		}
		if !sleepCtx(ctx, c.jitter(backoff)) {
			return err
		}
		backoff = min(backoff*2, time.Second)
	}
}

func (c *Client) attempt(ctx context.Context, base, method, path string, payload []byte, timeout time.Duration, out any) error {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	var rd io.Reader
	if payload != nil {
		rd = bytes.NewReader(payload)
	}
	req, err := http.NewRequestWithContext(ctx, method, base+path, rd)
	if err != nil {
		return err
	}
	if payload != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	if c.cfg.Token != "" && method != http.MethodGet {
		req.Header.Set("Authorization", "Bearer "+c.cfg.Token)
	}
	resp, err := c.hc.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		var e errorResponse
		b, _ := io.ReadAll(io.LimitReader(resp.Body, 4096))
		if json.Unmarshal(b, &e) != nil || e.Error == "" {
			e.Error = strings.TrimSpace(string(b))
		}
		return &apiError{status: resp.StatusCode, msg: e.Error}
	}
	if out == nil {
		_, err = io.Copy(io.Discard, resp.Body)
		return err
	}
	return json.NewDecoder(resp.Body).Decode(out)
}

// Instances returns the service's instances (every state; filter with
// bulwark.Health.Routable). When no node answers it returns the
// last-known-good list, if it has one, with a nil error.
func (c *Client) Instances(ctx context.Context, service string) ([]bulwark.Instance, error) {
	var sr ServiceResponse
	path := "/v1/services/" + url.PathEscape(service)
	if w := c.written.Load(); w > 0 {
		path += "?min_index=" + strconv.FormatUint(w, 10)
	}
	err := c.do(ctx, http.MethodGet, path, nil, c.cfg.RequestTimeout, &sr)
	if err == nil {
		insts := toInstances(sr.Instances)
		if !(sr.Stale && len(insts) == 0) {
			c.store(service, insts)
			return insts, nil
		}
	}
	if cached, ok := c.cached(service); ok {
		if err != nil {
			c.log.Warn("registry: serving cached instances", "service", service, "err", err)
		}
		return cached, nil
	}
	if err == nil { // stale and empty, nothing better known
		return []bulwark.Instance{}, nil
	}
	return nil, err
}

func (c *Client) store(service string, insts []bulwark.Instance) {
	c.mu.Lock()
	c.cache[service] = slices.Clone(insts)
	c.mu.Unlock()
}

func (c *Client) cached(service string) ([]bulwark.Instance, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	v, ok := c.cache[service]
	return slices.Clone(v), ok
}

func toInstances(infos []InstanceInfo) []bulwark.Instance {
	out := make([]bulwark.Instance, len(infos))
	for i := range infos {
		out[i] = infos[i].Instance
	}
	return out
}

func equalInstances(a, b []bulwark.Instance) bool {
	return slices.EqualFunc(a, b, func(x, y bulwark.Instance) bool {
		return x.Service == y.Service && x.ID == y.ID && x.Address == y.Address && x.Health == y.Health && maps.Equal(x.Metadata, y.Metadata)
	})
}

// Watch calls update with the service's instances (every state; the
// consumer filters with bulwark.Health.Routable): first with the current
// list — the last-known-good cache if no node answers at once — and then
// each time the set or a state changes. It blocks until ctx is done and
// returns ctx.Err(). It follows the registry with blocking queries, moving
// across Addrs on errors and away from nodes that report stale reads.
// While every node is unreachable it keeps quiet rather than reporting an
// empty list. update is called from Watch's goroutine, never concurrently.
func (c *Client) Watch(ctx context.Context, service string, update func([]bulwark.Instance)) error {
	var last []bulwark.Instance
	delivered := false
	deliver := func(insts []bulwark.Instance) {
		if delivered && equalInstances(insts, last) {
			return
		}
		last, delivered = insts, true
		update(slices.Clone(insts))
	}
	var index uint64
	backoff := 50 * time.Millisecond
	for ctx.Err() == nil {
		wait := c.cfg.WatchWait
		if !delivered {
			wait = 0 // first answer at once
		}
		sr, err := c.query(ctx, service, index, wait)
		if ctx.Err() != nil {
			break
		}
		if err != nil {
			if !delivered {
				if cached, ok := c.cached(service); ok {
					deliver(cached)
				}
			}
			c.log.Debug("registry: watch query failed", "service", service, "err", err)
			if !sleepCtx(ctx, c.jitter(backoff)) {
				break
			}
			backoff = min(backoff*2, 2*time.Second)
			continue
		}
		insts := toInstances(sr.Instances)
		if sr.Stale {
			// A stale node may be a partitioned minority: take its answer
			// only if we know nothing better, and try another node next.
			// (While no node has a leader nothing can change anyway.)
			c.rotate(c.cur.Load() % uint32(len(c.addrs)))
			if delivered || len(insts) == 0 {
				if cached, ok := c.cached(service); ok && !delivered {
					deliver(cached)
				}
				sleepCtx(ctx, c.jitter(backoff))
				backoff = min(backoff*2, 2*time.Second)
				continue
			}
		}
		backoff = 50 * time.Millisecond
		// A fresh node's index is authoritative even if lower than the
		// last one seen (another node may have been ahead by a few
		// entries; the next query catches up at once).
		index = sr.Index
		c.store(service, insts)
		deliver(insts)
	}
	return ctx.Err()
}

// query runs one (blocking) read with failover.
func (c *Client) query(ctx context.Context, service string, index uint64, wait time.Duration) (ServiceResponse, error) {
	q := url.Values{}
	if wait > 0 {
		q.Set("index", strconv.FormatUint(index, 10))
		q.Set("wait", wait.String())
	}
	if w := c.written.Load(); w > 0 {
		q.Set("min_index", strconv.FormatUint(w, 10))
	}
	path := "/v1/services/" + url.PathEscape(service)
	if len(q) > 0 {
		path += "?" + q.Encode()
	}
	var sr ServiceResponse
	err := c.do(ctx, http.MethodGet, path, nil, wait+c.cfg.RequestTimeout, &sr)
	return sr, err
}

func sleepCtx(ctx context.Context, d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return false
	case <-t.C:
		return true
	}
}
