package health_test

import (
	"errors"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/bulwark-go/bulwark"
	"github.com/bulwark-go/bulwark/proxy/balance"
	"github.com/bulwark-go/bulwark/proxy/health"
)

// TestProbesAndOutliersSteerTheBalancer wires a Checker, a Detector and a
// balance.Set as the gateway does, against real servers on 127.0.0.1: a
// killed backend is taken out by its probes, a backend that answers probes
// but fails real requests is ejected by the detector, and when both are
// out the balancer serves from the one left.
func TestProbesAndOutliersSteerTheBalancer(t *testing.T) {
	defer goleak.VerifyNone(t)
	ok := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {})
	srvs := []*httptest.Server{httptest.NewServer(ok), httptest.NewServer(ok), httptest.NewServer(ok)}
	defer func() {
		for _, s := range srvs {
			s.Close()
		}
	}()

	var set *balance.Set
	det, err := health.NewDetector(health.DetectorConfig{
		MaxEjectionPercent: 34,
		OnChange:           func(id string, h bulwark.Health) { set.SetHealth(id, h) },
	})
	if err != nil {
		t.Fatal(err)
	}
	defer det.Close()
	set, err = balance.NewSet(balance.Config{Seed: 7, Panic: det.Panic})
	if err != nil {
		t.Fatal(err)
	}
	chk, err := health.NewChecker(health.CheckerConfig{Interval: 50 * time.Millisecond, Rise: 1, Fall: 2, OnChange: det.SetProbeHealth})
	if err != nil {
		t.Fatal(err)
	}
	defer chk.Close()

	var members []balance.Member
	var targets []health.Target
	var ids []string
	for i, s := range srvs {
		id := string(rune('a' + i))
		members = append(members, balance.Member{ID: id, Address: s.URL})
		targets = append(targets, health.Target{ID: id, Address: s.URL})
		ids = append(ids, id)
	}
	if err := set.Update(members); err != nil {
		t.Fatal(err)
	}
	det.SetEndpoints(ids)
	if err := chk.SetTargets(targets); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "all up", func() bool {
		return set.Get("a").Health() == bulwark.HealthUp && set.Get("b").Health() == bulwark.HealthUp && set.Get("c").Health() == bulwark.HealthUp
	})

	srvs[0].Close() // a is killed: probes fail
	waitFor(t, "a down", func() bool { return set.Get("a").Health() == bulwark.HealthDown })

	for range 5 { // b answers probes but fails real traffic
		det.Report("b", health.Outcome{Status: http.StatusBadGateway})
	}
	if h := set.Get("b").Health(); h != bulwark.HealthEjected {
		t.Fatalf("b is %v, want ejected", h)
	}
	if !det.Panic() {
		t.Fatal("one of three routable is below the 50% panic threshold")
	}
	// In panic the balancer spreads over all three again.
	seen := map[string]bool{}
	for range 300 {
		ep, err := set.Pick(balance.PickRequest{})
		if err != nil {
			t.Fatal(err)
		}
		seen[ep.ID()] = true
	}
	if len(seen) != 3 {
		t.Errorf("panic routing used %v, want all three", seen)
	}
	// Without panic routing (what a caller that prefers only healthy
	// endpoints gets by not wiring Panic), only c is picked.
	strict, _ := balance.NewSet(balance.Config{Seed: 7})
	_ = strict.Update(members)
	for _, id := range ids {
		strict.SetHealth(id, det.Health(id))
	}
	var req balance.PickRequest
	ep, err := strict.Pick(req)
	if err != nil || ep.ID() != "c" {
		t.Fatalf("strict pick %v %v, want c", ep, err)
	}
	req.Tried.Add(ep)
	if _, err := strict.Pick(req); !errors.Is(err, balance.ErrAllTried) {
		t.Errorf("retry after c: %v, want ErrAllTried", err)
	}
}

// waitFor polls cond until it holds or 5 s pass (real sockets cannot run
// in a synctest bubble).
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(2 * time.Millisecond)
	}
}
