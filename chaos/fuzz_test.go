package chaos_test

import (
	"encoding/json"
	"errors"
	"testing"

	"github.com/bulwark-go/bulwark/chaos"
)

// FuzzToxicJSON fuzzes the API's toxic parser: it must never panic, every
// rejection wraps ErrInvalidToxic, and whatever it accepts is valid and
// survives a JSON round trip unchanged.
func FuzzToxicJSON(f *testing.F) {
	for _, s := range []string{
		`{"name":"l","type":"latency","stream":"upstream","toxicity":0.5,"attributes":{"latency":100,"jitter":10}}`,
		`{"type":"bandwidth","attributes":{"rate":100}}`,
		`{"type":"slicer","attributes":{"average_size":10,"size_variation":5,"delay":100}}`,
		`{"type":"http_header","attributes":{"header":"X","value":"y"}}`,
		`{"type":"http_abort","attributes":{"status":503}}`,
		`{"type":"timeout","attributes":null}`,
		`{"type":"latency","attributes":{"latncy":1}}`,
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		var tox chaos.Toxic
		if err := json.Unmarshal(data, &tox); err != nil {
			var se *json.SyntaxError
			if !errors.Is(err, chaos.ErrInvalidToxic) && !errors.As(err, &se) {
				t.Fatalf("rejection %v does not wrap ErrInvalidToxic", err)
			}
			return
		}
		if err := tox.Validate(); err != nil {
			t.Fatalf("accepted an invalid toxic: %v", err)
		}
		b, err := json.Marshal(&tox)
		if err != nil {
			t.Fatal(err)
		}
		var back chaos.Toxic
		if err := json.Unmarshal(b, &back); err != nil {
			t.Fatalf("round trip of %s: %v", b, err)
		}
		b2, _ := json.Marshal(&back)
		if string(b) != string(b2) {
			t.Fatalf("round trip changed %s to %s", b, b2)
		}
	})
}

// FuzzParseProxies fuzzes the proxies config parser: no panics, and every
// accepted proxy is valid and uniquely named.
func FuzzParseProxies(f *testing.F) {
	f.Add([]byte(`[{"name":"db","listen":"127.0.0.1:0","upstream":"127.0.0.1:5432"}]`))
	f.Add([]byte(`[{"name":"web","upstream":"http://127.0.0.1:80","protocol":"http","enabled":false}]`))
	f.Add([]byte(`[{"name":"a","upstream":"x"},{"name":"a","upstream":"y"}]`))
	f.Fuzz(func(t *testing.T, data []byte) {
		ps, err := chaos.ParseProxies(data)
		if err != nil {
			return
		}
		seen := map[string]bool{}
		for _, p := range ps {
			if err := p.Validate(); err != nil || seen[p.Name] {
				t.Fatalf("accepted %+v: %v", p, err)
			}
			seen[p.Name] = true
		}
	})
}

func TestParseProxies(t *testing.T) {
	ps, err := chaos.ParseProxies([]byte(`[{"name":"db","upstream":"127.0.0.1:5432"},
		{"name":"web","listen":"127.0.0.1:0","upstream":"http://127.0.0.1:80","protocol":"http","enabled":false}]`))
	if err != nil || len(ps) != 2 || !ps[0].Enabled || ps[1].Enabled || ps[1].Protocol != chaos.ProtocolHTTP {
		t.Fatalf("ParseProxies = %+v, %v", ps, err)
	}
	for _, bad := range []string{`{}`, `[{"name":"x"}]`, `[{"name":"a","upstream":"b"},{"name":"a","upstream":"c"}]`,
		`[{"name":"w","upstream":"ftp://x","protocol":"http"}]`} {
		if _, err := chaos.ParseProxies([]byte(bad)); !errors.Is(err, chaos.ErrInvalidProxy) && !errors.Is(err, chaos.ErrProxyExists) {
			t.Errorf("ParseProxies(%s) = %v", bad, err)
		}
	}
}
