package resilienthttp

import (
	"net/http"
	"strconv"
	"time"

	"github.com/bulwark-go/bulwark/resilience/retry"
)

// StatusError is the error [DefaultClassify] makes of a response that the
// policies should count as a failure: the backend answered, but with a
// status that says it failed or is overloaded.
//
// The policies see it; the caller of [Transport.RoundTrip] does not when the
// final attempt produced it: RoundTrip then returns the response itself, so
// the caller sees the backend's own status, headers and body.
type StatusError struct {
	// Code is the response's status code.
	Code int
	// After is the delay the backend asked for in its Retry-After header;
	// zero when it sent none (or one that did not parse).
	After time.Duration
}

// Error describes the status.
func (e *StatusError) Error() string {
	s := "resilienthttp: backend answered " + strconv.Itoa(e.Code) + " " + http.StatusText(e.Code)
	if e.After > 0 {
		s += " (retry after " + e.After.String() + ")"
	}
	return s
}

// RetryAfter returns the delay the backend asked for. Retry policies that
// look for this method in an error's chain (resilience/retry does) wait at
// least that long before the next attempt.
func (e *StatusError) RetryAfter() time.Duration { return e.After }

// DefaultClassify is the default [Config.Classify]. It treats as failures
// 429 Too Many Requests and every 5xx status except 501 Not Implemented
// (which no retry or waiting will change), and returns them as a
// *[StatusError] carrying the response's Retry-After delay. Every other
// response, 4xx included, is a success for the policies: the backend did
// its job, and a breaker must not open because clients send bad requests.
func DefaultClassify(resp *http.Response) error {
	c := resp.StatusCode
	if c != http.StatusTooManyRequests && (c < 500 || c > 599 || c == http.StatusNotImplemented) {
		return nil
	}
	var after time.Duration
	if v := resp.Header.Get("Retry-After"); v != "" {
		after, _ = ParseRetryAfter(v, time.Now())
	}
	return &StatusError{Code: c, After: after}
}

// maxDelaySeconds is the largest delay-seconds a time.Duration can hold.
const maxDelaySeconds = int64(1<<63-1) / int64(time.Second)

// ParseRetryAfter parses the value of a Retry-After header (RFC 9110
// §10.2.3): either delay-seconds ("120") or an HTTP-date in any of the three
// forms a recipient must accept, which becomes the delay from now. A date in
// the past yields 0; a delay too large for a time.Duration is capped (retry
// policies cap delays further). It reports false for anything else: an empty
// value, signs, fractions, or garbage.
func ParseRetryAfter(v string, now time.Time) (time.Duration, bool) {
	return retry.ParseRetryAfter(v, now) // one parser for the whole library
}
