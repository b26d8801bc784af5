package e2e

import (
	"bufio"
	"context"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"os/signal"
	"strings"
	"syscall"
	"testing"
	"time"

	consul "github.com/hashicorp/consul/api"
)

// envConsulService makes the e2e test binary run as a service that
// registers itself through the registry's Consul API: "registry-addr id".
const envConsulService = "BULWARK_E2E_CONSUL_SERVICE"

// runConsulService is that service: an HTTP server answering with its id,
// registered with a 1 s TTL check that it passes every 300 ms, as a Consul
// user's service would. It prints "listening on http://addr" and runs until
// killed.
func runConsulService() (int, bool) {
	spec := os.Getenv(envConsulService)
	if spec == "" {
		return 0, false
	}
	regAddr, id, _ := strings.Cut(spec, " ")
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1, true
	}
	go http.Serve(ln, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("X-Replica", id)
		fmt.Fprintf(w, "consul service %s\n", id)
	}))
	c, err := consul.NewClient(&consul.Config{Address: regAddr})
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1, true
	}
	host, port, _ := net.SplitHostPort(ln.Addr().String())
	var p int
	fmt.Sscan(port, &p)
	reg := &consul.AgentServiceRegistration{ID: id, Name: "web", Address: host, Port: p,
		Check: &consul.AgentServiceCheck{TTL: "1s", Status: consul.HealthPassing}}
	for {
		if err = c.Agent().ServiceRegister(reg); err == nil {
			break
		}
		time.Sleep(100 * time.Millisecond)
	}
	fmt.Printf("listening on http://%s\n", ln.Addr())
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM)
	defer stop()
	t := time.NewTicker(300 * time.Millisecond)
	for {
		select {
		case <-ctx.Done():
			c.Agent().ServiceDeregister(id)
			return 0, true
		case <-t.C:
			if err := c.Agent().PassTTL("service:"+id, ""); err != nil {
				fmt.Fprintln(os.Stderr, "pass:", err)
				c.Agent().ServiceRegister(reg) // expired meanwhile: register again
			}
		}
	}
}

// startConsulService starts the test binary as a Consul-registered service.
func startConsulService(t *testing.T, regAddr, id string) *proc {
	t.Helper()
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), envConsulService+"="+regAddr+" "+id)
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	p := &proc{t: t, cmd: cmd, out: &lockedBuffer{}, done: make(chan struct{})}
	cmd.Stderr = p.out
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() { cmd.Wait(); close(p.done) }()
	t.Cleanup(func() {
		p.kill()
		if t.Failed() {
			t.Logf("output of consul service %s:\n%s", id, p.out.String())
		}
	})
	line := make(chan string, 1)
	go func() {
		sc := bufio.NewScanner(stdout)
		if sc.Scan() {
			line <- sc.Text()
		}
		close(line)
		for sc.Scan() {
		}
	}()
	select {
	case l, ok := <-line:
		if !ok || !strings.HasPrefix(l, "listening on ") {
			t.Fatalf("consul service %s: %q\n%s", id, l, p.out.String())
		}
		p.url = strings.TrimPrefix(l, "listening on ")
	case <-time.After(30 * time.Second):
		t.Fatalf("consul service %s did not start:\n%s", id, p.out.String())
	}
	return p
}

// TestConsulRegisteredRouted: `bulwark run` with a registry and an
// upstream discovered from it; services register through the registry's
// Consul API with the HashiCorp client. The gateway routes to them, and a
// service killed with SIGKILL leaves the gateway's view within 2 s (its
// TTL check is 1 s).
func TestConsulRegisteredRouted(t *testing.T) {
	gw, regAddr, adminAddr := runWithRegistry(t, "web")
	a := startConsulService(t, regAddr, "web-a")
	startConsulService(t, regAddr, "web-b")
	waitFor(t, 10*time.Second, func() bool { return gatewayEndpoints(adminAddr) == 2 })

	seen := map[string]int{}
	for range 40 {
		resp, err := http.Get(gw.url + "/")
		if err != nil {
			t.Fatalf("through the gateway: %v", err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			t.Fatalf("through the gateway: %s", resp.Status)
		}
		seen[resp.Header.Get("X-Replica")]++
	}
	if seen["web-a"] == 0 || seen["web-b"] == 0 {
		t.Fatalf("gateway did not route to both Consul-registered services: %v", seen)
	}

	killed := time.Now()
	a.kill()
	waitFor(t, 2*time.Second, func() bool { return gatewayEndpoints(adminAddr) == 1 })
	t.Logf("killed Consul-registered service left the gateway's view after %v", time.Since(killed).Round(time.Millisecond))
	for range 20 {
		resp, err := http.Get(gw.url + "/")
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if r := resp.Header.Get("X-Replica"); resp.StatusCode != http.StatusOK || r != "web-b" {
			t.Fatalf("after the kill: %s from %q", resp.Status, r)
		}
	}
}
