package delivery

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"sync"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/bulwark-go/bulwark"
)

// startWorkers creates the durable consumers (one unordered, one per
// partition) and starts a fetch loop for each.
func (s *Service) startWorkers(ctx context.Context) error {
	fetchCtx, fetchC := context.WithCancel(context.Background())
	workCtx, workC := context.WithCancel(context.Background())
	s.fetchC, s.workC = fetchC, workC

	type spec struct {
		name, subject string
		pending       int
	}
	specs := []spec{{"any", s.subjAny, s.cfg.MaxAckPending}}
	for p := range s.cfg.Partitions {
		specs = append(specs, spec{"part-" + strconv.Itoa(p), s.subjPart + "." + strconv.Itoa(p), 1})
	}
	cons := make([]jetstream.Consumer, len(specs))
	for i, sp := range specs {
		err := s.retry(ctx, "create consumer "+sp.name, func(ctx context.Context) (err error) {
			cons[i], err = s.work.CreateOrUpdateConsumer(ctx, jetstream.ConsumerConfig{
				Durable:       sp.name,
				FilterSubject: sp.subject,
				AckPolicy:     jetstream.AckExplicitPolicy,
				AckWait:       s.cfg.AckWait,
				// Attempts are counted here, not by the server: a message
				// that reached MaxAttempts is dead-lettered by the worker,
				// and one whose dead-lettering failed is retried later.
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
	for i, c := range cons {
		ordered := i > 0
		batch := s.cfg.MaxAckPending
		if ordered {
			batch = 1
		}
		it, err := c.Messages(jetstream.PullMaxMessages(batch))
		if err != nil {
			return fmt.Errorf("delivery: consume %s: %w", specs[i].name, err)
		}
		s.fetchW.Go(func() { s.fetchLoop(workCtx, it, ordered) })
	}
	// One goroutine stops every iterator when fetching is cancelled; Next
	// then returns ErrMsgIteratorClosed and the loops end.
	s.fetchW.Go(func() { s.statsLoop(fetchCtx) })
	return nil
}

// fetchLoop takes messages from one consumer. Ordered partitions deliver in
// this goroutine (the server hands out one message at a time anyway);
// unordered messages each get a goroutine, bounded by MaxAckPending.
func (s *Service) fetchLoop(workCtx context.Context, it jetstream.MessagesContext, ordered bool) {
	stop := context.AfterFunc(s.fetchCtxDone(), it.Stop)
	defer stop()
	for {
		msg, err := it.Next()
		if err != nil {
			if errors.Is(err, jetstream.ErrMsgIteratorClosed) || errors.Is(err, nats.ErrConnectionClosed) {
				return
			}
			s.log.Debug("delivery: fetch", "err", err)
			continue
		}
		if ordered {
			s.deliver(workCtx, msg)
			continue
		}
		s.workW.Go(func() { s.deliver(workCtx, msg) })
	}
}

// fetchCtxDone returns a context that ends when Close begins.
func (s *Service) fetchCtxDone() context.Context {
	ctx, cancel := context.WithCancel(context.Background())
	go func() {
		<-s.closing
		cancel()
	}()
	return ctx
}
