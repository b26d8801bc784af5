package proxy

import (
	"errors"
	"fmt"
	"net"
	"net/url"
	"regexp"
	"strconv"
	"strings"
	"time"

	"github.com/bulwark-go/bulwark/pki"
)

// Config is the gateway's configuration: what it listens on, how requests
// are routed, and the upstream pools they go to. It is also the gateway
// part of bulwark.yaml (package config loads the file). The zero value of
// every optional field means "the fault-tolerant default" documented on it;
// Validate reports what is wrong, naming the field.
type Config struct {
	// Listeners accept client connections.
	Listeners []Listener `yaml:"listeners"`
	// Routes map requests to upstreams, first match wins.
	Routes []Route `yaml:"routes"`
	// Upstreams are the pools of endpoints requests are sent to.
	Upstreams []Upstream `yaml:"upstreams"`
	// AccessLog logs every request (method, host, path, status, duration,
	// route, endpoint, tries, client) at Info through the gateway's
	// logger. Default false.
	AccessLog bool `yaml:"access_log"`
}

// Listener is one address the gateway accepts connections on.
type Listener struct {
	// Name labels the listener in metrics and logs; default "listener-N".
	Name string `yaml:"name"`
	// Address is host:port, e.g. ":8080" or "127.0.0.1:0".
	Address string `yaml:"address"`
	// Protocol is "http" (default: HTTP/1.1, and HTTP/2 over TLS), "https"
	// (TLS with CertFile/KeyFile), "h2c" (HTTP/2 without TLS as well as
	// HTTP/1.1) or "tcp" (raw TCP proxying to Upstream).
	Protocol string `yaml:"protocol"`
	// CertFile and KeyFile are the PEM certificate and key for "https".
	CertFile string `yaml:"cert_file"`
	KeyFile  string `yaml:"key_file"`
	// Upstream is the pool a "tcp" listener forwards to.
	Upstream string `yaml:"upstream"`
	// Engine serves an "http" listener: "bulwark" (default: the gateway's
	// own HTTP/1.1 server, proxy/http1, one goroutine per connection and
	// strict parsing) or "net/http" (Go's server, the escape hatch if a
	// client needs something the fast path does not do). "https" and "h2c"
	// always use net/http.
	Engine string `yaml:"engine"`
}

// Engines: the values of Listener.Engine and Upstream.Engine.
const (
	EngineBulwark = "bulwark"
	EngineNetHTTP = "net/http"
)

// Route sends matching requests to an upstream under a set of policies.
type Route struct {
	// Name labels the route; default "route-N".
	Name string `yaml:"name"`
	// Match selects requests; the zero Match matches everything.
	Match Match `yaml:"match"`
	// Upstream names the pool to send to.
	Upstream string `yaml:"upstream"`
	// Timeouts bound each try and the whole request.
	Timeouts Timeouts `yaml:"timeouts"`
	// Retries re-send failed tries to another endpoint.
	Retries Retries `yaml:"retries"`
	// Hedge sends a second try when the first is slow; on by default for
	// idempotent requests, after the pool's p99 latency, within a 5% budget.
	Hedge Hedge `yaml:"hedge"`
	// Limit is an adaptive concurrency limit for the route; on by default
	// (Gradient2), shedding with 503 and Retry-After.
	Limit Limit `yaml:"limit"`
	// RateLimit limits requests per client IP; off by default.
	RateLimit RateLimit `yaml:"rate_limit"`
	// Fallback answers when no endpoint can serve; default 503 with a
	// short text body.
	Fallback Fallback `yaml:"fallback"`
	// RequireDigest rejects (as an endpoint failure) responses that carry
	// no verifiable Content-Digest. Default false: responses with a digest
	// are verified, others pass.
	RequireDigest bool `yaml:"require_digest"`
	// Async makes the route accept requests for durable asynchronous
	// delivery: 202 Accepted with a status Location once stored.
	Async bool `yaml:"async"`
	// OrderBy names a request header whose value orders async deliveries.
	OrderBy string `yaml:"order_by"`
	// Vote sends each GET and HEAD to 2f+1 endpoints and answers with what
	// f+1 of them agree on; off by default.
	Vote Vote `yaml:"vote"`
}

