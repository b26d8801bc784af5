package delivery

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strconv"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/bulwark-go/bulwark"
)

// ReplayFilter selects dead letters for Replay. The zero value selects all.
type ReplayFilter struct {
	// IDs, when set, selects only these message ids.
	IDs []string
	// Upstream and Route, when set, must match the message's.
	Upstream, Route string
	// Limit caps how many are replayed (0 = no cap).
	Limit int
}

func (f *ReplayFilter) match(m *bulwark.Message) bool {
	return (len(f.IDs) == 0 || slices.Contains(f.IDs, m.ID)) &&
		(f.Upstream == "" || f.Upstream == m.Upstream) &&
		(f.Route == "" || f.Route == m.Route)
}

// Replay re-enqueues the dead letters that match filter (keeping their ids,
// with fresh attempts) and removes them from the dead-letter stream. It
// returns how many it replayed. It walks the dead letters present when it
// starts, so messages that die again meanwhile are not replayed twice.
//
// A crash between the re-enqueue and the removal leaves the dead letter in
// place; a later Replay within the Duplicates window is deduplicated, a later
// one delivers it once more (backends deduplicate on Idempotency-Key).
func (s *Service) Replay(ctx context.Context, filter ReplayFilter) (int, error) {
	info, err := s.dead.Info(ctx)
	if err != nil {
		return 0, fmt.Errorf("delivery: replay: %w", err)
	}
	last := info.State.LastSeq
	n := 0
	for seq := info.State.FirstSeq; seq <= last && seq > 0; seq++ {
		if filter.Limit > 0 && n >= filter.Limit {
			break
		}
		// Next stored message at or after seq (gaps left by earlier
		// replays are skipped by the server).
		raw, err := s.dead.GetMsg(ctx, seq, jetstream.WithGetMsgSubject(s.subjDead))
		if errors.Is(err, jetstream.ErrMsgNotFound) {
			break
		}
		if err != nil {
			return n, fmt.Errorf("delivery: replay: read dead letter %d: %w", seq, err)
		}
		seq = raw.Sequence
		if seq > last {
			break
		}
		m, err := decode(raw.Header, raw.Data)
		if err != nil {
			s.log.Warn("delivery: replay: undecodable dead letter left in place", "seq", seq, "err", err)
			continue
		}
		if !filter.match(&m) {
			continue
		}
		if err := s.replayOne(ctx, raw, &m); err != nil {
			return n, err
		}
		n++
	}
	return n, nil
}

func (s *Service) replayOne(ctx context.Context, raw *jetstream.RawStreamMsg, m *bulwark.Message) error {
	// The status goes first: once the message is back in the work stream a
	// worker may record "delivered" at any moment, which a later "queued"
	// would overwrite.
	if m.ID != "" {
		s.putStatus(ctx, bulwark.DeliveryStatus{ID: m.ID, State: bulwark.DeliveryQueued})
	}
	seq := strconv.FormatUint(raw.Sequence, 10)
	_, err := s.js.PublishMsg(ctx, &nats.Msg{Subject: s.subject(m.OrderKey), Header: storedHeader(raw.Header), Data: raw.Data},
		jetstream.WithMsgID("replay-"+seq+"-"+m.ID))
	if err != nil {
		return fmt.Errorf("delivery: replay %s: %w", m.ID, err)
	}
	if err := s.dead.DeleteMsg(ctx, raw.Sequence); err != nil && !errors.Is(err, jetstream.ErrMsgNotFound) {
		return fmt.Errorf("delivery: replay %s: remove dead letter: %w", m.ID, err)
	}
	s.stats.replayed.Add(1)
	return nil
}

// DeadLetter is a message in the dead-letter stream with why it died.
type DeadLetter struct {
	Message    bulwark.Message `json:"message"`
	Attempts   int             `json:"attempts"`
	LastStatus int             `json:"last_status,omitempty"`
	LastError  string          `json:"last_error"`
}

// DeadLetters returns up to limit dead letters, oldest first.
func (s *Service) DeadLetters(ctx context.Context, limit int) ([]DeadLetter, error) {
	info, err := s.dead.Info(ctx)
	if err != nil {
		return nil, fmt.Errorf("delivery: dead letters: %w", err)
	}
	var out []DeadLetter
	for seq := info.State.FirstSeq; seq <= info.State.LastSeq && seq > 0 && len(out) < limit; seq++ {
		raw, err := s.dead.GetMsg(ctx, seq, jetstream.WithGetMsgSubject(s.subjDead))
		if errors.Is(err, jetstream.ErrMsgNotFound) {
			break
		}
		if err != nil {
			return out, fmt.Errorf("delivery: dead letters: %w", err)
		}
		seq = raw.Sequence
		var d DeadLetter
		d.Message, _ = decode(raw.Header, raw.Data) // an undecodable one is still listed, with its reason
		d.Attempts, _ = strconv.Atoi(raw.Header.Get(hdrAttempts))
		d.LastStatus, _ = strconv.Atoi(raw.Header.Get(hdrLastStatus))
		d.LastError = raw.Header.Get(hdrLastError)
		out = append(out, d)
	}
	return out, nil
}
