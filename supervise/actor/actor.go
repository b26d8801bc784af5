// Package actor provides typed actors on top of package supervise: state
// owned by one goroutine, reached only through messages.
//
// An [Actor] has a bounded mailbox and a factory of [Handler]s. Its Serve
// (it is a [supervise.Service]) builds a fresh handler — fresh state —
// and feeds it messages one at a time, so the handler needs no locks. A
// handler that returns an error or panics crashes the actor: Serve
// returns the failure, and the supervisor restarts it by its policy, with
// a new handler from the factory (Akka Typed's restart: state reset).
// Messages still in the mailbox survive the restart and are handled by
// the new incarnation, unless [Config.DropOnRestart] is set; the message
// being handled when the actor crashed is not retried (it may be what
// crashed it), and its asker gets the failure.
//
// A [Ref] is the only way in. [Ref.Tell] queues a message; [Ask] queues a
// message carrying a [Reply] and waits for the answer, both bounded by a
// context.
//
// # Backpressure
//
// The mailbox is a bounded channel. When it is full, Tell blocks until
// there is room or its context ends (then it returns the context's
// error): a slow actor slows its senders instead of growing without
// bound or silently dropping messages, and the caller decides how long
// it can wait. [Ref.TryTell] fails fast with [ErrMailboxFull] for callers
// that must never block (and would rather shed the message).
//
// While an actor is between incarnations (crashed, waiting for its
// restart backoff), messages queue in its mailbox up to its capacity.
//
// # Durable mailboxes
//
// By default mailboxes are in memory, and a process crash loses what they
// hold. [Config.Durable] keeps told messages in a [Durable] mailbox
// instead (package delivery's Mailbox: a JetStream stream; the two are
// wired together by the program, this package imports neither): Tell
// returns once the message, encoded by [Config.Codec] (JSON by default),
// is stored, or fails; the actor removes it only after its handler
// returned nil for it. So, unlike the in-memory mailbox, the message an
// actor crashed on is handled again by the next incarnation, and after
// kill -9 of the process every stored message is handled by the next
// run: at least once, in order. A message it keeps crashing on is
// dropped after [Config.MaxAttempts] and reported to [Config.OnDrop]. A
// full durable mailbox (its capacity counts the message being handled)
// makes Tell wait for room until its context ends and TryTell fail with
// ErrMailboxFull.
//
// Ask stays in memory: its Reply cannot outlive the asker, so an Ask of a
// durable actor is queued in the in-memory mailbox, is lost with the
// process, and fails with ErrCrashed if the actor crashes on it. The
// actor handles it once the durable mailbox was seen empty, or after at
// most 1024 durable messages, so an Ask sees the effect of every Tell
// that returned before it.
package actor

import (
	"context"
	"errors"
	"fmt"
	"runtime/debug"
	"sync/atomic"

	"github.com/bulwark-go/bulwark/supervise"
)

// Handler handles one actor's messages, from the actor's goroutine only:
// its fields are the actor's state and need no synchronisation. Returning
// an error crashes the actor (the supervisor restarts it with a new
// Handler).
type Handler[M any] interface {
	Receive(ctx context.Context, m M) error
}

// HandlerFunc adapts a function to [Handler]; a closure's captured
// variables are then the state.
type HandlerFunc[M any] func(ctx context.Context, m M) error

// Receive calls f.
func (f HandlerFunc[M]) Receive(ctx context.Context, m M) error { return f(ctx, m) }

