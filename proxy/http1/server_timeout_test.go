package http1

import (
	"bytes"
	"io"
	"net"
	"net/http"
	"strings"
	"sync"
	"testing"
	"testing/synctest"
	"time"
)

// pipeConn serves one in-memory connection with s (inside a synctest
// bubble, so deadlines run on the bubble's clock) and returns the client's
// end.
func pipeConn(t *testing.T, s *Server) net.Conn {
	t.Helper()
	s.init()
	cli, srv := net.Pipe()
	c := s.newConn(srv, "")
	if !s.track(c) {
		t.Fatal("server closed")
	}
	s.wg.Add(1)
	go c.serve()
	t.Cleanup(func() { cli.Close() })
	return cli
}

// collect reads everything the server sends until it closes, on its own
// goroutine; wait returns it and when the connection closed.
func collect(c net.Conn) (wait func() (string, time.Time)) {
	var buf bytes.Buffer
	var at time.Time
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		io.Copy(&buf, c)
		at = time.Now()
	}()
	return func() (string, time.Time) { wg.Wait(); return buf.String(), at }
}

// TestServerTimeouts covers slowloris and its relatives on the bubble's
// clock: each case runs for minutes of fake time in microseconds.
func TestServerTimeouts(t *testing.T) {
	t.Run("head sent a byte at a time is cut at ReadHeaderTimeout", func(t *testing.T) {
		synctest.Test(t, func(t *testing.T) {
			cli := pipeConn(t, &Server{Handler: echo})
			start := time.Now()
			head := "GET / HTTP/1.1\r\nHost: x\r\nX-Slow: " + strings.Repeat("a", 1000)
			sent := 0
			for ; sent < len(head); sent++ {
				if _, err := cli.Write([]byte{head[sent]}); err != nil {
					break
				}
				time.Sleep(time.Second) // well within any per-read timeout
			}
			if got := time.Since(start); got < DefaultReadHeaderTimeout || got > DefaultReadHeaderTimeout+time.Second || sent >= len(head) {
				t.Fatalf("cut after %v and %d bytes, want at %v", got, sent, DefaultReadHeaderTimeout)
			}
		})
	})
	t.Run("a connection that sends nothing is cut at ReadHeaderTimeout", func(t *testing.T) {
		synctest.Test(t, func(t *testing.T) {
			cli := pipeConn(t, &Server{Handler: echo, ReadHeaderTimeout: 3 * time.Second})
			start := time.Now()
			wait := collect(cli)
			out, at := wait()
			if d := at.Sub(start); d != 3*time.Second || out != "" {
				t.Fatalf("closed after %v with %q, want after 3s with nothing", d, out)
			}
		})
	})
	t.Run("idle keep-alive connection is closed at IdleTimeout", func(t *testing.T) {
		synctest.Test(t, func(t *testing.T) {
			cli := pipeConn(t, &Server{Handler: echo})
			wait := collect(cli)
			io.WriteString(cli, "GET /a HTTP/1.1\r\nHost: x\r\n\r\n")
			synctest.Wait()
			answered := time.Now()
			out, at := wait()
			if !strings.HasSuffix(out, "GET /a ") {
				t.Fatalf("answer %q", out)
			}
			if d := at.Sub(answered); d != DefaultIdleTimeout {
				t.Fatalf("idle connection closed after %v, want %v", d, DefaultIdleTimeout)
			}
		})
	})
	t.Run("the header timeout starts with the next request's first byte", func(t *testing.T) {
		synctest.Test(t, func(t *testing.T) {
			cli := pipeConn(t, &Server{Handler: echo})
			wait := collect(cli)
			io.WriteString(cli, "GET /a HTTP/1.1\r\nHost: x\r\n\r\n")
			time.Sleep(100 * time.Second) // idle, but less than IdleTimeout
			io.WriteString(cli, "GET /b HTTP/1.1\r\n")
			time.Sleep(9 * time.Second) // the head's 10 s are not used up by the idle time
			io.WriteString(cli, "Host: x\r\nConnection: close\r\n\r\n")
			out, _ := wait()
			if !strings.HasSuffix(out, "GET /b ") {
				t.Fatalf("second request not answered: %q", out)
			}
		})
	})
	t.Run("body that stalls is cut at BodyReadTimeout", func(t *testing.T) {
		synctest.Test(t, func(t *testing.T) {
			cli := pipeConn(t, &Server{Handler: echo})
			wait := collect(cli)
			io.WriteString(cli, "POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\n")
			for range 5 { // slow but moving: 150 s in all, each wait under the timeout
				time.Sleep(30 * time.Second)
				io.WriteString(cli, "x")
			}
			stalled := time.Now()
			out, at := wait()
			if !strings.HasPrefix(out, "HTTP/1.1 400 ") || !strings.Contains(out, "timeout") {
				t.Fatalf("answer %q, want the handler's 400 for the timed-out body", out)
			}
			if d := at.Sub(stalled); d != DefaultBodyReadTimeout {
				t.Fatalf("cut %v after the body stalled, want %v", d, DefaultBodyReadTimeout)
			}
		})
	})
	t.Run("client that stops reading is cut at WriteTimeout", func(t *testing.T) {
		synctest.Test(t, func(t *testing.T) {
			done := make(chan struct{})
			cli := pipeConn(t, &Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				defer close(done)
				big := make([]byte, 64<<10)
				for {
					if _, err := w.Write(big); err != nil {
						return
					}
				}
			})})
			io.WriteString(cli, "GET / HTTP/1.1\r\nHost: x\r\n\r\n")
			start := time.Now()
			<-done // the handler's write fails: nobody reads
			if d := time.Since(start); d != DefaultWriteTimeout {
				t.Fatalf("write failed after %v, want %v", d, DefaultWriteTimeout)
			}
		})
	})
}
