package proxy

import (
	"crypto/tls"
	"net/http"
	"net/http/httptest"
	"reflect"
	"strings"
	"testing"
)

func TestRemoveHopHeaders(t *testing.T) {
	tests := []struct {
		name    string
		in      http.Header
		request bool
		want    http.Header
	}{
		{
			name: "standard and listed",
			in: http.Header{"Connection": {"close, X-Private"}, "X-Private": {"1"}, "Keep-Alive": {"5"},
				"Transfer-Encoding": {"chunked"}, "Upgrade": {"h2c"}, "X-Keep": {"yes"}},
			want: http.Header{"X-Keep": {"yes"}},
		},
		{
			name:    "te trailers kept on requests",
			in:      http.Header{"Te": {"gzip, trailers"}, "Content-Type": {"application/grpc"}},
			request: true,
			want:    http.Header{"Te": {"trailers"}, "Content-Type": {"application/grpc"}},
		},
		{
			name: "te dropped on responses",
			in:   http.Header{"Te": {"trailers"}},
			want: http.Header{},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			removeHopHeaders(tt.in, tt.request)
			if !reflect.DeepEqual(tt.in, tt.want) {
				t.Fatalf("got %v, want %v", tt.in, tt.want)
			}
		})
	}
}

func TestAddForwarded(t *testing.T) {
	tests := []struct {
		name      string
		remote    string
		host      string
		tls       bool
		prior     http.Header
		wantXFF   string
		wantFwd   string
		wantProto string
	}{
		{name: "ipv4", remote: "10.1.2.3:5555", host: "api.example", wantXFF: "10.1.2.3", wantFwd: "for=10.1.2.3;host=api.example;proto=http", wantProto: "http"},
		{name: "ipv6 tls", remote: "[2001:db8::1]:443", host: "h:8443", tls: true, wantXFF: "2001:db8::1", wantFwd: `for="[2001:db8::1]";host="h:8443";proto=https`, wantProto: "https"},
		{name: "appends", remote: "127.0.0.1:1", host: "h", prior: http.Header{"X-Forwarded-For": {"1.1.1.1"}, "Forwarded": {"for=1.1.1.1"}},
			wantXFF: "1.1.1.1, 127.0.0.1", wantFwd: "for=1.1.1.1, for=127.0.0.1;host=h;proto=http", wantProto: "http"},
		{name: "unparsable peer", remote: "@", host: "h", wantXFF: "", wantFwd: "for=unknown;host=h;proto=http", wantProto: "http"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := httptest.NewRequest("GET", "http://"+tt.host+"/", nil)
			r.RemoteAddr, r.Host = tt.remote, tt.host
			if tt.tls {
				r.TLS = &tls.ConnectionState{}
			}
			out := http.Header{}
			for k, v := range tt.prior {
				out[k] = v
			}
			addForwarded(out, r)
			if got := out.Get("X-Forwarded-For"); got != tt.wantXFF {
				t.Errorf("X-Forwarded-For = %q, want %q", got, tt.wantXFF)
			}
			if got := out.Get("Forwarded"); got != tt.wantFwd {
				t.Errorf("Forwarded = %q, want %q", got, tt.wantFwd)
			}
			if got := out.Get("X-Forwarded-Proto"); got != tt.wantProto {
				t.Errorf("X-Forwarded-Proto = %q, want %q", got, tt.wantProto)
			}
		})
	}
}

func FuzzHeaders(f *testing.F) {
	f.Add("close, X-A", "trailers", "websocket", "1.2.3.4:5", "host")
	f.Add(",,,", "", "", "[::1]:80", "a\"b")
	f.Fuzz(func(t *testing.T, conn, te, upgrade, remote, host string) {
		h := http.Header{"Connection": {conn}, "Te": {te}, "Upgrade": {upgrade}, "X-A": {"1"}}
		isUpgrade(h)
		removeHopHeaders(h, true)
		for _, k := range hopHeaders {
			if k == "Te" {
				continue
			}
			if _, ok := h[k]; ok {
				t.Fatalf("hop header %s survived", k)
			}
		}
		r := &http.Request{RemoteAddr: remote, Host: host, Header: http.Header{}}
		out := http.Header{}
		addForwarded(out, r)
		if out.Get("Forwarded") == "" {
			t.Fatal("no Forwarded header")
		}
	})
}