// Config configures an Actor.
type Config[M any] struct {
	// Name names the actor in errors. Default "actor".
	Name string
	// New builds the handler (the initial state) at each start and
	// restart. Required.
	New func() Handler[M]
	// Mailbox is the mailbox's capacity. Default 64.
	Mailbox int
	// DropOnRestart discards the messages queued when the actor restarts
	// after a crash, instead of handing them to the new incarnation. With
	// a Durable mailbox it applies to the queued Asks only: the durable
	// messages are kept.
	DropOnRestart bool

	// Durable, when set, keeps told messages in this mailbox instead of
	// memory (see "Durable mailboxes" in the package doc); Mailbox then
	// bounds the in-memory queue of Asks only, and the durable mailbox
	// has its own capacity. Default nil: in memory.
	Durable Durable
	// Codec encodes told messages for Durable. Default JSONCodec[M].
	Codec Codec[M]
	// MaxAttempts is how many times a durable message is handed to the
	// handler while it keeps crashing on it (in this process) before the
	// actor drops it. Default 3, below the supervisor's default restart
	// intensity (5), so a poison message is dropped before the
	// supervisor gives up.
	MaxAttempts int
	// OnDrop, when set, receives each durable message the actor drops
	// (undecodable, or crashed on MaxAttempts times) and why, wrapping
	// ErrDropped: the place to log it or keep it as a dead letter. It is
	// called from the actor's goroutine.
	OnDrop func(data []byte, err error)
}

// Errors callers branch on.
var (
	// ErrMailboxFull is TryTell's answer when the mailbox has no room.
	ErrMailboxFull = errors.New("actor: mailbox full")
	// ErrCrashed is what an Ask gets when the actor crashed on its
	// message (wrapped with the failure).
	ErrCrashed = errors.New("actor: crashed while handling the message")
)

// Actor is a supervised unit of state with a mailbox. Run it under a
// supervise.Supervisor (or call Serve yourself) and talk to it through
// Ref.
type Actor[M any] struct {
	name    string
	newH    func() Handler[M]
	drop    bool
	mailbox chan envelope[M]
	started atomic.Bool

	// With a Durable mailbox:
	durable     Durable
	codec       Codec[M]
	maxAttempts int
	onDrop      func([]byte, error)
	room        chan struct{} // a removal: one waiting Tell may retry
	// Owned by Serve (one incarnation at a time), kept across restarts:
	inflight uint64 // durable message being handled
	crashSeq uint64 // durable message the handler last crashed on
	crashes  int    // how many times in a row
	crashErr error
}

// envelope is a queued message; ask is set for Ask so a crash can answer
// the asker.
type envelope[M any] struct {
	m   M
	ask failer
}

type failer interface{ fail(error) }

// New returns an actor. It panics without a factory (a programming
// error).
func New[M any](cfg Config[M]) *Actor[M] {
	if cfg.New == nil {
		panic("actor: Config.New is required")
	}
	if cfg.Name == "" {
		cfg.Name = "actor"
	}
	if cfg.Mailbox <= 0 {
		cfg.Mailbox = 64
	}
	if cfg.Codec == nil {
		cfg.Codec = JSONCodec[M]{}
	}
	if cfg.MaxAttempts <= 0 {
		cfg.MaxAttempts = 3
	}
	return &Actor[M]{name: cfg.Name, newH: cfg.New, drop: cfg.DropOnRestart, mailbox: make(chan envelope[M], cfg.Mailbox),
		durable: cfg.Durable, codec: cfg.Codec, maxAttempts: cfg.MaxAttempts, onDrop: cfg.OnDrop, room: make(chan struct{}, 1)}
}

// Ref returns the actor's address.
func (a *Actor[M]) Ref() Ref[M] { return Ref[M]{a: a} }

// String returns the actor's name.
func (a *Actor[M]) String() string { return a.name }

// Serve handles messages with a fresh handler until ctx ends (nil) or the
// handler fails (its error, or a *supervise.PanicError).
func (a *Actor[M]) Serve(ctx context.Context) (err error) {
	if a.started.Swap(true) && a.drop {
		a.drain(fmt.Errorf("%w: %s restarted and drops its mailbox", ErrCrashed, a.name))
	}
	h := a.newH()
	var cur failer // the asker of the message being handled, if any
	defer func() {
		if v := recover(); v != nil {
			err = &supervise.PanicError{Value: v, Stack: debug.Stack()}
		}
		if err != nil && cur != nil {
			cur.fail(fmt.Errorf("%w: %w", ErrCrashed, err))
		}
		if a.inflight != 0 {
			if err != nil {
				a.crashed(a.inflight, err)
			}
			a.inflight = 0
		}
	}()
	if a.durable != nil {
		return a.serveDurable(ctx, h, &cur)
	}
	done := ctx.Done()
	for n := 0; ; n++ {
		var env envelope[M]
		// Fast path: a non-blocking receive is much cheaper than a
		// two-way select; cancellation is still checked every 64
		// messages, so a busy actor stops promptly.
		ok := false
		if n&63 != 0 {
			select {
			case env = <-a.mailbox:
				ok = true
			default:
			}
		}
		if !ok {
			select {
			case <-done:
				return nil
			case env = <-a.mailbox:
			}
		}
		cur = env.ask
		if err := h.Receive(ctx, env.m); err != nil {
			return fmt.Errorf("actor %s: %w", a.name, err)
		}
		cur = nil
	}
}

