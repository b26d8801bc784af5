package chaos_test

import (
	"context"
	"encoding/json"
	"io"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	toxiproxy "github.com/Shopify/toxiproxy/v2/client"

	"github.com/bulwark-go/bulwark/chaos"
)

// apiServer serves s's API on 127.0.0.1:0 until the test ends.
func apiServer(t *testing.T, s *chaos.Server) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- s.Serve(ctx, ln) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("Serve: %v", err)
		}
	})
	return ln.Addr().String()
}

// TestToxiproxyClient drives the API with Toxiproxy's own Go client.
func TestToxiproxyClient(t *testing.T) {
	s := newServer(t, 7)
	cl := toxiproxy.NewClient(apiServer(t, s))
	echo := echoServer(t)

	p, err := cl.CreateProxy("echo", "127.0.0.1:0", echo)
	if err != nil {
		t.Fatal(err)
	}
	if !p.Enabled || strings.HasSuffix(p.Listen, ":0") {
		t.Fatalf("created proxy %+v: want enabled with a bound port", p)
	}
	c := dial(t, p.Listen)
	roundTrip(t, c, "hello")

	tox, err := p.AddToxic("slow", "latency", "downstream", 1, toxiproxy.Attributes{"latency": 120, "jitter": 0})
	if err != nil {
		t.Fatal(err)
	}
	if tox.Name != "slow" || tox.Attributes["latency"] != float64(120) {
		t.Fatalf("AddToxic returned %+v", tox)
	}
	if d := roundTrip(t, c, "slow"); d < 120*time.Millisecond {
		t.Errorf("round trip %v under 120ms latency", d)
	}
	if _, err := p.UpdateToxic("slow", 1, toxiproxy.Attributes{"latency": 10}); err != nil {
		t.Fatal(err)
	}
	toxics, err := p.Toxics()
	if err != nil || len(toxics) != 1 || toxics[0].Attributes["latency"] != float64(10) {
		t.Fatalf("Toxics() = %+v, %v", toxics, err)
	}
	// Default name <type>_<stream>, default stream downstream, toxicity -1 → 1.
	if tox, err := p.AddToxic("", "bandwidth", "", -1, toxiproxy.Attributes{"rate": 1000}); err != nil || tox.Name != "bandwidth_downstream" || tox.Toxicity != 1 {
		t.Fatalf("AddToxic defaults = %+v, %v", tox, err)
	}
	if err := p.RemoveToxic("slow"); err != nil {
		t.Fatal(err)
	}
	if d := roundTrip(t, c, "fast again"); d > 100*time.Millisecond {
		t.Errorf("after removal: %v", d)
	}

	proxies, err := cl.Proxies()
	if err != nil || len(proxies) != 1 || len(proxies["echo"].ActiveToxics) != 1 {
		t.Fatalf("Proxies() = %+v, %v", proxies, err)
	}
	if err := p.Disable(); err != nil {
		t.Fatal(err)
	}
	if _, err := net.DialTimeout("tcp", p.Listen, time.Second); err == nil {
		t.Fatal("disabled proxy accepts")
	}
	if err := cl.ResetState(); err != nil {
		t.Fatal(err)
	}
	got, err := cl.Proxy("echo")
	if err != nil || !got.Enabled || len(got.ActiveToxics) != 0 {
		t.Fatalf("after reset: %+v, %v", got, err)
	}
	roundTrip(t, dial(t, got.Listen), "reset")

	if _, err := cl.CreateProxy("echo", "127.0.0.1:0", echo); err == nil || !strings.Contains(err.Error(), "409") {
		t.Errorf("duplicate create = %v, want HTTP 409", err)
	}
	if _, err := cl.Proxy("nope"); err == nil || !strings.Contains(err.Error(), "404") {
		t.Errorf("missing proxy = %v, want HTTP 404", err)
	}
	if _, err := p.AddToxic("x", "no_such_type", "", 1, nil); err == nil || !strings.Contains(err.Error(), "400") {
		t.Errorf("bad type = %v, want HTTP 400", err)
	}
	if v, err := cl.Version(); err != nil || !strings.Contains(string(v), "version") {
		t.Errorf("Version() = %s, %v", v, err)
	}
	populated, err := cl.Populate([]toxiproxy.Proxy{{Name: "echo", Listen: "127.0.0.1:0", Upstream: echo, Enabled: true},
		{Name: "two", Listen: "127.0.0.1:0", Upstream: echo, Enabled: true}})
	if err != nil || len(populated) != 2 {
		t.Fatalf("Populate = %+v, %v", populated, err)
	}
	if err := populated[1].Delete(); err != nil {
		t.Fatal(err)
	}
}

