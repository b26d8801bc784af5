package delivery

import (
	"context"
	"errors"
	"fmt"
	"os"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/bulwark-go/bulwark"
	"github.com/bulwark-go/bulwark/supervise"
	"github.com/bulwark-go/bulwark/supervise/actor"
)

// mailboxChildEnv makes the test binary run mailboxChild instead of the
// tests.
const mailboxChildEnv = "BULWARK_MAILBOX_CRASH_CHILD"

// Durable is what the actor needs; Mailbox must satisfy it.
var _ actor.Durable = (*Mailbox)(nil)

// note is the durable actor's message in these tests.
type note struct {
	N     int
	Panic bool // panic on the first attempt
}

// seen records, across incarnations and Services, each note handled and
// how often it was attempted.
type seen struct {
	mu       sync.Mutex
	attempts map[int]int
	done     map[int]int
}

func newSeen() *seen { return &seen{attempts: map[int]int{}, done: map[int]int{}} }

func (s *seen) handler() actor.Handler[note] {
	return actor.HandlerFunc[note](func(ctx context.Context, m note) error {
		s.mu.Lock()
		s.attempts[m.N]++
		first := s.attempts[m.N] == 1
		s.mu.Unlock()
		if m.Panic && first {
			panic(fmt.Sprintf("note %d", m.N))
		}
		s.mu.Lock()
		s.done[m.N]++
		s.mu.Unlock()
		return nil
	})
}

func (s *seen) has(n int) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.done[n] > 0
}

func fwdNone() Forwarder {
	return forwardFunc(func(context.Context, *bulwark.Message) (int, error) { return 503, nil })
}

// runActor runs a durable actor on mb under a supervisor until the
// returned stop is called.
func runActor(t *testing.T, s *seen, mb *Mailbox) (actor.Ref[note], func()) {
	a := actor.New(actor.Config[note]{Name: "notes", New: s.handler, Durable: mb})
	sup := supervise.New(supervise.Config{Name: "test"}, supervise.Spec{Name: "notes", Service: a})
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- sup.Serve(ctx) }()
	return a.Ref(), func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("supervisor: %v", err)
		}
	}
}

func openMailbox(t *testing.T, s *Service, capacity int) *Mailbox {
	t.Helper()
	mb, err := s.Mailbox(context.Background(), "notes", MailboxConfig{Capacity: capacity})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { mb.Close() })
	return mb
}

// TestMailboxRestart: on a real JetStream mailbox, a note the actor
// panics on is handled again by its restarted incarnation, and notes told
// while no actor runs survive closing and reopening the Service.
func TestMailboxRestart(t *testing.T) {
	dir := t.TempDir()
	s1 := open(t, testConfig(t, dir), fwdNone())
	mb := openMailbox(t, s1, 0)
	rec := newSeen()
	ref, stop := runActor(t, rec, mb)
	ctx := context.Background()
	for i := range 10 {
		if err := ref.Tell(ctx, note{N: i, Panic: i == 3}); err != nil {
			t.Fatal(err)
		}
	}
	waitFor(t, 20*time.Second, "10 notes handled", func() bool {
		for i := range 10 {
			if !rec.has(i) {
				return false
			}
		}
		return true
	})
	stop()
	rec.mu.Lock()
	if rec.attempts[3] != 2 || rec.done[3] != 1 {
		t.Errorf("note 3: %d attempts, %d done; want 2 (panic, then again after the restart), 1", rec.attempts[3], rec.done[3])
	}
	rec.mu.Unlock()
	// Told with no actor running, then the Service is closed and reopened.
	a := actor.New(actor.Config[note]{New: rec.handler, Durable: mb})
	for i := 10; i < 15; i++ {
		if err := a.Ref().Tell(ctx, note{N: i}); err != nil {
			t.Fatal(err)
		}
	}
	mb.Close()
	if err := s1.Close(); err != nil {
		t.Fatal(err)
	}
	s2 := open(t, testConfig(t, dir), fwdNone())
	mb2 := openMailbox(t, s2, 0)
	if n, err := mb2.Len(ctx); err != nil || n != 5 {
		t.Fatalf("reopened mailbox holds %d, %v; want 5", n, err)
	}
	_, stop = runActor(t, rec, mb2)
	defer stop()
	waitFor(t, 20*time.Second, "notes 10..14 handled after reopening", func() bool {
		for i := 10; i < 15; i++ {
			if !rec.has(i) {
				return false
			}
		}
		return true
	})
	waitFor(t, 10*time.Second, "empty mailbox", func() bool { n, _ := mb2.Len(ctx); return n == 0 })
}

