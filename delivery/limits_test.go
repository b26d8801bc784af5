package delivery

import (
	"context"
	"errors"
	"strconv"
	"sync/atomic"
	"testing"
	"time"

	"github.com/bulwark-go/bulwark"
)

// TestMaxInFlightPerUpstream: at most MaxInFlight deliveries per upstream at
// once, and the limit of one upstream does not hold up another.
func TestMaxInFlightPerUpstream(t *testing.T) {
	release := make(chan struct{})
	var cur, peak, other atomic.Int64
	cfg := testConfig(t, t.TempDir())
	cfg.MaxInFlight = 2
	s := open(t, cfg, forwardFunc(func(ctx context.Context, m *bulwark.Message) (int, error) {
		if m.Upstream == "other" {
			other.Add(1)
			return 200, nil
		}
		n := cur.Add(1)
		defer cur.Add(-1)
		for {
			p := peak.Load()
			if n <= p || peak.CompareAndSwap(p, n) {
				break
			}
		}
		select {
		case <-release:
			return 200, nil
		case <-ctx.Done():
			return 0, ctx.Err()
		}
	}))
	var ids []string
	for i := range 10 {
		id, err := s.Enqueue(t.Context(), msg("slow", "s"+strconv.Itoa(i), "", "x"))
		if err != nil {
			t.Fatal(err)
		}
		ids = append(ids, id)
	}
	waitFor(t, 10*time.Second, "2 deliveries in flight", func() bool { return s.Snapshot().InFlight == 2 })
	if _, err := s.Enqueue(t.Context(), msg("other", "o", "", "x")); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 10*time.Second, "the other upstream delivered", func() bool { return other.Load() == 1 })
	close(release)
	for _, id := range ids {
		waitState(t, s, id, bulwark.DeliveryDelivered)
	}
	if p := peak.Load(); p != 2 {
		t.Errorf("peak concurrency %d, want 2", p)
	}
}

// TestSlowDeliveryNotRedelivered: a Forward slower than AckWait is kept
// alive by heartbeats instead of being redelivered to another worker.
func TestSlowDeliveryNotRedelivered(t *testing.T) {
	var calls atomic.Int64
	cfg := testConfig(t, t.TempDir())
	cfg.AckWait = 300 * time.Millisecond
	s := open(t, cfg, forwardFunc(func(ctx context.Context, m *bulwark.Message) (int, error) {
		calls.Add(1)
		select { // a backend that takes three AckWaits to answer
		case <-time.After(900 * time.Millisecond):
			return 200, nil
		case <-ctx.Done():
			return 0, ctx.Err()
		}
	}))
	id, err := s.Enqueue(t.Context(), msg("up", "", "", "x"))
	if err != nil {
		t.Fatal(err)
	}
	st := waitState(t, s, id, bulwark.DeliveryDelivered)
	if c := calls.Load(); c != 1 || st.Attempts != 1 {
		t.Errorf("Forward called %d times, status %+v; want once", c, st)
	}
}

// TestExternalURLs: a second Service connects to the first one's server
// (as gateways share an external NATS cluster) and shares its streams and
// durable consumers.
func TestExternalURLs(t *testing.T) {
	b := newBackend(t)
	cfg := testConfig(t, t.TempDir())
	cfg.Port = -1
	a := open(t, cfg, newForwarder(t, b))
	if a.ClientURL() == "" {
		t.Fatal("listening server has no client URL")
	}
	ext := testConfig(t, "")
	ext.URLs = []string{a.ClientURL()}
	c := open(t, ext, newForwarder(t, b))
	for i := range 20 {
		if _, err := c.Enqueue(t.Context(), msg("up", "x"+strconv.Itoa(i), "", "x")); err != nil {
			t.Fatal(err)
		}
	}
	waitFor(t, 10*time.Second, "20 deliveries", func() bool { return b.unique() == 20 })
	id, err := c.Enqueue(t.Context(), msg("up", "x0", "", "again"))
	if err != nil {
		t.Fatal(err)
	}
	if st, err := a.Status(t.Context(), id); err != nil || st.State != bulwark.DeliveryDelivered {
		t.Errorf("status via the embedding service: %+v, %v", st, err)
	}
}

// TestBacklogFullRefusesNew: at MaxBacklog the next Enqueue fails with
// ErrBacklogFull and nothing already accepted is dropped.
func TestBacklogFullRefusesNew(t *testing.T) {
	release := make(chan struct{})
	var delivered atomic.Int64
	cfg := testConfig(t, t.TempDir())
	cfg.MaxBacklog = 5
	s := open(t, cfg, forwardFunc(func(ctx context.Context, m *bulwark.Message) (int, error) {
		select {
		case <-release:
			delivered.Add(1)
			return 200, nil
		case <-ctx.Done():
			return 0, ctx.Err()
		}
	}))
	var ids []string
	for i := range 5 {
		id, err := s.Enqueue(t.Context(), msg("u", "k"+strconv.Itoa(i), "", "x"))
		if err != nil {
			t.Fatalf("message %d of 5: %v", i, err)
		}
		ids = append(ids, id)
	}
	if _, err := s.Enqueue(t.Context(), msg("u", "k-over", "", "x")); !errors.Is(err, ErrBacklogFull) {
		t.Fatalf("sixth message: err = %v, want ErrBacklogFull", err)
	}
	close(release)
	for _, id := range ids {
		waitState(t, s, id, bulwark.DeliveryDelivered)
	}
	// Room again once the backlog drained.
	if _, err := s.Enqueue(t.Context(), msg("u", "k-after", "", "x")); err != nil {
		t.Fatalf("after draining: %v", err)
	}
}
