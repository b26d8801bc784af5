package monkey_test

import (
	"context"
	"fmt"

	"github.com/bulwark-go/bulwark/chaos/monkey"
)

// A dry run over a static list: the monkey picks a victim and logs what it
// would do, without killing anything.
func ExampleMonkey_Step() {
	victims := &monkey.StaticVictims{List: []monkey.StaticVictim{
		{Service: "api", ID: "api-1", KillURL: "http://127.0.0.1:9101/admin/kill"},
		{Service: "api", ID: "api-2", KillURL: "http://127.0.0.1:9102/admin/kill"},
		{Service: "api", ID: "api-3", KillURL: "http://127.0.0.1:9103/admin/kill"},
	}}
	m, err := monkey.New(monkey.Config{Services: []string{"api"}, MinHealthy: 2, DryRun: true, Seed: 42}, victims)
	if err != nil {
		panic(err)
	}
	d := m.Step(context.Background())
	fmt.Println(d.Service, d.Action, d.Healthy)
	// Output: api dry-run 3
}
