package e2e

import (
	"fmt"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/bulwark-go/bulwark/chaos"
	"github.com/bulwark-go/bulwark/demo"
	"github.com/bulwark-go/bulwark/pki"
	"github.com/bulwark-go/bulwark/proxy"
)

// TestMTLSDefeatsAByteFlippingMiddleman is issue 13's scenario (c): three
// demo replicas (real processes) serve mutually authenticated TLS with
// certificates from `bulwark ca`; between the gateway and one of them a
// middleman flips a byte in half of the chunks it relays. TLS rejects
// each tampered record, the try fails and is retried on another replica:
// the client sees 0 failed requests and 0 modified bodies, and the
// middleman was really there (its flips and the failed tries are counted).
func TestMTLSDefeatsAByteFlippingMiddleman(t *testing.T) {
	dir := t.TempDir()
	ca, err := pki.Init(dir, "e2e CA")
	if err != nil {
		t.Fatal(err)
	}
	loop := []net.IP{net.IPv4(127, 0, 0, 1)}
	if _, err := ca.Issue(pki.Request{Name: "gateway"}); err != nil {
		t.Fatal(err)
	}
	var bs []*proc
	for i := 1; i <= 3; i++ {
		name := fmt.Sprintf("r%d", i)
		if _, err := ca.Issue(pki.Request{Name: name, IPs: loop}); err != nil {
			t.Fatal(err)
		}
		f := pki.FilesFor(dir, name)
		bs = append(bs, start(t, "demo", "--id", name, "--seed", fmt.Sprint(i),
			"--tls-cert", f.Cert, "--tls-key", f.Key, "--tls-ca", f.CA))
		if !strings.HasPrefix(bs[i-1].url, "https://") {
			t.Fatalf("demo %s serves %s, want https", name, bs[i-1].url)
		}
	}

	mitmSrv, err := chaos.New(chaos.Config{Seed: 13})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { mitmSrv.Close() })
	mitm, err := mitmSrv.CreateProxy(chaos.ProxyConfig{Name: "mitm", Listen: "127.0.0.1:0",
		Upstream: strings.TrimPrefix(bs[2].url, "https://"), Enabled: true})
	if err != nil {
		t.Fatal(err)
	}
	if err := mitm.AddToxic(&chaos.Toxic{Name: "flip", Type: chaos.TypeBitflip, Stream: chaos.Downstream,
		Toxicity: 1, Attributes: &chaos.BitflipAttrs{Rate: 0.5}}); err != nil {
		t.Fatal(err)
	}

	cfg := proxy.Config{
		Listeners: []proxy.Listener{{Address: "127.0.0.1:0"}},
		Routes:    []proxy.Route{{Name: "r", Upstream: "u"}},
		Upstreams: []proxy.Upstream{{Name: "u", Balance: "round-robin", TLS: pki.FilesFor(dir, "gateway"),
			Endpoints: []proxy.Endpoint{{URL: bs[0].url}, {URL: bs[1].url}, {URL: "https://" + mitm.Addr()}}}},
	}
	_, base := listenGateway(t, cfg, proxy.Options{Seed: 42})

	l := runLoad(t.Context(), workers, base+"/read?size=2000", demo.Body(2000), 10*time.Second)
	sleepUntil(l, 4*time.Second)
	rs := l.finish()
	s := summarize(rs)
	st := mitm.Stats()
	t.Logf("%v; middleman: %d connections, %d bytes flipped", s, st.Connections, st.CorruptedBytes)
	if st.CorruptedBytes == 0 {
		t.Fatal("the middleman flipped nothing: the test proves nothing")
	}
	if s.corrupt != 0 {
		t.Fatalf("%d modified bodies reached the client through mTLS:%s", s.corrupt, failures(rs))
	}
	if s.failed != 0 {
		for _, r := range rs {
			if r.err != nil || r.status != 200 {
				t.Logf("at %v: status %d err %v", r.at, r.status, r.err)
			}
		}
		t.Fatalf("%d of %d requests failed", s.failed, s.total)
	}
	if s.total < 100 {
		t.Fatalf("only %d requests", s.total)
	}
}