// Vote configures replica voting (proxy/vote): the defence against a
// replica whose data is wrong and whose Content-Digest is therefore
// valid. Each GET or HEAD goes to 2f+1 distinct endpoints at once; the
// gateway answers as soon as f+1 answers agree on status, the included
// headers and the body, cancels the others, and treats every endpoint
// that answered otherwise as Byzantine (ejected by outlier detection,
// counted, reported as an event). No majority answers 502. Voting holds
// while at most f replicas are wrong at once and their state is
// independent; with fewer than 2f+1 healthy endpoints it votes among
// those left, still needing f+1 that agree. Quorum "all" trades
// availability for safety beyond f: see docs/byzantine.md.
type Vote struct {
	// F is the number of wrong replicas to outvote: 1 (3 replicas), 2
	// (5) or 3 (7). 0 turns voting off (default).
	F int `yaml:"f"`
	// Replicas is another way to say F: 3, 5 or 7 (2f+1).
	Replicas int `yaml:"replicas"`
	// Quorum is how many of the 2f+1 answers must agree: "majority"
	// (default: f+1; tolerates f wrong replicas, but more than f that
	// tell the same lie win) or "all" (strict: all 2f+1 must agree, else
	// 502 — even 2f identical liars cannot win while one honest replica
	// answers, but every single wrong or missing answer is a refused
	// read, and nobody is ejected for disagreeing).
	Quorum string `yaml:"quorum"`
	// IncludeHeaders are response headers that must agree too (e.g.
	// ETag). Others (Date, Server, per-instance headers) never take part.
	IncludeHeaders []string `yaml:"include_headers"`
	// MaxBody is the largest response body voted on (each answer is
	// hashed while it streams, and one body per distinct answer is held
	// until the vote ends); larger answers count as failed ballots.
	// Default 1MiB.
	MaxBody ByteSize `yaml:"max_body"`
}

// f is the configured f, from F or Replicas.
func (v Vote) f() int {
	if v.F > 0 {
		return v.F
	}
	if v.Replicas > 0 {
		return (v.Replicas - 1) / 2
	}
	return 0
}

// Match selects requests for a route. Every set field must match.
type Match struct {
	// Host matches the request's host (without port), case-insensitively;
	// a leading "*." matches any subdomain.
	Host string `yaml:"host"`
	// PathPrefix matches the start of the path; default "/".
	PathPrefix string `yaml:"path_prefix"`
	// Methods lists the methods that match; empty means all.
	Methods []string `yaml:"methods"`
	// Headers must all be present with these exact values.
	Headers map[string]string `yaml:"headers"`
}

// Timeouts bound a request.
type Timeouts struct {
	// Connect bounds establishing a connection to an endpoint; default 1s.
	Connect time.Duration `yaml:"connect"`
	// PerTry is the ceiling of one try (until the response headers
	// arrive); default 5s. Below it the timeout adapts to the pool's
	// latency: 3 × its p99, at least 100ms (see docs/config.md).
	PerTry time.Duration `yaml:"per_try"`
	// FixedPerTry turns the adaptive per-try timeout off: every try gets
	// PerTry. Default false.
	FixedPerTry bool `yaml:"fixed_per_try"`
	// Total bounds the whole request, retries included; default 15s.
	Total time.Duration `yaml:"total"`
}

// Retries says when a failed try is sent again, to a different endpoint.
type Retries struct {
	// Attempts is the most tries in all, the first included; default 10,
	// so that the retry budget, not a count, is the real limit. Set 1 to
	// disable retries.
	Attempts int `yaml:"attempts"`
	// On lists the conditions that are retried: "connect-error", "reset",
	// "timeout", "digest", and status codes such as "502", "503", "504"
	// or "5xx". Default: all of connect-error, reset, timeout, digest, 502,
	// 503, 504.
	On []string `yaml:"on"`
	// NonIdempotent allows retrying methods other than GET, HEAD, OPTIONS,
	// TRACE, PUT and DELETE (requests carrying an Idempotency-Key are
	// always retryable). Default false.
	NonIdempotent bool `yaml:"non_idempotent"`
	// MaxBody is the largest request body buffered for replay; larger
	// bodies are sent once. Default 64KiB.
	MaxBody ByteSize `yaml:"max_body"`
	// Budget caps retries as a share of requests; default 20% plus 10
	// retries per second.
	Budget Budget `yaml:"budget"`
	// Backoff is the base delay before a retry; default 0 (retry at once
	// on another endpoint; the budget prevents storms).
	Backoff time.Duration `yaml:"backoff"`
}

