package proxy

import (
	"crypto/ed25519"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"

	"github.com/bulwark-go/bulwark/pki"
	"github.com/bulwark-go/bulwark/resilience/resilienthttp"
)

func seededKey(b byte) ed25519.PrivateKey {
	s := make([]byte, ed25519.SeedSize)
	for i := range s {
		s[i] = b
	}
	return ed25519.NewKeyFromSeed(s)
}

// signedBackend serves "from NAME" signed with key.
func signedBackend(t *testing.T, name string, key ed25519.PrivateKey) *httptest.Server {
	t.Helper()
	h := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("X-Backend", name)
		io.WriteString(w, "from "+name)
	})
	var handler http.Handler = h
	if key != nil {
		handler = resilienthttp.Signer{KeyID: name, Key: key}.Sign(h)
	}
	s := httptest.NewServer(handler)
	t.Cleanup(s.Close)
	return s
}

func TestSignaturesRequired(t *testing.T) {
	honest1, honest2, forger, impostor := seededKey(1), seededKey(2), seededKey(3), seededKey(4)
	a := signedBackend(t, "a", honest1)
	b := signedBackend(t, "b", honest2)
	f := signedBackend(t, "forger", forger) // registered with impostor's key, signs with its own
	u := signedBackend(t, "unsigned", nil)  // signs nothing
	key := func(k ed25519.PrivateKey) string { return pki.PublicKeyString(k.Public().(ed25519.PublicKey)) }
	cfg := Config{Routes: []Route{{Name: "r", Upstream: "u"}}, Upstreams: []Upstream{{Name: "u", Balance: "round-robin",
		Signatures: Signatures{Require: true},
		Endpoints: []Endpoint{
			{URL: a.URL, SignatureKey: key(honest1)}, {URL: b.URL, SignatureKey: key(honest2)},
			{URL: f.URL, SignatureKey: key(impostor)}, {URL: u.URL, SignatureKey: key(impostor)},
		}}}}
	var mu sync.Mutex
	var events []Event
	gw, err := New(cfg, Options{Seed: 1, OnEvent: func(e Event) { mu.Lock(); events = append(events, e); mu.Unlock() }})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { gw.Close() })
	for i := range 40 {
		w := do(gw, "GET", "http://gw/x", nil)
		if w.Code != 200 || (w.Body.String() != "from a" && w.Body.String() != "from b") {
			t.Fatalf("request %d: %d %q", i, w.Code, w.Body.String())
		}
	}
	if n := counterValue(t, gw.metrics.byzantine.WithLabelValues("u")); n < 2 {
		t.Fatalf("byzantine_total = %v, want the forger and the unsigned endpoint counted", n)
	}
	rejected := map[string]bool{}
	mu.Lock()
	defer mu.Unlock()
	for _, e := range events {
		if e.Kind == "byzantine" {
			rejected[e.Endpoint] = true
		}
	}
	if !rejected[f.URL] || !rejected[u.URL] || rejected[a.URL] || rejected[b.URL] {
		t.Fatalf("byzantine events for %v; want the forger and the unsigned endpoint only", rejected)
	}
}

func TestSignaturesConfig(t *testing.T) {
	cfg := Config{Routes: []Route{{Upstream: "u"}}, Upstreams: []Upstream{{Name: "u", Signatures: Signatures{Require: true},
		Endpoints: []Endpoint{{URL: "http://127.0.0.1:1"}, {URL: "http://127.0.0.1:2", SignatureKey: "nope"}}}}}
	err := cfg.Validate()
	if err == nil || !strings.Contains(err.Error(), "endpoints[0].signature_key") || !strings.Contains(err.Error(), "endpoints[1].signature_key") {
		t.Fatalf("Validate: %v", err)
	}
}
