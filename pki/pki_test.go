package pki

import (
	"crypto/tls"
	"errors"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"strings"
	"testing"
)

// newPKI makes a CA in a temp dir and issues a server and a client.
func newPKI(t *testing.T) (dir string, server, client Files) {
	t.Helper()
	dir = t.TempDir()
	ca, err := Init(dir, "")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := ca.Issue(Request{Name: "server", DNS: []string{"localhost"}, IPs: []net.IP{net.IPv4(127, 0, 0, 1)}}); err != nil {
		t.Fatal(err)
	}
	if _, err := ca.Issue(Request{Name: "client"}); err != nil {
		t.Fatal(err)
	}
	return dir, FilesFor(dir, "server"), FilesFor(dir, "client")
}

// startMTLS serves "ok" over mTLS on 127.0.0.1.
func startMTLS(t *testing.T, server Files) *httptest.Server {
	t.Helper()
	cfg, err := server.ServerConfig()
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.WriteString(w, "ok "+r.TLS.PeerCertificates[0].Subject.CommonName)
	}))
	srv.TLS = cfg
	srv.StartTLS()
	t.Cleanup(srv.Close)
	return srv
}

func get(t *testing.T, url string, cfg *tls.Config) (string, error) {
	t.Helper()
	c := &http.Client{Transport: &http.Transport{TLSClientConfig: cfg}}
	defer c.CloseIdleConnections()
	resp, err := c.Get(url)
	if err != nil {
		return "", err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	return string(b), err
}

func TestMutualTLS(t *testing.T) {
	_, server, client := newPKI(t)
	srv := startMTLS(t, server)

	good, err := client.ClientConfig()
	if err != nil {
		t.Fatal(err)
	}
	body, err := get(t, srv.URL, good)
	if err != nil || body != "ok client" {
		t.Fatalf("mTLS with our client cert: %q, %v", body, err)
	}

	// No client certificate: the server refuses the handshake.
	noCert := good.Clone()
	noCert.Certificates = nil
	if _, err := get(t, srv.URL, noCert); err == nil {
		t.Fatal("a client without a certificate was accepted")
	}

	// A client certificate from another CA: refused too.
	_, _, strangerClient := newPKI(t)
	stranger, err := strangerClient.ClientConfig()
	if err != nil {
		t.Fatal(err)
	}
	stranger.RootCAs = good.RootCAs // it trusts our server, but we do not trust it
	if _, err := get(t, srv.URL, stranger); err == nil {
		t.Fatal("a client certificate signed by another CA was accepted")
	}

	// A server signed by another CA (a middleman's certificate): our client refuses it.
	_, strangerServer, _ := newPKI(t)
	mitm := startMTLS(t, strangerServer)
	if _, err := get(t, mitm.URL, good); err == nil || !strings.Contains(err.Error(), "certificate") {
		t.Fatalf("a server signed by another CA was trusted: %v", err)
	}
}

func TestInitLoadIssue(t *testing.T) {
	dir := t.TempDir()
	if _, err := Load(dir); !errors.Is(err, ErrNoCA) {
		t.Fatalf("Load of an empty dir: %v, want ErrNoCA", err)
	}
	if _, err := Init(dir, "test CA"); err != nil {
		t.Fatal(err)
	}
	if _, err := Init(dir, "again"); !errors.Is(err, ErrCAExists) {
		t.Fatalf("second Init: %v, want ErrCAExists", err)
	}
	ca, err := Load(dir)
	if err != nil {
		t.Fatal(err)
	}
	if ca.Cert.Subject.CommonName != "test CA" || !ca.Cert.IsCA {
		t.Fatalf("loaded CA: %+v", ca.Cert.Subject)
	}
	for _, name := range []string{"", "../escape", "a/b", strings.Repeat("x", 65)} {
		if _, err := ca.Issue(Request{Name: name}); err == nil {
			t.Errorf("Issue(%q) accepted a bad name", name)
		}
	}
	pair, err := ca.Issue(Request{Name: "gw-1", DNS: []string{"gw1.local"}})
	if err != nil {
		t.Fatal(err)
	}
	if err := pair.Leaf.CheckSignatureFrom(ca.Cert); err != nil {
		t.Fatalf("issued certificate not signed by the CA: %v", err)
	}
	if pair.Leaf.NotAfter.After(ca.Cert.NotAfter) {
		t.Fatal("leaf outlives its CA")
	}
	st, err := os.Stat(KeyFile(dir, "gw-1"))
	if err != nil {
		t.Fatal(err)
	}
	if st.Mode().Perm() != 0o600 {
		t.Fatalf("key file mode %v, want 0600", st.Mode().Perm())
	}
}

func TestFilesValidate(t *testing.T) {
	err := Files{}.Validate()
	for _, field := range []string{"tls.cert", "tls.key", "tls.ca"} {
		if err == nil || !strings.Contains(err.Error(), field) {
			t.Errorf("Validate of empty Files does not name %s: %v", field, err)
		}
	}
	if _, err := (Files{Cert: "/nope", Key: "/nope", CA: "/nope"}).ServerConfig(); err == nil {
		t.Error("ServerConfig with missing files succeeded")
	}
}

func TestSigningKey(t *testing.T) {
	dir := t.TempDir()
	pubStr, err := NewSigningKey(dir, "orders-1")
	if err != nil {
		t.Fatal(err)
	}
	priv, err := LoadSigningKey(SigningKeyFile(dir, "orders-1"))
	if err != nil {
		t.Fatal(err)
	}
	pub, err := ParsePublicKey(pubStr)
	if err != nil {
		t.Fatal(err)
	}
	if !pub.Equal(priv.Public()) || PublicKeyString(pub) != pubStr {
		t.Fatal("the printed public key is not the written key's")
	}
	for _, bad := range []string{"", "not base64!", "AAAA"} {
		if _, err := ParsePublicKey(bad); err == nil {
			t.Errorf("ParsePublicKey(%q) accepted", bad)
		}
	}
	if _, err := LoadSigningKey(CertFile(dir, "nope")); err == nil {
		t.Error("loading a missing key succeeded")
	}
}
