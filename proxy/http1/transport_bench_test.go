package http1

import (
	"bufio"
	"bytes"
	"context"
	"io"
	"net/http"
	"net/http/httptest"
	"strconv"
	"testing"
)

// BenchmarkTransport prices one keep-alive round trip (GET, 100-byte body
// with a Content-Digest-sized header set) through this Transport and
// through net/http's, to the same loopback server. Run it inside
// `unshare -n sh -c 'ip link set lo up; go test -bench Transport -benchmem ./proxy/http1/'`
// (the shared hosts' lo is sometimes shaped). Allocations include the
// request's own (http.NewRequest is outside the loop; a per-try context
// like the gateway's is inside).
func BenchmarkTransport(b *testing.B) {
	body := bytes.Repeat([]byte("x"), 100)
	s := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		h := w.Header()
		h["Content-Digest"] = []string{"sha-256=:RK/0qy18MlBSVnWgjwz6lZEWjP/lF5HF9bvEF8FabDg=:"}
		h["Content-Type"] = []string{"text/plain"}
		h["Content-Length"] = []string{strconv.Itoa(len(body))}
		w.Write(body)
	}))
	b.Cleanup(s.Close)
	for _, tc := range []struct {
		name string
		rt   http.RoundTripper
	}{
		{"http1", &Transport{}},
		{"net-http", &http.Transport{DisableCompression: true}},
	} {
		b.Run(tc.name, func(b *testing.B) {
			req, _ := http.NewRequest(http.MethodGet, s.URL+"/read", nil)
			req.Header["User-Agent"] = []string{""}
			buf := make([]byte, 512)
			b.ReportAllocs()
			for b.Loop() {
				ctx, cancel := context.WithCancel(context.Background())
				resp, err := tc.rt.RoundTrip(req.WithContext(ctx))
				if err != nil {
					b.Fatal(err)
				}
				for {
					if _, err := resp.Body.Read(buf); err != nil {
						break
					}
				}
				resp.Body.Close()
				cancel()
			}
			if c, ok := tc.rt.(interface{ CloseIdleConnections() }); ok {
				c.CloseIdleConnections()
			}
		})
	}
}

// BenchmarkReadResponse prices the strict response-head parser alone
// against http.ReadResponse, on a typical upstream answer.
func BenchmarkReadResponse(b *testing.B) {
	msg := []byte("HTTP/1.1 200 OK\r\nContent-Digest: sha-256=:RK/0qy18MlBSVnWgjwz6lZEWjP/lF5HF9bvEF8FabDg=:\r\n" +
		"Content-Length: 100\r\nContent-Type: text/plain\r\nDate: Thu, 03 Dec 2026 18:00:00 GMT\r\n\r\n" + string(bytes.Repeat([]byte("x"), 100)))
	rd := bytes.NewReader(msg)
	br := bufio.NewReader(rd)
	req, _ := http.NewRequest(http.MethodGet, "http://a/", nil)
	b.Run("http1", func(b *testing.B) {
		var raw []byte
		b.ReportAllocs()
		for b.Loop() {
			rd.Reset(msg)
			br.Reset(rd)
			resp, err := readResponse(br, http.MethodGet, 4096, &raw)
			if err != nil {
				b.Fatal(err)
			}
			io.Copy(io.Discard, &resp.body)
		}
	})
	b.Run("net-http", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			rd.Reset(msg)
			br.Reset(rd)
			resp, err := http.ReadResponse(br, req)
			if err != nil {
				b.Fatal(err)
			}
			io.Copy(io.Discard, resp.Body)
		}
	})
}
