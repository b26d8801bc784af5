package proxy

import (
	"crypto/tls"
	"net/http"
	"net/http/httptest"
	"reflect"
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
