package dashboard_test

import (
	"context"
	"fmt"
	"io"
	"net/http/httptest"
	"time"

	"github.com/bulwark-go/bulwark/dashboard"
)

// A coordinator adapts its components to a Source, feeds Traffic from the
// gateway's request path and Events from the components' callbacks, and
// serves Handler.
func ExampleNew() {
	source := dashboard.SourceFunc(func(ctx context.Context) (dashboard.Snapshot, error) {
		// In cmd/bulwark this reads gateway.Upstreams(), the registry and delivery.
		return dashboard.Snapshot{Services: []dashboard.Service{{Name: "api", Instances: []dashboard.Instance{
			{ID: "api-1", Address: "http://127.0.0.1:9001", Health: dashboard.HealthUp, Breaker: "closed"},
		}}}}, nil
	})
	d, err := dashboard.New(dashboard.Config{Source: source, Title: "Bulwark"})
	if err != nil {
		panic(err)
	}
	if err := d.Start(); err != nil {
		panic(err)
	}
	defer d.Close()

	d.Traffic().Record(12*time.Millisecond, true) // the gateway, per request
	d.Events().Add(dashboard.KindBreaker, "api-1: breaker closed → open")

	srv := httptest.NewServer(d.Handler())
	defer srv.Close()
	resp, err := srv.Client().Get(srv.URL + "/api/events")
	if err != nil {
		panic(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	fmt.Println(resp.StatusCode, len(body) > 0)
	// Output: 200 true
}
