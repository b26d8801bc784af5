package delivery

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// MailboxConfig configures a durable actor mailbox ([Service.Mailbox]).
type MailboxConfig struct {
	// Capacity bounds the messages stored and not yet removed (the one
	// being handled included): beyond it Put stores nothing and reports
	// false. Default 1024, the most an actor's Ask waits behind.
	Capacity int
}

// Mailbox is a durable actor mailbox: a JetStream stream
// <Name>_MBOX_<name> (file storage, the service's Replicas, Limits
// retention, MaxMsgs Capacity with DiscardNew) read by one actor. It
// satisfies supervise/actor's Durable interface without importing it
// (cmd wires the two): Put publishes and waits for the PubAck, Head reads
// the stream's first message from its leader, Remove deletes a handled
// message. Limits retention, not WorkQueue, for the reason the work
// stream has it (doc.go): nothing but the actor's Remove deletes a
// message. The stream republishes a headers-only copy of each stored
// message to <SubjectPrefix>.mailbox-stored.<name>, which feeds Notify
// after the message is stored.
type Mailbox struct {
	s      *Service
	name   string
	subj   string
	stream jetstream.Stream
	sub    *nats.Subscription
	notify chan struct{}

	closeOnce sync.Once
}

// Mailbox creates (or opens) the durable mailbox name (letters, digits,
// '-' and '_'). Close it (or the Service) when done.
func (s *Service) Mailbox(ctx context.Context, name string, cfg MailboxConfig) (*Mailbox, error) {
	if !nameRe.MatchString(name) {
		return nil, fmt.Errorf("delivery: mailbox name %q: use letters, digits, '-' and '_'", name)
	}
	if cfg.Capacity <= 0 {
		cfg.Capacity = 1024
	}
	m := &Mailbox{s: s, name: name, subj: s.cfg.SubjectPrefix + ".mailbox." + name, notify: make(chan struct{}, 1)}
	stored := s.cfg.SubjectPrefix + ".mailbox-stored." + name
	var err error
	// Subscribe before the stream exists, so no stored message goes
	// unannounced.
	m.sub, err = s.nc.Subscribe(stored, func(*nats.Msg) {
		select {
		case m.notify <- struct{}{}:
		default:
		}
	})
	if err != nil {
		return nil, fmt.Errorf("delivery: mailbox %s: subscribe: %w", name, err)
	}
	err = s.retry(ctx, "create mailbox stream", func(ctx context.Context) (err error) {
		m.stream, err = s.js.CreateOrUpdateStream(ctx, jetstream.StreamConfig{
			Name:        s.cfg.Name + "_MBOX_" + name,
			Description: "Bulwark durable actor mailbox " + name,
			Subjects:    []string{m.subj},
			Retention:   jetstream.LimitsPolicy,
			Storage:     jetstream.FileStorage,
			Replicas:    s.cfg.Replicas,
			MaxMsgs:     int64(cfg.Capacity),
			MaxMsgSize:  int32(s.cfg.MaxBody),
			Discard:     jetstream.DiscardNew,
			RePublish:   &jetstream.RePublish{Source: m.subj, Destination: stored, HeadersOnly: true},
		})
		return err
	})
	if err != nil {
		_ = m.sub.Unsubscribe()
		return nil, err
	}
	return m, nil
}

// Put stores data and returns once JetStream acknowledged it; it reports
// false when the mailbox is at its capacity.
func (m *Mailbox) Put(ctx context.Context, data []byte) (bool, error) {
	select {
	case <-m.s.closing:
		return false, ErrClosed
	default:
	}
	if err := m.s.disk.Check(); err != nil {
		return false, fmt.Errorf("%w: %w", ErrStoreFull, err)
	}
	if _, err := m.s.js.Publish(ctx, m.subj, data); err != nil {
		if isFull(err) {
			return false, nil
		}
		return false, fmt.Errorf("delivery: mailbox %s: publish: %w", m.name, err)
	}
	return true, nil
}

// Head returns the oldest stored message, or seq 0 when there is none.
func (m *Mailbox) Head(ctx context.Context) (uint64, []byte, error) {
	raw, err := m.stream.GetMsg(ctx, 1, jetstream.WithGetMsgSubject(m.subj))
	if errors.Is(err, jetstream.ErrMsgNotFound) {
		return 0, nil, nil
	}
	if err != nil {
		return 0, nil, fmt.Errorf("delivery: mailbox %s: read head: %w", m.name, err)
	}
	return raw.Sequence, raw.Data, nil
}

// Remove deletes message seq (gone already is fine).
func (m *Mailbox) Remove(ctx context.Context, seq uint64) error {
	err := m.stream.DeleteMsg(ctx, seq)
	if err != nil && strings.Contains(err.Error(), "no message found") {
		err = nil // 10057: removed already (an earlier Remove whose answer was lost)
	}
	if err := deleteError(err); err != nil {
		return fmt.Errorf("delivery: mailbox %s: remove %d: %w", m.name, seq, err)
	}
	return nil
}

// Notify receives after a message was stored.
func (m *Mailbox) Notify() <-chan struct{} { return m.notify }

// Len is the number of messages stored.
func (m *Mailbox) Len(ctx context.Context) (int, error) {
	info, err := m.stream.Info(ctx)
	if err != nil {
		return 0, fmt.Errorf("delivery: mailbox %s: %w", m.name, err)
	}
	return int(info.State.Msgs), nil
}

// Close stops the notifications; the stored messages stay.
func (m *Mailbox) Close() error {
	var err error
	m.closeOnce.Do(func() {
		if uerr := m.sub.Unsubscribe(); uerr != nil && !errors.Is(uerr, nats.ErrConnectionClosed) && !errors.Is(uerr, nats.ErrBadSubscription) {
			err = fmt.Errorf("delivery: mailbox %s: %w", m.name, uerr)
		}
	})
	return err
}
