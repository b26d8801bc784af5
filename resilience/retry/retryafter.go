package retry

import (
	"math"
	"strconv"
	"strings"
	"time"
)

// RetryAfterError is implemented by errors that carry a server's request to
// wait before retrying (HTTP's Retry-After, gRPC's retry pushback). The
// policy waits max(backoff, RetryAfter()); a negative duration asks not to
// retry at all, as gRPC's negative pushback does. The policy finds it
// anywhere in the error's wrap chain.
type RetryAfterError interface {
	error
	RetryAfter() time.Duration
}

// After returns err annotated with a retry-after delay d (see
// [RetryAfterError]); it returns nil when err is nil. The result wraps err,
// so errors.Is and errors.As see through it.
func After(err error, d time.Duration) error {
	if err == nil {
		return nil
	}
	return &afterError{err: err, d: d}
}

type afterError struct {
	err error
	d   time.Duration
}

func (e *afterError) Error() string             { return e.err.Error() }
func (e *afterError) Unwrap() error             { return e.err }
func (e *afterError) RetryAfter() time.Duration { return e.d }

// retryAfter finds the first retry-after delay in err's wrap chain. It walks
// the chain itself because errors.As with an interface target allocates.
func retryAfter(err error) (time.Duration, bool) {
	for err != nil {
		if ra, ok := err.(interface{ RetryAfter() time.Duration }); ok {
			return ra.RetryAfter(), true
		}
		switch u := err.(type) {
		case interface{ Unwrap() error }:
			err = u.Unwrap()
		case interface{ Unwrap() []error }:
			for _, e := range u.Unwrap() {
				if d, ok := retryAfter(e); ok {
					return d, true
				}
			}
			return 0, false
		default:
			return 0, false
		}
	}
	return 0, false
}

// The three HTTP-date formats a recipient must accept (RFC 9110 §5.6.7):
// IMF-fixdate, the obsolete RFC 850 form and ANSI C's asctime.
var httpDateLayouts = [...]string{
	"Mon, 02 Jan 2006 15:04:05 GMT",
	"Monday, 02-Jan-06 15:04:05 GMT",
	"Mon Jan _2 15:04:05 2006",
}

// maxSeconds is the largest delta-seconds a time.Duration can hold.
const maxSeconds = math.MaxInt64 / int64(time.Second)

// ParseRetryAfter parses the value of an HTTP Retry-After header (RFC 9110
// §10.2.3): either delay-seconds ("120") or an HTTP-date, which is turned
// into a delay from now. A date in the past yields 0; a delay too large for
// a time.Duration is capped. It reports false for anything else, including
// an empty value and signed or fractional numbers.
//
// It does not import net/http, so programs that use only the resilience
// library stay small.
func ParseRetryAfter(header string, now time.Time) (time.Duration, bool) {
	v := strings.Trim(header, " \t") // optional whitespace around a field value
	if v == "" {
		return 0, false
	}
	if isDigits(v) {
		n, err := strconv.ParseInt(v, 10, 64)
		if err != nil || n > maxSeconds { // only overflow can fail here
			return time.Duration(maxSeconds) * time.Second, true
		}
		return time.Duration(n) * time.Second, true
	}
	for _, layout := range httpDateLayouts {
		t, err := time.Parse(layout, v)
		if err != nil {
			continue
		}
		if d := t.Sub(now); d > 0 {
			return d, true
		}
		return 0, true
	}
	return 0, false
}

func isDigits(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return false
		}
	}
	return true
}
