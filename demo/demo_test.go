package demo

import (
	"bytes"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"testing/synctest"
	"time"
)

func get(t *testing.T, h http.Handler, target string) *httptest.ResponseRecorder {
	t.Helper()
	w := httptest.NewRecorder()
	h.ServeHTTP(w, httptest.NewRequest("GET", target, nil))
	return w
}

func setFault(t *testing.T, h http.Handler, body string) int {
	t.Helper()
	w := httptest.NewRecorder()
	h.ServeHTTP(w, httptest.NewRequest("POST", "/_demo/fault", strings.NewReader(body)))
	return w.Code
}

func TestReadCarriesDigest(t *testing.T) {
	h := New("r1", 1).Handler()
	w := get(t, h, "/read?size=50")
	if w.Code != 200 || !bytes.Equal(w.Body.Bytes(), Body(50)) || w.Header().Get("X-Replica") != "r1" {
		t.Fatalf("got %d %q %v", w.Code, w.Body.String(), w.Header())
	}
	if !strings.HasPrefix(w.Header().Get("Content-Digest"), "sha-256=:") {
		t.Fatalf("no digest: %v", w.Header())
	}
	if w := get(t, h, "/read?size=-1"); w.Code != 400 {
		t.Fatalf("bad size: %d", w.Code)
	}
}

func TestFaultModes(t *testing.T) {
	tests := []struct {
		fault      string
		wantCode   int
		wantBroken bool // body differs from Body(100)
	}{
		{`{"mode":"ok"}`, 200, false},
		{`{"mode":"fail"}`, 500, false},
		{`{"mode":"corrupt"}`, 200, true},
	}
	for _, tt := range tests {
		t.Run(tt.fault, func(t *testing.T) {
			h := New("r", 1).Handler()
			if c := setFault(t, h, tt.fault); c != 200 {
				t.Fatalf("set fault: %d", c)
			}
			w := get(t, h, "/read")
			if w.Code != tt.wantCode {
				t.Fatalf("code %d, want %d", w.Code, tt.wantCode)
			}
			if tt.wantCode == 200 && bytes.Equal(w.Body.Bytes(), Body(100)) == tt.wantBroken {
				t.Fatalf("body broken = %v, want %v", !tt.wantBroken, tt.wantBroken)
			}
		})
	}
}

// The digest tells a corrupting replica from a good one, but not a lying
// one: its digest is valid for its wrong data.
func TestDigestCatchesCorruptionNotLies(t *testing.T) {
	for _, tt := range []struct {
		mode        string
		digestValid bool
	}{{"ok", true}, {"corrupt", false}, {"lie", true}} {
		h := New("r", 1).Handler()
		if c := setFault(t, h, `{"mode":"`+tt.mode+`"}`); c != 200 {
			t.Fatalf("set fault: %d", c)
		}
		w := get(t, h, "/read?size=64")
		sum := sha256.Sum256(w.Body.Bytes())
		valid := w.Header().Get("Content-Digest") == "sha-256=:"+base64.StdEncoding.EncodeToString(sum[:])+":"
		if valid != tt.digestValid {
			t.Errorf("%s: digest valid = %v, want %v", tt.mode, valid, tt.digestValid)
		}
		if tt.mode == "lie" && !bytes.Equal(w.Body.Bytes(), LieBody(64)) {
			t.Errorf("lie: body %q, want LieBody", w.Body.String())
		}
	}
	if bytes.Equal(Body(64), LieBody(64)) {
		t.Fatal("the lie equals the truth")
	}
}

func TestFaultValidation(t *testing.T) {
	h := New("r", 1).Handler()
	for _, bad := range []string{`{"mode":"explode"}`, `{"mode":"fail","rate":2}`, `{"mode":"slow","delay":"soon"}`, `{"oops":1}`, `not json`} {
		if c := setFault(t, h, bad); c != 400 {
			t.Errorf("%s: code %d, want 400", bad, c)
		}
	}
}

func TestSlowFault(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		h := New("r", 1).Handler()
		setFault(t, h, `{"mode":"slow","delay":"300ms"}`)
		start := time.Now()
		if w := get(t, h, "/read"); w.Code != 200 {
			t.Fatal(w.Code)
		}
		if d := time.Since(start); d != 300*time.Millisecond {
			t.Fatalf("took %v, want 300ms", d)
		}
	})
}

func TestFaultRate(t *testing.T) {
	h := New("r", 7).Handler()
	setFault(t, h, `{"mode":"fail","rate":0.5}`)
	fails := 0
	for range 1000 {
		if get(t, h, "/read").Code == 500 {
			fails++
		}
	}
	if fails < 400 || fails > 600 {
		t.Fatalf("%d of 1000 failed at rate 0.5", fails)
	}
}

func TestWritesDedupe(t *testing.T) {
	h := New("r", 1).Handler()
	for _, key := range []string{"a", "b", "a", "", ""} {
		r := httptest.NewRequest("POST", "/write", strings.NewReader("x"))
		if key != "" {
			r.Header.Set("Idempotency-Key", key)
		}
		h.ServeHTTP(httptest.NewRecorder(), r)
	}
	var ws Writes
	body, _ := io.ReadAll(get(t, h, "/writes").Body)
	if err := json.Unmarshal(body, &ws); err != nil {
		t.Fatal(err)
	}
	if ws.Count != 4 || ws.Duplicates != 1 || strings.Join(ws.Keys, ",") != "a,b,," {
		t.Fatalf("writes = %+v", ws)
	}
}

// TestLimitedMode: Slots requests are served at once, each for Delay; the
// rest wait in line, so latency grows with concurrency beyond the knee.
func TestLimitedMode(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		h := New("r1", 1).Handler()
		if code := setFault(t, h, `{"mode": "limited", "slots": 2, "delay": "100ms"}`); code != 200 {
			t.Fatalf("set fault: %d", code)
		}
		start := time.Now()
		done := make(chan time.Duration, 4)
		for range 4 {
			go func() {
				if w := get(t, h, "/read"); w.Code != 200 {
					t.Errorf("status %d", w.Code)
				}
				done <- time.Since(start)
			}()
		}
		var got []time.Duration
		for range 4 {
			got = append(got, <-done)
		}
		want := []time.Duration{100 * time.Millisecond, 100 * time.Millisecond, 200 * time.Millisecond, 200 * time.Millisecond}
		for i := range got {
			if got[i] != want[i] {
				t.Fatalf("latencies %v, want %v", got, want)
			}
		}
		if code := setFault(t, h, `{"mode": "limited", "slots": -1}`); code != 400 {
			t.Fatalf("negative slots accepted: %d", code)
		}
	})
}
