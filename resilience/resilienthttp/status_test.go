package resilienthttp

import (
	"errors"
	"net/http"
	"strconv"
	"testing"
	"time"
)

func TestParseRetryAfter(t *testing.T) {
	now := time.Date(2026, 11, 26, 12, 0, 0, 0, time.UTC)
	tests := []struct {
		in     string
		want   time.Duration
		wantOK bool
	}{
		{"0", 0, true},
		{"120", 120 * time.Second, true},
		{" 7\t", 7 * time.Second, true},
		{"007", 7 * time.Second, true},
		{"99999999999999999999999", time.Duration(maxDelaySeconds) * time.Second, true},
		{"Thu, 26 Nov 2026 12:00:30 GMT", 30 * time.Second, true}, // IMF-fixdate
		{"Thursday, 26-Nov-26 12:01:00 GMT", time.Minute, true},   // RFC 850
		{"Thu Nov 26 12:00:05 2026", 5 * time.Second, true},       // asctime
		{"Thu, 26 Nov 2026 11:00:00 GMT", 0, true},                // in the past
		{"", 0, false},
		{"   ", 0, false},
		{"-1", 0, false},
		{"+5", 0, false},
		{"1.5", 0, false},
		{"5s", 0, false},
		{"soon", 0, false},
		{"Thu, 26 Nov 2026 12:00:30 PST", 0, false},
	}
	for _, tt := range tests {
		t.Run(tt.in, func(t *testing.T) {
			got, ok := ParseRetryAfter(tt.in, now)
			if got != tt.want || ok != tt.wantOK {
				t.Fatalf("ParseRetryAfter(%q) = %v, %v; want %v, %v", tt.in, got, ok, tt.want, tt.wantOK)
			}
		})
	}
}

func FuzzParseRetryAfter(f *testing.F) {
	for _, s := range []string{"0", "120", " 3 ", "Thu, 26 Nov 2026 12:00:30 GMT", "Thursday, 26-Nov-26 12:01:00 GMT",
		"Thu Nov 26 12:00:05 2026", "-1", "1e3", "", "99999999999999999999"} {
		f.Add(s)
	}
	now := time.Date(2026, 11, 26, 12, 0, 0, 0, time.UTC)
	f.Fuzz(func(t *testing.T, s string) {
		d, ok := ParseRetryAfter(s, now)
		if d < 0 {
			t.Fatalf("ParseRetryAfter(%q) = %v: negative", s, d)
		}
		if !ok && d != 0 {
			t.Fatalf("ParseRetryAfter(%q) = %v, false: want 0 when not ok", s, d)
		}
		// A value that parses as a small number of seconds must agree with strconv.
		if n, err := strconv.ParseUint(s, 10, 32); err == nil && s[0] != '+' {
			if !ok || d != time.Duration(n)*time.Second {
				t.Fatalf("ParseRetryAfter(%q) = %v, %v; want %ds", s, d, ok, n)
			}
		}
	})
}

func TestDefaultClassify(t *testing.T) {
	tests := []struct {
		code       int
		retryAfter string
		fail       bool
		after      time.Duration
	}{
		{200, "", false, 0},
		{204, "", false, 0},
		{301, "", false, 0},
		{400, "", false, 0},
		{404, "", false, 0},
		{429, "3", true, 3 * time.Second},
		{500, "", true, 0},
		{501, "", false, 0},
		{502, "", true, 0},
		{503, "10", true, 10 * time.Second},
		{503, "nonsense", true, 0},
		{504, "", true, 0},
		{599, "", true, 0},
	}
	for _, tt := range tests {
		t.Run(strconv.Itoa(tt.code)+"/"+tt.retryAfter, func(t *testing.T) {
			resp := &http.Response{StatusCode: tt.code, Header: http.Header{}}
			if tt.retryAfter != "" {
				resp.Header.Set("Retry-After", tt.retryAfter)
			}
			err := DefaultClassify(resp)
			if (err != nil) != tt.fail {
				t.Fatalf("DefaultClassify(%d) = %v, want failure=%v", tt.code, err, tt.fail)
			}
			if err == nil {
				return
			}
			var se *StatusError
			if !errors.As(err, &se) || se.Code != tt.code || se.RetryAfter() != tt.after {
				t.Fatalf("got %#v, want StatusError{%d, %v}", err, tt.code, tt.after)
			}
			if se.Error() == "" {
				t.Error("empty message")
			}
		})
	}
}

// A custom Classify decides what the policies retry.
func TestTransportCustomClassify(t *testing.T) {
	f := &flaky{fail: 10} // always 503
	srv, base := newServer(t, f)
	r := &testRetrier{max: 3}
	tr := mustTransport(t, Config{Base: base, Pipeline: mustCompose(t, r),
		Classify: func(*http.Response) error { return nil }}) // nothing is a failure
	req, _ := http.NewRequestWithContext(t.Context(), http.MethodGet, srv.URL, nil)
	resp, err := tr.RoundTrip(req)
	if err != nil {
		t.Fatal(err)
	}
	readAll(t, resp)
	if f.calls.Load() != 1 {
		t.Errorf("%d attempts, want 1: the classifier said success", f.calls.Load())
	}
}