// fastForwardHeader is what the fast path sends for in: the client's
// fields minus skipForward's, then appendForwarded's lines.
func fastForwardHeader(t *testing.T, in *http.Request) http.Header {
	t.Helper()
	got := http.Header{}
	for k, vs := range in.Header {
		if !skipForward(in.Header, k) {
			got[k] = append(got[k], vs...)
		}
	}
	extra := string(appendForwarded(nil, in))
	for line := range strings.SplitSeq(strings.TrimSuffix(extra, "\r\n"), "\r\n") {
		k, v, ok := strings.Cut(line, ": ")
		if !ok {
			t.Fatalf("appendForwarded wrote %q: not a field line", line)
		}
		got[k] = append(got[k], v)
	}
	return got
}

// slowForwardHeader is what outgoing (the net/http engine's path) sends
// for in, as the fields net/http's Transport writes.
func slowForwardHeader(in *http.Request) http.Header {
	out := in.Header.Clone()
	removeHopHeaders(out, true)
	addForwarded(out, in)
	for k, vs := range out {
		if len(vs) == 0 {
			delete(out, k)
		}
	}
	return out
}

// TestForwardFastPath checks that the fast path (the client's header
// written as it is with skipForward, plus appendForwarded) forwards
// exactly the fields the net/http path (Clone, removeHopHeaders,
// addForwarded) does.
func TestForwardFastPath(t *testing.T) {
	tests := []struct {
		name   string
		remote string
		host   string
		tls    bool
		header http.Header
	}{
		{name: "plain", remote: "127.0.0.1:4000", host: "example.com", header: http.Header{"Accept": {"*/*"}, "User-Agent": {"wrk"}}},
		{name: "hop-by-hop", remote: "10.0.0.1:1", host: "h", header: http.Header{
			"Connection": {"keep-alive, X-Secret"}, "X-Secret": {"s"}, "Keep-Alive": {"timeout=5"},
			"Proxy-Authorization": {"Basic x"}, "Upgrade": {"h2c"}, "Te": {"gzip"}, "Trailer": {"X"}, "X-Kept": {"k"}}},
		{name: "te trailers kept", remote: "10.0.0.1:1", host: "h", header: http.Header{"Te": {"trailers, deflate"}, "Connection": {"TE"}}},
		{name: "prior forwarding", remote: "[::1]:80", host: "h:8080", tls: true, header: http.Header{
			"X-Forwarded-For": {"1.1.1.1", "2.2.2.2"}, "Forwarded": {"for=1.1.1.1", "for=2.2.2.2"},
			"X-Forwarded-Host": {"orig"}, "X-Forwarded-Proto": {"https"}}},
		{name: "connection names forwarding fields", remote: "1.2.3.4:5", host: "h", header: http.Header{
			"Connection":      {"x-forwarded-for,  Forwarded ,X-Forwarded-Host", "x-forwarded-proto"},
			"X-Forwarded-For": {"9.9.9.9"}, "Forwarded": {"for=9.9.9.9"}, "X-Forwarded-Host": {"o"}, "X-Forwarded-Proto": {"ftp"}}},
		{name: "quoted host, no peer", remote: "@", host: `a"b c`, header: http.Header{}},
		{name: "no host", remote: "127.0.0.1:1", host: "", header: http.Header{"X-A": {"1", "2"}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			in := &http.Request{Method: "GET", RemoteAddr: tt.remote, Host: tt.host, Header: tt.header}
			if tt.tls {
				in.TLS = &tls.ConnectionState{}
			}
			want := slowForwardHeader(in)
			got := fastForwardHeader(t, in)
			if !reflect.DeepEqual(got, want) {
				t.Errorf("fast path forwards\n%v\nnet/http path\n%v", got, want)
			}
		})
	}
}

// FuzzForwardFastPath is TestForwardFastPath on arbitrary values of the
// fields that steer forwarding.
func FuzzForwardFastPath(f *testing.F) {
	f.Add("close, X-A", "trailers", "1.1.1.1", "for=x", "h", "1.2.3.4:5", false)
	f.Add("x-forwarded-for", "", "", "", "a\"b", "[::1]:80", true)
	f.Fuzz(func(t *testing.T, conn, te, xff, fwd, host, remote string, secure bool) {
		in := &http.Request{Method: "GET", RemoteAddr: remote, Host: host, Header: http.Header{
			"Connection": {conn}, "Te": {te}, "X-Forwarded-For": {xff}, "Forwarded": {fwd}, "X-A": {"1"}}}
		if secure {
			in.TLS = &tls.ConnectionState{}
		}
		for _, s := range []string{conn, te, xff, fwd, host} {
			if strings.ContainsAny(s, "\r\n") {
				return // a server never hands such a value over
			}
		}
		want := slowForwardHeader(in)
		got := fastForwardHeader(t, in)
		if !reflect.DeepEqual(got, want) {
			t.Errorf("fast path forwards\n%v\nnet/http path\n%v", got, want)
		}
	})
}