func TestAPIErrorsAreJSON(t *testing.T) {
	s := newServer(t, 7)
	base := "http://" + apiServer(t, s)
	tests := []struct {
		name, method, path, body string
		status                   int
	}{
		{"missing upstream", "POST", "/proxies", `{"name":"a"}`, 400},
		{"bad json", "POST", "/proxies", `{`, 400},
		{"unknown proxy", "GET", "/proxies/zz", "", 404},
		{"unknown toxic attr", "POST", "/proxies/p/toxics", `{"type":"latency","attributes":{"latncy":5}}`, 400},
		{"unknown toxic", "DELETE", "/proxies/p/toxics/zz", "", 404},
		{"browser", "GET", "/proxies", "", 403},
	}
	if _, err := s.CreateProxy(chaos.ProxyConfig{Name: "p", Upstream: "127.0.0.1:1"}); err != nil {
		t.Fatal(err)
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			req, _ := http.NewRequestWithContext(t.Context(), tt.method, base+tt.path, strings.NewReader(tt.body))
			if tt.name == "browser" {
				req.Header.Set("User-Agent", "Mozilla/5.0")
			}
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			defer resp.Body.Close()
			b, _ := io.ReadAll(resp.Body)
			var e struct {
				Error  string `json:"error"`
				Status int    `json:"status"`
			}
			if resp.StatusCode != tt.status || json.Unmarshal(b, &e) != nil || e.Status != tt.status || e.Error == "" {
				t.Errorf("%s %s = %d %s, want %d with a JSON error", tt.method, tt.path, resp.StatusCode, b, tt.status)
			}
		})
	}
}

// TestAPIToken: with a token, writes without it are 401, with a wrong one
// 403, with the right one accepted; reads stay open; Toxiproxy's client
// (which sends no token) is refused writes. Without a token the API
// refuses to listen off loopback.
func TestAPIToken(t *testing.T) {
	s, err := chaos.New(chaos.Config{Seed: 1, Token: "s3cret"})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	addr := apiServer(t, s)
	body := `{"name":"p","listen":"127.0.0.1:0","upstream":"127.0.0.1:1"}`
	for _, tc := range []struct {
		name, auth string
		want       int
	}{
		{"no token", "", http.StatusUnauthorized},
		{"wrong token", "Bearer nope", http.StatusForbidden},
		{"right token", "Bearer s3cret", http.StatusCreated},
	} {
		req, _ := http.NewRequest(http.MethodPost, "http://"+addr+"/proxies", strings.NewReader(body))
		if tc.auth != "" {
			req.Header.Set("Authorization", tc.auth)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != tc.want {
			t.Errorf("%s: status %d (%s), want %d", tc.name, resp.StatusCode, b, tc.want)
		}
	}
	resp, err := http.Get("http://" + addr + "/proxies")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Errorf("GET /proxies with no token: %d, want 200", resp.StatusCode)
	}
	if _, err := toxiproxy.NewClient(addr).CreateProxy("q", "127.0.0.1:0", "127.0.0.1:1"); err == nil || !strings.Contains(err.Error(), "401") {
		t.Errorf("toxiproxy client without a token: err %v, want a 401", err)
	}

	if _, err := chaos.New(chaos.Config{Listen: "0.0.0.0:8474"}); err == nil || !strings.Contains(err.Error(), chaos.TokenEnv) {
		t.Errorf("non-loopback API without a token: err %v, want a refusal naming %s", err, chaos.TokenEnv)
	}
	if s2, err := chaos.New(chaos.Config{Listen: "0.0.0.0:8474", Token: "t"}); err != nil {
		t.Errorf("non-loopback API with a token: %v", err)
	} else {
		s2.Close()
	}
}
