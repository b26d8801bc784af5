package health

import (
	"context"
	"errors"
	"net"
	"net/http"
	"net/http/httptest"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"testing/synctest"
	"time"

	"go.uber.org/goleak"

	"github.com/bulwark-go/bulwark"
)

// waitFor polls cond every few milliseconds until it holds or 5 s pass.
// Real-socket probes cannot run in a synctest bubble (a goroutine blocked
// on network I/O is not durably blocked), so these tests use short real
// intervals and a bounded wait on the observable condition.
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

func TestHTTPProbeRiseAndFall(t *testing.T) {
	defer goleak.VerifyNone(t)
	var status atomic.Int32
	status.Store(http.StatusOK)
	var probes atomic.Int32
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "/healthz" {
			http.NotFound(w, r)
			return
		}
		st := status.Load() // read before counting: see the count below
		probes.Add(1)
		w.WriteHeader(int(st))
	}))
	defer srv.Close()

	rec := &recorder{}
	c, err := NewChecker(CheckerConfig{Path: "/healthz", Interval: 5 * time.Millisecond, Timeout: time.Second,
		Rise: 2, Fall: 3, OnChange: rec.onChange, Seed: 1})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if err := c.SetTargets([]Target{{ID: "a", Address: srv.URL}}); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "up", func() bool { return c.Health("a") == bulwark.HealthUp })
	if n := probes.Load(); n < 2 {
		t.Errorf("up after %d probes, want ≥ Rise=2", n)
	}
	// Count from before the switch: a probe racing with it can only make
	// the count larger, never hide a failed probe.
	before := probes.Load()
	status.Store(http.StatusServiceUnavailable)
	waitFor(t, "down", func() bool { return c.Health("a") == bulwark.HealthDown })
	// Exact rise/fall counting is TestRiseFallCounts' job (synctest); here a
	// stray transport error on a loaded machine may count as one of the
	// failures, so only check that failing probes were served.
	if n := probes.Load() - before; n < 1 {
		t.Errorf("down after %d probes served 503", n)
	}
	if st := c.Status(); len(st) != 1 || st[0].LastError == "" {
		t.Errorf("status %+v, want the last probe error", st)
	}
	status.Store(http.StatusNoContent)
	waitFor(t, "up again", func() bool { return c.Health("a") == bulwark.HealthUp })
	if got, want := rec.events(), []string{"a=up", "a=down", "a=up"}; !slices.Equal(got, want) {
		t.Errorf("events %v, want %v", got, want)
	}
	if err := c.Close(); err != nil {
		t.Fatal(err)
	}
	if err := c.SetTargets(nil); !errors.Is(err, ErrClosed) {
		t.Errorf("SetTargets after Close: %v, want ErrClosed", err)
	}
}

func TestHTTPProbeRequest(t *testing.T) {
	tests := []struct {
		name     string
		cfg      CheckerConfig
		status   int
		wantUp   bool
		wantHost string
	}{
		{"default path and range, 200", CheckerConfig{}, 200, true, ""},
		{"a redirect passes and is not followed", CheckerConfig{}, http.StatusMovedPermanently, true, ""},
		{"404 fails", CheckerConfig{}, 404, false, ""},
		{"narrow range rejects 204", CheckerConfig{StatusMin: 200, StatusMax: 200}, 204, false, ""},
		{"Host header", CheckerConfig{Host: "svc.internal"}, 200, true, "svc.internal"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			var mu sync.Mutex
			var gotHost, gotPath string
			srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				mu.Lock()
				gotHost, gotPath = r.Host, r.URL.Path
				mu.Unlock()
				if tc.status == http.StatusMovedPermanently {
					http.Redirect(w, r, "/elsewhere-that-404s", tc.status)
					return
				}
				w.WriteHeader(tc.status)
			}))
			defer srv.Close()
			c, err := NewChecker(tc.cfg)
			if err != nil {
				t.Fatal(err)
			}
			defer c.Close()
			// Call the probe directly: this test is about one request.
			err = c.probe(t.Context(), Target{ID: "a", Address: srv.Listener.Addr().String()})
			if (err == nil) != tc.wantUp {
				t.Fatalf("probe err %v, want up=%v", err, tc.wantUp)
			}
			if !tc.wantUp && !errors.Is(err, ErrProbeFailed) {
				t.Errorf("err %v, want ErrProbeFailed", err)
			}
			mu.Lock()
			defer mu.Unlock()
			if gotPath != "/" {
				t.Errorf("path %q, want /", gotPath)
			}
			if tc.wantHost != "" && gotHost != tc.wantHost {
				t.Errorf("Host %q, want %q", gotHost, tc.wantHost)
			}
		})
	}
}

