package actor

import (
	"context"
	"errors"
	"testing"
	"testing/synctest"
	"time"

	"github.com/bulwark-go/bulwark/supervise"
	"go.uber.org/goleak"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// msg is the counter's message: add to it, read it, crash it, or block
// it until unblock closes.
type msg struct {
	add     int
	get     Reply[int]
	crash   string // "error" or "panic"
	unblock chan struct{}
}

type counter struct{ n int }

func (c *counter) Receive(ctx context.Context, m msg) error {
	switch {
	case m.unblock != nil:
		<-m.unblock
	case m.crash == "error":
		return errors.New("asked to fail")
	case m.crash == "panic":
		panic("asked to panic")
	case m.get.c != nil:
		m.get.Send(c.n)
	default:
		c.n += m.add
	}
	return nil
}

func newCounter(drop bool, mailbox int) *Actor[msg] {
	return New(Config[msg]{Name: "counter", New: func() Handler[msg] { return &counter{} }, DropOnRestart: drop, Mailbox: mailbox})
}

func get(ctx context.Context, r Ref[msg]) (int, error) {
	return Ask(ctx, r, func(p Reply[int]) msg { return msg{get: p} })
}

// supervised runs a under a supervisor with a 1s restart backoff, so the
// test can queue messages while the actor is down.
func supervised[M any](t *testing.T, a *Actor[M]) func() {
	s := supervise.New(supervise.Config{Backoff: time.Second, Jitter: -1}, supervise.Spec{Name: "counter", Service: a})
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- s.Serve(ctx) }()
	return func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("supervisor: %v", err)
		}
	}
}

func TestTellAsk(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		a := newCounter(false, 0)
		defer supervised(t, a)()
		ctx := context.Background()
		for range 10 {
			if err := a.Ref().Tell(ctx, msg{add: 2}); err != nil {
				t.Fatal(err)
			}
		}
		n, err := get(ctx, a.Ref())
		if err != nil || n != 20 {
			t.Fatalf("got %d, %v; want 20", n, err)
		}
	})
}

func TestRestart(t *testing.T) {
	for _, tc := range []struct {
		name  string
		crash string
		drop  bool
		want  int // count after the restart
	}{
		{"error keeps the mailbox", "error", false, 3},
		{"panic keeps the mailbox", "panic", false, 3},
		{"drop on restart", "error", true, 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				a := newCounter(tc.drop, 0)
				defer supervised(t, a)()
				ctx := context.Background()
				r := a.Ref()
				r.Tell(ctx, msg{add: 100})
				// The crash's asker hears of it.
				_, err := Ask(ctx, r, func(p Reply[int]) msg { return msg{crash: tc.crash, get: p} })
				if !errors.Is(err, ErrCrashed) {
					t.Fatalf("Ask on a crashing message: %v, want ErrCrashed", err)
				}
				if tc.crash == "panic" {
					var p *supervise.PanicError
					if !errors.As(err, &p) {
						t.Fatalf("want the *PanicError in %v", err)
					}
				}
				// Queued while the actor waits for its restart.
				for range 3 {
					r.Tell(ctx, msg{add: 1})
				}
				synctest.Wait()
				if r.Len() != 3 {
					t.Fatalf("mailbox holds %d, want 3 while down", r.Len())
				}
				time.Sleep(2 * time.Second) // past the restart
				n, err := get(ctx, r)
				if err != nil || n != tc.want {
					t.Fatalf("after restart: %d, %v; want %d (fresh state + surviving mailbox)", n, err, tc.want)
				}
			})
		})
	}
}

// TestDropFailsAskers: asks queued when a drop-on-restart actor restarts
// fail instead of waiting forever.
func TestDropFailsAskers(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		a := newCounter(true, 0)
		defer supervised(t, a)()
		ctx := context.Background()
		a.Ref().Tell(ctx, msg{crash: "error"})
		synctest.Wait()
		if _, err := get(ctx, a.Ref()); !errors.Is(err, ErrCrashed) {
			t.Fatalf("queued Ask across a dropping restart: %v", err)
		}
	})
}

func TestBackpressure(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		a := newCounter(false, 1)
		defer supervised(t, a)()
		r := a.Ref()
		ctx := context.Background()
		unblock := make(chan struct{})
		r.Tell(ctx, msg{unblock: unblock}) // the actor is busy with this one
		synctest.Wait()
		if err := r.Tell(ctx, msg{add: 1}); err != nil { // fills the mailbox
			t.Fatal(err)
		}
		if err := r.TryTell(msg{add: 1}); !errors.Is(err, ErrMailboxFull) {
			t.Fatalf("TryTell on a full mailbox: %v", err)
		}
		tctx, cancel := context.WithTimeout(ctx, time.Second)
		defer cancel()
		begin := time.Now()
		if err := r.Tell(tctx, msg{add: 1}); !errors.Is(err, context.DeadlineExceeded) {
			t.Fatalf("Tell on a full mailbox: %v", err)
		}
		if time.Since(begin) != time.Second {
			t.Fatalf("Tell gave up after %v, want its context's 1s", time.Since(begin))
		}
		close(unblock)
		if n, err := get(ctx, r); err != nil || n != 1 {
			t.Fatalf("got %d, %v; want 1", n, err)
		}
	})
}

func TestAskTimeout(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		a := newCounter(false, 0) // not running: nobody answers
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		defer cancel()
		if _, err := get(ctx, a.Ref()); !errors.Is(err, context.DeadlineExceeded) {
			t.Fatalf("Ask of a stopped actor: %v", err)
		}
	})
}

func TestReplyOnce(t *testing.T) {
	p := Reply[int]{c: make(chan result[int], 1)}
	p.Send(1)
	p.Send(2)
	p.Error(errors.New("late"))
	if r := <-p.c; r.v != 1 || r.err != nil {
		t.Fatalf("first answer lost: %+v", r)
	}
}
