package actor

import (
	"context"
	"testing"
)

type sink struct{ n int }

func (s *sink) Receive(ctx context.Context, m int) error {
	s.n += m
	return nil
}

type echo struct {
	v     int
	reply Reply[int]
}

func run[M any](b *testing.B, a *Actor[M]) func() {
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { a.Serve(ctx); close(done) }()
	return func() { cancel(); <-done }
}

// BenchmarkTell is one sender telling an actor with a 1024-message
// mailbox.
func BenchmarkTell(b *testing.B) {
	a := New(Config[int]{New: func() Handler[int] { return &sink{} }, Mailbox: 1024})
	defer run(b, a)()
	r := a.Ref()
	ctx := context.Background()
	b.ReportAllocs()
	for range b.N {
		r.Tell(ctx, 1)
	}
}

// BenchmarkAsk is a request and its reply.
func BenchmarkAsk(b *testing.B) {
	a := New(Config[echo]{New: func() Handler[echo] {
		return HandlerFunc[echo](func(ctx context.Context, m echo) error { m.reply.Send(m.v); return nil })
	}})
	defer run(b, a)()
	r := a.Ref()
	ctx := context.Background()
	b.ReportAllocs()
	for i := range b.N {
		if _, err := Ask(ctx, r, func(p Reply[int]) echo { return echo{v: i, reply: p} }); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkChannelSend is the baseline for Tell: a plain buffered channel
// drained by one goroutine.
func BenchmarkChannelSend(b *testing.B) {
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
}

// BenchmarkChannelRoundTrip is the baseline for Ask: a request channel
// and a reply channel made per request.
func BenchmarkChannelRoundTrip(b *testing.B) {
	type req struct {
		v     int
		reply chan int
	}
	ch := make(chan req, 64)
	done := make(chan struct{})
	go func() {
		for r := range ch {
			r.reply <- r.v
		}
		close(done)
	}()
	b.ReportAllocs()
	for i := range b.N {
		r := req{v: i, reply: make(chan int, 1)}
		ch <- r
		<-r.reply
	}
	close(ch)
	<-done
}