// Budget is a retry budget (Finagle style): retries may add Ratio of the
// recent requests, plus MinPerSecond.
type Budget struct {
	// Ratio is the share of requests that may be retried; default 0.2.
	Ratio float64 `yaml:"ratio"`
	// MinPerSecond is always allowed; default 10.
	MinPerSecond int `yaml:"min_per_second"`
}

// Hedge configures hedged requests for idempotent methods.
type Hedge struct {
	// Delay is "" (default: the pool's observed p99, or the adaptive
	// per-try timeout when that is lower), "off", a duration such as
	// "50ms", or "p95" (or another "pNN") for the route's own observed
	// latency quantile.
	Delay string `yaml:"delay"`
	// Max is the most hedges per request; default 1.
	Max int `yaml:"max"`
	// Budget is the share of requests that may be hedged; default 0.05
	// (plus 5 hedges per second for quiet routes).
	Budget float64 `yaml:"budget"`
}

// Limit configures an adaptive concurrency limit.
type Limit struct {
	// Algorithm is "" (default: Gradient2 tuned for a gateway, see
	// docs/config.md), "off", "gradient2", "vegas" or "aimd".
	Algorithm string `yaml:"algorithm"`
	// Initial, Min and Max bound the limit; defaults for "": 200, 20,
	// 2000; otherwise the algorithm's own.
	Initial int `yaml:"initial"`
	Min     int `yaml:"min"`
	Max     int `yaml:"max"`
}

// RateLimit limits requests per client IP with a token bucket.
type RateLimit struct {
	// PerClient is requests per second per client IP; 0 disables.
	PerClient float64 `yaml:"per_client"`
	// Burst is the bucket size; default PerClient rounded up.
	Burst int `yaml:"burst"`
}

// Fallback is the response when no endpoint can serve a request.
type Fallback struct {
	// Status is the status code; default 503.
	Status int `yaml:"status"`
	// Body is the response body; default "no healthy upstream\n".
	Body string `yaml:"body"`
	// ContentType is the Content-Type; default "text/plain; charset=utf-8".
	ContentType string `yaml:"content_type"`
}

// Upstream is a pool of endpoints.
type Upstream struct {
	// Name identifies the pool; routes refer to it.
	Name string `yaml:"name"`
	// Endpoints are static members. Either Endpoints or Discover is set.
	Endpoints []Endpoint `yaml:"endpoints"`
	// Discover names a service in the registry whose instances are the
	// members, followed as they change.
	Discover string `yaml:"discover"`
	// Balance is "p2c-ewma" (default), "round-robin", "least-request" or
	// "hash".
	Balance string `yaml:"balance"`
	// HashOn picks the key for "hash": "ip" (default), "header:NAME" or
	// "cookie:NAME".
	HashOn string `yaml:"hash_on"`
	// Health configures active probes; off unless Path or TCP is set.
	Health HealthCheck `yaml:"health"`
	// Outlier configures passive outlier detection; on by default.
	Outlier Outlier `yaml:"outlier"`
	// Breaker configures the per-endpoint circuit breaker; on by default.
	Breaker Breaker `yaml:"breaker"`
	// SlowStart ramps a returning endpoint's share over this window;
	// default 10s; a negative value disables it.
	SlowStart time.Duration `yaml:"slow_start"`
	// MaxVerifyBody is the largest response body buffered to verify its
	// Content-Digest before the client sees it; larger bodies are
	// verified while streaming and the connection is aborted on a
	// mismatch. Default 4MiB.
	MaxVerifyBody ByteSize `yaml:"max_verify_body"`
	// TLS makes the gateway speak mutually authenticated TLS to the pool's
	// https:// endpoints: it presents Cert/Key and trusts only servers
	// that CA signed (`bulwark ca issue` writes the files). A middleman
	// between the gateway and an endpoint can then neither read nor
	// change a byte unnoticed: a flipped byte fails TLS's record check,
	// the try fails and is retried on another endpoint. Off by default
	// (https:// endpoints are then checked against the system roots).
	TLS pki.Files `yaml:"tls"`
	// Signatures makes the gateway require an HTTP Message Signature (RFC
	// 9421, Ed25519) over each answer's status and Content-Digest, made
	// with the key registered for that endpoint (signature_key, or the
	// instance's "sig-key" metadata when discovered). A missing or bad
	// signature is a Byzantine outcome: the try fails, the endpoint is
	// ejected, and the request is retried elsewhere. It protects even
	// where TLS ends at a box in between. Off by default.
	Signatures Signatures `yaml:"signatures"`
	// Engine picks the HTTP client that carries tries to plain http://
	// endpoints: "" or "bulwark" (default) is the gateway's own HTTP/1.1
	// transport (proxy/http1: no goroutine per connection, strict response
	// parsing); "net/http" is Go's http.Transport, the escape hatch.
	// https:// endpoints, mTLS pools, protocol upgrades and unbuffered
	// request bodies always use net/http.
	Engine string `yaml:"engine"`
}

