package retry_test

import (
	"errors"
	"fmt"
	"strconv"
	"testing"
	"time"

	"github.com/bulwark-go/bulwark/resilience/retry"
)

func TestParseRetryAfter(t *testing.T) {
	now := time.Date(2026, 11, 26, 3, 0, 0, 0, time.UTC)
	tests := []struct {
		in     string
		want   time.Duration
		wantOK bool
	}{
		{"120", 120 * time.Second, true},
		{"0", 0, true},
		{" 7\t", 7 * time.Second, true},
		{"Thu, 26 Nov 2026 03:01:30 GMT", 90 * time.Second, true},                          // IMF-fixdate
		{"Thursday, 26-Nov-26 03:00:10 GMT", 10 * time.Second, true},                       // RFC 850
		{"Thu Nov 26 03:00:05 2026", 5 * time.Second, true},                                // asctime
		{"Wed, 25 Nov 2026 03:00:00 GMT", 0, true},                                         // in the past
		{"99999999999999999999", time.Duration(1<<63-1) / time.Second * time.Second, true}, // capped
		{"", 0, false},
		{"-5", 0, false},
		{"+5", 0, false},
		{"1.5", 0, false},
		{"soon", 0, false},
		{"Thu, 26 Nov 2026 03:01:30 PST", 0, false},
	}
	for _, tt := range tests {
		t.Run(tt.in, func(t *testing.T) {
			got, ok := retry.ParseRetryAfter(tt.in, now)
			if got != tt.want || ok != tt.wantOK {
				t.Errorf("ParseRetryAfter(%q) = %v, %v; want %v, %v", tt.in, got, ok, tt.want, tt.wantOK)
			}
		})
	}
}

func FuzzParseRetryAfter(f *testing.F) {
	for _, s := range []string{"120", "0", "", "-1", "Thu, 26 Nov 2026 03:01:30 GMT",
		"Thursday, 26-Nov-26 03:00:10 GMT", "Thu Nov 26 03:00:05 2026", "99999999999999999999"} {
		f.Add(s)
	}
	now := time.Date(2026, 11, 26, 3, 0, 0, 0, time.UTC)
	f.Fuzz(func(t *testing.T, s string) {
		d, ok := retry.ParseRetryAfter(s, now)
		if d < 0 {
			t.Fatalf("ParseRetryAfter(%q) = %v: negative", s, d)
		}
		if !ok && d != 0 {
			t.Fatalf("ParseRetryAfter(%q) = %v, false: want 0 when not ok", s, d)
		}
		// Whatever parsed as whole seconds prints back to the same value.
		if ok && d%time.Second == 0 && d < time.Duration(1<<62) {
			again, ok2 := retry.ParseRetryAfter(strconv.FormatInt(int64(d/time.Second), 10), now)
			if !ok2 || again != d {
				t.Fatalf("round trip of %v: got %v, %v", d, again, ok2)
			}
		}
	})
}

func TestAfter(t *testing.T) {
	if retry.After(nil, time.Second) != nil {
		t.Error("After(nil) != nil")
	}
	err := fmt.Errorf("call: %w", retry.After(errBoom, 3*time.Second))
	if !errors.Is(err, errBoom) {
		t.Error("After hides the wrapped error")
	}
	var ra retry.RetryAfterError
	if !errors.As(err, &ra) || ra.RetryAfter() != 3*time.Second {
		t.Errorf("RetryAfterError not found in %v", err)
	}
	if err.Error() != "call: boom" {
		t.Errorf("message %q", err.Error())
	}
}
