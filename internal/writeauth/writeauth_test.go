package writeauth

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"errors"
	"math/big"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"
)

func ok() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { w.Write([]byte("done")) })
}

func TestProtect(t *testing.T) {
	tests := []struct {
		name    string
		cfg     Config
		method  string
		headers map[string]string
		want    int
	}{
		{"read needs nothing", Config{Token: "s3cret"}, "GET", nil, 200},
		{"no token", Config{Token: "s3cret"}, "POST", nil, 401},
		{"wrong token", Config{Token: "s3cret"}, "POST", map[string]string{"Authorization": "Bearer nope"}, 403},
		{"wrong scheme", Config{Token: "s3cret"}, "DELETE", map[string]string{"Authorization": "Basic czNjcmV0"}, 403},
		{"right token", Config{Token: "s3cret"}, "PUT", map[string]string{"Authorization": "Bearer s3cret"}, 200},
		{"cross-site browser POST with the token", Config{Token: "s3cret"}, "POST",
			map[string]string{"Authorization": "Bearer s3cret", "Sec-Fetch-Site": "cross-site"}, 403},
		{"foreign Origin, no Sec-Fetch-Site", Config{}, "POST", map[string]string{"Origin": "http://evil.example"}, 403},
		{"same-origin browser POST on loopback without auth", Config{}, "POST", map[string]string{"Sec-Fetch-Site": "same-origin"}, 200},
		{"cross-site browser POST on loopback without auth", Config{}, "POST", map[string]string{"Sec-Fetch-Site": "cross-site"}, 403},
		{"client certs configured, plain HTTP, no token", Config{ClientCerts: true}, "POST", nil, 401},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			srv := httptest.NewServer(Protect(ok(), tt.cfg))
			defer srv.Close()
			req, _ := http.NewRequest(tt.method, srv.URL+"/x", nil)
			for k, v := range tt.headers {
				req.Header.Set(k, v)
			}
			resp, err := srv.Client().Do(req)
			if err != nil {
				t.Fatal(err)
			}
			resp.Body.Close()
			if resp.StatusCode != tt.want {
				t.Fatalf("status %d, want %d", resp.StatusCode, tt.want)
			}
			if tt.want == 401 && !strings.HasPrefix(resp.Header.Get("WWW-Authenticate"), "Bearer") {
				t.Fatalf("401 without a Bearer challenge: %q", resp.Header.Get("WWW-Authenticate"))
			}
		})
	}
}

// TestProtectClientCert: a verified client certificate stands in for the
// token; a connection without one still needs the token.
func TestProtectClientCert(t *testing.T) {
	caKey, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	caTmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "test CA"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour), IsCA: true,
		KeyUsage: x509.KeyUsageCertSign, BasicConstraintsValid: true}
	caDER, err := x509.CreateCertificate(rand.Reader, caTmpl, caTmpl, &caKey.PublicKey, caKey)
	if err != nil {
		t.Fatal(err)
	}
	ca, _ := x509.ParseCertificate(caDER)
	cliKey, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	cliTmpl := &x509.Certificate{SerialNumber: big.NewInt(2), Subject: pkix.Name{CommonName: "operator"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		KeyUsage: x509.KeyUsageDigitalSignature, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}}
	cliDER, err := x509.CreateCertificate(rand.Reader, cliTmpl, ca, &cliKey.PublicKey, caKey)
	if err != nil {
		t.Fatal(err)
	}
	pool := x509.NewCertPool()
	pool.AddCert(ca)

	srv := httptest.NewUnstartedServer(Protect(ok(), Config{Token: "s3cret", ClientCerts: true}))
	srv.TLS = &tls.Config{ClientAuth: tls.VerifyClientCertIfGiven, ClientCAs: pool}
	srv.StartTLS()
	defer srv.Close()

	post := func(c *http.Client) int {
		resp, err := c.Post(srv.URL+"/x", "text/plain", nil)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		return resp.StatusCode
	}
	if got := post(srv.Client()); got != 401 {
		t.Fatalf("TLS without a client certificate or token: %d, want 401", got)
	}
	withCert := srv.Client()
	tr := withCert.Transport.(*http.Transport).Clone()
	tr.TLSClientConfig.Certificates = []tls.Certificate{{Certificate: [][]byte{cliDER}, PrivateKey: cliKey}}
	withCert = &http.Client{Transport: tr}
	defer tr.CloseIdleConnections()
	if got := post(withCert); got != 200 {
		t.Fatalf("verified client certificate: %d, want 200", got)
	}
}

func TestCheckListener(t *testing.T) {
	tests := []struct {
		addr string
		cfg  Config
		ok   bool
	}{
		{"127.0.0.1:8081", Config{}, true},
		{"127.0.0.2:0", Config{}, true},
		{"[::1]:8081", Config{}, true},
		{"localhost:8081", Config{}, true},
		{"0.0.0.0:8081", Config{}, false},
		{":8081", Config{}, false},
		{"10.1.2.3:8081", Config{}, false},
		{"[::]:8081", Config{}, false},
		{"0.0.0.0:8081", Config{Token: "t"}, true},
		{"0.0.0.0:8081", Config{ClientCerts: true}, true},
	}
	for _, tt := range tests {
		err := CheckListener(tt.addr, tt.cfg, "admin.address", "admin.token or BULWARK_ADMIN_TOKEN")
		if (err == nil) != tt.ok {
			t.Errorf("%s %+v: err %v, want ok=%v", tt.addr, tt.cfg, err, tt.ok)
		}
		if err != nil && (!errors.Is(err, ErrUnauthenticated) || !strings.Contains(err.Error(), "BULWARK_ADMIN_TOKEN")) {
			t.Errorf("%s: message %q does not say how to configure it", tt.addr, err)
		}
	}
}

// FuzzProtect: whatever the method and headers, an unsafe request reaches
// the handler only with the exact bearer token and never from a
// cross-site browser context.
func FuzzProtect(f *testing.F) {
	f.Add("POST", "Bearer s3cret", "", "", "api.local")
	f.Add("PUT", "Bearer s3cret", "http://evil.example", "", "api.local")
	f.Add("DELETE", "Bearer s3cret ", "", "cross-site", "api.local")
	f.Add("GET", "", "http://evil.example", "cross-site", "api.local")
	f.Add("post", "bearer s3cret", "http://api.local", "same-origin", "api.local")
	reached := false
	h := Protect(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { reached = true }), Config{Token: "s3cret"})
	f.Fuzz(func(t *testing.T, method, auth, origin, site, host string) {
		req, err := http.NewRequest(method, "http://api.local/x", nil)
		if err != nil {
			return
		}
		req.Host = host
		for k, v := range map[string]string{"Authorization": auth, "Origin": origin, "Sec-Fetch-Site": site} {
			if v != "" {
				req.Header.Set(k, v)
			}
		}
		reached = false
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, req)
		if !reached || safe(req.Method) {
			return
		}
		if req.Header.Get("Authorization") != "Bearer s3cret" {
			t.Fatalf("%s with Authorization %q reached the handler", method, auth)
		}
		if s := req.Header.Get("Sec-Fetch-Site"); s == "cross-site" || s == "same-site" {
			t.Fatalf("%s with Sec-Fetch-Site %q reached the handler", method, s)
		}
	})
}
