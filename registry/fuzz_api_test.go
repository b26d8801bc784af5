package registry

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"
	"time"
)

// FuzzAPI sends arbitrary methods, paths, query parameters, bodies and
// tokens through a real single-node registry's HTTP handler. Whatever
// arrives, the answer is a 2xx, a 4xx or a 503 (never a panic or a 500),
// and the API's own errors are JSON naming the problem.
func FuzzAPI(f *testing.F) {
	seeds := []struct {
		method      uint8
		path, query string
		body        string
		token       uint8
	}{
		{0, "/v1/instances", "", `{"service":"a","id":"1","address":"h:1","ttl":"2s"}`, 1},
		{0, "/v1/instances", "", `{"service":"a","id":"1","address":"h:1","metadata":{"k":"v"},"health_url":"http://h/h"}`, 1},
		{0, "/v1/instances", "", `{"service":"a b"}`, 1},
		{0, "/v1/instances", "", `{"service":"a","id":"1","address":"h:1"}`, 0},
		{0, "/v1/instances", "", `{"service":"a","id":"1","address":"h:1"}`, 2},
		{0, "/v1/instances/a/1/renew", "", ``, 1},
		{1, "/v1/instances/a/1", "", ``, 1},
		{2, "/v1/join", "", `{"id":"x","raft_addr":"127.0.0.1:1","http_addr":"127.0.0.1:2"}`, 2},
		{3, "/v1/services/a", "index=3&wait=1s", ``, 0},
		{3, "/v1/services/a", "consistent", ``, 0},
		{3, "/v1/services/a", "consistent=maybe&min_index=2", ``, 0},
		{3, "/v1/services", "consistent=true", ``, 0},
		{3, "/v1/watch/a", "", ``, 0},
		{3, "/v1/status", "", ``, 0},
		{2, "/v1/nope", "x=%zz", `{`, 1},
		{2, "/v1/renew", "", `{"instances":[{"service":"a","id":"1"},{"service":"a","id":"2"}]}`, 1},
		{2, "/v1/renew", "", `{"instances":[{"service":"a","id":"\u0031"}]}`, 1},
		{2, "/v1/register", "", `{"instances":[{"service":"a","id":"1","address":"h:1","ttl":"2s"},{"service":"b","id":"1","address":"h:2"}]}`, 1},
		{2, "/v1/register", "", `{"instances":[{"service":"a","id":"1","address":"h:1"},{"service":"a","id":"1","address":"h:1"}]}`, 1},
	}
	for _, s := range seeds {
		f.Add(s.method, s.path, s.query, []byte(s.body), s.token)
	}
	tc := newCluster(f, 1, func(_ int, c *Config) { c.Token = "s3cret"; c.Logger = nil })
	h := tc.nodes[0].Handler()
	methods := []string{http.MethodPut, http.MethodDelete, http.MethodPost, http.MethodGet, http.MethodHead, http.MethodPatch}
	tokens := []string{"", "Bearer s3cret", "Bearer wrong"}
	f.Fuzz(func(t *testing.T, method uint8, path, query string, body []byte, token uint8) {
		if !strings.HasPrefix(path, "/") {
			path = "/" + path
		}
		u := &url.URL{Path: path, RawQuery: query}
		// Blocking queries and watches hold the request: bound them.
		ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
		defer cancel()
		req, err := http.NewRequestWithContext(ctx, methods[int(method)%len(methods)], "http://registry"+u.RequestURI(), bytes.NewReader(body))
		if err != nil {
			return // not a request a client could send
		}
		if a := tokens[int(token)%len(tokens)]; a != "" {
			req.Header.Set("Authorization", a)
		}
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, req)
		code := rec.Code
		if code >= 500 && code != http.StatusServiceUnavailable {
			t.Fatalf("%s %s: %d %s", req.Method, u.RequestURI(), code, rec.Body.String())
		}
		if code >= 400 && strings.HasPrefix(rec.Header().Get("Content-Type"), "application/json") {
			var e errorResponse
			if err := json.NewDecoder(io.LimitReader(rec.Body, 1<<20)).Decode(&e); err != nil || e.Error == "" {
				t.Fatalf("%s %s: %d with an error body that is not {\"error\": ...}: %q", req.Method, u.RequestURI(), code, rec.Body.String())
			}
		}
	})
}