// TestMailboxCapacity: a full JetStream mailbox refuses Put (nothing
// stored), an actor's TryTell fails with ErrMailboxFull, and a removal
// makes room.
func TestMailboxCapacity(t *testing.T) {
	s := open(t, testConfig(t, t.TempDir()), fwdNone())
	mb := openMailbox(t, s, 2)
	ctx := context.Background()
	for i, want := range []bool{true, true, false} {
		if ok, err := mb.Put(ctx, []byte(strconv.Itoa(i))); err != nil || ok != want {
			t.Fatalf("Put %d: %v, %v; want %v", i, ok, err, want)
		}
	}
	a := actor.New(actor.Config[note]{New: newSeen().handler, Durable: mb})
	if err := a.Ref().TryTell(note{}); !errors.Is(err, actor.ErrMailboxFull) {
		t.Fatalf("TryTell on a full mailbox: %v", err)
	}
	seq, data, err := mb.Head(ctx)
	if err != nil || string(data) != "0" {
		t.Fatalf("Head: %d %q %v", seq, data, err)
	}
	if err := mb.Remove(ctx, seq); err != nil {
		t.Fatal(err)
	}
	if err := mb.Remove(ctx, seq); err != nil {
		t.Fatalf("second Remove of %d: %v", seq, err)
	}
	if ok, err := mb.Put(ctx, []byte("3")); err != nil || !ok {
		t.Fatalf("Put after a removal: %v, %v", ok, err)
	}
	if _, data, _ := mb.Head(ctx); string(data) != "1" {
		t.Fatalf("head after removal %q, want 1 (FIFO)", data)
	}
}

// mailboxChild tells notes forever to a durable actor that is not
// running, printing each number once Tell returned (stored). The parent
// kills it with SIGKILL.
func mailboxChild(dir string) int {
	s, err := Open(context.Background(), Config{DataDir: dir}, fwdNone())
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	mb, err := s.Mailbox(context.Background(), "notes", MailboxConfig{Capacity: 100000})
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	ref := actor.New(actor.Config[note]{New: newSeen().handler, Durable: mb}).Ref()
	for i := 0; ; i++ {
		if err := ref.Tell(context.Background(), note{N: i}); err != nil {
			fmt.Fprintln(os.Stderr, err)
			return 1
		}
		fmt.Fprintln(os.Stdout, i)
	}
}

// TestMailboxKill9: every note whose Tell returned in a process killed
// with SIGKILL is handled after a restart on the same DataDir.
func TestMailboxKill9(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a child process")
	}
	dir := t.TempDir()
	cmd, sc := startChild(t, mailboxChildEnv, dir)
	var told []int
	for len(told) < 300 && sc.Scan() {
		n, _ := strconv.Atoi(strings.TrimSpace(sc.Text()))
		told = append(told, n)
	}
	if err := cmd.Process.Kill(); err != nil {
		t.Fatal(err)
	}
	for sc.Scan() {
		n, _ := strconv.Atoi(strings.TrimSpace(sc.Text()))
		told = append(told, n)
	}
	_ = cmd.Wait()
	if len(told) < 300 {
		t.Fatalf("child told only %d notes before it ended", len(told))
	}
	s := open(t, testConfig(t, dir), fwdNone())
	mb := openMailbox(t, s, 100000)
	rec := newSeen()
	_, stop := runActor(t, rec, mb)
	defer stop()
	var missing []int
	waitFor(t, 30*time.Second, fmt.Sprintf("%d told notes handled", len(told)), func() bool {
		missing = missing[:0]
		for _, n := range told {
			if !rec.has(n) {
				missing = append(missing, n)
			}
		}
		return len(missing) == 0
	})
	t.Logf("child's Tell returned for %d notes; all handled after the restart", len(told))
}

// BenchmarkMailboxTell measures a durable actor end to end on the
// embedded JetStream server: b.N notes told (each stored, a quorum of one
// here, before Tell returns) by parallel callers and handled, each removed
// from the stream after its handler returned. Compare with
// supervise/actor's BenchmarkTell (the in-memory mailbox).
func BenchmarkMailboxTell(b *testing.B) {
	cfg := testConfig(b, b.TempDir())
	cfg.Logger = nil
	s := open(b, cfg, fwdNone())
	mb, err := s.Mailbox(context.Background(), "bench", MailboxConfig{Capacity: 1 << 20})
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { mb.Close() })
	var handled atomic.Int64
	a := actor.New(actor.Config[note]{Name: "bench", Durable: mb, New: func() actor.Handler[note] {
		return actor.HandlerFunc[note](func(context.Context, note) error { handled.Add(1); return nil })
	}})
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- a.Serve(ctx) }()
	defer func() { cancel(); <-done }()
	ref := a.Ref()
	b.SetParallelism(8)
	b.ReportAllocs()
	b.ResetTimer()
	start := time.Now()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			if err := ref.Tell(context.Background(), note{N: 1}); err != nil {
				b.Error(err)
				return
			}
		}
	})
	told := time.Since(start)
	for handled.Load() < int64(b.N) {
		time.Sleep(time.Millisecond)
	}
	b.ReportMetric(float64(b.N)/told.Seconds(), "told/s")
	b.ReportMetric(float64(b.N)/time.Since(start).Seconds(), "handled/s")
}