// Signatures configures response signature checks (see
// resilienthttp.Signer for the upstream side).
type Signatures struct {
	// Require turns the checks on.
	Require bool `yaml:"require"`
	// MaxAge bounds the age of a signature's created time (and its
	// distance in the future, for clock drift); default 5m.
	MaxAge time.Duration `yaml:"max_age"`
}

// Endpoint is one static member of a pool.
type Endpoint struct {
	// URL is the endpoint's base URL, e.g. "http://127.0.0.1:9001", or
	// host:port for TCP pools.
	URL string `yaml:"url"`
	// Weight is its relative share; default 1.
	Weight int `yaml:"weight"`
	// SignatureKey is the endpoint's Ed25519 public key (base64, as
	// `bulwark ca sign-key` prints it), for upstreams that require
	// signatures.
	SignatureKey string `yaml:"signature_key"`
}

// HealthCheck configures active health probes.
type HealthCheck struct {
	// Path is the HTTP path probed, e.g. "/health".
	Path string `yaml:"path"`
	// TCP probes by connecting instead of HTTP.
	TCP bool `yaml:"tcp"`
	// Interval between probes; default 1s.
	Interval time.Duration `yaml:"interval"`
	// Timeout of one probe; default 500ms.
	Timeout time.Duration `yaml:"timeout"`
	// Rise and Fall are the consecutive successes/failures that change
	// state; defaults 2 and 2.
	Rise int `yaml:"rise"`
	Fall int `yaml:"fall"`
	// ExpectStatus is the accepted status range, e.g. "200-399" (default).
	ExpectStatus string `yaml:"expect_status"`
}

// Outlier configures passive outlier detection from real traffic.
type Outlier struct {
	// Disabled turns it off.
	Disabled bool `yaml:"disabled"`
	// ConsecutiveFailures (connect errors, resets, timeouts, digest
	// mismatches) that eject an endpoint; default 5.
	ConsecutiveFailures int `yaml:"consecutive_failures"`
	// Consecutive5xx that eject an endpoint; default 5.
	Consecutive5xx int `yaml:"consecutive_5xx"`
	// BaseEjection is the first ejection's length, multiplied by the
	// number of ejections; default 30s.
	BaseEjection time.Duration `yaml:"base_ejection"`
	// MaxEjectionPercent caps the ejected share of the pool; default 50.
	MaxEjectionPercent int `yaml:"max_ejection_percent"`
}

// Breaker configures the per-endpoint circuit breaker.
type Breaker struct {
	// Disabled turns it off.
	Disabled bool `yaml:"disabled"`
	// FailureRate (percent) over the window that opens it; default 50.
	FailureRate float64 `yaml:"failure_rate"`
	// Window is the number of recent calls considered; default 20.
	Window int `yaml:"window"`
	// MinCalls before the rate is judged; default 10.
	MinCalls int `yaml:"min_calls"`
	// Open is how long it stays open before probing; default 5s.
	Open time.Duration `yaml:"open"`
}

// ByteSize is a size in bytes, written in YAML as a number or with a unit
// ("64KiB", "4MiB", "1GiB", "512KB").
type ByteSize int64

var sizeUnits = map[string]int64{
	"": 1, "B": 1, "KB": 1000, "MB": 1000 * 1000, "GB": 1000 * 1000 * 1000,
	"KiB": 1 << 10, "MiB": 1 << 20, "GiB": 1 << 30,
}

var sizeRE = regexp.MustCompile(`^\s*([0-9]+)\s*([A-Za-z]*)\s*$`)

