package consulapi_test

import (
	"net/http"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/bulwark-go/bulwark/registry"
	"github.com/bulwark-go/bulwark/registry/consulapi"
	"github.com/bulwark-go/bulwark/registry/internal/regtest"
	consul "github.com/hashicorp/consul/api"
	"go.uber.org/goleak"
)

const token = "consul-test-token"

// cluster starts n registry nodes serving the Consul subset, with a write
// token.
func cluster(t *testing.T, n int) []*registry.Node {
	t.Helper()
	return regtest.Cluster(t, n, func(i int, c *registry.Config) {
		c.Token = token
		c.Mount = consulapi.Mount(consulapi.Options{})
	})
}

func client(t *testing.T, n *registry.Node, tok string) *consul.Client {
	t.Helper()
	c, err := consul.NewClient(&consul.Config{Address: n.HTTPAddr(), Token: tok})
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func passingIDs(t *testing.T, c *consul.Client, service string) []string {
	t.Helper()
	entries, _, err := c.Health().Service(service, "", true, nil)
	if err != nil {
		t.Fatalf("health service %s: %v", service, err)
	}
	var ids []string
	for _, e := range entries {
		ids = append(ids, e.Service.ID)
	}
	slices.Sort(ids)
	return ids
}

// TestConsulClientLifecycle drives the API with HashiCorp's own Go client:
// register with a TTL check, pass it, block on Health().Service until an
// instance is added, read the catalog and status, deregister.
func TestConsulClientLifecycle(t *testing.T) {
	t.Cleanup(func() { goleak.VerifyNone(t, goleak.IgnoreCurrent()) })
	nodes := cluster(t, 1)
	c := client(t, nodes[0], token)
	agent := c.Agent()

	reg := &consul.AgentServiceRegistration{ID: "web-1", Name: "web", Port: 8081, Address: "127.0.0.1",
		Tags: []string{"v1", "blue"}, Meta: map[string]string{"version": "1.2"},
		Check: &consul.AgentServiceCheck{TTL: "3s"}}
	if err := agent.ServiceRegister(reg); err != nil {
		t.Fatalf("register: %v", err)
	}
	// Consul's TTL checks start critical: not passing until the first pass.
	if ids := passingIDs(t, c, "web"); len(ids) != 0 {
		t.Fatalf("passing before the first pass: %v", ids)
	}
	all, _, err := c.Health().Service("web", "", false, nil)
	if err != nil || len(all) != 1 || all[0].Checks.AggregatedStatus() != consul.HealthCritical {
		t.Fatalf("all entries = %+v, %v; want one critical", all, err)
	}
	if err := agent.PassTTL("service:web-1", "ok"); err != nil {
		t.Fatalf("pass: %v", err)
	}
	if ids := passingIDs(t, c, "web"); !slices.Equal(ids, []string{"web-1"}) {
		t.Fatalf("passing = %v, want [web-1]", ids)
	}
	entries, meta, err := c.Health().Service("web", "blue", true, nil)
	if err != nil || len(entries) != 1 {
		t.Fatalf("by tag: %v %v", entries, err)
	}
	e := entries[0]
	if e.Service.Port != 8081 || e.Service.Address != "127.0.0.1" || e.Service.Meta["version"] != "1.2" ||
		!slices.Equal(e.Service.Tags, []string{"v1", "blue"}) || e.Checks.AggregatedStatus() != consul.HealthPassing {
		t.Fatalf("entry = %+v service %+v", e, e.Service)
	}
	if meta.LastIndex == 0 || !meta.KnownLeader {
		t.Fatalf("query meta = %+v", meta)
	}

	// A blocking query returns when an instance is added.
	type result struct {
		entries []*consul.ServiceEntry
		meta    *consul.QueryMeta
		err     error
	}
	done := make(chan result, 1)
	start := time.Now()
	go func() {
		es, m, err := c.Health().Service("web", "", true, &consul.QueryOptions{WaitIndex: meta.LastIndex, WaitTime: 30 * time.Second})
		done <- result{es, m, err}
	}()
	time.Sleep(200 * time.Millisecond) // let the query block (an early answer would still be checked below)
	reg2 := &consul.AgentServiceRegistration{ID: "web-2", Name: "web", Port: 8082, Address: "127.0.0.1",
		Check: &consul.AgentServiceCheck{TTL: "3s", Status: consul.HealthPassing}}
	if err := agent.ServiceRegister(reg2); err != nil {
		t.Fatalf("register web-2: %v", err)
	}
	select {
	case r := <-done:
		if r.err != nil {
			t.Fatalf("blocking query: %v", r.err)
		}
		if len(r.entries) != 2 || r.meta.LastIndex <= meta.LastIndex {
			t.Fatalf("blocking query returned %d entries at index %d (was %d)", len(r.entries), r.meta.LastIndex, meta.LastIndex)
		}
		if time.Since(start) > 20*time.Second {
			t.Fatalf("blocking query returned at its wait time, not at the change")
		}
	case <-time.After(25 * time.Second):
		t.Fatal("blocking query did not return after an instance was added")
	}

	svcs, _, err := c.Catalog().Services(nil)
	if err != nil || !slices.Contains(svcs["web"], "blue") {
		t.Fatalf("catalog services = %v, %v", svcs, err)
	}
	cs, _, err := c.Catalog().Service("web", "", nil)
	if err != nil || len(cs) != 2 || cs[0].ServiceID != "web-1" || cs[0].ServicePort != 8081 {
		t.Fatalf("catalog service = %+v, %v", cs, err)
	}
	leader, err := c.Status().Leader()
	if err != nil || leader != nodes[0].RaftAddr() {
		t.Fatalf("leader = %q, %v; want %s", leader, err, nodes[0].RaftAddr())
	}
	peers, err := c.Status().Peers()
	if err != nil || !slices.Equal(peers, []string{nodes[0].RaftAddr()}) {
		t.Fatalf("peers = %v, %v", peers, err)
	}

	// Failing the check takes the instance out of the passing set
	// without removing it; passing again brings it back.
	if err := agent.FailTTL("service:web-2", "broken"); err != nil {
		t.Fatal(err)
	}
	if ids := passingIDs(t, c, "web"); !slices.Equal(ids, []string{"web-1"}) {
		t.Fatalf("after fail: passing = %v", ids)
	}
	if err := agent.UpdateTTL("service:web-2", "fine", consul.HealthPassing); err != nil {
		t.Fatal(err)
	}
	if ids := passingIDs(t, c, "web"); !slices.Equal(ids, []string{"web-1", "web-2"}) {
		t.Fatalf("after update passing: passing = %v", ids)
	}

	if err := agent.ServiceDeregister("web-1"); err != nil {
		t.Fatalf("deregister: %v", err)
	}
	cs, _, _ = c.Catalog().Service("web", "", nil)
	if len(cs) != 1 || cs[0].ServiceID != "web-2" {
		t.Fatalf("after deregister: %+v", cs)
	}
	if err := agent.ServiceDeregister("web-1"); err == nil || !strings.Contains(err.Error(), "404") {
		t.Fatalf("second deregister: %v, want 404", err)
	}
}

// TestConsulTTLExpiry: an instance whose service stops passing its TTL
// check leaves the passing set (and then the catalog) by itself.
func TestConsulTTLExpiry(t *testing.T) {
	nodes := cluster(t, 1)
	c := client(t, nodes[0], token)
	reg := &consul.AgentServiceRegistration{ID: "api-1", Name: "api", Port: 9000, Address: "127.0.0.1",
		Check: &consul.AgentServiceCheck{TTL: "500ms", Status: consul.HealthPassing}}
	if err := c.Agent().ServiceRegister(reg); err != nil {
		t.Fatal(err)
	}
	if ids := passingIDs(t, c, "api"); len(ids) != 1 {
		t.Fatalf("passing = %v", ids)
	}
	regtest.Eventually(t, "the unrenewed instance to stop passing", func() bool { return len(passingIDs(t, c, "api")) == 0 })
	regtest.Eventually(t, "the unrenewed instance to leave the catalog", func() bool {
		cs, _, err := c.Catalog().Service("api", "", nil)
		return err == nil && len(cs) == 0
	})
}

// TestConsulAuthAndErrors: writes need the registry's token; checks the
// registry cannot run are refused with a reason.
func TestConsulAuthAndErrors(t *testing.T) {
	nodes := cluster(t, 1)
	reg := &consul.AgentServiceRegistration{ID: "x-1", Name: "x", Port: 1, Address: "127.0.0.1",
		Check: &consul.AgentServiceCheck{TTL: "5s"}}
	for _, tok := range []string{"", "wrong"} {
		err := client(t, nodes[0], tok).Agent().ServiceRegister(reg)
		if err == nil || !strings.Contains(err.Error(), "403") {
			t.Fatalf("token %q: register err = %v, want 403", tok, err)
		}
	}
	c := client(t, nodes[0], token)
	cases := []struct {
		name string
		reg  *consul.AgentServiceRegistration
		want string
	}{
		{"http check", &consul.AgentServiceRegistration{Name: "x", Check: &consul.AgentServiceCheck{HTTP: "http://127.0.0.1/h", Interval: "1s"}}, "HTTP checks are not supported"},
		{"no check", &consul.AgentServiceRegistration{Name: "x", Address: "127.0.0.1"}, "TTL check is required"},
		{"two ttl checks", &consul.AgentServiceRegistration{Name: "x", Checks: consul.AgentServiceChecks{{TTL: "1s"}, {TTL: "2s"}}}, "more than one TTL check"},
		{"bad ttl", &consul.AgentServiceRegistration{Name: "x", Check: &consul.AgentServiceCheck{TTL: "soon"}}, "Check.TTL"},
		{"bad name", &consul.AgentServiceRegistration{Name: "a b", Check: &consul.AgentServiceCheck{TTL: "1s"}}, "invalid service"},
		{"ttl too long", &consul.AgentServiceRegistration{Name: "x", Check: &consul.AgentServiceCheck{TTL: "48h"}}, "invalid ttl"},
	}
	for _, tc := range cases {
		err := c.Agent().ServiceRegister(tc.reg)
		if err == nil || !strings.Contains(err.Error(), "400") || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: err = %v, want 400 with %q", tc.name, err, tc.want)
		}
	}
	if err := c.Agent().PassTTL("service:nope", ""); err == nil || !strings.Contains(err.Error(), "404") {
		t.Errorf("pass unknown: %v, want 404", err)
	}
	if _, _, err := c.Health().Service("x", "", true, &consul.QueryOptions{Datacenter: "dc9"}); err == nil {
		t.Errorf("unknown datacenter answered")
	}
	resp, err := http.Get("http://" + nodes[0].HTTPAddr() + "/v1/health/service/x?index=abc")
	if err != nil || resp.StatusCode != http.StatusBadRequest {
		t.Errorf("bad index: %v %v", resp.Status, err)
	}
	resp.Body.Close()
}

