package delivery

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/bulwark-go/bulwark"
)

// Headers of dead letters.
const (
	hdrID         = "Bulwark-Id"
	hdrAttempts   = "Bulwark-Attempts"
	hdrLastError  = "Bulwark-Last-Error"
	hdrLastStatus = "Bulwark-Last-Status"
	hdrDeadAt     = "Bulwark-Dead-At"
)

// startWorkers creates the durable consumers (one unordered, one per
// partition) and starts a fetch loop for each, plus the stats loop.
func (s *Service) startWorkers(ctx context.Context) error {
	fetchCtx, fetchC := context.WithCancel(context.Background())
	workCtx, workC := context.WithCancel(context.Background())
	s.fetchC, s.workC = fetchC, workC

	specs, err := s.consumerSpecs(ctx)
	if err != nil {
		return err
	}
	cons := make([]jetstream.Consumer, len(specs))
	for i, sp := range specs {
		err := s.retry(ctx, "create consumer "+sp.name, func(ctx context.Context) (err error) {
			cons[i], err = s.work.CreateOrUpdateConsumer(ctx, jetstream.ConsumerConfig{
				Durable:       sp.name,
				FilterSubject: sp.subject,
				AckPolicy:     jetstream.AckExplicitPolicy,
				AckWait:       s.cfg.AckWait,
				// Attempts are counted by the worker, not the server: a
				// message that reached MaxAttempts is dead-lettered by the
				// worker, and one whose dead-lettering failed is retried.
				MaxDeliver:    -1,
				MaxAckPending: sp.pending,
				DeliverPolicy: jetstream.DeliverAllPolicy,
			})
			return err
		})
		if err != nil {
			return err
		}
	}
	s.cons = cons
	for _, sp := range specs {
		s.consSubj = append(s.consSubj, sp.subject)
	}
	for i, c := range cons {
		// Ordered partitions pull one message at a time (orderedLoop); the
		// unordered consumer streams batches.
		loop := func(ctx context.Context) { s.orderedLoop(ctx, workCtx, c) }
		if i == 0 {
			it, err := c.Messages(jetstream.PullMaxMessages(s.cfg.MaxAckPending))
			if err != nil {
				return fmt.Errorf("delivery: consume %s: %w", specs[i].name, err)
			}
			loop = func(ctx context.Context) { s.fetchLoop(ctx, workCtx, it) }
		}
		name := "delivery " + specs[i].name
		s.fetchW.Go(func() {
			if s.cfg.Run == nil {
				loop(fetchCtx)
				return
			}
			s.cfg.Run(fetchCtx, name, func(ctx context.Context) error { loop(ctx); return nil })
		})
	}
	s.fetchW.Go(func() { s.statsLoop(fetchCtx) })
	return nil
}

// consumerSpec describes one durable consumer of the work stream.
type consumerSpec struct {
	name, subject string
	pending       int // MaxAckPending: 1 keeps a partition in order
}

// consumerSpecs lists the consumers to run: the unordered one, one per
// partition, and any partition consumer left from a run with more
// Partitions, so that messages stored under the old partitioning are still
// delivered (in order within their old partition).
func (s *Service) consumerSpecs(ctx context.Context) ([]consumerSpec, error) {
	specs := []consumerSpec{{"any", s.subjAny, s.cfg.MaxAckPending}}
	part := func(p int) consumerSpec {
		return consumerSpec{"part-" + strconv.Itoa(p), s.subjPart + "." + strconv.Itoa(p), 1}
	}
	for p := range s.cfg.Partitions {
		specs = append(specs, part(p))
	}
	var names []string
	err := s.retry(ctx, "list consumers", func(ctx context.Context) error {
		names = names[:0]
		l := s.work.ConsumerNames(ctx)
		for n := range l.Name() {
			names = append(names, n)
		}
		return l.Err()
	})
	if err != nil {
		return nil, err
	}
	for _, n := range names {
		rest, ok := strings.CutPrefix(n, "part-")
		if p, err := strconv.Atoi(rest); ok && err == nil && p >= s.cfg.Partitions {
			s.log.Warn("delivery: draining a partition from an earlier configuration", "consumer", n)
			specs = append(specs, part(p))
		}
	}
	return specs, nil
}

