package dashboard

import (
	"encoding/json"
	"testing"
)

// FuzzControlBody feeds arbitrary bodies to the two POST endpoints that
// parse JSON: each must answer 200 (and then have applied a valid value)
// or 400, never anything else.
func FuzzControlBody(f *testing.F) {
	for _, s := range []string{`{"fault":"slow"}`, `{"fault":"ok"}`, `{"on":true}`, `{"on":false}`, `{}`, `null`,
		`{"fault":null}`, `{"fault":"slow","on":true}`, `[`, `{"fault":"\u0000"}`, `{"on":1}`, ``} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, body string) {
		fs := newFakeSystem()
		d, err := New(Config{Source: fs, Controls: fs})
		if err != nil {
			t.Fatal(err)
		}
		defer d.Close()
		h := d.Handler()
		rec := do(t, h, "POST", "/api/instances/api-1/fault", body)
		switch rec.Code {
		case 200:
			var v struct{ Fault string }
			if json.Unmarshal([]byte(body), &v) != nil {
				t.Fatalf("accepted fault body %q that is not JSON", body)
			}
			if _, err := ParseFault(v.Fault); err != nil {
				t.Fatalf("accepted fault body %q: %v", body, err)
			}
		case 400:
		default:
			t.Fatalf("fault body %q: status %d", body, rec.Code)
		}
		rec = do(t, h, "POST", "/api/traffic", body)
		if rec.Code != 200 && rec.Code != 400 {
			t.Fatalf("traffic body %q: status %d", body, rec.Code)
		}
	})
}
