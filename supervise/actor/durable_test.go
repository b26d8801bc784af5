package actor

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"github.com/bulwark-go/bulwark/supervise"
)

// memDurable is a Durable in memory, for testing the actor's side of the
// contract under synctest (package delivery's tests run the same actor on
// a real JetStream mailbox, across restarts and kill -9).
type memDurable struct {
	mu        sync.Mutex
	seq       uint64
	msgs      []memMsg
	capacity  int
	notify    chan struct{}
	removeErr error // returned by the next Remove, once
	removes   int
}

type memMsg struct {
	seq  uint64
	data []byte
}

func newMemDurable(capacity int) *memDurable {
	return &memDurable{capacity: capacity, notify: make(chan struct{}, 1)}
}

func (d *memDurable) Put(ctx context.Context, data []byte) (bool, error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	if len(d.msgs) >= d.capacity {
		return false, nil
	}
	d.seq++
	d.msgs = append(d.msgs, memMsg{d.seq, slices.Clone(data)})
	select {
	case d.notify <- struct{}{}:
	default:
	}
	return true, nil
}

func (d *memDurable) Head(ctx context.Context) (uint64, []byte, error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	if len(d.msgs) == 0 {
		return 0, nil, nil
	}
	return d.msgs[0].seq, d.msgs[0].data, nil
}

func (d *memDurable) Remove(ctx context.Context, seq uint64) error {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.removes++
	if err := d.removeErr; err != nil {
		d.removeErr = nil
		return err
	}
	d.msgs = slices.DeleteFunc(d.msgs, func(m memMsg) bool { return m.seq == seq })
	return nil
}

func (d *memDurable) Notify() <-chan struct{} { return d.notify }

func (d *memDurable) len() int {
	d.mu.Lock()
	defer d.mu.Unlock()
	return len(d.msgs)
}

// job is a durable test message: JSON-encodable fields, and a Reply (not
// encoded) for Asks.
type job struct {
	ID    int
	Crash string       // "error", "panic", "once" (panic on the first attempt only), "block"
	Get   Reply[[]int] `json:"-"`
}

// journal records, across incarnations, every attempt at each job and
// which jobs completed, in order.
type journal struct {
	mu       sync.Mutex
	attempts map[int]int
	done     []int
	block    chan struct{}
}

func newJournal() *journal { return &journal{attempts: map[int]int{}, block: make(chan struct{})} }

func (j *journal) handler() Handler[job] {
	return HandlerFunc[job](func(ctx context.Context, m job) error {
		if m.Get.c != nil {
			j.mu.Lock()
			m.Get.Send(slices.Clone(j.done))
			j.mu.Unlock()
			return nil
		}
		j.mu.Lock()
		j.attempts[m.ID]++
		n := j.attempts[m.ID]
		j.mu.Unlock()
		switch {
		case m.Crash == "error":
			return fmt.Errorf("job %d fails", m.ID)
		case m.Crash == "panic", m.Crash == "once" && n == 1:
			panic(fmt.Sprintf("job %d panics", m.ID))
		case m.Crash == "block":
			<-j.block
		}
		j.mu.Lock()
		j.done = append(j.done, m.ID)
		j.mu.Unlock()
		return nil
	})
}

func (j *journal) snapshot() ([]int, map[int]int) {
	j.mu.Lock()
	defer j.mu.Unlock()
	return slices.Clone(j.done), func() map[int]int {
		c := map[int]int{}
		for k, v := range j.attempts {
			c[k] = v
		}
		return c
	}()
}

type dropped struct {
	mu   sync.Mutex
	data []string
	errs []error
}

func (d *dropped) add(data []byte, err error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.data = append(d.data, string(data))
	d.errs = append(d.errs, err)
}

func newDurableActor(j *journal, d *memDurable, drops *dropped) *Actor[job] {
	return New(Config[job]{Name: "jobs", New: j.handler, Durable: d, OnDrop: drops.add})
}

func askDone(ctx context.Context, r Ref[job]) ([]int, error) {
	return Ask(ctx, r, func(p Reply[[]int]) job { return job{Get: p} })
}