// fetchLoop takes messages from the unordered consumer until fetchCtx ends;
// each message gets a delivery goroutine, bounded by the consumer's
// MaxAckPending.
func (s *Service) fetchLoop(fetchCtx, workCtx context.Context, it jetstream.MessagesContext) {
	// On close, Drain rather than Stop: the messages the library already
	// fetched still come out of Next, and are handed back at once with a
	// Nak, so the next run (or another member) gets them immediately
	// instead of after AckWait (30 s by default).
	defer context.AfterFunc(fetchCtx, it.Drain)()
	for {
		msg, err := it.Next()
		if err != nil {
			if errors.Is(err, jetstream.ErrMsgIteratorClosed) || errors.Is(err, nats.ErrConnectionClosed) {
				return
			}
			// Missed heartbeats and the like while the server is away:
			// the iterator recovers by itself; do not spin meanwhile.
			s.log.Debug("delivery: fetch", "err", err)
			if !sleepCtx(fetchCtx, 100*time.Millisecond) {
				return
			}
			continue
		}
		if fetchCtx.Err() != nil {
			_ = msg.Nak() // closing: hand it back at once
			continue
		}
		s.workW.Go(func() { s.deliver(workCtx, msg) })
	}
}

// orderedPoll bounds one pull request of an ordered partition; an idle
// partition re-asks this often. The heartbeat lets a request the server no
// longer holds (a leader change, a restart) be noticed within twice its
// interval instead of at the end of the poll.
const (
	orderedPoll      = 10 * time.Second
	orderedHeartbeat = 2 * time.Second
)

// orderedLoop delivers one ordered partition, in this goroutine, one
// message at a time (the consumer's MaxAckPending is 1), until fetchCtx
// ends.
//
// Each message is asked for with its own pull request (Consumer.Next), not
// through a long-lived Messages iterator: with a batch of one, the iterator
// must issue a new pull after every message, and nats.go (v1.55.0) skips
// that pull when the reply to the previous one arrived before its pull
// goroutine cleared fetchInProgress — under CPU load the partition then
// sat idle, with messages pending and no pull request at the server,
// until two missed 15 s heartbeats reset the iterator: 30 s per stall
// (TestKill9's flake).
func (s *Service) orderedLoop(fetchCtx, workCtx context.Context, c jetstream.Consumer) {
	for fetchCtx.Err() == nil {
		ctx, cancel := context.WithTimeout(fetchCtx, orderedPoll)
		msg, err := c.Next(jetstream.FetchContext(ctx), jetstream.FetchHeartbeat(orderedHeartbeat))
		cancel()
		switch {
		case err == nil:
			s.deliver(workCtx, msg)
		case fetchCtx.Err() != nil || errors.Is(err, nats.ErrConnectionClosed):
			return
		case errors.Is(err, nats.ErrTimeout), errors.Is(err, jetstream.ErrNoMessages), errors.Is(err, context.DeadlineExceeded):
			// An idle partition: ask again.
		default:
			// Missed heartbeats, a leader change, the server away: do
			// not spin meanwhile.
			s.log.Debug("delivery: fetch", "err", err)
			if !sleepCtx(fetchCtx, 100*time.Millisecond) {
				return
			}
		}
	}
}

// sleepCtx waits d, or less if ctx ends first; it reports whether ctx is
// still live.
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

// retryable reports whether a backend's answer calls for another attempt:
// no answer, 5xx, 408 Request Timeout and 429 Too Many Requests.
func retryable(code int, err error) bool {
	return err != nil || code < 200 || code >= 500 || code == 408 || code == 429
}