// UnmarshalText parses "64KiB" and friends.
func (s *ByteSize) UnmarshalText(b []byte) error {
	m := sizeRE.FindStringSubmatch(string(b))
	if m == nil {
		return fmt.Errorf("invalid size %q: write a number with an optional unit, e.g. 64KiB or 4MiB", b)
	}
	unit, ok := sizeUnits[m[2]]
	if !ok {
		return fmt.Errorf("invalid size %q: unknown unit %q (use B, KB, MB, GB, KiB, MiB or GiB)", b, m[2])
	}
	n, err := strconv.ParseInt(m[1], 10, 64)
	if err != nil || n > (1<<62)/unit {
		return fmt.Errorf("invalid size %q: too large", b)
	}
	*s = ByteSize(n * unit)
	return nil
}

// FieldError is a configuration error at a field path such as
// "routes[1].retries.attempts". The config loader turns paths into file
// lines.
type FieldError struct {
	Path string
	Msg  string
}

// Error formats the problem as path: message.
func (e *FieldError) Error() string { return e.Path + ": " + e.Msg }

type validator struct{ errs []error }

func (v *validator) add(path, format string, args ...any) {
	v.errs = append(v.errs, &FieldError{Path: path, Msg: fmt.Sprintf(format, args...)})
}

// Validate reports every problem in c as *FieldError values joined with
// errors.Join; nil means the config is usable.
func (c *Config) Validate() error {
	v := &validator{}
	names := map[string]bool{}
	for i, u := range c.Upstreams {
		p := fmt.Sprintf("upstreams[%d]", i)
		if u.Name == "" {
			v.add(p+".name", "missing: every upstream needs a name that routes refer to")
		} else if names[u.Name] {
			v.add(p+".name", "duplicate upstream name %q", u.Name)
		}
		names[u.Name] = true
		validateUpstream(v, p, &u)
	}
	for i, r := range c.Routes {
		p := fmt.Sprintf("routes[%d]", i)
		if r.Upstream == "" {
			v.add(p+".upstream", "missing: name the upstream this route sends to")
		} else if !names[r.Upstream] {
			v.add(p+".upstream", "no upstream named %q (defined: %s)", r.Upstream, strings.Join(keys(names), ", "))
		}
		validateRoute(v, p, &r)
	}
	for i, l := range c.Listeners {
		p := fmt.Sprintf("listeners[%d]", i)
		if _, _, err := net.SplitHostPort(l.Address); err != nil {
			v.add(p+".address", "%q is not host:port (e.g. \":8080\" or \"127.0.0.1:8080\")", l.Address)
		}
		switch l.Engine {
		case "", EngineBulwark, EngineNetHTTP:
			if l.Engine == EngineBulwark && l.Protocol != "" && l.Protocol != "http" {
				v.add(p+".engine", "engine %q serves only protocol http; %s listeners use net/http (remove engine)", l.Engine, l.Protocol)
			}
			if l.Engine != "" && l.Protocol == "tcp" {
				v.add(p+".engine", "a tcp listener has no HTTP engine (remove engine)")
			}
		default:
			v.add(p+".engine", "unknown engine %q: use %s (default) or %s", l.Engine, EngineBulwark, EngineNetHTTP)
		}
		switch l.Protocol {
		case "", "http", "h2c":
		case "https":
			if l.CertFile == "" || l.KeyFile == "" {
				v.add(p+".cert_file", "https needs cert_file and key_file")
			}
		case "tcp":
			if !names[l.Upstream] {
				v.add(p+".upstream", "a tcp listener needs the name of an upstream (got %q)", l.Upstream)
			}
		default:
			v.add(p+".protocol", "unknown protocol %q: use http, https, h2c or tcp", l.Protocol)
		}
	}
	return errors.Join(v.errs...)
}

func keys(m map[string]bool) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		if k != "" {
			out = append(out, k)
		}
	}
	return out
}

