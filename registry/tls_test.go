package registry

import (
	"context"
	"crypto/tls"
	"net"
	"net/http"
	"testing"
	"time"

	"github.com/bulwark-go/bulwark"
	"github.com/bulwark-go/bulwark/pki"
)

// TestClusterOverMutualTLS runs three nodes whose Raft transport and HTTP
// API are mTLS with certificates from `bulwark ca`: the cluster forms,
// a write sent to a follower is forwarded to the leader over TLS, another
// follower serves it, and a client without a certificate gets nothing.
func TestClusterOverMutualTLS(t *testing.T) {
	dir := t.TempDir()
	ca, err := pki.Init(dir, "registry CA")
	if err != nil {
		t.Fatal(err)
	}
	loop := []net.IP{net.IPv4(127, 0, 0, 1)}
	for _, name := range []string{"n0", "n1", "n2", "client"} {
		if _, err := ca.Issue(pki.Request{Name: name, IPs: loop}); err != nil {
			t.Fatal(err)
		}
	}
	tlsFor := func(name string) (*tls.Config, *tls.Config) {
		f := pki.FilesFor(dir, name)
		srv, err := f.ServerConfig()
		if err != nil {
			t.Fatal(err)
		}
		cli, err := f.ClientConfig()
		if err != nil {
			t.Fatal(err)
		}
		return srv, cli
	}
	tc := newCluster(t, 3, func(i int, c *Config) {
		c.newTransport = nil // the real TLS transport, not the test's cuttable one
		c.ServerTLS, c.ClientTLS = tlsFor(c.NodeID)
	})
	l := tc.leader()
	var followers []int
	for i := range tc.nodes {
		if i != l {
			followers = append(followers, i)
		}
	}

	_, clientTLS := tlsFor("client")
	c, err := NewClient(ClientConfig{Addrs: []string{tc.nodes[followers[0]].HTTPAddr()}, TLS: clientTLS})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
	defer cancel()
	reg, err := c.Register(ctx, bulwark.Instance{Service: "orders", ID: "o1", Address: "http://127.0.0.1:9"}, 5*time.Second)
	if err != nil {
		t.Fatalf("register through a follower over mTLS: %v", err)
	}
	defer reg.Close()

	reader, err := NewClient(ClientConfig{Addrs: []string{tc.nodes[followers[1]].HTTPAddr()}, TLS: clientTLS})
	if err != nil {
		t.Fatal(err)
	}
	defer reader.Close()
	tc.waitFor("the other follower serves the instance", 5*time.Second, func() bool {
		insts, err := reader.Instances(ctx, "orders")
		return err == nil && len(insts) == 1 && insts[0].ID == "o1"
	})

	// Without a client certificate, or without TLS, nothing is served.
	noCert := clientTLS.Clone()
	noCert.Certificates = nil
	for name, hc := range map[string]*http.Client{
		"no client certificate": {Transport: &http.Transport{TLSClientConfig: noCert}},
		"plain HTTP":            {},
	} {
		scheme := "https://"
		if name == "plain HTTP" {
			scheme = "http://"
		}
		resp, err := hc.Get(scheme + tc.nodes[l].HTTPAddr() + "/v1/services/orders")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				t.Errorf("%s: the catalog was served (%s)", name, resp.Status)
			}
		}
	}
}

func TestTLSConfigValidate(t *testing.T) {
	srv := &tls.Config{Certificates: []tls.Certificate{{}}, ClientAuth: tls.RequireAndVerifyClientCert}
	for _, c := range []Config{
		{DataDir: "x", ServerTLS: srv},
		{DataDir: "x", ClientTLS: &tls.Config{}},
		{DataDir: "x", ServerTLS: &tls.Config{Certificates: []tls.Certificate{{}}}, ClientTLS: &tls.Config{}},
	} {
		if err := c.Validate(); err == nil {
			t.Errorf("%+v accepted", c)
		}
	}
	if err := (Config{DataDir: "x", ServerTLS: srv, ClientTLS: &tls.Config{}}).Validate(); err != nil {
		t.Errorf("a valid pair refused: %v", err)
	}
}