func (a *Actor[M]) drain(err error) {
	for {
		select {
		case env := <-a.mailbox:
			if env.ask != nil {
				env.ask.fail(err)
			}
		default:
			return
		}
	}
}

// Ref is an actor's address: a small value, safe to copy and to use from
// any goroutine.
type Ref[M any] struct{ a *Actor[M] }

// Tell queues m. When the mailbox is full it waits for room until ctx
// ends, and then returns ctx's error.
//
// To a durable actor, Tell returns once m is stored in the durable
// mailbox; when that is full it retries until there is room or ctx ends.
// If Tell fails, m may or may not have been stored.
func (r Ref[M]) Tell(ctx context.Context, m M) error {
	if r.a.durable != nil {
		return r.a.put(ctx, m, true)
	}
	return r.send(ctx, envelope[M]{m: m})
}

// TryTell queues m, or returns ErrMailboxFull at once. To a durable actor
// it does not wait for room, but does wait for the store to acknowledge
// m (bounded by the Durable's own timeout).
func (r Ref[M]) TryTell(m M) error {
	if r.a.durable != nil {
		return r.a.put(context.Background(), m, false)
	}
	select {
	case r.a.mailbox <- envelope[M]{m: m}:
		return nil
	default:
		return fmt.Errorf("%w: %s", ErrMailboxFull, r.a.name)
	}
}

// Len is how many messages wait in the in-memory mailbox: for a durable
// actor, the Asks only (its Durable knows how many told messages wait).
func (r Ref[M]) Len() int { return len(r.a.mailbox) }

func (r Ref[M]) send(ctx context.Context, env envelope[M]) error {
	done := ctx.Done()
	if done == nil { // context.Background: a plain send is cheaper than a select
		r.a.mailbox <- env
		return nil
	}
	select {
	case r.a.mailbox <- env:
		return nil
	case <-done:
		return fmt.Errorf("actor %s: mailbox full: %w", r.a.name, ctx.Err())
	}
}

// Reply is the one-shot answer channel of an Ask, carried in the message
// (Akka Typed's replyTo). The handler calls Send once; later calls are
// ignored.
type Reply[R any] struct{ c chan result[R] }

type result[R any] struct {
	v   R
	err error
}

// Send answers the asker with v.
func (p Reply[R]) Send(v R) { p.answer(result[R]{v: v}) }

// Error answers the asker with err.
func (p Reply[R]) Error(err error) { p.answer(result[R]{err: err}) }

func (p Reply[R]) fail(err error) { p.answer(result[R]{err: err}) }

func (p Reply[R]) answer(r result[R]) {
	select {
	case p.c <- r:
	default: // answered already
	}
}

// Ask sends the message that build makes around a fresh Reply and waits
// for the answer, until ctx ends. If the actor crashes on the message,
// Ask returns an error wrapping ErrCrashed.
func Ask[M, R any](ctx context.Context, ref Ref[M], build func(Reply[R]) M) (R, error) {
	p := Reply[R]{c: make(chan result[R], 1)}
	var zero R
	if err := ref.send(ctx, envelope[M]{m: build(p), ask: p}); err != nil {
		return zero, err
	}
	select {
	case r := <-p.c:
		return r.v, r.err
	case <-ctx.Done():
		return zero, fmt.Errorf("actor %s: no reply: %w", ref.a.name, ctx.Err())
	}
}