func TestHTTPProbeTimeout(t *testing.T) {
	release := make(chan struct{})
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		select { // a hung endpoint
		case <-release:
		case <-r.Context().Done():
		}
	}))
	defer srv.Close()
	defer close(release)
	c, err := NewChecker(CheckerConfig{Interval: 10 * time.Millisecond, Timeout: 20 * time.Millisecond, Fall: 1})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if err := c.SetTargets([]Target{{ID: "hung", Address: srv.URL}}); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "hung endpoint down", func() bool { return c.Health("hung") == bulwark.HealthDown })
}

func TestTCPProbe(t *testing.T) {
	defer goleak.VerifyNone(t)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	wg.Go(func() {
		for {
			conn, err := ln.Accept()
			if err != nil {
				return
			}
			_ = conn.Close()
		}
	})
	addr := ln.Addr().String()
	c, err := NewChecker(CheckerConfig{TCP: true, Interval: 5 * time.Millisecond, Rise: 1, Fall: 2})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	// A URL address works too: the probe dials its host:port.
	if err := c.SetTargets([]Target{{ID: "raw", Address: addr}, {ID: "url", Address: "http://" + addr + "/x"}}); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "both up", func() bool {
		return c.Health("raw") == bulwark.HealthUp && c.Health("url") == bulwark.HealthUp
	})
	_ = ln.Close() // nothing listens on the port any more: connection refused
	wg.Wait()
	waitFor(t, "both down", func() bool {
		return c.Health("raw") == bulwark.HealthDown && c.Health("url") == bulwark.HealthDown
	})
	if err := c.Close(); err != nil {
		t.Fatal(err)
	}
}

// TestRiseFallCounts replays probe results through a fake probe in a
// synctest bubble and checks the health after each probe.
func TestRiseFallCounts(t *testing.T) {
	tests := []struct {
		name       string
		rise, fall int
		results    string // p = pass, f = fail
		want       string // health after each probe: u = up, d = down, ? = unknown
	}{
		{"defaults 2/3", 0, 0, "ppfffpp", "?uuuddu"},
		{"one failure does not flap", 2, 3, "ppfpfpff", "?uuuuuuu"},
		{"starts down", 2, 2, "ffpfpp", "?dddd" + "u"},
		{"rise 1 fall 1", 1, 1, "pfpf", "udud"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				var n atomic.Int32
				probe := func(ctx context.Context, _ Target) error {
					i := int(n.Add(1)) - 1
					if i >= len(tc.results) || tc.results[i] == 'p' {
						return nil
					}
					return errors.New("fake failure")
				}
				const interval = time.Second
				c, err := NewChecker(CheckerConfig{Probe: probe, Interval: interval, Rise: tc.rise, Fall: tc.fall, Seed: 3})
				if err != nil {
					t.Fatal(err)
				}
				defer c.Close()
				if err := c.SetTargets([]Target{{ID: "a", Address: "fake"}}); err != nil {
					t.Fatal(err)
				}
				var got []byte
				for i := range len(tc.results) {
					for int(n.Load()) <= i {
						time.Sleep(interval / 10)
					}
					synctest.Wait()
					got = append(got, map[bulwark.Health]byte{bulwark.HealthUnknown: '?', bulwark.HealthUp: 'u', bulwark.HealthDown: 'd'}[c.Health("a")])
				}
				if string(got) != tc.want {
					t.Errorf("health sequence %q, want %q", got, tc.want)
				}
			})
		})
	}
}

