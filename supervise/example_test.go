package supervise_test

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/bulwark-go/bulwark/supervise"
)

// A worker that panics on its first run is restarted; the observer sees
// the failure and the restart.
func Example() {
	runs := 0
	worker := supervise.ServiceFunc(func(ctx context.Context) error {
		runs++
		if runs == 1 {
			panic("first run fails")
		}
		<-ctx.Done()
		return nil
	})
	events := make(chan supervise.Event, 16)
	root := supervise.New(supervise.Config{Name: "app", Backoff: time.Millisecond, Observer: func(e supervise.Event) { events <- e }},
		supervise.Spec{Name: "worker", Service: worker})
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- root.Serve(ctx) }()
	for e := range events {
		if e.Kind == supervise.EventFailed {
			var p *supervise.PanicError
			fmt.Println(e.Supervisor+"/"+e.Child, e.Kind, errors.As(e.Err, &p), p.Value)
		}
		if e.Kind == supervise.EventRestarted {
			fmt.Println(e.Supervisor+"/"+e.Child, e.Kind, e.Restarts)
			break
		}
	}
	cancel()
	fmt.Println(<-done)
	// Output:
	// app/worker failed true first run fails
	// app/worker restarted 1
	// <nil>
}
