package balance_test

import (
	"errors"
	"fmt"
	"time"

	"github.com/bulwark-go/bulwark"
	"github.com/bulwark-go/bulwark/proxy/balance"
)

// A proxy picks an endpoint for each try, brackets the try with Start and
// Done, and on a retry excludes the endpoints it already used.
func Example() {
	set, err := balance.NewSet(balance.Config{Seed: 1}) // P2C over peak EWMA
	if err != nil {
		panic(err)
	}
	err = set.Update([]balance.Member{
		{ID: "a", Address: "http://127.0.0.1:9001"},
		{ID: "b", Address: "http://127.0.0.1:9002"},
	})
	if err != nil {
		panic(err)
	}
	// Health (probes, outlier detection) takes "a" out of rotation.
	set.SetHealth("a", bulwark.HealthEjected)

	var req balance.PickRequest
	for try := 1; try <= 2; try++ {
		ep, err := set.Pick(req)
		if errors.Is(err, balance.ErrNoEndpoint) {
			fmt.Println("try", try, "no endpoint:", err)
			break
		}
		ep.Start()
		// ... send the request to ep.Address() ...
		ep.Done(3*time.Millisecond, true) // it failed: retry elsewhere
		fmt.Println("try", try, "->", ep.ID())
		req.Tried.Add(ep)
	}
	// Output:
	// try 1 -> b
	// try 2 no endpoint: every available endpoint was already tried: no endpoint available
}

// Consistent hashing keeps a client on the same endpoint.
func ExampleMaglev() {
	set, _ := balance.NewSet(balance.Config{Policy: balance.Maglev{LoadFactor: 1.25}})
	_ = set.Update([]balance.Member{{Address: "10.0.0.1:80"}, {Address: "10.0.0.2:80"}, {Address: "10.0.0.3:80"}})
	first, _ := set.Pick(balance.PickRequest{Key: "session-42"})
	again, _ := set.Pick(balance.PickRequest{Key: "session-42"})
	fmt.Println(first == again)
	// Output: true
}

// Smooth weighted round robin interleaves a heavy endpoint with light ones.
func ExampleRoundRobin() {
	set, _ := balance.NewSet(balance.Config{Policy: balance.RoundRobin{}, Seed: 3})
	_ = set.Update([]balance.Member{{ID: "a", Weight: 5}, {ID: "b"}, {ID: "c"}})
	counts := map[string]int{}
	for range 70 {
		ep, _ := set.Pick(balance.PickRequest{})
		counts[ep.ID()]++
	}
	fmt.Println(counts)
	// Output: map[a:50 b:10 c:10]
}
