package resilienthttp

import (
	"crypto/sha256"
	"crypto/sha512"
	"encoding/base64"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
)

func sumHeader(alg string, body string) string {
	var sum []byte
	if alg == "sha-512" {
		s := sha512.Sum512([]byte(body))
		sum = s[:]
	} else {
		s := sha256.Sum256([]byte(body))
		sum = s[:]
	}
	return alg + "=:" + base64.StdEncoding.EncodeToString(sum) + ":"
}

func TestContentDigest(t *testing.T) {
	hello := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/plain")
		io.WriteString(w, "hello, ")
		io.WriteString(w, "world")
	})
	tests := []struct {
		name    string
		method  string
		want    string // Want-Content-Digest
		handler http.Handler
		digest  string // expected Content-Digest ("" = none)
		body    string
		status  int
	}{
		{name: "default sha-256", handler: hello, digest: sumHeader("sha-256", "hello, world"), body: "hello, world"},
		{name: "wants sha-512", want: "sha-512=5, sha-256=1", handler: hello, digest: sumHeader("sha-512", "hello, world"), body: "hello, world"},
		{name: "wants sha-256 over sha-512", want: "sha-512=2, sha-256=9", handler: hello, digest: sumHeader("sha-256", "hello, world"), body: "hello, world"},
		{name: "unknown algorithm only", want: "md5=10", handler: hello, digest: sumHeader("sha-256", "hello, world"), body: "hello, world"},
		{name: "malformed want ignored", want: "((", handler: hello, digest: sumHeader("sha-256", "hello, world"), body: "hello, world"},
		{name: "sha-512 refused", want: "sha-512=0", handler: hello, digest: sumHeader("sha-256", "hello, world"), body: "hello, world"},
		{name: "empty body", handler: http.HandlerFunc(func(http.ResponseWriter, *http.Request) {}), digest: sumHeader("sha-256", "")},
		{name: "error status", handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			http.Error(w, "nope", http.StatusServiceUnavailable)
		}), digest: sumHeader("sha-256", "nope\n"), body: "nope\n", status: 503},
		{name: "handler's own digest kept", handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("Content-Digest", "sha-256=:AAAA:")
			io.WriteString(w, "x")
		}), digest: "sha-256=:AAAA:", body: "x"},
		{name: "204 has none", handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			w.WriteHeader(http.StatusNoContent)
		}), status: 204},
		{name: "HEAD has none", method: http.MethodHead, handler: hello},
		{name: "streaming has none", handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			io.WriteString(w, "part 1;")
			w.(http.Flusher).Flush()
			io.WriteString(w, "part 2")
		}), body: "part 1;part 2"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			srv := httptest.NewServer(ContentDigest(tt.handler))
			defer srv.Close()
			method := tt.method
			if method == "" {
				method = http.MethodGet
			}
			req, _ := http.NewRequest(method, srv.URL, nil)
			if tt.want != "" {
				req.Header.Set("Want-Content-Digest", tt.want)
			}
			resp, err := srv.Client().Do(req)
			if err != nil {
				t.Fatal(err)
			}
			defer resp.Body.Close()
			body, _ := io.ReadAll(resp.Body)
			if got := resp.Header.Get("Content-Digest"); got != tt.digest {
				t.Errorf("Content-Digest = %q, want %q", got, tt.digest)
			}
			if string(body) != tt.body {
				t.Errorf("body = %q, want %q", body, tt.body)
			}
			status := tt.status
			if status == 0 {
				status = 200
			}
			if resp.StatusCode != status {
				t.Errorf("status = %d, want %d", resp.StatusCode, status)
			}
			if tt.digest != "" && resp.ContentLength != int64(len(tt.body)) {
				t.Errorf("Content-Length = %d, want %d", resp.ContentLength, len(tt.body))
			}
		})
	}
}

func TestParseSFDictionary(t *testing.T) {
	tests := []struct {
		in      string
		wantErr bool
		check   func([]sfMember) bool
	}{
		{in: `sha-256=10, sha-512=3`, check: func(m []sfMember) bool {
			return len(m) == 2 && m[0].item.num == 10 && m[1].key == "sha-512"
		}},
		{in: `sig1=("@status" "content-digest");created=1618884473;keyid="test-key"`, check: func(m []sfMember) bool {
			return len(m) == 1 && m[0].isList && len(m[0].list) == 2 && m[0].params[0].val.num == 1618884473 && m[0].params[1].val.str == "test-key"
		}},
		{in: `a=:aGVsbG8=:, b, c=?0, d=tok/en, e="q\"s"`, check: func(m []sfMember) bool {
			return string(m[0].item.bytes) == "hello" && m[1].item.bool && !m[2].item.bool && m[3].item.str == "tok/en" && m[4].item.str == `q"s`
		}},
		{in: `a=1, a=2`, check: func(m []sfMember) bool { return len(m) == 1 && m[0].item.num == 2 }},
		{in: `a=()`, check: func(m []sfMember) bool { return m[0].isList && len(m[0].list) == 0 }},
		{in: `A=1`, wantErr: true},
		{in: `a=1,`, wantErr: true},
		{in: `a=1.5`, wantErr: true},
		{in: `a=("x"`, wantErr: true},
		{in: `a=:not base64!:`, wantErr: true},
		{in: `a="unterminated`, wantErr: true},
		{in: `a=1234567890123456`, wantErr: true},
		{in: `a=?2`, wantErr: true},
		{in: "a=\"\x01\"", wantErr: true},
	}
	for _, tt := range tests {
		m, err := parseSFDictionary(tt.in)
		if (err != nil) != tt.wantErr {
			t.Errorf("%q: err = %v, wantErr %v", tt.in, err, tt.wantErr)
			continue
		}
		if err == nil && !tt.check(m) {
			t.Errorf("%q: parsed to %+v", tt.in, m)
		}
	}
}

func FuzzParseSFDictionary(f *testing.F) {
	for _, s := range []string{
		`sha-256=10, sha-512=3`,
		`sig1=("@status" "content-digest");created=1618884473;keyid="k";alg="ed25519"`,
		`a=:aGVsbG8=:, b, c=?0, d=tok/en, e="q\"s"`,
		`a=(1 2;x=y "s");p`,
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		members, err := parseSFDictionary(s)
		if err != nil {
			return
		}
		// An inner list serializes to a form that parses back to the same items.
		for _, m := range members {
			if !m.isList {
				continue
			}
			var b strings.Builder
			serializeInnerList(&b, m.list, m.params)
			again, err := parseSFDictionary("k=" + b.String())
			if err != nil {
				t.Fatalf("%q: serialized inner list %q does not parse: %v", s, b.String(), err)
			}
			if len(again[0].list) != len(m.list) || len(again[0].params) != len(m.params) {
				t.Fatalf("%q: round trip changed the list: %q", s, b.String())
			}
		}
	})
}
