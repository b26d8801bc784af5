package main

import (
	"context"
	"io"
	"testing"
	"time"

	"github.com/bulwark-go/bulwark/supervise"
)

// TestFleetCrashLoopGivesUp: a replica whose process dies at once every
// time is restarted until its supervisor's intensity is exhausted; it
// then shows as gave-up and stays down, and Restart gives it a fresh
// budget.
func TestFleetCrashLoopGivesUp(t *testing.T) {
	f := newFleet("/bin/false", "127.0.0.1:1", "demo", io.Discard)
	f.intensity = supervise.Config{MaxRestarts: 3, Period: time.Minute, Backoff: time.Millisecond, Jitter: -1, Shutdown: time.Second}
	var events []supervise.Event
	evc := make(chan supervise.Event, 100)
	f.sup = supervise.New(supervise.Config{Name: "fleet", MaxRestarts: -1, Observer: func(e supervise.Event) { evc <- e }})
	if err := f.add("demo-1", 1); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(t.Context())
	done := make(chan error, 1)
	go func() { done <- f.sup.Serve(ctx) }()
	defer func() { cancel(); <-done }()
	wait := func(what string, cond func(supervise.Node) bool) {
		t.Helper()
		deadline := time.Now().Add(20 * time.Second)
		for !cond(f.sup.Tree().Children[0]) {
			if time.Now().After(deadline) {
				t.Fatalf("%s: tree %+v", what, f.sup.Tree())
			}
			time.Sleep(5 * time.Millisecond)
		}
	}
	wait("gave up", func(n supervise.Node) bool { return n.State == supervise.StateGaveUp })
	n := f.sup.Tree().Children[0]
	if n.Children[0].Restarts != 3 {
		t.Fatalf("process restarted %d times before giving up, want 3", n.Children[0].Restarts)
	}
	if st := f.state()["demo-1"]; !st.down {
		t.Fatal("a replica that gave up should show as down")
	}
	for len(evc) > 0 {
		events = append(events, <-evc)
	}
	if last := events[len(events)-1]; last.Kind != supervise.EventFailed || last.Child != "demo-1" || last.Supervisor != "fleet" {
		t.Fatalf("last event %v, want fleet/demo-1 failed (gave up)", last)
	}
	// Restart: a fresh budget, the same crash loop, giving up again.
	if err := f.Restart(t.Context(), "demo-1"); err != nil {
		t.Fatal(err)
	}
	gaveUp := 0
	for _, e := range events {
		if e.Kind == supervise.EventGaveUp && e.Supervisor == "fleet/demo-1" {
			gaveUp++
		}
	}
	deadline := time.After(20 * time.Second)
	for gaveUp < 2 {
		select {
		case e := <-evc:
			if e.Kind == supervise.EventGaveUp && e.Supervisor == "fleet/demo-1" {
				gaveUp++
			}
		case <-deadline:
			t.Fatalf("after Restart the replica's supervisor did not give up again (%d gave-up events)", gaveUp)
		}
	}
}

// TestLoopRunner: a component loop run through loopRunner (the gateway's
// proxy.Options.Run) that panics is restarted by the tree; when its owner
// stops it, it is removed from the tree and run returns.
func TestLoopRunner(t *testing.T) {
	r := newLoopRunner()
	ctx, cancel := context.WithCancel(t.Context())
	tdone := make(chan error, 1)
	go func() { tdone <- r.sup.Serve(ctx) }()
	defer func() { cancel(); <-tdone }()
	starts := make(chan struct{}, 10)
	loop := func(ctx context.Context) error {
		starts <- struct{}{}
		if len(starts) == 1 {
			panic("first run of the loop")
		}
		<-ctx.Done()
		return nil
	}
	owner, stop := context.WithCancel(t.Context())
	ran := make(chan struct{})
	go func() { r.run(owner, "discovery demo", loop); close(ran) }()
	deadline := time.Now().Add(20 * time.Second)
	for len(starts) < 2 {
		if time.Now().After(deadline) {
			t.Fatalf("the loop was not restarted after its panic: %+v", r.sup.Tree())
		}
		time.Sleep(5 * time.Millisecond)
	}
	tree := r.sup.Tree()
	if len(tree.Children) != 1 || tree.Children[0].Name != "discovery demo" || tree.Children[0].Restarts != 1 {
		t.Fatalf("tree %+v", tree)
	}
	stop()
	select {
	case <-ran:
	case <-time.After(20 * time.Second):
		t.Fatal("run did not return after its owner stopped the loop")
	}
	if n := len(r.sup.Tree().Children); n != 0 {
		t.Fatalf("%d children left after the loop's owner stopped it", n)
	}
}