// TestSetTargets checks that removed targets stop being probed, changed
// ones restart and unchanged ones keep their state.
func TestSetTargets(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		var mu sync.Mutex
		calls := map[string]int{}
		probe := func(ctx context.Context, tg Target) error {
			mu.Lock()
			defer mu.Unlock()
			calls[tg.ID+"@"+tg.Address]++
			return nil
		}
		rec := &recorder{}
		c, err := NewChecker(CheckerConfig{Probe: probe, Interval: time.Second, Rise: 1, OnChange: rec.onChange})
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		_ = c.SetTargets([]Target{{ID: "a", Address: "1"}, {ID: "b", Address: "1"}, {ID: "c", Address: "1"}})
		time.Sleep(3 * time.Second)
		_ = c.SetTargets([]Target{{ID: "a", Address: "1"}, {ID: "b", Address: "2"}})
		synctest.Wait()
		if c.Health("a") != bulwark.HealthUp || c.Health("b") != bulwark.HealthUnknown || c.Health("c") != bulwark.HealthUnknown {
			t.Errorf("after update: a=%v b=%v c=%v", c.Health("a"), c.Health("b"), c.Health("c"))
		}
		mu.Lock()
		cBefore := calls["c@1"]
		mu.Unlock()
		time.Sleep(5 * time.Second)
		mu.Lock()
		defer mu.Unlock()
		if calls["c@1"] != cBefore {
			t.Errorf("removed target probed %d more times", calls["c@1"]-cBefore)
		}
		if calls["b@2"] < 4 || calls["a@1"] < 7 {
			t.Errorf("calls %v", calls)
		}
		if err := c.SetTargets([]Target{{ID: "x"}, {ID: "x"}}); err == nil {
			t.Error("duplicate IDs accepted")
		}
		if err := c.SetTargets([]Target{{Address: "1"}}); err == nil {
			t.Error("empty ID accepted")
		}
	})
}

func TestCheckerConfigValidate(t *testing.T) {
	tests := []struct {
		name string
		cfg  CheckerConfig
		ok   bool
	}{
		{"zero", CheckerConfig{}, true},
		{"negative interval", CheckerConfig{Interval: -time.Second}, false},
		{"negative rise", CheckerConfig{Rise: -1}, false},
		{"inverted status range", CheckerConfig{StatusMin: 500, StatusMax: 200}, false},
		{"relative path", CheckerConfig{Path: "health"}, false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			c, err := NewChecker(tc.cfg)
			if (err == nil) != tc.ok {
				t.Errorf("err %v, want ok=%v", err, tc.ok)
			}
			if c != nil {
				_ = c.Close()
			}
		})
	}
}

func TestHostPort(t *testing.T) {
	tests := []struct{ in, want string }{
		{"127.0.0.1:9001", "127.0.0.1:9001"},
		{"http://127.0.0.1:9001/x", "127.0.0.1:9001"},
		{"http://localhost", "localhost:80"},
		{"https://[::1]", "[::1]:443"},
	}
	for _, tc := range tests {
		if got := hostPort(tc.in); got != tc.want {
			t.Errorf("hostPort(%q) = %q, want %q", tc.in, got, tc.want)
		}
	}
	if got := probeURL("127.0.0.1:1", "/h"); got != "http://127.0.0.1:1/h" {
		t.Errorf("probeURL = %q", got)
	}
}

// TestRunHook: with CheckerConfig.Run and DetectorConfig.Run, each probe
// loop and the analysis loop run through the hook (a supervisor in
// cmd/bulwark), which may restart a loop that panicked, and Close ends
// them.
func TestRunHook(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		var mu sync.Mutex
		var names []string
		panicked := false
		run := func(ctx context.Context, name string, loop func(ctx context.Context) error) {
			mu.Lock()
			names = append(names, name)
			mu.Unlock()
			for ctx.Err() == nil { // a minimal supervisor: restart after a panic
				func() {
					defer func() { recover() }()
					loop(ctx)
				}()
			}
		}
		probes := 0
		probe := func(ctx context.Context, tg Target) error {
			mu.Lock()
			defer mu.Unlock()
			probes++
			if probes == 1 {
				panicked = true
				panic("first probe")
			}
			return nil
		}
		c, err := NewChecker(CheckerConfig{Probe: probe, Interval: time.Second, Rise: 1, Run: run})
		if err != nil {
			t.Fatal(err)
		}
		d, err := NewDetector(DetectorConfig{Interval: time.Second, Run: run})
		if err != nil {
			t.Fatal(err)
		}
		if err := d.Start(); err != nil {
			t.Fatal(err)
		}
		_ = c.SetTargets([]Target{{ID: "a", Address: "1"}})
		time.Sleep(5 * time.Second)
		synctest.Wait()
		if c.Health("a") != bulwark.HealthUp || !panicked {
			t.Errorf("after a panicking first probe and a restart: health %v, panicked %v", c.Health("a"), panicked)
		}
		c.Close()
		d.Close()
		mu.Lock()
		defer mu.Unlock()
		slices.Sort(names)
		if !slices.Equal(names, []string{"health a", "outlier"}) {
			t.Errorf("loops run through the hook: %v", names)
		}
	})
}