func validateUpstream(v *validator, p string, u *Upstream) {
	if len(u.Endpoints) == 0 && u.Discover == "" {
		v.add(p+".endpoints", "no endpoints: list endpoints or set discover: SERVICE")
	}
	if len(u.Endpoints) > 0 && u.Discover != "" {
		v.add(p+".discover", "set either endpoints or discover, not both")
	}
	for j, e := range u.Endpoints {
		ep := fmt.Sprintf("%s.endpoints[%d]", p, j)
		if err := checkEndpointURL(e.URL); err != nil {
			v.add(ep+".url", "%v", err)
		}
		if e.Weight < 0 {
			v.add(ep+".weight", "must be positive")
		}
		if e.SignatureKey != "" {
			if _, err := pki.ParsePublicKey(e.SignatureKey); err != nil {
				v.add(ep+".signature_key", "%v", err)
			}
		} else if u.Signatures.Require {
			v.add(ep+".signature_key", "signatures.require is on: give the endpoint's public key (bulwark ca sign-key prints it)")
		}
	}
	switch u.Balance {
	case "", "p2c-ewma", "round-robin", "least-request", "hash":
	default:
		v.add(p+".balance", "unknown algorithm %q: use p2c-ewma, round-robin, least-request or hash", u.Balance)
	}
	if u.HashOn != "" && u.HashOn != "ip" && !strings.HasPrefix(u.HashOn, "header:") && !strings.HasPrefix(u.HashOn, "cookie:") {
		v.add(p+".hash_on", "use ip, header:NAME or cookie:NAME")
	}
	if h := u.Health; h.ExpectStatus != "" {
		if _, _, err := parseStatusRange(h.ExpectStatus); err != nil {
			v.add(p+".health.expect_status", "%v", err)
		}
	}
	if u.Health.Path != "" && !strings.HasPrefix(u.Health.Path, "/") {
		v.add(p+".health.path", "must start with /")
	}
	if r := u.Breaker.FailureRate; r < 0 || r > 100 {
		v.add(p+".breaker.failure_rate", "must be a percentage between 0 and 100")
	}
	if m := u.Outlier.MaxEjectionPercent; m < 0 || m > 100 {
		v.add(p+".outlier.max_ejection_percent", "must be a percentage between 0 and 100")
	}
	switch u.Engine {
	case "", EngineBulwark, EngineNetHTTP:
	default:
		v.add(p+".engine", "unknown engine %q: use %s (default) or %s", u.Engine, EngineBulwark, EngineNetHTTP)
	}
	if u.Signatures.MaxAge < 0 {
		v.add(p+".signatures.max_age", "must not be negative")
	}
	if u.TLS != (pki.Files{}) {
		if _, err := u.TLS.ClientConfig(); err != nil {
			v.add(p+".tls", "%v", err)
		}
		for j, e := range u.Endpoints {
			if !strings.HasPrefix(e.URL, "https://") {
				v.add(fmt.Sprintf("%s.endpoints[%d].url", p, j), "%q: with tls, endpoints are https://", e.URL)
			}
		}
	}
}

func checkEndpointURL(s string) error {
	if s == "" {
		return errors.New("missing: write the endpoint's base URL, e.g. http://127.0.0.1:9001")
	}
	if !strings.Contains(s, "://") { // host:port, for TCP pools
		if _, _, err := net.SplitHostPort(s); err != nil {
			return fmt.Errorf("%q is neither a URL nor host:port", s)
		}
		return nil
	}
	u, err := url.Parse(s)
	if err != nil {
		return fmt.Errorf("%q: %v", s, err)
	}
	if u.Scheme != "http" && u.Scheme != "https" {
		return fmt.Errorf("%q: scheme must be http or https", s)
	}
	if u.Host == "" {
		return fmt.Errorf("%q has no host", s)
	}
	return nil
}

