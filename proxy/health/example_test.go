package health_test

import (
	"fmt"
	"net/http"
	"net/http/httptest"
	"syscall"
	"time"

	"github.com/bulwark-go/bulwark"
	"github.com/bulwark-go/bulwark/proxy/balance"
	"github.com/bulwark-go/bulwark/proxy/health"
)

// The gateway wires outcomes into a Detector and the Detector's verdicts
// into the balancer: after five connection failures in a row an endpoint
// is ejected and picks go elsewhere.
func Example() {
	var set *balance.Set
	det, err := health.NewDetector(health.DetectorConfig{
		OnChange: func(id string, h bulwark.Health) {
			fmt.Println(id, "is now", h)
			set.SetHealth(id, h)
		},
	})
	if err != nil {
		panic(err)
	}
	defer det.Close()
	set, err = balance.NewSet(balance.Config{Seed: 1, Panic: det.Panic})
	if err != nil {
		panic(err)
	}
	_ = set.Update([]balance.Member{{ID: "a", Address: "127.0.0.1:9001"}, {ID: "b", Address: "127.0.0.1:9002"}})
	det.SetEndpoints([]string{"a", "b"})

	for range 5 { // what the proxy reports after each try against b
		det.Report("b", health.Outcome{Err: syscall.ECONNREFUSED})
	}
	ep, _ := set.Pick(balance.PickRequest{})
	fmt.Println("picked", ep.ID(), "panic:", det.Panic())
	// Un-ejection happens on a later Tick (det.Start runs them every Interval).
	det.Tick(time.Now().Add(31 * time.Second))
	// Output:
	// b is now ejected
	// picked a panic: false
	// b is now up
}

// A Checker probes endpoints and reports when they come up or go down.
func ExampleChecker() {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.WriteHeader(http.StatusOK)
	}))
	defer srv.Close()

	changes := make(chan string, 8)
	c, err := health.NewChecker(health.CheckerConfig{
		Path:     "/health",
		Interval: 10 * time.Millisecond,
		Rise:     2,
		OnChange: func(id string, h bulwark.Health) { changes <- id + " " + h.String() },
	})
	if err != nil {
		panic(err)
	}
	defer c.Close()
	_ = c.SetTargets([]health.Target{{ID: "api-1", Address: srv.URL}})
	fmt.Println(<-changes)
	// Output: api-1 up
}