// TestDurableRedelivery: a message told to a durable actor stays in the
// mailbox until its handler returned, so one the actor crashes on is
// handled again by the next incarnation, in order, and a poison message
// is dropped after MaxAttempts instead of crashing the actor until its
// supervisor gives up.
func TestDurableRedelivery(t *testing.T) {
	for _, tc := range []struct {
		name     string
		crash    string
		done     []int // jobs completed, in order
		attempts int   // attempts at job 2
		dropped  bool
	}{
		{"no crash", "", []int{1, 2, 3}, 1, false},
		{"panic once: handled again", "once", []int{1, 2, 3}, 2, false},
		{"always errors: dropped after 3", "error", []int{1, 3}, 3, true},
		{"always panics: dropped after 3", "panic", []int{1, 3}, 3, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				j, d, drops := newJournal(), newMemDurable(16), &dropped{}
				a := newDurableActor(j, d, drops)
				defer supervised(t, a)()
				ctx := context.Background()
				for i, crash := range []string{"", tc.crash, ""} {
					if err := a.Ref().Tell(ctx, job{ID: i + 1, Crash: crash}); err != nil {
						t.Fatal(err)
					}
				}
				time.Sleep(time.Minute) // past every restart backoff
				done, attempts := j.snapshot()
				if !slices.Equal(done, tc.done) || attempts[2] != tc.attempts {
					t.Fatalf("done %v, attempts at job 2: %d; want %v, %d", done, attempts[2], tc.done, tc.attempts)
				}
				if n := d.len(); n != 0 {
					t.Fatalf("%d messages left in the durable mailbox", n)
				}
				if got := len(drops.errs) == 1; got != tc.dropped {
					t.Fatalf("dropped %v (%v), want dropped=%v", drops.data, drops.errs, tc.dropped)
				}
				if tc.dropped {
					if !errors.Is(drops.errs[0], ErrDropped) || drops.data[0] != fmt.Sprintf(`{"ID":2,"Crash":%q}`, tc.crash) {
						t.Fatalf("OnDrop got %q, %v", drops.data[0], drops.errs[0])
					}
				}
			})
		})
	}
}

// TestDurableUndecodable: a stored message the codec cannot decode is
// dropped at once (it could never be handled) and reported.
func TestDurableUndecodable(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		j, d, drops := newJournal(), newMemDurable(16), &dropped{}
		a := newDurableActor(j, d, drops)
		defer supervised(t, a)()
		ctx := context.Background()
		d.Put(ctx, []byte("not json"))
		a.Ref().Tell(ctx, job{ID: 7})
		if done, err := askDone(ctx, a.Ref()); err != nil || !slices.Equal(done, []int{7}) {
			t.Fatalf("done %v, %v; want [7]", done, err)
		}
		if len(drops.data) != 1 || drops.data[0] != "not json" || !errors.Is(drops.errs[0], ErrDropped) {
			t.Fatalf("dropped %q, %v", drops.data, drops.errs)
		}
	})
}

// TestDurableRemoveFails: a message whose removal failed is handled again
// (at least once), by a restarted actor.
func TestDurableRemoveFails(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		j, d, drops := newJournal(), newMemDurable(16), &dropped{}
		d.removeErr = errors.New("store unavailable")
		a := newDurableActor(j, d, drops)
		defer supervised(t, a)()
		a.Ref().Tell(context.Background(), job{ID: 1})
		time.Sleep(time.Minute)
		if done, _ := j.snapshot(); !slices.Equal(done, []int{1, 1}) || d.len() != 0 {
			t.Fatalf("done %v, %d left; want [1 1] (handled again after the failed removal), 0", done, d.len())
		}
	})
}

