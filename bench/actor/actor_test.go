// Package actor compares Bulwark's typed actors (supervise/actor) with a
// plain buffered channel and with asynkron/protoactor-go, the Go port of
// Proto.Actor (ergo.services/ergo is not on the module proxy mirror this
// was written against):
//
//   - Tell: one sender, fire and forget, the actor adds the value up;
//   - Ask: a request and its reply, one at a time;
//   - Restart: from a panic in the actor to the new incarnation running
//     (no backoff on either side).
//
// Run:
//
//	cd bench && go test -run '^$' -bench . -benchmem -count 5 ./actor/
package actor

import (
	"context"
	"io"
	"log/slog"
	"testing"
	"time"

	pa "github.com/asynkron/protoactor-go/actor"
	"github.com/bulwark-go/bulwark/supervise"
	"github.com/bulwark-go/bulwark/supervise/actor"
)

// --- Tell ---

type sum struct{ n int }

func (s *sum) Receive(ctx context.Context, m int) error { s.n += m; return nil }

func BenchmarkTell(b *testing.B) {
	b.Run("channel", func(b *testing.B) {
		ch := make(chan int, 1024)
		done := make(chan struct{})
		go func() {
			n := 0
			for v := range ch {
				n += v
			}
			close(done)
		}()
		b.ReportAllocs()
		for range b.N {
			ch <- 1
		}
		close(ch)
		<-done
	})
	b.Run("bulwark", func(b *testing.B) {
		a := actor.New(actor.Config[int]{New: func() actor.Handler[int] { return &sum{} }, Mailbox: 1024})
		stop := serve(a)
		defer stop()
		r := a.Ref()
		ctx := context.Background()
		b.ReportAllocs()
		for range b.N {
			r.Tell(ctx, 1)
		}
		// Wait for the mailbox to drain so the work is counted.
		for r.Len() > 0 {
			time.Sleep(time.Microsecond)
		}
	})
	b.Run("protoactor", func(b *testing.B) {
		sys := newSystem()
		done := make(chan struct{})
		total := b.N
		pid := sys.Root.Spawn(pa.PropsFromFunc(func(c pa.Context) {
			if v, ok := c.Message().(int); ok {
				total -= v
				if total == 0 {
					close(done)
				}
			}
		}))
		b.ReportAllocs()
		for range b.N {
			sys.Root.Send(pid, 1)
		}
		<-done
		b.StopTimer()
		sys.Root.Stop(pid)
		sys.Shutdown()
	})
}

// --- Ask ---

type echo struct {
	v     int
	reply actor.Reply[int]
}

func BenchmarkAsk(b *testing.B) {
	b.Run("channel", func(b *testing.B) {
		type req struct {
			v     int
			reply chan int
		}
		ch := make(chan req, 64)
		go func() {
			for r := range ch {
				r.reply <- r.v
			}
		}()
		defer close(ch)
		b.ReportAllocs()
		for i := range b.N {
			r := req{v: i, reply: make(chan int, 1)}
			ch <- r
			<-r.reply
		}
	})
	b.Run("bulwark", func(b *testing.B) {
		a := actor.New(actor.Config[echo]{New: func() actor.Handler[echo] {
			return actor.HandlerFunc[echo](func(ctx context.Context, m echo) error { m.reply.Send(m.v); return nil })
		}})
		stop := serve(a)
		defer stop()
		r := a.Ref()
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		b.ReportAllocs()
		for i := range b.N {
			if _, err := actor.Ask(ctx, r, func(p actor.Reply[int]) echo { return echo{v: i, reply: p} }); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("protoactor", func(b *testing.B) {
		sys := newSystem()
		defer sys.Shutdown()
		pid := sys.Root.Spawn(pa.PropsFromFunc(func(c pa.Context) {
			if v, ok := c.Message().(int); ok {
				c.Respond(v)
			}
		}))
		b.ReportAllocs()
		for i := range b.N {
			if _, err := sys.Root.RequestFuture(pid, i, time.Minute).Result(); err != nil {
				b.Fatal(err)
			}
		}
	})
}

// --- Restart after a panic ---

type crashy struct{ started chan<- struct{} }

func (c *crashy) Receive(ctx context.Context, m int) error { panic("crash") }

func BenchmarkRestart(b *testing.B) {
	b.Run("bulwark", func(b *testing.B) {
		started := make(chan struct{}, 1)
		a := actor.New(actor.Config[int]{New: func() actor.Handler[int] {
			started <- struct{}{} // the factory runs at each (re)start
			return &crashy{}
		}})
		s := supervise.New(supervise.Config{Backoff: -1, MaxRestarts: 1 << 30, Period: time.Nanosecond},
			supervise.Spec{Name: "crashy", Service: a})
		ctx, cancel := context.WithCancel(context.Background())
		done := make(chan error, 1)
		go func() { done <- s.Serve(ctx) }()
		<-started
		r := a.Ref()
		b.ReportAllocs()
		b.ResetTimer()
		for range b.N {
			r.Tell(ctx, 1)
			<-started
		}
		b.StopTimer()
		cancel()
		<-done
	})
	b.Run("protoactor", func(b *testing.B) {
		sys := newSystem()
		defer sys.Shutdown()
		started := make(chan struct{}, 1)
		strategy := pa.NewOneForOneStrategy(1<<30, time.Nanosecond, pa.DefaultDecider)
		props := pa.PropsFromFunc(func(c pa.Context) {
			switch c.Message().(type) {
			case *pa.Started, *pa.Restarting:
				if _, ok := c.Message().(*pa.Started); ok {
					started <- struct{}{}
				}
			case int:
				panic("crash")
			}
		}, pa.WithSupervisor(strategy))
		// A parent, so the strategy applies to a child like ours does.
		var child *pa.PID
		ready := make(chan struct{})
		parent := sys.Root.Spawn(pa.PropsFromFunc(func(c pa.Context) {
			if _, ok := c.Message().(*pa.Started); ok {
				child = c.Spawn(props)
				close(ready)
			}
		}, pa.WithSupervisor(strategy)))
		<-ready
		<-started
		b.ReportAllocs()
		b.ResetTimer()
		for range b.N {
			sys.Root.Send(child, 1)
			<-started
		}
		b.StopTimer()
		sys.Root.Stop(parent)
	})
}

func serve(s supervise.Service) func() {
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { s.Serve(ctx); close(done) }()
	return func() { cancel(); <-done }
}

// newSystem is a protoactor system that logs nothing (it logs every
// recovered panic at info level, which would dominate the restart
// figure).
func newSystem() *pa.ActorSystem {
	return pa.NewActorSystem(pa.WithLoggerFactory(func(*pa.ActorSystem) *slog.Logger {
		return slog.New(slog.NewTextHandler(io.Discard, nil))
	}))
}
