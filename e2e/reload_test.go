package e2e

import (
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/bulwark-go/bulwark/demo"
	"github.com/bulwark-go/bulwark/proxy"
)

// TestReloadUnderLoad: the upstream list changes under load, several
// times; no request fails (scenario f).
func TestReloadUnderLoad(t *testing.T) {
	bs := startDemos(t, 4)
	gw, url := startGateway(t, bs[:3], nil)
	l := runLoad(t.Context(), workers, url+"/read", demo.Body(100), 10*time.Second)
	sets := [][]*proc{{bs[1], bs[2], bs[3]}, {bs[0], bs[3]}, {bs[2]}, {bs[0], bs[1], bs[2], bs[3]}}
	for i, set := range sets {
		sleepUntil(l, time.Duration(i+1)*500*time.Millisecond)
		cfg := proxy.Config{
			Listeners: []proxy.Listener{{Address: "127.0.0.1:0"}},
			Routes:    []proxy.Route{{Name: "r", Upstream: "u"}},
			Upstreams: []proxy.Upstream{{Name: "u"}},
		}
		for _, b := range set {
			cfg.Upstreams[0].Endpoints = append(cfg.Upstreams[0].Endpoints, proxy.Endpoint{URL: b.url})
		}
		if err := gw.Reload(cfg); err != nil {
			t.Fatal(err)
		}
	}
	sleepUntil(l, 3*time.Second)
	rs := l.finish()
	s := summarize(rs)
	t.Logf("4 reloads: %v", s)
	if s.failed != 0 {
		t.Fatalf("%d of %d requests failed:%s", s.failed, s.total, failures(rs))
	}
	if last := summarize(window(rs, 2500*time.Millisecond, 3*time.Second)); last.byReplica["r4"] == 0 {
		t.Fatalf("the replica added by the last reload got no traffic: %v", last)
	}
}

// TestRunReloadsOnSIGHUP runs `bulwark run -c FILE` as a process: an
// edited file takes effect on SIGHUP with no failed request, and an
// invalid edit is refused while the old config keeps serving.
func TestRunReloadsOnSIGHUP(t *testing.T) {
	bs := startDemos(t, 2)
	dir := t.TempDir()
	path := filepath.Join(dir, "bulwark.yaml")
	write := func(body string) {
		if err := os.WriteFile(path, []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	conf := func(b *proc) string {
		return fmt.Sprintf("listeners:\n  - address: 127.0.0.1:0\nroutes:\n  - upstream: u\nupstreams:\n  - name: u\n    endpoints:\n      - url: %s\n", b.url)
	}
	write(conf(bs[0]))
	gw := start(t, "run", "-c", path, "--watch", "0")
	l := runLoad(t.Context(), 4, gw.url+"/read", demo.Body(100), 10*time.Second)
	sleepUntil(l, 500*time.Millisecond)
	write(conf(bs[1]))
	gw.signal(syscall.SIGHUP)
	sleepUntil(l, 1500*time.Millisecond)
	write("routes:\n  - upstream: nowhere\n")
	gw.signal(syscall.SIGHUP)
	sleepUntil(l, 2500*time.Millisecond)
	rs := l.finish()
	s := summarize(rs)
	t.Logf("reload then a refused reload: %v", s)
	if s.failed != 0 {
		t.Fatalf("%d requests failed:%s", s.failed, failures(rs))
	}
	if after := summarize(window(rs, time.Second, 2500*time.Millisecond)); after.byReplica["r1"] != 0 || after.byReplica["r2"] == 0 {
		t.Fatalf("after the reload traffic should go to r2 only: %v", after)
	}
	waitFor(t, 5*time.Second, func() bool { return containsAll(gw.out.String(), "config rejected", "nowhere") })
}

// TestTCPModeKilledBackend: a tcp listener balances raw connections; when
// a backend is killed, new connections go to the others (connect retries)
// and only connections open at the moment of the kill can fail
// (scenario h).
func TestTCPModeKilledBackend(t *testing.T) {
	bs := startDemos(t, 3)
	cfg := proxy.Config{
		Listeners: []proxy.Listener{{Address: "127.0.0.1:0", Protocol: "tcp", Upstream: "u"}},
		Upstreams: []proxy.Upstream{{Name: "u"}},
	}
	for _, b := range bs {
		cfg.Upstreams[0].Endpoints = append(cfg.Upstreams[0].Endpoints, proxy.Endpoint{URL: b.url[len("http://"):]})
	}
	gw, err := proxy.New(cfg, proxy.Options{})
	if err != nil {
		t.Fatal(err)
	}
	if err := gw.Listen(); err != nil {
		t.Fatal(err)
	}
	defer gw.Close()
	url := "http://" + gw.Addrs()[0].String() + "/read"
	// One connection per request, so every request is a new TCP connection.
	l := runLoadTransport(t, workers, url, &http.Transport{DisableKeepAlives: true})
	sleepUntil(l, time.Second)
	bs[0].kill()
	sleepUntil(l, 3*time.Second)
	rs := l.finish()
	s := summarize(rs)
	t.Logf("tcp mode, r1 killed at 1s: %v", s)
	if s.failed > workers {
		t.Fatalf("%d requests failed; at most the %d connections open at the kill may:%s", s.failed, workers, failures(rs))
	}
	if late := summarize(window(rs, 1200*time.Millisecond, 3*time.Second)); late.failed != 0 || late.total == 0 {
		t.Fatalf("new connections failed after the kill: %v%s", late, failures(window(rs, 1200*time.Millisecond, 3*time.Second)))
	}
}

func containsAll(s string, subs ...string) bool {
	for _, sub := range subs {
		if !strings.Contains(s, sub) {
			return false
		}
	}
	return true
}

// waitFor polls cond until it holds or the timeout passes.
func waitFor(t *testing.T, timeout time.Duration, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("condition not met within %v", timeout)
		}
		time.Sleep(20 * time.Millisecond)
	}
}
