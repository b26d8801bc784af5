package chaos_test

import (
	"io"
	"net"
	"net/http"
	"os"
	"sync"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/bulwark-go/bulwark/chaos"
	"github.com/bulwark-go/bulwark/internal/netns"
)

func TestMain(m *testing.M) {
	// Toxic timings must not measure the host's (sometimes shaped) lo.
	if code, done := netns.Isolate(); done {
		os.Exit(code)
	}
	goleak.VerifyTestMain(m)
}

// tcpServer runs handle for every connection on 127.0.0.1:0 until the
// test ends; cleanup closes the listener and open connections and waits.
func tcpServer(t testing.TB, handle func(net.Conn)) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	var mu sync.Mutex
	conns := map[net.Conn]bool{}
	wg.Go(func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			mu.Lock()
			conns[c] = true
			mu.Unlock()
			wg.Go(func() {
				defer c.Close()
				handle(c)
			})
		}
	})
	t.Cleanup(func() {
		ln.Close()
		mu.Lock()
		for c := range conns {
			c.Close()
		}
		mu.Unlock()
		wg.Wait()
	})
	return ln.Addr().String()
}

func echoServer(t testing.TB) string {
	return tcpServer(t, func(c net.Conn) { _, _ = io.Copy(c, c) })
}

// sourceServer writes data to each connection and closes it.
func sourceServer(t *testing.T, data []byte) string {
	return tcpServer(t, func(c net.Conn) { _, _ = c.Write(data) })
}

// newServer returns a chaos server with a fixed seed, closed at cleanup.
func newServer(t *testing.T, seed uint64) *chaos.Server {
	t.Helper()
	s, err := chaos.New(chaos.Config{Seed: seed})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		s.Close()
		http.DefaultTransport.(*http.Transport).CloseIdleConnections()
	})
	return s
}

func newProxy(t *testing.T, s *chaos.Server, name, upstream string) *chaos.Proxy {
	t.Helper()
	p, err := s.CreateProxy(chaos.ProxyConfig{Name: name, Upstream: upstream, Enabled: true})
	if err != nil {
		t.Fatal(err)
	}
	return p
}

func addToxic(t *testing.T, p *chaos.Proxy, tox *chaos.Toxic) {
	t.Helper()
	if tox.Toxicity == 0 {
		tox.Toxicity = 1
	}
	if tox.Stream == "" {
		tox.Stream = chaos.Downstream
	}
	if tox.Name == "" {
		tox.Name = tox.Type + "_" + tox.Stream
	}
	if err := p.AddToxic(tox); err != nil {
		t.Fatal(err)
	}
}

func dial(t testing.TB, addr string) net.Conn {
	t.Helper()
	c, err := net.DialTimeout("tcp", addr, 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

// roundTrip writes msg and reads it back, returning the time it took.
func roundTrip(t *testing.T, c net.Conn, msg string) time.Duration {
	t.Helper()
	start := time.Now()
	if _, err := c.Write([]byte(msg)); err != nil {
		t.Fatalf("write: %v", err)
	}
	_ = c.SetReadDeadline(time.Now().Add(10 * time.Second))
	buf := make([]byte, len(msg))
	if _, err := io.ReadFull(c, buf); err != nil {
		t.Fatalf("read: %v", err)
	}
	if string(buf) != msg {
		t.Fatalf("echo = %q, want %q", buf, msg)
	}
	return time.Since(start)
}
