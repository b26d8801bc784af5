package delivery

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"hash/fnv"
	"strconv"
	"strings"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/bulwark-go/bulwark"
)

// idempotencyHeader is the header deliveries carry so backends can
// deduplicate at-least-once delivery (draft-ietf-httpapi-idempotency-key-header).
const idempotencyHeader = "Idempotency-Key"

// Enqueue stores m durably and returns its id once JetStream has
// acknowledged the stored message. m is not modified; the stored copy gets
// its ID, Accepted time and an Idempotency-Key header (the client's key, or
// the id) so that deliveries can be deduplicated by the backend.
//
// A message with the same Route and IdempotencyKey as one accepted within
// Config.Duplicates is not stored again: Enqueue returns the original id
// (the id is derived from Route and key). If Enqueue fails, or ctx ends
// first, the message may or may not have been stored; retrying with the
// same IdempotencyKey is safe. A key reused after the Duplicates window is a
// new message with the same id, whose status record it shares (the record
// shows the old outcome until the new message's first attempt).
func (s *Service) Enqueue(ctx context.Context, m *bulwark.Message) (string, error) {
	select {
	case <-s.closing:
		return "", ErrClosed
	default:
	}
	if m == nil || m.Upstream == "" || m.Method == "" {
		return "", fmt.Errorf("%w: Upstream and Method are required", ErrInvalidMessage)
	}
	if len(m.Body) > s.cfg.MaxBody {
		return "", fmt.Errorf("%w: %d bytes, limit %d", ErrTooLarge, len(m.Body), s.cfg.MaxBody)
	}
	if err := s.disk.Check(); err != nil {
		return "", fmt.Errorf("%w: %w", ErrStoreFull, err)
	}
	c := *m
	c.ID = messageID(c.Route, c.IdempotencyKey)
	c.Accepted = time.Now().UTC()
	c.Header = m.Header.Clone()
	if c.Header == nil {
		c.Header = make(map[string][]string, 1)
	}
	key := c.IdempotencyKey
	if key == "" {
		key = c.ID
	}
	c.Header.Set(idempotencyHeader, key)
	hdr, data, err := encode(&c)
	if err != nil {
		return "", err
	}
	st, _ := json.Marshal(bulwark.DeliveryStatus{ID: c.ID, State: bulwark.DeliveryQueued, Updated: c.Accepted})

	// Both publishes are in flight at once. The status record is created
	// only if absent (expected last subject sequence 0): the work stream and
	// the status bucket ingest independently, and a worker may already have
	// recorded a later state, which must not be overwritten with "queued".
	work, err := s.js.PublishMsgAsync(&nats.Msg{Subject: s.subject(c.OrderKey), Header: hdr, Data: data}, jetstream.WithMsgID(c.ID))
	if err != nil {
		return "", fmt.Errorf("delivery: publish: %w", err)
	}
	stf, stErr := s.js.PublishMsgAsync(&nats.Msg{Subject: s.kvPrefix + c.ID, Data: st}, jetstream.WithExpectLastSequencePerSubject(0))

	ack, err := waitAck(ctx, work)
	if err != nil {
		if isFull(err) {
			return "", fmt.Errorf("%w (max_backlog %d): %w", ErrBacklogFull, s.cfg.MaxBacklog, err)
		}
		return "", fmt.Errorf("delivery: publish: %w", err)
	}
	if ack.Duplicate {
		s.stats.duplicates.Add(1)
		return c.ID, nil
	}
	s.stats.enqueued.Add(1)
	if stErr == nil {
		_, stErr = waitAck(ctx, stf)
	}
	if stErr != nil && !isWrongLastSeq(stErr) {
		// The message is stored; only its "queued" record is missing until a
		// worker writes the next state.
		s.log.Warn("delivery: status not recorded", "id", c.ID, "err", stErr)
	}
	return c.ID, nil
}

func waitAck(ctx context.Context, f jetstream.PubAckFuture) (*jetstream.PubAck, error) {
	select {
	case ack := <-f.Ok():
		return ack, nil
	case err := <-f.Err():
		return nil, err
	case <-ctx.Done():
		return nil, ctx.Err()
	}
}

func isWrongLastSeq(err error) bool {
	var api *jetstream.APIError
	return errors.As(err, &api) && (api.ErrorCode == jetstream.JSErrCodeStreamWrongLastSequence || api.ErrorCode == jetstream.JSErrCodeStreamWrongLastSequenceConstant)
}

// messageID derives a keyed message's id from its route and key, so a
// client's retry maps to the same id (and Nats-Msg-Id); other messages get a
// random id.
func messageID(route, key string) string {
	if key == "" {
		return rand.Text()
	}
	h := sha256.New()
	h.Write([]byte(route))
	h.Write([]byte{0})
	h.Write([]byte(key))
	return "k" + hex.EncodeToString(h.Sum(nil)[:15])
}

// subject is where a message with this order key is stored.
func (s *Service) subject(orderKey string) string {
	if orderKey == "" {
		return s.subjAny
	}
	return s.subjPart + "." + strconv.Itoa(partition(orderKey, s.cfg.Partitions))
}

func partition(key string, n int) int {
	h := fnv.New32a()
	h.Write([]byte(key))
	return int(h.Sum32() % uint32(n))
}

// Status reports where message id stands, or ErrNotFound.
func (s *Service) Status(ctx context.Context, id string) (bulwark.DeliveryStatus, error) {
	if !validID(id) {
		return bulwark.DeliveryStatus{}, ErrNotFound
	}
	e, err := s.status.Get(ctx, id)
	if errors.Is(err, jetstream.ErrKeyNotFound) || errors.Is(err, jetstream.ErrKeyDeleted) {
		return bulwark.DeliveryStatus{}, ErrNotFound
	}
	if err != nil {
		return bulwark.DeliveryStatus{}, fmt.Errorf("delivery: status %s: %w", id, err)
	}
	var st bulwark.DeliveryStatus
	if err := json.Unmarshal(e.Value(), &st); err != nil {
		return bulwark.DeliveryStatus{}, fmt.Errorf("delivery: status %s: %w", id, err)
	}
	return st, nil
}

// validID accepts the ids messageID makes (and any safe KV key), so that a
// client-supplied id can never address another key.
func validID(id string) bool {
	if id == "" || len(id) > 64 {
		return false
	}
	for _, r := range id {
		if !('a' <= r && r <= 'z' || 'A' <= r && r <= 'Z' || '0' <= r && r <= '9') {
			return false
		}
	}
	return true
}

// putStatus records st, logging (not failing) on error: the status is a
// report, and delivery must not stall on it.
func (s *Service) putStatus(ctx context.Context, st bulwark.DeliveryStatus) {
	st.Updated = time.Now().UTC()
	b, _ := json.Marshal(st)
	cctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), s.cfg.OpTimeout)
	defer cancel()
	if _, err := s.status.Put(cctx, st.ID, b); err != nil {
		s.log.Warn("delivery: status not recorded", "id", st.ID, "state", st.State, "err", err)
	}
}

// isFull reports whether a publish was refused because the work stream
// reached its message limit (DiscardNew).
func isFull(err error) bool {
	var api *jetstream.APIError
	return errors.As(err, &api) && strings.Contains(strings.ToLower(api.Description), "maximum messages")
}