// deliver makes one delivery attempt and settles the message: ack, nak with
// backoff, or dead letter.
func (s *Service) deliver(ctx context.Context, msg jetstream.Msg) {
	meta, err := msg.Metadata()
	if err != nil {
		s.log.Error("delivery: message without metadata", "subject", msg.Subject(), "err", err)
		return
	}
	attempt := int(meta.NumDelivered)
	if !s.active.claim(meta.Sequence.Stream) {
		// Redelivered while an earlier delivery of the same stored message
		// is still running here (its AckWait ran out under load before a
		// heartbeat arrived): let that one settle it rather than sending it
		// to the backend twice at once.
		_ = msg.InProgress()
		return
	}
	defer s.active.release(meta.Sequence.Stream)
	defer s.heartbeat(msg)()

	m, err := decode(msg.Headers(), msg.Data())
	if err != nil {
		// Retrying cannot fix an undecodable message: dead-letter it as is.
		s.deadLetter(ctx, msg, meta, "", attempt, 0, err.Error())
		return
	}
	release, err := s.sems.acquire(ctx, m.Upstream)
	if err != nil {
		_ = msg.Nak() // closing: hand it back at once
		return
	}
	release = sync.OnceFunc(release) // released before the removal below
	defer release()
	if attempt == 1 {
		s.putStatus(ctx, bulwark.DeliveryStatus{ID: m.ID, State: bulwark.DeliveryDelivering})
	}

	s.stats.inFlight.Add(1)
	fctx, cancel := context.WithTimeout(ctx, s.cfg.AttemptTimeout)
	code, ferr := s.fwd.Forward(fctx, &m)
	cancel()
	s.stats.inFlight.Add(-1)
	if ctx.Err() != nil {
		_ = msg.Nak() // cancelled by Close: not the backend's fault
		return
	}

	if !retryable(code, ferr) {
		release()
		s.putStatus(ctx, bulwark.DeliveryStatus{ID: m.ID, State: bulwark.DeliveryDelivered, Attempts: attempt, Status: code})
		if !s.remove(ctx, meta.Sequence.Stream, m.ID) {
			// Delivered but still stored: deliver it again later (the
			// backend deduplicates on the key) rather than acknowledge a
			// message the stream would then keep for ever.
			_ = msg.NakWithDelay(s.cfg.backoff(attempt))
			return
		}
		if err := msg.Ack(); err != nil {
			s.log.Warn("delivery: ack", "id", m.ID, "err", err)
		}
		s.stats.delivered.Add(1)
		return
	}
	lastErr := failureText(code, ferr)
	if attempt < s.cfg.MaxAttempts {
		s.putStatus(ctx, bulwark.DeliveryStatus{ID: m.ID, State: bulwark.DeliveryDelivering,
			Attempts: attempt, Status: code, LastError: lastErr})
		_ = msg.NakWithDelay(s.cfg.backoff(attempt))
		s.stats.retried.Add(1)
		return
	}
	s.deadLetter(ctx, msg, meta, m.ID, attempt, code, lastErr)
}

func failureText(code int, err error) string {
	if err != nil {
		return err.Error()
	}
	return "backend answered " + strconv.Itoa(code)
}

// deadLetter copies msg to the dead-letter stream with the reason and then
// terminates it in the work stream. If the copy fails the message stays in
// the work stream and is retried after a backoff, so it is never lost.
func (s *Service) deadLetter(ctx context.Context, msg jetstream.Msg, meta *jetstream.MsgMetadata, id string, attempt, code int, lastErr string) {
	h := storedHeader(msg.Headers())
	h.Set(hdrID, id)
	h.Set(hdrAttempts, strconv.Itoa(attempt))
	h.Set(hdrLastStatus, strconv.Itoa(code))
	h.Set(hdrLastError, headerSafe(lastErr))
	h.Set(hdrDeadAt, time.Now().UTC().Format(time.RFC3339Nano))
	cctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), s.cfg.OpTimeout)
	defer cancel()
	// The Msg-Id makes a repeated dead-lettering of the same stored message
	// (crash between publish and Term) a duplicate.
	msgID := "dead-" + strconv.FormatUint(meta.Sequence.Stream, 10) + "-" + id
	_, err := s.js.PublishMsg(cctx, &nats.Msg{Subject: s.subjDead, Header: h, Data: msg.Data()}, jetstream.WithMsgID(msgID))
	if err != nil {
		s.log.Error("delivery: dead-letter publish failed, retrying later", "id", id, "err", err)
		_ = msg.NakWithDelay(s.cfg.backoff(attempt))
		return
	}
	if id != "" {
		s.putStatus(ctx, bulwark.DeliveryStatus{ID: id, State: bulwark.DeliveryDead, Attempts: attempt,
			Status: code, LastError: lastErr})
	}
	if !s.remove(ctx, meta.Sequence.Stream, id) {
		_ = msg.NakWithDelay(s.cfg.backoff(attempt)) // dead-lettered again later (deduplicated)
		return
	}
	if err := msg.TermWithReason("max attempts"); err != nil {
		s.log.Warn("delivery: term", "id", id, "err", err)
	}
	s.stats.deadLettered.Add(1)
	s.log.Info("delivery: dead-lettered", "id", id, "attempts", attempt, "last_error", lastErr)
}

// removeTimeout bounds the retries of a settled message's removal from the
// work stream (its leader may be being elected).
const removeTimeout = 30 * time.Second

