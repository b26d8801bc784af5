package e2e

import (
	"crypto/tls"
	"encoding/json"
	"io"
	"net/http"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/bulwark-go/bulwark/demo"
	"github.com/bulwark-go/bulwark/pki"
)

// TestUpTLS runs `bulwark up --tls` as a real process: it makes a CA in
// its data dir, and the gateway reaches the replicas (and everything
// reaches the registry) over mutual TLS. Reads through the gateway work;
// the replicas and the registry refuse a plain-HTTP client, a TLS client
// without a certificate and one whose certificate another CA signed,
// and answer one with a certificate from up's CA (so the refusals are
// about the certificate, not a broken server). The dashboard shows mTLS,
// and its chaos control still reaches the replicas.
func TestUpTLS(t *testing.T) {
	dir := t.TempDir()
	gwAddr, dashAddr := freeAddr(t), freeAddr(t)
	p := start(t, "up", "--tls", "--dir", dir, "--listen", gwAddr, "--dashboard", dashAddr, "--traffic=false")
	waitFor(t, 30*time.Second, func() bool { return strings.Contains(p.out.String(), "bulwark is up") })
	gw, dash := "http://"+gwAddr, "http://"+dashAddr
	m := regexp.MustCompile(`registry   (https://\S+)`).FindStringSubmatch(p.out.String())
	if m == nil {
		t.Fatalf("no https registry in the output:\n%s", p.out.String())
	}
	registryURL := m[1]
	pkiDir := filepath.Join(dir, "pki")

	l := runLoad(t.Context(), 4, gw+"/read", demo.Body(100), 10*time.Second)
	sleepUntil(l, 2*time.Second)
	rs := l.finish()
	s := summarize(rs)
	t.Logf("reads through up --tls: %v", s)
	if ok := float64(s.total-s.failed) / float64(s.total); s.total == 0 || ok < 0.999 || s.corrupt != 0 {
		t.Fatalf("reads over mTLS: %v%s", s, failures(rs))
	}

	var snap struct {
		Services []struct {
			TLS       bool `json:"tls"`
			Instances []struct {
				ID      string `json:"id"`
				Address string `json:"address"`
			} `json:"instances"`
		} `json:"services"`
		Registry struct {
			TLS bool `json:"tls"`
		} `json:"registry"`
	}
	resp, err := http.Get(dash + "/api/snapshot")
	if err != nil {
		t.Fatal(err)
	}
	err = json.NewDecoder(resp.Body).Decode(&snap)
	resp.Body.Close()
	if err != nil || len(snap.Services) != 1 || !snap.Services[0].TLS || !snap.Registry.TLS || len(snap.Services[0].Instances) != 3 {
		t.Fatalf("the dashboard does not show mTLS for the pool and the registry: %+v (%v)", snap, err)
	}

	// Clients: one with a certificate from up's CA, none, one from
	// another CA.
	good, err := pki.FilesFor(pkiDir, "gateway").ClientConfig()
	if err != nil {
		t.Fatal(err)
	}
	ca, err := pki.Load(pkiDir)
	if err != nil {
		t.Fatal(err)
	}
	noCert := &tls.Config{RootCAs: ca.Pool(), MinVersion: tls.VersionTLS13}
	other := t.TempDir()
	oca, err := pki.Init(other, "intruder CA")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := oca.Issue(pki.Request{Name: "intruder"}); err != nil {
		t.Fatal(err)
	}
	intruder, err := pki.FilesFor(other, "intruder").ClientConfig()
	if err != nil {
		t.Fatal(err)
	}
	intruder.RootCAs = ca.Pool() // it trusts the server; the server must not trust it
	get := func(url string, cfg *tls.Config) (int, string, error) {
		c := &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{TLSClientConfig: cfg}}
		defer c.CloseIdleConnections()
		resp, err := c.Get(url)
		if err != nil {
			return 0, "", err
		}
		defer resp.Body.Close()
		b, err := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b), err
	}
	check := func(what, base, path string) {
		t.Helper()
		if !strings.HasPrefix(base, "https://") {
			t.Fatalf("%s is not on https: %s", what, base)
		}
		if code, _, err := get(base+path, good); err != nil || code != 200 {
			t.Fatalf("%s refused a client with up's certificate: %d %v", what, code, err)
		}
		if code, body, err := get("http://"+strings.TrimPrefix(base, "https://")+path, nil); err == nil && (code == 200 || strings.Contains(body, "abcdef")) {
			t.Fatalf("%s answered plain HTTP: %d %q", what, code, body)
		}
		if code, _, err := get(base+path, noCert); err == nil {
			t.Fatalf("%s answered a TLS client without a certificate: %d", what, code)
		}
		if code, _, err := get(base+path, intruder); err == nil {
			t.Fatalf("%s answered a client whose certificate another CA signed: %d", what, code)
		}
	}
	for _, in := range snap.Services[0].Instances {
		check("replica "+in.ID, in.Address, "/read")
	}
	check("the registry", registryURL, "/v1/services")

	// The dashboard's chaos control reaches the replicas over mTLS.
	resp, err = http.Post(dash+"/api/instances/demo-1/fault", "application/json", strings.NewReader(`{"fault": "ok"}`))
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 200 {
		t.Fatalf("fault control through the dashboard: %s", resp.Status)
	}
}