// TestConsulThroughFollower: a client talking to a follower registers,
// passes and deregisters through the leader, and reads from the follower
// see the writes.
func TestConsulThroughFollower(t *testing.T) {
	nodes := cluster(t, 3)
	leader := regtest.Leader(t, nodes)
	var follower *registry.Node
	for _, n := range nodes {
		if n != leader {
			follower = n
			break
		}
	}
	c := client(t, follower, token)
	reg := &consul.AgentServiceRegistration{ID: "db-1", Name: "db", Port: 5432, Address: "127.0.0.1",
		Check: &consul.AgentServiceCheck{TTL: "5s", CheckID: "db-1-ttl"}}
	if err := c.Agent().ServiceRegister(reg); err != nil {
		t.Fatalf("register through follower: %v", err)
	}
	if err := c.Agent().PassTTL("db-1-ttl", ""); err != nil { // custom check ID
		t.Fatalf("pass through follower: %v", err)
	}
	regtest.Eventually(t, "the follower to see db-1 passing", func() bool { return len(passingIDs(t, c, "db")) == 1 })
	entries, _, _ := c.Health().Service("db", "", true, nil)
	if len(entries) != 1 || entries[0].Checks[0].CheckID != "db-1-ttl" {
		t.Fatalf("entries = %+v", entries)
	}
	peers, err := c.Status().Peers()
	if err != nil || len(peers) != 3 {
		t.Fatalf("peers = %v, %v", peers, err)
	}
	if err := c.Agent().ServiceDeregister("db-1"); err != nil {
		t.Fatalf("deregister through follower: %v", err)
	}
}
