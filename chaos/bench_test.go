package chaos_test

import (
	"io"
	"net/http"
	"testing"

	"github.com/bulwark-go/bulwark/chaos"
)

// BenchmarkTCPProxyRoundTrip measures a 1 KiB echo through a proxy with
// no toxics: the cost of the pipes themselves.
func BenchmarkTCPProxyRoundTrip(b *testing.B) {
	s, err := chaos.New(chaos.Config{Seed: 1})
	if err != nil {
		b.Fatal(err)
	}
	defer s.Close()
	p, err := s.CreateProxy(chaos.ProxyConfig{Name: "echo", Upstream: echoServer(b), Enabled: true})
	if err != nil {
		b.Fatal(err)
	}
	c := dial(b, p.Addr())
	msg := make([]byte, 1024)
	buf := make([]byte, 1024)
	b.SetBytes(1024)
	b.ReportAllocs()
	for b.Loop() {
		if _, err := c.Write(msg); err != nil {
			b.Fatal(err)
		}
		if _, err := io.ReadFull(c, buf); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkHTTPProxy measures one GET through an HTTP proxy with a
// toxic that never applies (toxicity 0): the rolls and the reverse proxy.
func BenchmarkHTTPProxy(b *testing.B) {
	s, err := chaos.New(chaos.Config{Seed: 1})
	if err != nil {
		b.Fatal(err)
	}
	defer s.Close()
	p, err := s.CreateProxy(chaos.ProxyConfig{Name: "web", Upstream: httpBackend(b), Enabled: true, Protocol: chaos.ProtocolHTTP})
	if err != nil {
		b.Fatal(err)
	}
	if err := p.AddToxic(&chaos.Toxic{Name: "c", Type: chaos.TypeHTTPCorrupt, Stream: chaos.Downstream, Toxicity: 0,
		Attributes: &chaos.HTTPCorruptAttrs{Bytes: 1}}); err != nil {
		b.Fatal(err)
	}
	tr := &http.Transport{}
	defer tr.CloseIdleConnections()
	cl := &http.Client{Transport: tr}
	url := "http://" + p.Addr() + "/"
	b.ReportAllocs()
	for b.Loop() {
		resp, err := cl.Get(url)
		if err != nil {
			b.Fatal(err)
		}
		_, _ = io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
	}
}