func validateRoute(v *validator, p string, r *Route) {
	if r.Match.PathPrefix != "" && !strings.HasPrefix(r.Match.PathPrefix, "/") {
		v.add(p+".match.path_prefix", "must start with /")
	}
	for j, m := range r.Match.Methods {
		if m == "" || strings.ToUpper(m) != m {
			v.add(fmt.Sprintf("%s.match.methods[%d]", p, j), "%q: methods are upper case, e.g. GET", m)
		}
	}
	if r.Retries.Attempts < 0 || r.Retries.Attempts > 10 {
		v.add(p+".retries.attempts", "must be between 1 and 10 (got %d)", r.Retries.Attempts)
	}
	for j, on := range r.Retries.On {
		if _, err := parseRetryOn(on); err != nil {
			v.add(fmt.Sprintf("%s.retries.on[%d]", p, j), "%v", err)
		}
	}
	if b := r.Retries.Budget.Ratio; b < 0 || b > 1 {
		v.add(p+".retries.budget.ratio", "must be between 0 and 1")
	}
	if b := r.Hedge.Budget; b < 0 || b > 1 {
		v.add(p+".hedge.budget", "must be between 0 and 1")
	}
	if _, _, err := parseHedgeDelay(r.Hedge.Delay); err != nil {
		v.add(p+".hedge.delay", "%v", err)
	}
	switch r.Limit.Algorithm {
	case "", "off", "gradient2", "vegas", "aimd":
	default:
		v.add(p+".limit.algorithm", "unknown %q: use off, gradient2, vegas or aimd", r.Limit.Algorithm)
	}
	if s := r.Fallback.Status; s != 0 && (s < 200 || s > 599) {
		v.add(p+".fallback.status", "%d is not an HTTP status", s)
	}
	if r.RateLimit.PerClient < 0 {
		v.add(p+".rate_limit.per_client", "must not be negative")
	}
	if vo := r.Vote; vo.F != 0 || vo.Replicas != 0 {
		switch {
		case vo.F < 0 || vo.F > 3:
			v.add(p+".vote.f", "must be 1, 2 or 3 (got %d)", vo.F)
		case vo.Replicas != 0 && (vo.Replicas < 3 || vo.Replicas > 7 || vo.Replicas%2 == 0):
			v.add(p+".vote.replicas", "must be 3, 5 or 7: 2f+1 replicas outvote f wrong ones (got %d)", vo.Replicas)
		case vo.F != 0 && vo.Replicas != 0 && vo.Replicas != 2*vo.F+1:
			v.add(p+".vote.replicas", "%d does not match f: %d (2f+1 = %d); set one of them", vo.Replicas, vo.F, 2*vo.F+1)
		}
		if r.Async {
			v.add(p+".vote", "an async route cannot vote: it answers 202 before any replica does")
		}
		if vo.MaxBody < 0 {
			v.add(p+".vote.max_body", "must not be negative")
		}
	}
	switch q := r.Vote.Quorum; {
	case q != "" && q != "majority" && q != "all":
		v.add(p+".vote.quorum", "unknown %q: use majority (f+1 of 2f+1, the default) or all (strict: every replica must agree)", q)
	case q != "" && r.Vote.F == 0 && r.Vote.Replicas == 0:
		v.add(p+".vote.quorum", "set without vote.f or vote.replicas: voting is off")
	}
	t := r.Timeouts
	if t.Connect < 0 || t.PerTry < 0 || t.Total < 0 {
		v.add(p+".timeouts", "timeouts must not be negative")
	}
	if t.PerTry > 0 && t.Total > 0 && t.PerTry > t.Total {
		v.add(p+".timeouts.per_try", "per_try (%v) is longer than total (%v)", t.PerTry, t.Total)
	}
}

// retryCond is a parsed retries.on entry.
type retryCond struct {
	kind   string // connect-error, reset, timeout, digest, status
	lo, hi int    // status range for kind "status"
}

func parseRetryOn(s string) (retryCond, error) {
	switch s {
	case "connect-error", "reset", "timeout", "digest":
		return retryCond{kind: s}, nil
	case "5xx":
		return retryCond{kind: "status", lo: 500, hi: 599}, nil
	}
	n, err := strconv.Atoi(s)
	if err != nil || n < 400 || n > 599 {
		return retryCond{}, fmt.Errorf("unknown condition %q: use connect-error, reset, timeout, digest, 5xx or a status 400-599", s)
	}
	return retryCond{kind: "status", lo: n, hi: n}, nil
}

// parseHedgeDelay returns a fixed delay, or a quantile in (0,1) for "pNN".
func parseHedgeDelay(s string) (time.Duration, float64, error) {
	if s == "" || s == "off" {
		return 0, 0, nil
	}
	if q, ok := strings.CutPrefix(s, "p"); ok {
		n, err := strconv.ParseFloat(q, 64)
		if err != nil || n <= 0 || n >= 100 {
			return 0, 0, fmt.Errorf("%q: a quantile is written p50 .. p99.9", s)
		}
		return 0, n / 100, nil
	}
	d, err := time.ParseDuration(s)
	if err != nil || d <= 0 {
		return 0, 0, fmt.Errorf("%q: use off, a duration such as 50ms, or a quantile such as p95", s)
	}
	return d, 0, nil
}

func parseStatusRange(s string) (int, int, error) {
	lo, hi, found := strings.Cut(s, "-")
	a, err1 := strconv.Atoi(strings.TrimSpace(lo))
	b := a
	var err2 error
	if found {
		b, err2 = strconv.Atoi(strings.TrimSpace(hi))
	}
	if err1 != nil || err2 != nil || a < 100 || b > 599 || a > b {
		return 0, 0, fmt.Errorf("%q: write a status or a range such as 200-399", s)
	}
	return a, b, nil
}
