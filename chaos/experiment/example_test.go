package experiment_test

import (
	"fmt"

	"github.com/bulwark-go/bulwark/chaos/experiment"
)

// Parsing an experiment: defaults are filled in, and problems come back as
// file:line messages.
func ExampleParse() {
	e, err := experiment.Parse("slow.yaml", []byte(`
title: slow replica
target: http://127.0.0.1:8080
load: {rate: 20, duration: 20s}
hypothesis: {success_ratio: 0.99, p99: 250ms}
method:
  - at: 5s
    add_toxic: {proxy: replica-1, type: latency, attributes: {latency: 300}}
  - at: 10s
    remove_toxic: {proxy: replica-1, name: latency_downstream}
rollbacks:
  - remove_toxic: {proxy: replica-1, name: latency_downstream}
`))
	if err != nil {
		panic(err)
	}
	fmt.Println(e.Title, e.Load.Timeout, e.Hypothesis.Warmup, e.Method[0].Kind(), e.Method[0].AddToxic.API)

	_, err = experiment.Parse("typo.yaml", []byte("target: http://127.0.0.1:8080\nload:\n  rate: 20\n  paht: /x\n"))
	fmt.Println(err)
	// Output:
	// slow replica 2s 2s add_toxic http://127.0.0.1:8474
	// typo.yaml:4: unknown key "paht" in load: known keys are rate, concurrency, duration, timeout, method, paths, headers, body, expect
}
