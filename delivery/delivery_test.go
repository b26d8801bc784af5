package delivery

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/bulwark-go/bulwark"
)

// TestRecoveryDeliversAllOnceInOrder: 1,000 messages accepted while the
// backend is down are all delivered once it recovers, exactly once as seen by
// the deduplicating backend, and in acceptance order per order key.
func TestRecoveryDeliversAllOnceInOrder(t *testing.T) {
	b := newBackend(t)
	b.failing.Store(true)
	reg := prometheus.NewRegistry()
	cfg := testConfig(t, t.TempDir())
	cfg.Registerer = reg
	cfg.Backoff = []time.Duration{50 * time.Millisecond, 100 * time.Millisecond, 200 * time.Millisecond}
	s := open(t, cfg, newForwarder(t, b))

	const unordered, keys, perKey = 500, 10, 50
	ctx := t.Context()
	var wg sync.WaitGroup
	errs := make(chan error, keys+4)
	// Ordered messages: one goroutine per key enqueues its sequence in order.
	for k := range keys {
		wg.Go(func() {
			for i := range perKey {
				key := fmt.Sprintf("o%d-%d", k, i)
				if _, err := s.Enqueue(ctx, msg("up", key, "key"+strconv.Itoa(k), strconv.Itoa(i))); err != nil {
					errs <- err
					return
				}
			}
		})
	}
	for w := range 4 {
		wg.Go(func() {
			for i := w; i < unordered; i += 4 {
				if _, err := s.Enqueue(ctx, msg("up", "u"+strconv.Itoa(i), "", "x")); err != nil {
					errs <- err
					return
				}
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatalf("Enqueue: %v", err)
	}
	// Let the outage be seen: some attempts must have failed.
	waitFor(t, 10*time.Second, "failed attempts", func() bool { return s.Snapshot().Retried >= 100 })
	if b.unique() != 0 {
		t.Fatalf("backend recorded %d deliveries while failing", b.unique())
	}
	b.failing.Store(false)

	waitFor(t, 60*time.Second, "1,000 deliveries", func() bool { return b.unique() == unordered+keys*perKey })
	// Delivery is at least once: a message whose AckWait runs out under
	// load (race detector, shared CPUs) can reach the backend twice, and
	// the backend's deduplication on Idempotency-Key absorbs it. Exactly
	// once is what the backend records: b.order/b.body hold first
	// deliveries only, and unique() counts keys.
	b.mu.Lock()
	dups := 0
	for _, n := range b.seen {
		dups += n - 1
	}
	for k := range keys {
		got := b.order["key"+strconv.Itoa(k)]
		for i, v := range got {
			if v != strconv.Itoa(i) {
				t.Fatalf("key%d: delivery %d carried message %s (order %v)", k, i, v, got)
			}
		}
	}
	b.mu.Unlock()
	waitFor(t, 10*time.Second, "empty backlog", func() bool { return s.Snapshot().Queued == 0 })
	snap := s.Snapshot()
	if snap.Delivered < 1000 || snap.Enqueued != 1000 || snap.InFlight != 0 {
		t.Errorf("snapshot %+v", snap)
	}
	if got := gatherValue(t, reg, "bulwark_delivery_delivered_total"); got < 1000 {
		t.Errorf("delivered_total = %v", got)
	}
	t.Logf("backend requests %d for 1000 messages (%d successful duplicates absorbed); snapshot %+v", b.hits.Load(), dups, snap)
}

func gatherValue(t *testing.T, reg *prometheus.Registry, name string) float64 {
	t.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() == name {
			m := mf.GetMetric()[0]
			if m.Counter != nil {
				return m.Counter.GetValue()
			}
			return m.Gauge.GetValue()
		}
	}
	t.Fatalf("metric %s not registered", name)
	return 0
}

// TestDeadLetterAndReplay: a message that always fails lands in the DLQ
// after MaxAttempts with the error; Replay delivers it once fixed.
func TestDeadLetterAndReplay(t *testing.T) {
	b := newBackend(t)
	fwd := newForwarder(t, b)
	var broken sync.Map // upstream → true: fail without reaching the backend
	cfg := testConfig(t, t.TempDir())
	cfg.MaxAttempts = 3
	s := open(t, cfg, forwardFunc(func(ctx context.Context, m *bulwark.Message) (int, error) {
		if _, ok := broken.Load(m.Upstream); ok {
			return 0, errors.New("connection refused")
		}
		return fwd.Forward(ctx, m)
	}))
	b.failing.Store(true)
	broken.Store("down", true)

	ctx := t.Context()
	id503, err := s.Enqueue(ctx, msg("up", "dead-503", "k", "a"))
	if err != nil {
		t.Fatal(err)
	}
	idErr, err := s.Enqueue(ctx, msg("down", "", "", "b"))
	if err != nil {
		t.Fatal(err)
	}
	st := waitState(t, s, id503, bulwark.DeliveryDead)
	if st.Attempts != 3 || st.Status != 503 || !strings.Contains(st.LastError, "503") {
		t.Errorf("503 status = %+v", st)
	}
	st = waitState(t, s, idErr, bulwark.DeliveryDead)
	if st.Attempts != 3 || st.LastError != "connection refused" {
		t.Errorf("error status = %+v", st)
	}
	waitFor(t, 5*time.Second, "backlog empty, 2 dead letters", func() bool {
		sn := s.Snapshot()
		return sn.Queued == 0 && sn.DeadLetters == 2
	})
	dl, err := s.DeadLetters(ctx, 10)
	if err != nil || len(dl) != 2 {
		t.Fatalf("DeadLetters = %v, %v", dl, err)
	}
	for _, d := range dl {
		switch d.Message.ID {
		case id503:
			if d.Attempts != 3 || d.LastStatus != 503 || d.LastError != "backend answered 503" {
				t.Errorf("dead letter = %+v", d)
			}
		case idErr:
			if d.Attempts != 3 || d.LastError != "connection refused" {
				t.Errorf("dead letter = %+v", d)
			}
		default:
			t.Errorf("unexpected dead letter %+v", d)
		}
	}

	// Fix one cause, replay only that upstream; then the other.
	b.failing.Store(false)
	n, err := s.Replay(ctx, ReplayFilter{Upstream: "up"})
	if err != nil || n != 1 {
		t.Fatalf("Replay(up) = %d, %v", n, err)
	}
	st = waitState(t, s, id503, bulwark.DeliveryDelivered)
	if st.Status != 200 || st.Attempts != 1 {
		t.Errorf("after replay: %+v", st)
	}
	broken.Delete("down")
	n, err = s.Replay(ctx, ReplayFilter{})
	if err != nil || n != 1 {
		t.Fatalf("Replay(all) = %d, %v", n, err)
	}
	waitState(t, s, idErr, bulwark.DeliveryDelivered)
	if dl, err := s.DeadLetters(ctx, 10); err != nil || len(dl) != 0 {
		t.Fatalf("DeadLetters after replay = %v, %v", dl, err)
	}
	if !b.has("dead-503") || !b.has(idErr) {
		t.Error("backend did not see the replayed messages (with their Idempotency-Keys)")
	}
}

// TestIdempotencyKey: the same key twice is one message, one delivery, one id.
func TestIdempotencyKey(t *testing.T) {
	b := newBackend(t)
	s := open(t, testConfig(t, t.TempDir()), newForwarder(t, b))
	ctx := t.Context()
	id1, err := s.Enqueue(ctx, msg("up", "same", "", "first"))
	if err != nil {
		t.Fatal(err)
	}
	id2, err := s.Enqueue(ctx, msg("up", "same", "", "second"))
	if err != nil {
		t.Fatal(err)
	}
	if id1 != id2 {
		t.Fatalf("ids differ: %s, %s", id1, id2)
	}
	waitState(t, s, id1, bulwark.DeliveryDelivered)
	waitFor(t, 5*time.Second, "empty backlog", func() bool { return s.Snapshot().Queued == 0 })
	if h := b.hits.Load(); h != 1 {
		t.Errorf("backend hits = %d, want 1", h)
	}
	if got := b.body["same"]; got != "first" {
		t.Errorf("delivered body %q, want the first message", got)
	}
	if sn := s.Snapshot(); sn.Enqueued != 1 || sn.Duplicates != 1 {
		t.Errorf("snapshot %+v", sn)
	}
	// Another route with the same key is another message.
	m := msg("up", "same", "", "other route")
	m.Route = "r2"
	id3, err := s.Enqueue(ctx, m)
	if err != nil || id3 == id1 {
		t.Fatalf("other route: id %s, %v", id3, err)
	}
}

// TestOutcomes checks the outcome rules per backend status.
func TestOutcomes(t *testing.T) {
	b := newBackend(t)
	fwd := newForwarder(t, b)
	cfg := testConfig(t, t.TempDir())
	cfg.MaxAttempts = 2
	cfg.Backoff = []time.Duration{10 * time.Millisecond}
	s := open(t, cfg, forwardFunc(func(ctx context.Context, m *bulwark.Message) (int, error) {
		code, _ := strconv.Atoi(string(m.Body))
		if code == 0 {
			return fwd.Forward(ctx, m)
		}
		return code, nil
	}))
	tests := []struct {
		code     int
		want     bulwark.DeliveryState
		attempts int
	}{
		{200, bulwark.DeliveryDelivered, 1},
		{204, bulwark.DeliveryDelivered, 1},
		{302, bulwark.DeliveryDelivered, 1},
		{400, bulwark.DeliveryDelivered, 1},
		{404, bulwark.DeliveryDelivered, 1},
		{408, bulwark.DeliveryDead, 2},
		{429, bulwark.DeliveryDead, 2},
		{500, bulwark.DeliveryDead, 2},
		{503, bulwark.DeliveryDead, 2},
	}
	for _, tt := range tests {
		t.Run(strconv.Itoa(tt.code), func(t *testing.T) {
			id, err := s.Enqueue(t.Context(), msg("up", "", "", strconv.Itoa(tt.code)))
			if err != nil {
				t.Fatal(err)
			}
			st := waitState(t, s, id, tt.want)
			if st.Attempts != tt.attempts || st.Status != tt.code || st.ID != id {
				t.Errorf("status %+v, want %d attempts, status %d", st, tt.attempts, tt.code)
			}
		})
	}
}

// TestEnqueueRejects covers the errors callers branch on.
func TestEnqueueRejects(t *testing.T) {
	cfg := testConfig(t, t.TempDir())
	cfg.MaxBody = 10
	s := open(t, cfg, forwardFunc(func(context.Context, *bulwark.Message) (int, error) { return 200, nil }))
	ctx := t.Context()
	tests := []struct {
		name string
		m    *bulwark.Message
		want error
	}{
		{"nil", nil, ErrInvalidMessage},
		{"no upstream", msg("", "", "", ""), ErrInvalidMessage},
		{"too large", msg("up", "", "", "01234567890"), ErrTooLarge},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if _, err := s.Enqueue(ctx, tt.m); !errors.Is(err, tt.want) {
				t.Errorf("Enqueue = %v, want %v", err, tt.want)
			}
		})
	}
	if _, err := s.Status(ctx, "nope"); !errors.Is(err, ErrNotFound) {
		t.Errorf("Status(unknown) = %v", err)
	}
	if _, err := s.Status(ctx, "../x"); !errors.Is(err, ErrNotFound) {
		t.Errorf("Status(bad id) = %v", err)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Enqueue(ctx, msg("up", "", "", "")); !errors.Is(err, ErrClosed) {
		t.Errorf("Enqueue after Close = %v", err)
	}
	if err := s.Close(); err != nil {
		t.Errorf("second Close = %v", err)
	}
}

// TestRestartDeliversPending: Close and Open again on the same DataDir;
// messages accepted before are delivered after.
func TestRestartDeliversPending(t *testing.T) {
	dir := t.TempDir()
	b := newBackend(t)
	b.failing.Store(true)
	cfg := testConfig(t, dir)
	s1, err := Open(t.Context(), cfg, newForwarder(t, b))
	if err != nil {
		t.Fatal(err)
	}
	ids := map[string]string{}
	for i := range 50 {
		key := "r" + strconv.Itoa(i)
		orderKey := ""
		if i%2 == 0 {
			orderKey = "k"
		}
		id, err := s1.Enqueue(t.Context(), msg("up", key, orderKey, strconv.Itoa(i/2)))
		if err != nil {
			t.Fatal(err)
		}
		ids[key] = id
	}
	if err := s1.Close(); err != nil {
		t.Fatal(err)
	}
	b.failing.Store(false)
	s2 := open(t, cfg, newForwarder(t, b))
	waitFor(t, 30*time.Second, "50 deliveries after restart", func() bool { return b.unique() == 50 })
	for key, id := range ids {
		if st := waitState(t, s2, id, bulwark.DeliveryDelivered); st.Status != 200 {
			t.Errorf("%s: %+v", key, st)
		}
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	for i, v := range b.order["k"] {
		if v != strconv.Itoa(i) {
			t.Fatalf("ordered key after restart: %v", b.order["k"])
		}
	}
}

// TestPartitionsShrink: messages stored under more partitions are still
// delivered, in order, after a restart with fewer.
func TestPartitionsShrink(t *testing.T) {
	dir := t.TempDir()
	b := newBackend(t)
	b.failing.Store(true)
	cfg := testConfig(t, dir)
	cfg.Partitions = 8
	s1, err := Open(t.Context(), cfg, newForwarder(t, b))
	if err != nil {
		t.Fatal(err)
	}
	keys := 0
	for k := range 16 {
		if partition("key"+strconv.Itoa(k), 8) < 2 {
			continue // only keys in partitions that will disappear
		}
		keys++
		for i := range 5 {
			if _, err := s1.Enqueue(t.Context(), msg("up", fmt.Sprintf("p%d-%d", k, i), "key"+strconv.Itoa(k), strconv.Itoa(i))); err != nil {
				t.Fatal(err)
			}
		}
	}
	if err := s1.Close(); err != nil {
		t.Fatal(err)
	}
	b.failing.Store(false)
	cfg.Partitions = 2
	open(t, cfg, newForwarder(t, b))
	waitFor(t, 20*time.Second, "deliveries from old partitions", func() bool { return b.unique() == keys*5 })
	b.mu.Lock()
	defer b.mu.Unlock()
	for k, got := range b.order {
		for i, v := range got {
			if v != strconv.Itoa(i) {
				t.Fatalf("%s: order %v", k, got)
			}
		}
	}
}
