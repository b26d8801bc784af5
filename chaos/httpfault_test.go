package chaos_test

import (
	"bytes"
	"crypto/sha256"
	"encoding/base64"
	"io"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/bulwark-go/bulwark/chaos"
)

var backendBody = bytes.Repeat([]byte("0123456789abcdef"), 64) // 1 KiB

func contentDigest(b []byte) string {
	sum := sha256.Sum256(b)
	return "sha-256=:" + base64.StdEncoding.EncodeToString(sum[:]) + ":"
}

// httpBackend serves backendBody with its Content-Digest (RFC 9530).
func httpBackend(t testing.TB) string {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Digest", contentDigest(backendBody))
		w.Header().Set("X-Backend", "yes")
		w.Header().Set("X-Seen-Request-Header", r.Header.Get("X-Test"))
		_, _ = w.Write(backendBody)
	}))
	t.Cleanup(srv.Close)
	return srv.URL
}

func httpProxy(t *testing.T, s *chaos.Server, upstream string) *chaos.Proxy {
	t.Helper()
	p, err := s.CreateProxy(chaos.ProxyConfig{Name: "web", Upstream: upstream, Enabled: true, Protocol: chaos.ProtocolHTTP})
	if err != nil {
		t.Fatal(err)
	}
	return p
}

func get(t *testing.T, cl *http.Client, url string, hdr ...string) (*http.Response, []byte) {
	t.Helper()
	req, _ := http.NewRequestWithContext(t.Context(), "GET", url, nil)
	for i := 0; i+1 < len(hdr); i += 2 {
		req.Header.Set(hdr[i], hdr[i+1])
	}
	resp, err := cl.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return resp, b
}

func httpClient(t *testing.T) *http.Client {
	tr := &http.Transport{}
	t.Cleanup(tr.CloseIdleConnections)
	return &http.Client{Transport: tr, Timeout: 10 * time.Second}
}

func TestHTTPCorruptKeepsDigest(t *testing.T) {
	t.Parallel()
	s := newServer(t, 3)
	p := httpProxy(t, s, httpBackend(t))
	addToxic(t, p, &chaos.Toxic{Type: chaos.TypeHTTPCorrupt, Attributes: &chaos.HTTPCorruptAttrs{Bytes: 3}})
	cl := httpClient(t)
	resp, body := get(t, cl, "http://"+p.Addr()+"/x")
	if resp.StatusCode != 200 || len(body) != len(backendBody) {
		t.Fatalf("status %d, %d bytes", resp.StatusCode, len(body))
	}
	diff := 0
	for i := range body {
		if body[i] != backendBody[i] {
			diff++
		}
	}
	if diff != 3 {
		t.Errorf("%d bytes differ, want 3", diff)
	}
	if got := resp.Header.Get("Content-Digest"); got != contentDigest(backendBody) {
		t.Errorf("Content-Digest = %q, want the backend's", got)
	}
	if got := resp.Header.Get("Content-Digest"); got == contentDigest(body) {
		t.Error("corruption not detectable: digest matches the corrupted body")
	}
	if st := p.Stats(); st.CorruptedResponses != 1 || st.CorruptedBytes != 3 {
		t.Errorf("stats = %+v, want 1 response, 3 bytes", st)
	}
}

func TestHTTPCorruptToxicity(t *testing.T) {
	t.Parallel()
	s := newServer(t, 3)
	p := httpProxy(t, s, httpBackend(t))
	if err := p.AddToxic(&chaos.Toxic{Name: "byz", Type: chaos.TypeHTTPCorrupt, Stream: chaos.Downstream, Toxicity: 0.3,
		Attributes: &chaos.HTTPCorruptAttrs{Bytes: 1}}); err != nil {
		t.Fatal(err)
	}
	cl := httpClient(t)
	const n = 100
	bad := 0
	for range n {
		resp, body := get(t, cl, "http://"+p.Addr()+"/")
		if contentDigest(body) != resp.Header.Get("Content-Digest") {
			bad++
		}
	}
	if bad < 15 || bad > 45 {
		t.Errorf("%d of %d responses corrupted at toxicity 0.3", bad, n)
	}
	if got := p.Stats().CorruptedResponses; got != int64(bad) {
		t.Errorf("stats count %d corrupted, client saw %d", got, bad)
	}
}

func TestHTTPFaults(t *testing.T) {
	t.Parallel()
	backend := httpBackend(t)
	tests := []struct {
		name  string
		tox   chaos.Toxic
		check func(t *testing.T, resp *http.Response, body []byte, d time.Duration)
	}{
		{"abort", chaos.Toxic{Type: chaos.TypeHTTPAbort, Attributes: &chaos.HTTPAbortAttrs{Status: 503, Body: "nope"}},
			func(t *testing.T, resp *http.Response, body []byte, _ time.Duration) {
				if resp.StatusCode != 503 || string(body) != "nope" || resp.Header.Get("X-Backend") != "" {
					t.Errorf("got %d %q backend=%q", resp.StatusCode, body, resp.Header.Get("X-Backend"))
				}
			}},
		{"delay response", chaos.Toxic{Type: chaos.TypeHTTPDelay, Attributes: &chaos.HTTPDelayAttrs{Delay: 150}},
			func(t *testing.T, resp *http.Response, _ []byte, d time.Duration) {
				if resp.StatusCode != 200 || d < 150*time.Millisecond || d > time.Second {
					t.Errorf("got %d after %v, want 200 after ~150ms", resp.StatusCode, d)
				}
			}},
		{"drop response header", chaos.Toxic{Type: chaos.TypeHTTPHeader, Attributes: &chaos.HTTPHeaderAttrs{Header: "Content-Digest"}},
			func(t *testing.T, resp *http.Response, _ []byte, _ time.Duration) {
				if resp.Header.Get("Content-Digest") != "" || resp.Header.Get("X-Backend") != "yes" {
					t.Errorf("headers %v", resp.Header)
				}
			}},
		{"set request header", chaos.Toxic{Type: chaos.TypeHTTPHeader, Stream: chaos.Upstream,
			Attributes: &chaos.HTTPHeaderAttrs{Header: "X-Test", Value: "altered"}},
			func(t *testing.T, resp *http.Response, _ []byte, _ time.Duration) {
				if got := resp.Header.Get("X-Seen-Request-Header"); got != "altered" {
					t.Errorf("backend saw X-Test %q", got)
				}
			}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			s := newServer(t, 3)
			p := httpProxy(t, s, backend)
			addToxic(t, p, &tt.tox)
			start := time.Now()
			resp, body := get(t, httpClient(t), "http://"+p.Addr()+"/", "X-Test", "original")
			tt.check(t, resp, body, time.Since(start))
		})
	}
}

func TestHTTPToxicOnTCPProxyRejected(t *testing.T) {
	t.Parallel()
	s := newServer(t, 3)
	p := httpProxy(t, s, httpBackend(t))
	err := p.AddToxic(&chaos.Toxic{Name: "l", Type: chaos.TypeLatency, Stream: chaos.Downstream, Toxicity: 1, Attributes: &chaos.LatencyAttrs{}})
	if err == nil {
		t.Fatal("latency (TCP) toxic accepted on an HTTP proxy")
	}
}