// remove deletes a settled (delivered or dead-lettered) message from the
// work stream, before its acknowledgement: that deletion, not the ack, is
// what takes it out of the backlog (the stream has Limits retention). A
// crash between the two leaves the message pending but gone, and the
// server drops it from the consumer when it would redeliver it. It retries
// while the stream has no leader, for up to removeTimeout or until ctx
// (the workers' context, cancelled by Close after DrainTimeout) ends, and
// reports whether the message is gone.
func (s *Service) remove(ctx context.Context, seq uint64, id string) bool {
	ctx, cancel := context.WithTimeout(ctx, removeTimeout)
	defer cancel()
	err := s.retry(ctx, "remove settled message", func(ctx context.Context) error {
		return deleteError(s.work.DeleteMsg(ctx, seq))
	})
	if err != nil {
		s.log.Warn("delivery: settled message not removed from the work stream; it will be delivered again", "id", id, "seq", seq, "err", err)
		return false
	}
	return true
}

// deleteError classifies a work-stream delete's error: nil when the
// message is gone already (a concurrent redelivery settled it), retryable
// when the stream's leader could not answer. nats.go reports a refused
// delete as ErrMsgDeleteUnsuccessful with the server's error as text only
// (no *APIError to inspect), hence the text matching.
func deleteError(err error) error {
	if err == nil || errors.Is(err, jetstream.ErrMsgNotFound) {
		return nil
	}
	text := strings.ToLower(err.Error())
	// 10037 "no message found", 10043 "sequence N not found": an earlier
	// try whose answer was lost, or a concurrent delivery, removed it.
	if strings.Contains(text, "err_code=10037") || strings.Contains(text, "err_code=10043") || strings.Contains(text, "not found") {
		return nil
	}
	if errors.Is(err, jetstream.ErrMsgDeleteUnsuccessful) && strings.Contains(text, "code=5") {
		return fmt.Errorf("%w (%w)", err, errLeaderUnavailable)
	}
	return err
}

// errLeaderUnavailable marks a JetStream answer that a retry may fix (the
// server's 5xx, reported as text).
var errLeaderUnavailable = errors.New("stream leader unavailable")

// headerSafe makes s a single header line of bounded length.
func headerSafe(s string) string {
	s = strings.Map(func(r rune) rune {
		if r == '\r' || r == '\n' {
			return ' '
		}
		return r
	}, s)
	if len(s) > 1024 {
		s = s[:1024]
	}
	return s
}

// heartbeat tells the server every AckWait/3 that msg is still being worked
// on (waiting for its upstream's semaphore or in Forward), so it is not
// redelivered to another worker meanwhile. The returned func stops it and
// waits for its goroutine.
func (s *Service) heartbeat(msg jetstream.Msg) func() {
	stop := make(chan struct{})
	var wg sync.WaitGroup
	wg.Go(func() {
		t := time.NewTicker(s.cfg.AckWait / 3)
		defer t.Stop()
		for {
			select {
			case <-stop:
				return
			case <-t.C:
				_ = msg.InProgress()
			}
		}
	})
	return func() { close(stop); wg.Wait() }
}

// semaphores bound deliveries in flight per upstream.
type semaphores struct {
	limit int
	mu    sync.Mutex
	m     map[string]chan struct{}
}

func (s *semaphores) acquire(ctx context.Context, upstream string) (release func(), err error) {
	s.mu.Lock()
	ch := s.m[upstream]
	if ch == nil {
		if s.m == nil {
			s.m = make(map[string]chan struct{})
		}
		ch = make(chan struct{}, s.limit)
		s.m[upstream] = ch
	}
	s.mu.Unlock()
	select {
	case ch <- struct{}{}:
		return func() { <-ch }, nil
	case <-ctx.Done():
		return nil, ctx.Err()
	}
}

// activeSet holds the stream sequences of the messages being delivered by
// this Service.
type activeSet struct {
	mu sync.Mutex
	m  map[uint64]struct{}
}

func (a *activeSet) claim(seq uint64) bool {
	a.mu.Lock()
	defer a.mu.Unlock()
	if _, ok := a.m[seq]; ok {
		return false
	}
	if a.m == nil {
		a.m = make(map[uint64]struct{})
	}
	a.m[seq] = struct{}{}
	return true
}

func (a *activeSet) release(seq uint64) {
	a.mu.Lock()
	delete(a.m, seq)
	a.mu.Unlock()
}
