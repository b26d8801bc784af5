package delivery

import (
	"context"
	"errors"
	"strconv"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// orphanCheckEvery is how many stats refreshes pass between two looks for
// orphaned messages (every 10 s by default).
const orphanCheckEvery = 10

// orphanBatch bounds the orphans re-driven per consumer and pass.
const orphanBatch = 1000

// redriveOrphans re-enqueues the messages that are still in the work stream
// although their consumer's acknowledgement floor has passed them.
//
// The work stream has Limits retention and a worker deletes a message
// before acknowledging it, so a message at or below the floor is one the
// consumer will never hand out again but that was never settled: the
// consumer's state lost it (its pending record dropped across a consumer
// leader change after SIGKILLs — the state a WorkQueue stream would have
// deleted the message on). It is published
// again (a new stream sequence, pending for the consumer) and the old copy
// deleted: at worst a second delivery, which the Idempotency-Key lets the
// backend absorb, never a loss. The consumer's floor is read from its
// leader.
func (s *Service) redriveOrphans(ctx context.Context) {
	cctx, cancel := context.WithTimeout(ctx, s.cfg.OpTimeout)
	defer cancel()
	info, err := s.work.Info(cctx)
	if err != nil || info.State.Msgs == 0 {
		return
	}
	for i, c := range s.cons {
		ci, err := c.Info(cctx)
		if err != nil {
			s.log.Debug("delivery: consumer info", "err", err)
			continue
		}
		floor := ci.AckFloor.Stream
		for seq, n := info.State.FirstSeq, 0; seq <= floor && n < orphanBatch; seq, n = seq+1, n+1 {
			raw, err := s.work.GetMsg(cctx, seq, jetstream.WithGetMsgSubject(s.consSubj[i]))
			if err != nil {
				if !errors.Is(err, jetstream.ErrMsgNotFound) {
					s.log.Debug("delivery: orphan check", "err", err)
				}
				break
			}
			seq = raw.Sequence
			if seq > floor {
				break
			}
			if !s.redrive(cctx, raw, ci.Name, floor) {
				break
			}
		}
	}
}

// redrive publishes raw again and deletes the old copy; it reports whether
// both succeeded.
func (s *Service) redrive(ctx context.Context, raw *jetstream.RawStreamMsg, consumer string, floor uint64) bool {
	id := ""
	if m, err := decode(raw.Header, raw.Data); err == nil {
		id = m.ID
	}
	seq := strconv.FormatUint(raw.Sequence, 10)
	s.log.Warn("delivery: re-enqueueing a message its consumer passed over without settling it",
		"id", id, "seq", raw.Sequence, "consumer", consumer, "ack_floor", floor)
	// The Msg-Id makes a repeated pass over the same old copy (its delete
	// failed) a duplicate rather than a third copy.
	_, err := s.js.PublishMsg(ctx, &nats.Msg{Subject: raw.Subject, Header: storedHeader(raw.Header), Data: raw.Data},
		jetstream.WithMsgID("redrive-"+seq+"-"+id))
	if err != nil {
		s.log.Warn("delivery: re-enqueue failed, retrying on the next pass", "id", id, "seq", raw.Sequence, "err", err)
		return false
	}
	if err := deleteError(s.work.DeleteMsg(ctx, raw.Sequence)); err != nil {
		s.log.Warn("delivery: old copy of a re-enqueued message not deleted", "id", id, "seq", raw.Sequence, "err", err)
		return false
	}
	s.stats.redriven.Add(1)
	return true
}
