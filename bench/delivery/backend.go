package main

import (
	"context"
	"errors"
	"io"
	"net"
	"net/http"
	"sync"
	"time"
)

// recorder is the benchmark's backend: it answers every delivery 200 and
// notes, per Idempotency-Key, when the first copy arrived. It runs in the
// same process as the load generator, so arrival and 202 times share one
// monotonic clock.
type recorder struct {
	mu       sync.Mutex
	arrivals map[string]time.Time
	dups     int
	gate     chan struct{}       // while non-nil, deliveries wait for it to close
	pending  map[string]struct{} // keys expect waits for
	allIn    chan struct{}       // closed once pending is empty

	srv  *http.Server
	addr string
	done chan struct{}
}

// startRecorder serves on a free loopback port until close.
func startRecorder() (*recorder, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	r := &recorder{arrivals: make(map[string]time.Time, 1<<18), addr: ln.Addr().String(), done: make(chan struct{})}
	ok := []byte("ok\n")
	r.srv = &http.Server{
		ReadHeaderTimeout: 10 * time.Second,
		Handler: http.HandlerFunc(func(w http.ResponseWriter, q *http.Request) {
			r.mu.Lock()
			gate := r.gate
			r.mu.Unlock()
			if gate != nil {
				<-gate
			}
			now := time.Now()
			io.Copy(io.Discard, q.Body)
			r.note(q.Header.Get("Idempotency-Key"), now)
			w.Header()["Date"] = nil
			w.Write(ok)
		}),
	}
	go func() {
		defer close(r.done)
		if err := r.srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
			panic(err)
		}
	}()
	return r, nil
}

// hold makes deliveries wait (the gateway's in-flight limit then stops
// delivery work) until the returned func is called.
func (r *recorder) hold() (release func()) {
	g := make(chan struct{})
	r.mu.Lock()
	r.gate = g
	r.mu.Unlock()
	return func() {
		r.mu.Lock()
		r.gate = nil
		r.mu.Unlock()
		close(g)
	}
}

func (r *recorder) note(key string, at time.Time) {
	r.mu.Lock()
	if _, seen := r.arrivals[key]; seen {
		r.dups++
	} else {
		r.arrivals[key] = at
		if _, ok := r.pending[key]; ok {
			delete(r.pending, key)
			if len(r.pending) == 0 {
				close(r.allIn)
				r.pending = nil
			}
		}
	}
	r.mu.Unlock()
}

// expect returns a channel closed once every key has arrived. Arrivals
// tick it off as they come, so waiting costs nothing (polling counts over
// a large key set would steal CPU from the gateway being measured). One
// expectation at a time.
func (r *recorder) expect(keys []string) <-chan struct{} {
	r.mu.Lock()
	defer r.mu.Unlock()
	done := make(chan struct{})
	pending := make(map[string]struct{}, len(keys))
	for _, k := range keys {
		if _, ok := r.arrivals[k]; !ok {
			pending[k] = struct{}{}
		}
	}
	if len(pending) == 0 {
		close(done)
		return done
	}
	r.pending, r.allIn = pending, done
	return done
}

// count reports how many of keys have arrived.
func (r *recorder) count(keys []string) int {
	r.mu.Lock()
	defer r.mu.Unlock()
	n := 0
	for _, k := range keys {
		if _, ok := r.arrivals[k]; ok {
			n++
		}
	}
	return n
}

// total reports distinct deliveries and duplicate ones so far.
func (r *recorder) total() (distinct, dups int) {
	r.mu.Lock()
	defer r.mu.Unlock()
	return len(r.arrivals), r.dups
}

// arrival reports when key first arrived.
func (r *recorder) arrival(key string) (time.Time, bool) {
	r.mu.Lock()
	defer r.mu.Unlock()
	t, ok := r.arrivals[key]
	return t, ok
}

func (r *recorder) close() {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	r.srv.Shutdown(ctx)
	<-r.done
}
