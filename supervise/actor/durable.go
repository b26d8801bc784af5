package actor

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"time"
)

// Durable is a mailbox kept outside the process (package delivery's
// Mailbox keeps one in a JetStream stream): a FIFO queue of encoded
// messages whose head stays until the actor removes it. The actor is its
// only reader; any number of goroutines (or processes) may Put.
//
// The actor uses it as a work queue with at-least-once handling: it reads
// the head, hands it to its handler and removes it only after the handler
// returned nil. A message is therefore handled again when the actor
// crashes on it, when Remove fails, and when the process dies (kill -9)
// before Remove returned.
type Durable interface {
	// Put appends data and returns once it is stored durably. It reports
	// false, storing nothing, when the mailbox is at its capacity. On an
	// error (or ctx ending) data may or may not have been stored.
	Put(ctx context.Context, data []byte) (stored bool, err error)
	// Head returns the oldest stored message and its sequence number, or
	// seq 0 when the mailbox is empty. It does not wait.
	Head(ctx context.Context) (seq uint64, data []byte, err error)
	// Remove deletes message seq; removing a message that is gone
	// already is not an error.
	Remove(ctx context.Context, seq uint64) error
	// Notify returns a channel that receives after a Put may have made
	// the mailbox non-empty. A missed notification only delays the actor
	// (it also looks every durablePoll); a spurious one costs a Head.
	Notify() <-chan struct{}
}

// Codec turns messages into bytes for a Durable mailbox and back, since M
// is any type. [JSONCodec] is the default.
type Codec[M any] interface {
	Encode(m M) ([]byte, error)
	Decode(data []byte) (M, error)
}

// JSONCodec encodes messages with encoding/json: exported fields only, so
// a [Reply] (which is not exported) does not survive it.
type JSONCodec[M any] struct{}

// Encode marshals m.
func (JSONCodec[M]) Encode(m M) ([]byte, error) { return json.Marshal(m) }

// Decode unmarshals data.
func (JSONCodec[M]) Decode(data []byte) (M, error) {
	var m M
	err := json.Unmarshal(data, &m)
	return m, err
}

// ErrDropped is what Config.OnDrop gets, wrapped, for a durable message
// the actor gave up on: it could not be decoded, or the actor crashed on
// it MaxAttempts times.
var ErrDropped = errors.New("actor: durable message dropped")

const (
	// durablePoll is how often an idle durable actor looks at its
	// mailbox without a notification, and how often a Tell on a full
	// durable mailbox tries again without word of a removal (a removal
	// by this process's actor wakes one waiting Tell at once).
	durablePoll = time.Second
	fullPoll    = 50 * time.Millisecond
	// askAfter bounds the durable messages an Ask waits behind.
	askAfter = 1024
)

// put encodes m and stores it in the durable mailbox, waiting for room
// until ctx ends when wait is set.
func (a *Actor[M]) put(ctx context.Context, m M, wait bool) error {
	data, err := a.codec.Encode(m)
	if err != nil {
		return fmt.Errorf("actor %s: encode message: %w", a.name, err)
	}
	for {
		ok, err := a.durable.Put(ctx, data)
		if err != nil {
			return fmt.Errorf("actor %s: durable mailbox: %w", a.name, err)
		}
		if ok {
			return nil
		}
		if !wait {
			return fmt.Errorf("%w: %s (durable)", ErrMailboxFull, a.name)
		}
		t := time.NewTimer(fullPoll)
		select {
		case <-a.room:
		case <-t.C:
		case <-ctx.Done():
			t.Stop()
			return fmt.Errorf("actor %s: mailbox full: %w", a.name, ctx.Err())
		}
		t.Stop()
	}
}

// serveDurable is Serve's loop for an actor with a Durable mailbox. The
// durable messages come first: an Ask taken from the in-memory queue is
// handled once the durable mailbox was seen empty, or after at most
// askAfter durable messages (the mailbox's whole content when the Ask was
// queued, if it is bounded by that), so an Ask sees the effect of every
// Tell that returned before it was made and is not starved by a stream
// of Tells.
func (a *Actor[M]) serveDurable(ctx context.Context, h Handler[M], cur *failer) error {
	poll := time.NewTimer(durablePoll)
	defer poll.Stop()
	var ask *envelope[M]
	ahead := 0 // durable messages still to handle before ask
	for {
		if ctx.Err() != nil {
			return nil
		}
		if ask == nil || ahead > 0 {
			handled, err := a.handleHead(ctx, h)
			if err != nil || ctx.Err() != nil {
				return err
			}
			if handled {
				ahead--
				continue
			}
		}
		if ask != nil {
			*cur = ask.ask
			if err := h.Receive(ctx, ask.m); err != nil {
				return fmt.Errorf("actor %s: %w", a.name, err)
			}
			*cur, ask = nil, nil
			continue
		}
		select {
		case <-ctx.Done():
			return nil
		case <-a.durable.Notify():
		case <-poll.C:
			poll.Reset(durablePoll)
		case env := <-a.mailbox:
			ask, ahead = &env, askAfter
		}
	}
}

// handleHead handles the durable mailbox's oldest message, if there is
// one, and removes it. It reports whether there was one.
func (a *Actor[M]) handleHead(ctx context.Context, h Handler[M]) (bool, error) {
	seq, data, err := a.durable.Head(ctx)
	if err != nil {
		if ctx.Err() != nil {
			return false, nil
		}
		return false, fmt.Errorf("actor %s: read durable mailbox: %w", a.name, err)
	}
	if seq == 0 {
		return false, nil
	}
	m, err := a.codec.Decode(data)
	if err == nil && seq == a.crashSeq && a.crashes >= a.maxAttempts {
		err = fmt.Errorf("the actor crashed on it %d times, last: %w", a.crashes, a.crashErr)
	}
	if err != nil {
		// It can never be handled: dropping it is the only way forward.
		if a.onDrop != nil {
			a.onDrop(data, fmt.Errorf("%w: %s message %d: %w", ErrDropped, a.name, seq, err))
		}
		return true, a.remove(ctx, seq)
	}
	a.inflight = seq
	if err := h.Receive(ctx, m); err != nil {
		return false, fmt.Errorf("actor %s: %w", a.name, err)
	}
	a.inflight = 0
	return true, a.remove(ctx, seq)
}

// remove deletes a handled message, even when ctx was cancelled while its
// handler ran (else a shutdown would hand it to the handler again).
func (a *Actor[M]) remove(ctx context.Context, seq uint64) error {
	if err := a.durable.Remove(context.WithoutCancel(ctx), seq); err != nil {
		return fmt.Errorf("actor %s: remove handled message %d (it will be handled again): %w", a.name, seq, err)
	}
	if seq == a.crashSeq {
		a.crashSeq, a.crashes, a.crashErr = 0, 0, nil
	}
	select {
	case a.room <- struct{}{}:
	default:
	}
	return nil
}

// crashed records that the handler failed on durable message seq.
func (a *Actor[M]) crashed(seq uint64, err error) {
	if seq != a.crashSeq {
		a.crashSeq, a.crashes = seq, 0
	}
	a.crashes++
	a.crashErr = err
}
