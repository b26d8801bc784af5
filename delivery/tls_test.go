package delivery

import (
	"context"
	"crypto/tls"
	"net"
	"strconv"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"

	"github.com/bulwark-go/bulwark"
	"github.com/bulwark-go/bulwark/pki"
)

// mutualTLS issues a certificate for each name from one CA and returns
// their mutual configs (both directions, as routes need).
func mutualTLS(t *testing.T, names ...string) map[string]*tls.Config {
	t.Helper()
	dir := t.TempDir()
	ca, err := pki.Init(dir, "delivery CA")
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]*tls.Config{}
	for _, n := range names {
		if _, err := ca.Issue(pki.Request{Name: n, IPs: []net.IP{net.IPv4(127, 0, 0, 1)}, DNS: []string{"localhost"}}); err != nil {
			t.Fatal(err)
		}
		if out[n], err = pki.FilesFor(dir, n).MutualConfig(); err != nil {
			t.Fatal(err)
		}
	}
	return out
}

// TestExternalNATSOverMutualTLS: delivery connects to an external
// nats-server that requires TLS with client certificates; with the
// gateway's certificate it enqueues and delivers, without TLS it cannot
// connect at all.
func TestExternalNATSOverMutualTLS(t *testing.T) {
	certs := mutualTLS(t, "nats", "gateway")
	srv, err := server.NewServer(&server.Options{Host: "127.0.0.1", Port: -1, JetStream: true, StoreDir: t.TempDir(),
		NoSigs: true, TLS: true, TLSVerify: true, TLSConfig: certs["nats"], TLSTimeout: 2})
	if err != nil {
		t.Fatal(err)
	}
	srv.Start()
	t.Cleanup(func() { srv.Shutdown(); srv.WaitForShutdown() })
	if !srv.ReadyForConnections(10 * time.Second) {
		t.Fatal("nats-server not ready")
	}
	b := newBackend(t)
	cfg := testConfig(t, "")
	cfg.URLs = []string{srv.ClientURL()}
	cfg.TLS = certs["gateway"]
	s := open(t, cfg, newForwarder(t, b))
	id, err := s.Enqueue(t.Context(), msg("x", "tls-1", "", "over TLS"))
	if err != nil {
		t.Fatal(err)
	}
	waitState(t, s, id, bulwark.DeliveryDelivered)

	plain := testConfig(t, "")
	plain.URLs = cfg.URLs
	ctx, cancel := context.WithTimeout(t.Context(), 5*time.Second)
	defer cancel()
	if s2, err := Open(ctx, plain, newForwarder(t, b)); err == nil {
		s2.Close()
		t.Fatal("a client without TLS connected to a server that requires it")
	}
}

// TestClusterRoutesOverMutualTLS: three embedded servers whose routes are
// mTLS form one JetStream cluster and deliver what any of them accepts.
func TestClusterRoutesOverMutualTLS(t *testing.T) {
	if testing.Short() {
		t.Skip("three-node cluster")
	}
	certs := mutualTLS(t, "n0", "n1", "n2")
	b := newBackend(t)
	svcs := openCluster3(t, b, func(i int, cfg *Config) { cfg.TLS = certs[cfg.ServerName] })
	for i := range 10 {
		if _, err := svcs[i%3].Enqueue(t.Context(), msg("x", "c"+strconv.Itoa(i), "", strconv.Itoa(i))); err != nil {
			t.Fatalf("Enqueue %d: %v", i, err)
		}
	}
	waitFor(t, 30*time.Second, "10 deliveries through a TLS-routed cluster", func() bool { return b.unique() == 10 })
}
