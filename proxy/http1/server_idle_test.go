package http1

import (
	"bufio"
	"context"
	"io"
	"runtime"
	"strings"
	"testing"
	"time"
)

// These tests use real sockets: parking waits in the runtime's network
// poller, which testing/synctest's bubbles do not fake. They wait for
// states with deadlines; no sleep is an assertion.

// waitParked waits until s holds n parked connections and active ones.
func waitParked(t *testing.T, s *Server, parked, active int) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		s.mu.Lock()
		p, a := len(s.parked), len(s.conns)
		s.mu.Unlock()
		if p == parked && a == active {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d parked and %d active connections, want %d and %d", p, a, parked, active)
		}
		time.Sleep(time.Millisecond)
	}
}

// waitNoServeGoroutines waits until no goroutine of the server's is left.
func waitNoServeGoroutines(t *testing.T) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		buf := make([]byte, 1<<20)
		stacks := string(buf[:runtime.Stack(buf, true)])
		if !strings.Contains(stacks, "(*parkedConn).wait") && !strings.Contains(stacks, "(*srvConn).serve") {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("server goroutines left after Shutdown:\n%s", stacks)
		}
		time.Sleep(time.Millisecond)
	}
}

func TestServerParksIdleConnections(t *testing.T) {
	s := &Server{parkDelay: time.Millisecond}
	addr := startServer(t, s, echo)
	c, br := dial(t, addr)
	for i, path := range []string{"/a", "/b", "/c"} {
		io.WriteString(c, "GET "+path+" HTTP/1.1\r\nHost: x\r\n\r\n")
		if _, body := readResp(t, br, "GET"); body != "GET "+path+" " {
			t.Fatalf("request %d: %q", i, body)
		}
		waitParked(t, s, 1, 0) // each answer's connection parks, and the next request wakes it
	}
	// A request sent in parts after parking: the head deadline starts at
	// its first byte, the rest follows on the resumed connection.
	io.WriteString(c, "GET /d HTTP/1.1\r\n")
	waitParked(t, s, 0, 1)
	io.WriteString(c, "Host: x\r\n\r\n")
	if _, body := readResp(t, br, "GET"); body != "GET /d " {
		t.Fatalf("split request: %q", body)
	}
}

func TestServerParkedPipelining(t *testing.T) {
	s := &Server{parkDelay: time.Millisecond}
	addr := startServer(t, s, echo)
	c, br := dial(t, addr)
	io.WriteString(c, "GET /1 HTTP/1.1\r\nHost: x\r\n\r\nGET /2 HTTP/1.1\r\nHost: x\r\n\r\nGET /3 HTTP/1.1\r\nHost: x\r\n\r\n")
	for _, want := range []string{"GET /1 ", "GET /2 ", "GET /3 "} {
		if _, body := readResp(t, br, "GET"); body != want {
			t.Fatalf("pipelined answer %q, want %q", body, want)
		}
	}
	waitParked(t, s, 1, 0)
}

func TestServerParkedIdleTimeout(t *testing.T) {
	s := &Server{parkDelay: time.Millisecond, IdleTimeout: 300 * time.Millisecond}
	addr := startServer(t, s, echo)
	c, br := dial(t, addr)
	io.WriteString(c, "GET / HTTP/1.1\r\nHost: x\r\n\r\n")
	readResp(t, br, "GET")
	waitParked(t, s, 1, 0)
	expectClosed(t, br) // dial's 20 s deadline would fail this if the idle timeout did not hold
	waitParked(t, s, 0, 0)
}

func TestServerParkedPeerClose(t *testing.T) {
	s := &Server{parkDelay: time.Millisecond}
	addr := startServer(t, s, echo)
	c, br := dial(t, addr)
	io.WriteString(c, "GET / HTTP/1.1\r\nHost: x\r\n\r\n")
	readResp(t, br, "GET")
	waitParked(t, s, 1, 0)
	c.Close()
	waitParked(t, s, 0, 0) // noticed at once, not at the 120 s idle timeout
}

func TestServerShutdownClosesParked(t *testing.T) {
	s := &Server{parkDelay: time.Millisecond}
	addr := startServer(t, s, echo)
	var brs []*bufio.Reader
	for range 3 {
		c, br := dial(t, addr)
		io.WriteString(c, "GET / HTTP/1.1\r\nHost: x\r\n\r\n")
		readResp(t, br, "GET")
		brs = append(brs, br)
	}
	waitParked(t, s, 3, 0)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := s.Shutdown(ctx); err != nil {
		t.Fatalf("Shutdown: %v", err)
	}
	for _, br := range brs {
		expectClosed(t, br)
	}
	waitParked(t, s, 0, 0)
	waitNoServeGoroutines(t)
}
