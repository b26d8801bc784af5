package e2e

import (
	"fmt"
	"testing"
	"time"

	"github.com/bulwark-go/bulwark/demo"
	"github.com/bulwark-go/bulwark/pki"
	"github.com/bulwark-go/bulwark/proxy"
)

// TestForgedSignatureRejected is issue 13's scenario (d): three demo
// replicas (real processes) sign their answers (RFC 9421, Ed25519); the
// gateway requires signatures by the keys it was given. The third
// replica's answers are signed with a key other than the one registered
// for it — an impostor, or a box in between that re-signs — so every one
// of them is rejected as a Byzantine outcome and retried elsewhere: the
// client sees 0 failed requests and no answer from it, and the rejections
// are counted.
func TestForgedSignatureRejected(t *testing.T) {
	dir := t.TempDir()
	var bs []*proc
	var pubs []string
	for i := 1; i <= 3; i++ {
		name := fmt.Sprintf("r%d", i)
		pub, err := pki.NewSigningKey(dir, name)
		if err != nil {
			t.Fatal(err)
		}
		pubs = append(pubs, pub)
		bs = append(bs, start(t, "demo", "--id", name, "--seed", fmt.Sprint(i), "--sign-key", pki.SigningKeyFile(dir, name)))
	}
	registered, err := pki.NewSigningKey(dir, "registered-for-r3")
	if err != nil {
		t.Fatal(err)
	}
	var byzantine int
	cfg := proxy.Config{
		Listeners: []proxy.Listener{{Address: "127.0.0.1:0"}},
		Routes:    []proxy.Route{{Name: "r", Upstream: "u"}},
		Upstreams: []proxy.Upstream{{Name: "u", Balance: "round-robin", Signatures: proxy.Signatures{Require: true},
			Endpoints: []proxy.Endpoint{{URL: bs[0].url, SignatureKey: pubs[0]}, {URL: bs[1].url, SignatureKey: pubs[1]},
				{URL: bs[2].url, SignatureKey: registered}}}},
	}
	events := make(chan proxy.Event, 1024)
	_, base := listenGateway(t, cfg, proxy.Options{Seed: 42, OnEvent: func(e proxy.Event) {
		select {
		case events <- e:
		default:
		}
	}})
	l := runLoad(t.Context(), workers, base+"/read", demo.Body(100), 10*time.Second)
	sleepUntil(l, 3*time.Second)
	rs := l.finish()
	s := summarize(rs)
	t.Logf("%v", s)
	for len(events) > 0 {
		if e := <-events; e.Kind == "byzantine" && e.Endpoint == bs[2].url {
			byzantine++
		}
	}
	if byzantine == 0 {
		t.Fatal("no forged answer was rejected: the test proves nothing")
	}
	if s.failed != 0 || s.corrupt != 0 {
		t.Fatalf("%d failed, %d corrupt of %d:%s", s.failed, s.corrupt, s.total, failures(rs))
	}
	if s.byReplica["r3"] != 0 {
		t.Fatalf("%d answers signed by the wrong key reached the client", s.byReplica["r3"])
	}
	t.Logf("%d forged answers rejected", byzantine)
}
