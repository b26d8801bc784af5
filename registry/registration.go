package registry

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"sync"
	"sync/atomic"
	"time"

	"github.com/bulwark-go/bulwark"
)

// Registration is a registered instance whose lease the Client keeps
// renewed. Its renewal goroutine runs until Close.
type Registration struct {
	c    *Client
	req  RegisterRequest
	ttl  time.Duration
	stop context.CancelFunc
	done chan struct{}

	closeOnce sync.Once
	closeErr  error
	mu        sync.Mutex
	info      InstanceInfo
	lastErr   error
	paused    atomic.Bool
}

// Pause stops (true) or resumes (false) renewals without deregistering:
// the instance goes suspect and then expires as if it had been cut off
// from the registry. Demos and chaos experiments use it to simulate a
// network partition of the instance.
func (r *Registration) Pause(on bool) { r.paused.Store(on) }

// Register registers inst (Service, ID, Address, Metadata; Health is
// ignored: a new registration is up) with the given lease TTL (0 = the
// server's default) and starts renewing it every TTL/3. ctx bounds only the
// first registration.
func (c *Client) Register(ctx context.Context, inst bulwark.Instance, ttl time.Duration) (*Registration, error) {
	req := RegisterRequest{Service: inst.Service, ID: inst.ID, Address: inst.Address, Metadata: inst.Metadata, TTL: Duration(ttl)}
	var wr WriteResponse
	if err := c.write(ctx, http.MethodPut, "/v1/instances", req, &wr); err != nil {
		return nil, fmt.Errorf("registry: register %s/%s: %w", inst.Service, inst.ID, err)
	}
	if wr.Instance == nil {
		return nil, fmt.Errorf("registry: register %s/%s: answer without instance", inst.Service, inst.ID)
	}
	loopCtx, stop := context.WithCancel(context.Background())
	r := &Registration{c: c, req: req, ttl: time.Duration(wr.Instance.TTL), stop: stop, done: make(chan struct{}), info: *wr.Instance}
	go func() {
		defer close(r.done)
		if c.cfg.Run == nil {
			r.loop(loopCtx)
			return
		}
		c.cfg.Run(loopCtx, "registration "+inst.ID, func(ctx context.Context) error { r.loop(ctx); return nil })
	}()
	return r, nil
}

// Instance returns the instance as last acknowledged by the registry.
func (r *Registration) Instance() InstanceInfo {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.info
}

// Err returns the last renewal error, nil after a successful renewal.
func (r *Registration) Err() error {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.lastErr
}

// loop renews every TTL/3. On errors it retries sooner, with exponential
// backoff and jitter capped at TTL/3, so a failover between nodes costs at
// most a fraction of the lease. A 404 (the lease expired, or the registry
// lost the entry) re-registers.
func (r *Registration) loop(ctx context.Context) {
	interval := max(r.ttl/3, 10*time.Millisecond)
	backoff := interval / 8
	next := interval
	path := "/v1/instances/" + url.PathEscape(r.req.Service) + "/" + url.PathEscape(r.req.ID) + "/renew"
	for sleepCtx(ctx, next) {
		if r.paused.Load() {
			next = interval
			continue
		}
		var wr WriteResponse
		err := r.c.do(ctx, http.MethodPut, path, nil, interval, &wr)
		if errors.Is(err, ErrNotFound) {
			err = r.c.do(ctx, http.MethodPut, "/v1/instances", r.req, interval, &wr)
		}
		if err == nil {
			r.c.sawWrite(wr.Index)
		}
		r.mu.Lock()
		r.lastErr = err
		if err == nil && wr.Instance != nil {
			r.info = *wr.Instance
		}
		r.mu.Unlock()
		if err != nil {
			if ctx.Err() != nil {
				return
			}
			r.c.log.Warn("registry: renewal failed", "service", r.req.Service, "id", r.req.ID, "err", err)
			next = min(r.c.jitter(backoff), interval)
			backoff = min(backoff*2, interval)
			continue
		}
		backoff = interval / 8
		next = r.c.jitter(interval)
		if next > interval {
			next = interval // never later than TTL/3
		}
	}
}

// Close stops renewing, waits for the renewal goroutine, and deregisters
// the instance (retrying for up to the Client's RetryWindow). It is safe
// to call more than once; a missing instance is not an error.
func (r *Registration) Close() error {
	r.closeOnce.Do(func() {
		r.stop()
		<-r.done
		ctx, cancel := context.WithTimeout(context.Background(), r.c.cfg.RetryWindow)
		defer cancel()
		path := "/v1/instances/" + url.PathEscape(r.req.Service) + "/" + url.PathEscape(r.req.ID)
		err := r.c.write(ctx, http.MethodDelete, path, nil, nil)
		if err != nil && !errors.Is(err, ErrNotFound) {
			r.closeErr = fmt.Errorf("registry: deregister %s/%s: %w", r.req.Service, r.req.ID, err)
		}
	})
	return r.closeErr
}

// abandon stops renewing without deregistering, as a crashed process
// would (tests use it to simulate kill -9).
func (r *Registration) abandon() {
	r.closeOnce.Do(func() {
		r.stop()
		<-r.done
	})
}
