package consulapi

import (
	"errors"
	"net/url"
	"testing"

	"github.com/bulwark-go/bulwark"
	"github.com/bulwark-go/bulwark/registry"
)

func TestDecodeRegistration(t *testing.T) {
	cases := []struct {
		name, body  string
		wantAddr    string
		wantID      string
		wantHealth  bulwark.Health
		wantErr     bool
		wantTagMeta string
	}{
		{name: "minimal", body: `{"Name":"web","Port":80,"Check":{"TTL":"10s"}}`, wantAddr: "http://10.1.1.1:80", wantID: "web", wantHealth: bulwark.HealthSuspect},
		{name: "passing", body: `{"ID":"w1","Name":"web","Address":"::1","Port":8080,"Tags":["a"],"Check":{"TTL":"1s","Status":"passing"}}`, wantAddr: "http://[::1]:8080", wantID: "w1", wantHealth: bulwark.HealthUp, wantTagMeta: `["a"]`},
		{name: "lowercase fields", body: `{"name":"web","port":81,"check":{"ttl":"2s"}}`, wantAddr: "http://10.1.1.1:81", wantID: "web", wantHealth: bulwark.HealthSuspect},
		{name: "checks list", body: `{"Name":"web","Checks":[{"TTL":"3s"}]}`, wantAddr: "http://10.1.1.1", wantID: "web", wantHealth: bulwark.HealthSuspect},
		{name: "no name", body: `{"Check":{"TTL":"1s"}}`, wantErr: true},
		{name: "tcp check", body: `{"Name":"a","Check":{"TCP":"x:1","Interval":"1s"}}`, wantErr: true},
		{name: "bad status", body: `{"Name":"a","Check":{"TTL":"1s","Status":"maybe"}}`, wantErr: true},
		{name: "port range", body: `{"Name":"a","Port":70000,"Check":{"TTL":"1s"}}`, wantErr: true},
		{name: "wrong type", body: `{"Name":3}`, wantErr: true},
		{name: "connect", body: `{"Name":"a","Connect":{"Native":true},"Check":{"TTL":"1s"}}`, wantErr: true},
		{name: "reserved meta", body: `{"Name":"a","Meta":{"consul.tags":"x"},"Check":{"TTL":"1s"}}`, wantErr: true},
		{name: "trailing", body: `{"Name":"a","Check":{"TTL":"1s"}} {}`, wantErr: true},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			req, h, err := decodeRegistration([]byte(tc.body), "10.1.1.1")
			if tc.wantErr {
				if err == nil || !errors.Is(err, registry.ErrInvalid) {
					t.Fatalf("err = %v, want an ErrInvalid", err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if req.Address != tc.wantAddr || req.ID != tc.wantID || h != tc.wantHealth || req.Metadata[metaTags] != tc.wantTagMeta {
				t.Fatalf("got %+v health %v", req, h)
			}
		})
	}
}

func TestBlocking(t *testing.T) {
	for q, want := range map[string]string{"": "0 0s", "index=5": "5 5m0s", "index=5&wait=10000ms": "5 10s",
		"index=5&wait=7": "5 7s", "index=1&wait=1h": "1 10m0s"} {
		v, _ := url.ParseQuery(q)
		i, w, err := blocking(v)
		if err != nil || fmtIW(i, w.String()) != want {
			t.Errorf("%q: %d %v %v, want %s", q, i, w, err, want)
		}
	}
	for _, q := range []string{"index=-1", "index=x", "index=1&wait=soon"} {
		v, _ := url.ParseQuery(q)
		if _, _, err := blocking(v); err == nil {
			t.Errorf("%q accepted", q)
		}
	}
}

func fmtIW(i uint64, w string) string { return string(rune('0'+i%10)) + " " + w }

// FuzzDecodeRegistration: any body gives a registration or an ErrInvalid,
// never a panic; an accepted one has a TTL and an address.
func FuzzDecodeRegistration(f *testing.F) {
	for _, s := range []string{`{"Name":"web","Port":80,"Check":{"TTL":"10s"}}`, `{"ID":"a","Name":"b","Checks":[{"TTL":"1s","Status":"passing"}],"Meta":{"k":"v"},"Tags":["x"]}`,
		`{"Name":"a","Check":{"HTTP":"http://x"}}`, `[]`, `null`, `{"Name":"a","Check":null,"Checks":[null]}`} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, body []byte) {
		req, _, err := decodeRegistration(body, "127.0.0.1")
		if err != nil {
			if !errors.Is(err, registry.ErrInvalid) {
				t.Fatalf("error %v does not wrap ErrInvalid", err)
			}
			return
		}
		if req.TTL <= 0 || req.Address == "" || req.Service == "" || req.ID == "" {
			t.Fatalf("accepted incomplete registration %+v", req)
		}
	})
}

// FuzzDecodeCheckUpdate: PUT /v1/agent/check/update bodies.
func FuzzDecodeCheckUpdate(f *testing.F) {
	f.Add([]byte(`{"Status":"passing","Output":"ok"}`))
	f.Add([]byte(`{"Status":"bad"}`))
	f.Fuzz(func(t *testing.T, body []byte) {
		st, err := decodeCheckUpdate(body)
		if err == nil && st != "passing" && st != "warning" && st != "critical" {
			t.Fatalf("accepted status %q", st)
		}
	})
}

// FuzzBlocking: blocking-query parameters.
func FuzzBlocking(f *testing.F) {
	f.Add("index=5&wait=10s")
	f.Add("index=&wait=-1s")
	f.Fuzz(func(t *testing.T, q string) {
		v, err := url.ParseQuery(q)
		if err != nil {
			return
		}
		if _, w, err := blocking(v); err == nil && (w < 0 || w > 600e9) {
			t.Fatalf("wait %v out of range", w)
		}
	})
}