// TestDurableAskOrder: an Ask (in memory) sees every Tell (durable) that
// returned before it, and the Asks of a durable actor still fail with
// ErrCrashed when it crashes on them.
func TestDurableAskOrder(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		j, d, drops := newJournal(), newMemDurable(64), &dropped{}
		a := newDurableActor(j, d, drops)
		r := a.Ref()
		ctx := context.Background()
		// Told before the actor runs: the Ask must wait behind all of them.
		for i := range 20 {
			r.Tell(ctx, job{ID: i})
		}
		defer supervised(t, a)()
		done, err := askDone(ctx, r)
		if err != nil || len(done) != 20 {
			t.Fatalf("Ask saw %v, %v; want the 20 jobs told before it", done, err)
		}
		_, err = Ask(ctx, r, func(p Reply[int]) job { return job{Crash: "panic"} })
		if !errors.Is(err, ErrCrashed) {
			t.Fatalf("Ask the actor crashed on: %v, want ErrCrashed", err)
		}
		// The crashing Ask is not retried: only told messages are durable.
		time.Sleep(time.Minute)
		if _, att := j.snapshot(); att[0] != 2 { // job 0: once by Tell, once by the crashing Ask
			t.Fatalf("attempts at job 0: %d, want 2", att[0])
		}
	})
}

// TestDurableBackpressure: a full durable mailbox (its capacity counts the
// message being handled) makes TryTell fail at once and Tell wait for
// room until its context ends; a removal lets a waiting Tell in.
func TestDurableBackpressure(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		j, d, drops := newJournal(), newMemDurable(2), &dropped{}
		a := newDurableActor(j, d, drops)
		defer supervised(t, a)()
		r := a.Ref()
		ctx := context.Background()
		r.Tell(ctx, job{ID: 1, Crash: "block"}) // the actor is busy with this one
		synctest.Wait()
		if err := r.Tell(ctx, job{ID: 2}); err != nil {
			t.Fatal(err)
		}
		if err := r.TryTell(job{ID: 3}); !errors.Is(err, ErrMailboxFull) {
			t.Fatalf("TryTell on a full durable mailbox: %v", err)
		}
		tctx, cancel := context.WithTimeout(ctx, time.Second)
		defer cancel()
		begin := time.Now()
		if err := r.Tell(tctx, job{ID: 3}); !errors.Is(err, context.DeadlineExceeded) {
			t.Fatalf("Tell on a full durable mailbox: %v", err)
		}
		if time.Since(begin) != time.Second {
			t.Fatalf("Tell gave up after %v, want its context's 1s", time.Since(begin))
		}
		told := make(chan error, 1)
		go func() { told <- r.Tell(ctx, job{ID: 4}) }()
		synctest.Wait()
		select {
		case err := <-told:
			t.Fatalf("Tell returned %v on a full mailbox", err)
		default:
		}
		close(j.block)
		if err := <-told; err != nil {
			t.Fatal(err)
		}
		if done, err := askDone(ctx, r); err != nil || !slices.Equal(done, []int{1, 2, 4}) {
			t.Fatalf("done %v, %v; want [1 2 4]", done, err)
		}
	})
}

// TestDurableIdle: an idle durable actor waits for a notification (or its
// poll) and stops promptly when its context ends.
func TestDurableIdle(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		j, d, drops := newJournal(), newMemDurable(4), &dropped{}
		a := newDurableActor(j, d, drops)
		ctx, cancel := context.WithCancel(context.Background())
		errc := make(chan error, 1)
		go func() { errc <- a.Serve(ctx) }()
		time.Sleep(time.Hour)
		// A Put whose notification is lost is still found by the poll.
		d.mu.Lock()
		d.seq++
		d.msgs = append(d.msgs, memMsg{d.seq, []byte(`{"ID":5}`)})
		d.mu.Unlock()
		time.Sleep(durablePoll)
		synctest.Wait()
		if done, _ := j.snapshot(); !slices.Equal(done, []int{5}) {
			t.Fatalf("done %v; want [5] found by the poll", done)
		}
		cancel()
		if err := <-errc; err != nil {
			t.Fatalf("Serve: %v", err)
		}
	})
}

// TestDurableEncodeError: a message the codec cannot encode is refused by
// Tell, with nothing stored.
func TestDurableEncodeError(t *testing.T) {
	d := newMemDurable(4)
	a := New(Config[func()]{New: func() Handler[func()] { return nil }, Durable: d})
	if err := a.Ref().Tell(context.Background(), func() {}); err == nil || d.len() != 0 {
		t.Fatalf("Tell of an unencodable message: %v, %d stored", err, d.len())
	}
}

var _ supervise.Service = (*Actor[job])(nil)
