package resilienthttp_test

import (
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"sync/atomic"
	"time"

	"github.com/bulwark-go/bulwark/resilience"
	"github.com/bulwark-go/bulwark/resilience/limit"
	"github.com/bulwark-go/bulwark/resilience/resilienthttp"
	"github.com/bulwark-go/bulwark/resilience/retry"
)

// A client whose requests are retried when the backend is overloaded, with
// a timeout on each attempt. Pipelines builds the pipeline for requests
// that must not be retried from the same policies.
func ExampleTransport() {
	var calls atomic.Int32
	backend := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if calls.Add(1) == 1 {
			w.Header().Set("Retry-After", "0")
			http.Error(w, "busy", http.StatusServiceUnavailable)
			return
		}
		fmt.Fprintln(w, "hello")
	}))
	defer backend.Close()

	r, err := retry.New(retry.Config{MaxAttempts: 3, Backoff: retry.Backoff{Kind: retry.Constant, Base: 10 * time.Millisecond}})
	if err != nil {
		panic(err)
	}
	all, once := resilienthttp.Pipelines(resilience.Policies{
		Retry:   r,
		Timeout: resilience.Timeout{Duration: 5 * time.Second},
	})
	tr, err := resilienthttp.NewTransport(resilienthttp.Config{Pipeline: all, NonIdempotent: once})
	if err != nil {
		panic(err)
	}
	client := &http.Client{Transport: tr}

	resp, err := client.Get(backend.URL)
	if err != nil {
		panic(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body) // readable after the timeout stage returned
	fmt.Printf("%d %s", resp.StatusCode, body)
	fmt.Println("attempts:", calls.Load())
	// Output:
	// 200 hello
	// attempts: 2
}

// A server that sheds what its adaptive limiter does not admit. Here the
// limit is fixed at one request in flight, so a request arriving while
// another is served gets 503 and Retry-After.
func ExampleShed() {
	lim, err := limit.New(limit.Config{Algorithm: limit.Fixed(1)})
	if err != nil {
		panic(err)
	}
	serving, finish := make(chan struct{}), make(chan struct{})
	srv := httptest.NewServer(resilienthttp.Shed(lim, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/slow" {
			close(serving)
			<-finish
		}
		fmt.Fprintln(w, "served", r.URL.Path)
	})))
	defer srv.Close()

	slow := make(chan string)
	go func() {
		resp, err := http.Get(srv.URL + "/slow")
		if err != nil {
			panic(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		slow <- string(b)
	}()
	<-serving
	resp, err := http.Get(srv.URL + "/fast")
	if err != nil {
		panic(err)
	}
	resp.Body.Close()
	fmt.Println(resp.StatusCode, "Retry-After:", resp.Header.Get("Retry-After"))
	close(finish)
	fmt.Print(<-slow)
	// Output:
	// 503 Retry-After: 1
	// served /slow
}
