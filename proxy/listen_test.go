package proxy

import (
	"bufio"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"io"
	"math/big"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// listening starts a gateway with one listener of the given protocol in
// front of b and returns its address.
func listening(t *testing.T, l Listener, b *backend, tune func(*Config)) (*Gateway, string) {
	t.Helper()
	l.Address = "127.0.0.1:0"
	cfg := Config{Listeners: []Listener{l}, Routes: []Route{{Name: "r", Upstream: "u"}},
		Upstreams: []Upstream{{Name: "u", Endpoints: []Endpoint{{URL: b.URL}}}}}
	if tune != nil {
		tune(&cfg)
	}
	gw, err := New(cfg, Options{})
	if err != nil {
		t.Fatal(err)
	}
	if err := gw.Listen(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { gw.Close() })
	return gw, gw.Addrs()[0].String()
}

// selfSigned writes a certificate and key for 127.0.0.1 into dir.
func selfSigned(t *testing.T, dir string) (certFile, keyFile string, pool *x509.CertPool) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "bulwark test"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		IPAddresses: []net.IP{net.ParseIP("127.0.0.1")}, KeyUsage: x509.KeyUsageDigitalSignature,
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	kb, _ := x509.MarshalECPrivateKey(key)
	certFile, keyFile = filepath.Join(dir, "cert.pem"), filepath.Join(dir, "key.pem")
	os.WriteFile(certFile, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o600)
	os.WriteFile(keyFile, pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: kb}), 0o600)
	cert, _ := x509.ParseCertificate(der)
	pool = x509.NewCertPool()
	pool.AddCert(cert)
	return certFile, keyFile, pool
}

func TestHTTPSListenerServesHTTP2(t *testing.T) {
	b := newBackend(t, "b")
	cert, key, pool := selfSigned(t, t.TempDir())
	_, addr := listening(t, Listener{Protocol: "https", CertFile: cert, KeyFile: key}, b, nil)
	c := &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool}, ForceAttemptHTTP2: true}}
	resp, err := c.Get("https://" + addr + "/x")
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 200 || string(body) != "hello from b" || resp.ProtoMajor != 2 {
		t.Fatalf("got %s %s %q", resp.Proto, resp.Status, body)
	}
}

func TestH2CListener(t *testing.T) {
	b := newBackend(t, "b")
	_, addr := listening(t, Listener{Protocol: "h2c"}, b, nil)
	tr := &http.Transport{Protocols: new(http.Protocols)}
	tr.Protocols.SetUnencryptedHTTP2(true)
	resp, err := (&http.Client{Transport: tr}).Get("http://" + addr + "/x")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 200 || resp.ProtoMajor != 2 {
		t.Fatalf("got %s %s, want HTTP/2 without TLS", resp.Proto, resp.Status)
	}
}

func TestWebSocketUpgradePassesThrough(t *testing.T) {
	b := newBackend(t, "b")
	b.set(func(w http.ResponseWriter, r *http.Request) {
		if !strings.EqualFold(r.Header.Get("Upgrade"), "websocket") {
			http.Error(w, "want an upgrade", 400)
			return
		}
		c, brw, err := http.NewResponseController(w).Hijack()
		if err != nil {
			return
		}
		defer c.Close()
		brw.WriteString("HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\r\n")
		brw.Flush()
		line, _ := brw.ReadString('\n') // echo one line
		brw.WriteString("echo: " + line)
		brw.Flush()
	})
	_, addr := listening(t, Listener{}, b, nil)
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(5 * time.Second))
	io.WriteString(c, "GET /ws HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\r\n")
	br := bufio.NewReader(c)
	resp, err := http.ReadResponse(br, nil)
	if err != nil {
		t.Fatal(err)
	}
	if resp.StatusCode != http.StatusSwitchingProtocols {
		t.Fatalf("status %s, want 101", resp.Status)
	}
	io.WriteString(c, "ping\n")
	line, err := br.ReadString('\n')
	if err != nil || line != "echo: ping\n" {
		t.Fatalf("after the upgrade got %q, %v", line, err)
	}
}

func TestRateLimitPerClient(t *testing.T) {
	b := newBackend(t, "b")
	gw := gateway(t, func(c *Config) { c.Routes[0].RateLimit = RateLimit{PerClient: 1, Burst: 2} }, b)
	codes := map[int]int{}
	for range 5 {
		codes[do(gw, "GET", "http://gw/", nil).Code]++
	}
	if codes[200] != 2 || codes[429] != 3 {
		t.Fatalf("codes %v, want 2 × 200 then 429s", codes)
	}
	// Another client has its own bucket.
	r := &http.Request{Method: "GET", URL: mustURL("http://gw/"), Header: http.Header{}, RemoteAddr: "10.9.9.9:1", Host: "gw"}
	w := &statusWriter{header: http.Header{}}
	gw.ServeHTTP(w, r)
	if w.code != 0 && w.code != 200 {
		t.Fatalf("another client was limited: %d", w.code)
	}
}

func TestConcurrencyLimitSheds(t *testing.T) {
	release := make(chan struct{})
	b := newBackend(t, "b")
	b.set(func(w http.ResponseWriter, r *http.Request) { <-release })
	gw := gateway(t, func(c *Config) {
		c.Routes[0].Limit = Limit{Algorithm: "aimd", Initial: 1, Min: 1, Max: 1}
	}, b)
	srv := httpTestServer(t, gw)
	done := make(chan int, 1)
	go func() {
		resp, err := http.Get(srv + "/slow")
		if err == nil {
			resp.Body.Close()
			done <- resp.StatusCode
		} else {
			done <- 0
		}
	}()
	// Wait until the first request holds the only slot.
	deadline := time.Now().Add(5 * time.Second)
	for b.hits.Load() == 0 && time.Now().Before(deadline) {
		time.Sleep(5 * time.Millisecond)
	}
	resp, err := http.Get(srv + "/second")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	close(release)
	if resp.StatusCode != 503 || resp.Header.Get("Retry-After") == "" {
		t.Fatalf("over the limit: %d %v, want 503 with Retry-After", resp.StatusCode, resp.Header)
	}
	if code := <-done; code != 200 {
		t.Fatalf("the admitted request got %d", code)
	}
}

func TestAdminHandler(t *testing.T) {
	b := newBackend(t, "b")
	gw := gateway(t, nil, b)
	do(gw, "GET", "http://gw/", nil)
	w := do(gw.AdminHandler(), "GET", "http://admin/metrics", nil)
	for _, want := range []string{`bulwark_gateway_requests_total{code="200",route="r"} 1`, "bulwark_gateway_endpoint_up", "bulwark_gateway_breaker_state"} {
		if !strings.Contains(w.Body.String(), want) {
			t.Errorf("/metrics lacks %q", want)
		}
	}
	w = do(gw.AdminHandler(), "GET", "http://admin/api/upstreams", nil)
	if !strings.Contains(w.Body.String(), `"p2c-ewma"`) || !strings.Contains(w.Body.String(), b.URL) {
		t.Errorf("/api/upstreams: %s", w.Body.String())
	}
}
