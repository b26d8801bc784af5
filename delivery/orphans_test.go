package delivery

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/bulwark-go/bulwark"
)

// TestOrphanRedriven is the soak's lost write (seed 42, 10 min) reduced to
// its cause: the work stream's consumer counts a stored message as done
// although no worker delivered it. In the soak a stream leader judged so
// from its own replica of the consumer, which was behind after two
// SIGKILLs; here a stray client acknowledges the message on the durable
// consumer while no Service runs, which puts the consumer in the same
// state on purpose. With WorkQueue retention the server deletes the
// message at that acknowledgement and it is gone; with Limits retention it
// stays stored, and the next Service finds it below the consumer's ack
// floor and enqueues it again, so the backend gets it.
func TestOrphanRedriven(t *testing.T) {
	dir := t.TempDir()
	b := newBackend(t)
	cfg := testConfig(t, dir)
	s1 := open(t, cfg, newForwarder(t, b))
	if err := s1.Close(); err != nil {
		t.Fatal(err)
	}

	// The same store under a bare nats-server, as a stray client sees it.
	srv, err := server.NewServer(&server.Options{Port: -1, JetStream: true, StoreDir: dir, NoSigs: true, NoLog: true})
	if err != nil {
		t.Fatal(err)
	}
	srv.Start()
	if !srv.ReadyForConnections(10 * time.Second) {
		t.Fatal("bare nats-server not ready")
	}
	nc, err := nats.Connect(srv.ClientURL())
	if err != nil {
		t.Fatal(err)
	}
	js, err := jetstream.New(nc)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(t.Context(), 20*time.Second)
	defer cancel()
	m := msg("up", "orphan", "", "passed over")
	m.ID = messageID(m.Route, m.IdempotencyKey)
	m.Header.Set(idempotencyHeader, m.IdempotencyKey)
	hdr, data, err := encode(m)
	if err != nil {
		t.Fatal(err)
	}
	ack, err := js.PublishMsg(ctx, &nats.Msg{Subject: s1.subjAny, Header: hdr, Data: data})
	if err != nil {
		t.Fatal(err)
	}
	c, err := js.Consumer(ctx, s1.cfg.Name+"_WORK", "any")
	if err != nil {
		t.Fatal(err)
	}
	batch, err := c.Fetch(1, jetstream.FetchMaxWait(5*time.Second))
	if err != nil {
		t.Fatal(err)
	}
	got := 0
	for jm := range batch.Messages() {
		got++
		if err := jm.DoubleAck(ctx); err != nil {
			t.Fatal(err)
		}
	}
	if got != 1 {
		t.Fatalf("the stray client fetched %d messages, want 1 (fetch error %v)", got, batch.Error())
	}
	work, err := js.Stream(ctx, s1.cfg.Name+"_WORK")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := work.GetMsg(ctx, ack.Sequence); err != nil {
		t.Fatalf("an acknowledgement alone removed message %d from the work stream (retention %v): %v",
			ack.Sequence, work.CachedInfo().Config.Retention, err)
	}
	nc.Close()
	srv.Shutdown()
	srv.WaitForShutdown()

	s2 := open(t, cfg, newForwarder(t, b))
	waitFor(t, 30*time.Second, "the passed-over message delivered", func() bool { return b.has("orphan") })
	waitFor(t, 10*time.Second, "empty backlog", func() bool { return s2.Snapshot().Queued == 0 })
	if n := s2.Snapshot().Redriven; n != 1 {
		t.Errorf("Redriven = %d, want 1", n)
	}
	waitState(t, s2, m.ID, bulwark.DeliveryDelivered)
}

// TestWorkQueueStreamKept: a work stream created by an earlier version
// (WorkQueue retention, which nats-server cannot change) is kept and still
// delivers.
func TestWorkQueueStreamKept(t *testing.T) {
	dir := t.TempDir()
	cfg := testConfig(t, dir)
	c := cfg.withDefaults()
	srv, err := server.NewServer(&server.Options{Port: -1, JetStream: true, StoreDir: dir, NoSigs: true, NoLog: true})
	if err != nil {
		t.Fatal(err)
	}
	srv.Start()
	if !srv.ReadyForConnections(10 * time.Second) {
		t.Fatal("bare nats-server not ready")
	}
	nc, err := nats.Connect(srv.ClientURL())
	if err != nil {
		t.Fatal(err)
	}
	js, err := jetstream.New(nc)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := js.CreateStream(t.Context(), jetstream.StreamConfig{Name: c.Name + "_WORK", Subjects: []string{c.SubjectPrefix + ".work.>"},
		Retention: jetstream.WorkQueuePolicy, Storage: jetstream.FileStorage, Discard: jetstream.DiscardNew}); err != nil {
		t.Fatal(err)
	}
	nc.Close()
	srv.Shutdown()
	srv.WaitForShutdown()

	b := newBackend(t)
	s := open(t, cfg, newForwarder(t, b))
	if r := s.work.CachedInfo().Config.Retention; r != jetstream.WorkQueuePolicy {
		t.Errorf("retention %v, want the existing WorkQueue", r)
	}
	if _, err := s.Enqueue(t.Context(), msg("up", "old", "", "x")); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 10*time.Second, "delivery through the old stream", func() bool { return b.has("old") })
	waitFor(t, 10*time.Second, "empty backlog", func() bool { return s.Snapshot().Queued == 0 })
}

func TestDeleteError(t *testing.T) {
	for _, tc := range []struct {
		name          string
		err           error
		gone, retried bool
	}{
		{"deleted", nil, true, false},
		{"not found", jetstream.ErrMsgNotFound, true, false},
		{"not found text", fmt.Errorf("%w: %s", jetstream.ErrMsgDeleteUnsuccessful, "nats: API error: code=404 err_code=10037 description=no message found"), true, false},
		{"sequence gone", fmt.Errorf("%w: %s", jetstream.ErrMsgDeleteUnsuccessful, "nats: API error: code=400 err_code=10043 description=sequence 3877 not found"), true, false},
		{"no leader", fmt.Errorf("%w: %s", jetstream.ErrMsgDeleteUnsuccessful, "nats: API error: code=503 err_code=10008 description=JetStream system temporarily unavailable"), false, true},
		{"timeout", context.DeadlineExceeded, false, true},
		{"refused", fmt.Errorf("%w: %s", jetstream.ErrMsgDeleteUnsuccessful, "nats: API error: code=400 err_code=10000 description=bad request"), false, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := deleteError(tc.err)
			if (err == nil) != tc.gone {
				t.Fatalf("deleteError(%v) = %v, want gone=%v", tc.err, err, tc.gone)
			}
			if err != nil && transient(err) != tc.retried {
				t.Errorf("transient(%v) = %v, want %v", err, transient(err), tc.retried)
			}
		})
	}
}
