package registry_test

import (
	"context"
	"fmt"
	"os"
	"time"

	"github.com/bulwark-go/bulwark"
	"github.com/bulwark-go/bulwark/registry"
)

// A one-node registry, an instance that registers itself, and a consumer
// that lists the service.
func Example() {
	ctx := context.Background()
	dir, _ := os.MkdirTemp("", "registry-example")
	defer os.RemoveAll(dir)

	node, err := registry.Open(ctx, registry.Config{DataDir: dir,
		HeartbeatTimeout: 200 * time.Millisecond, ElectionTimeout: 200 * time.Millisecond, LeaderLeaseTimeout: 100 * time.Millisecond})
	if err != nil {
		fmt.Println(err)
		return
	}
	defer node.Close()
	if err := node.WaitReady(ctx); err != nil {
		fmt.Println(err)
		return
	}

	client, _ := registry.NewClient(registry.ClientConfig{Addrs: []string{node.HTTPAddr()}})
	defer client.Close()
	reg, err := client.Register(ctx, bulwark.Instance{Service: "web", ID: "web-1", Address: "http://127.0.0.1:9001"}, time.Second)
	if err != nil {
		fmt.Println(err)
		return
	}
	defer reg.Close() // deregisters

	insts, _ := client.Instances(ctx, "web")
	for _, in := range insts {
		fmt.Println(in.ID, in.Address, in.Health, in.Health.Routable())
	}
	// Output: web-1 http://127.0.0.1:9001 up true
}
