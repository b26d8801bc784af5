package experiment

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/bulwark-go/bulwark/chaos"
	"github.com/bulwark-go/bulwark/internal/netns"
)

func TestMain(m *testing.M) {
	if code, done := netns.Isolate(); done {
		os.Exit(code)
	}
	goleak.VerifyTestMain(m)
}

// counter is an HTTP endpoint that counts calls per path: the kill,
// restart and rollback endpoints of the tests.
type counter struct {
	mu sync.Mutex
	n  map[string]int
}

func newCounter(t *testing.T) (*counter, string) {
	c := &counter{n: map[string]int{}}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		c.mu.Lock()
		c.n[r.URL.Path]++
		c.mu.Unlock()
	}))
	t.Cleanup(srv.Close)
	return c, srv.URL
}

func (c *counter) get(path string) int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.n[path]
}

// backend serves a JSON body with its Content-Digest, or status.
func backend(t *testing.T, status int) string {
	body := []byte(`{"id":1,"name":"widget"}`)
	sum := sha256.Sum256(body)
	digest := "sha-256=:" + base64.StdEncoding.EncodeToString(sum[:]) + ":"
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Digest", digest)
		w.WriteHeader(status)
		_, _ = w.Write(body)
	}))
	t.Cleanup(srv.Close)
	return srv.URL
}

// chaosProxy starts a chaos server with an HTTP proxy "web" in front of
// upstream and returns the proxy's URL and the API's URL.
func chaosProxy(t *testing.T, upstream string) (proxyURL, apiURL string) {
	s, err := chaos.New(chaos.Config{Seed: 9})
	if err != nil {
		t.Fatal(err)
	}
	p, err := s.CreateProxy(chaos.ProxyConfig{Name: "web", Upstream: upstream, Enabled: true, Protocol: chaos.ProtocolHTTP})
	if err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- s.Serve(ctx, ln) }()
	t.Cleanup(func() { cancel(); <-done })
	return "http://" + p.Addr(), "http://" + ln.Addr().String()
}

func parse(t *testing.T, yaml string, args ...any) *Experiment {
	t.Helper()
	e, err := Parse("test.yaml", []byte(fmt.Sprintf(yaml, args...)))
	if err != nil {
		t.Fatal(err)
	}
	return e
}

func TestRunPasses(t *testing.T) {
	t.Parallel()
	e := parse(t, `
title: steady
target: %s
load: {rate: 40, duration: 2s, expect: {body: {contains: widget, digest: true}}}
hypothesis: {success_ratio: 0.99, p99: 2s, warmup: 500ms, window: 500ms, after: 500ms}
method:
  - wait: 200ms
`, backend(t, 200))
	var progress bytes.Buffer
	res, err := Run(t.Context(), e, Options{Progress: &progress})
	if err != nil {
		t.Fatal(err)
	}
	if res.Verdict != VerdictPassed {
		t.Fatalf("verdict %s: %v", res.Verdict, res.Reasons)
	}
	if res.Totals.Requests < 40 || res.Totals.OK != res.Totals.Requests {
		t.Errorf("totals %+v", res.Totals)
	}
	if res.Duration < 2 {
		t.Errorf("ran %.1fs, want ≥ load.duration 2s", res.Duration)
	}
	if !strings.Contains(progress.String(), "req/s") {
		t.Errorf("no progress lines: %q", progress.String())
	}
}

// TestRunFailsOnCorruption injects a Byzantine replica (every response
// body corrupted, digest kept) and checks the hypothesis fails, the report
// says why, and the rollbacks ran.
func TestRunFailsOnCorruption(t *testing.T) {
	t.Parallel()
	proxyURL, apiURL := chaosProxy(t, backend(t, 200))
	calls, callsURL := newCounter(t)
	e := parse(t, `
title: byzantine replica
target: %s
chaos_api: %s
load: {rate: 40, timeout: 1s, expect: {body: {digest: true}}, duration: 1s}
hypothesis: {success_ratio: 0.95, warmup: 1s, window: 500ms, after: 1s}
method:
  - name: corrupt
    add_toxic: {proxy: web, name: byz, type: http_corrupt, attributes: {bytes: 2}}
  - name: heal
    at: 1500ms
    remove_toxic: {proxy: web, name: byz}
rollbacks:
  - remove_toxic: {proxy: web, name: byz}
  - http: {url: %s/rollback}
`, proxyURL, apiURL, callsURL)
	res, err := Run(t.Context(), e, Options{})
	if err != nil {
		t.Fatal(err)
	}
	if res.Verdict != VerdictFailed {
		t.Fatalf("verdict %s, want failed: %v", res.Verdict, res.Reasons)
	}
	if len(res.Reasons) == 0 || !strings.Contains(res.Reasons[0], "during") || !strings.Contains(res.Reasons[0], "success ratio") {
		t.Errorf("reasons %q: want a during-phase success ratio violation first", res.Reasons)
	}
	if res.Totals.Failures["digest mismatch"] == 0 {
		t.Errorf("failures %v: want digest mismatches", res.Totals.Failures)
	}
	if res.Phases[0].Holds != true || res.Phases[2].Holds != true {
		t.Errorf("before/after should hold: %+v", res.Phases)
	}
	if got := calls.get("/rollback"); got != 1 {
		t.Errorf("rollback endpoint called %d times, want 1", got)
	}
	if len(res.Faults) != 1 || res.Faults[0].To-res.Faults[0].From < 1.3 {
		t.Errorf("fault windows %+v: want one of ~1.5s", res.Faults)
	}

	var html, js bytes.Buffer
	if err := WriteHTML(&html, res); err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{`class="banner failed"`, "<svg", "<polyline", `class="fault"`, "Throughput", "Success ratio",
		"Latency", "digest mismatch", "success ratio"} {
		if !strings.Contains(html.String(), want) {
			t.Errorf("HTML lacks %q", want)
		}
	}
	if strings.Contains(html.String(), "<script") || strings.Contains(html.String(), "src=\"http") {
		t.Error("HTML report is not self-contained")
	}
	if err := WriteJSON(&js, res); err != nil {
		t.Fatal(err)
	}
	var back Result
	if err := json.Unmarshal(js.Bytes(), &back); err != nil || back.Verdict != VerdictFailed {
		t.Errorf("JSON round trip: %v, %s", err, back.Verdict)
	}
}

func TestRunAbortsWhenNotSteadyBefore(t *testing.T) {
	t.Parallel()
	calls, callsURL := newCounter(t)
	e := parse(t, `
title: broken from the start
target: %s
load: {concurrency: 1, duration: 1s}
hypothesis: {warmup: 500ms, window: 250ms}
method:
  - http: {url: %s/kill}
rollbacks:
  - http: {url: %s/rollback}
`, backend(t, 500), callsURL, callsURL)
	res, err := Run(t.Context(), e, Options{})
	if err != nil {
		t.Fatal(err)
	}
	if res.Verdict != VerdictAborted || !strings.Contains(res.Reasons[0], "before") {
		t.Errorf("verdict %s %q, want aborted because of the before phase", res.Verdict, res.Reasons)
	}
	if calls.get("/kill") != 0 || calls.get("/rollback") != 1 {
		t.Errorf("kill called %d times (want 0), rollback %d (want 1)", calls.get("/kill"), calls.get("/rollback"))
	}
	if res.Totals.Failures["status 500"] == 0 {
		t.Errorf("failures %v", res.Totals.Failures)
	}
}

func TestRunRollsBackOnCancel(t *testing.T) {
	t.Parallel()
	calls, callsURL := newCounter(t)
	e := parse(t, `
title: cancelled
target: %s
load: {rate: 20}
hypothesis: {warmup: 300ms, window: 250ms}
method:
  - http: {url: %s/kill}
  - wait: 30s
rollbacks:
  - http: {url: %s/restart}
  - run: ["true"]
`, backend(t, 200), callsURL, callsURL)
	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	go func() {
		// Cancel once the method has started: a bounded wait on a condition.
		for deadline := time.Now().Add(10 * time.Second); time.Now().Before(deadline); time.Sleep(10 * time.Millisecond) {
			if calls.get("/kill") > 0 {
				break
			}
		}
		cancel()
	}()
	start := time.Now()
	res, err := Run(ctx, e, Options{})
	if !errors.Is(err, context.Canceled) {
		t.Fatalf("Run error = %v, want context.Canceled", err)
	}
	if time.Since(start) > 5*time.Second {
		t.Errorf("cancelled run took %v", time.Since(start))
	}
	if res.Verdict != VerdictAborted || calls.get("/restart") != 1 {
		t.Errorf("verdict %s, restart called %d times; want aborted and 1", res.Verdict, calls.get("/restart"))
	}
	var rollbacks int
	for _, a := range res.Actions {
		if a.Phase == "rollback" && a.OK {
			rollbacks++
		}
	}
	if rollbacks != 2 {
		t.Errorf("%d rollbacks succeeded, want 2: %+v", rollbacks, res.Actions)
	}
}

func TestJudgeWindows(t *testing.T) {
	ratio := 0.9
	h := &Hypothesis{SuccessRatio: &ratio, P99: 100 * time.Millisecond, Window: time.Second, MinRequests: 1}
	mk := func(at time.Duration, lat time.Duration, ok bool) sample {
		return sample{start: at - lat, end: at, ok: ok}
	}
	var ss []sample
	for i := range 40 { // 0–4 s: 10/s; second 2 has 5 failures, second 3 is slow
		at := time.Duration(i) * 100 * time.Millisecond
		sec := i / 10
		ss = append(ss, mk(at, map[bool]time.Duration{true: 300 * time.Millisecond, false: 10 * time.Millisecond}[sec == 3],
			!(sec == 1 && i%2 == 0)))
	}
	tests := []struct {
		name     string
		from, to time.Duration
		holds    bool
		contains string
	}{
		{"good second", 0, time.Second, true, ""},
		// The request completing at 1.0 s was sent at 0.99 s, before the
		// phase: 5 of the 9 sent in it are good.
		{"failures", time.Second, 2 * time.Second, false, "success ratio 0.556"},
		{"slow", 3 * time.Second, 4 * time.Second, false, "p99 300ms > 100ms"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			pr := judge(h, ss, tt.name, tt.from, tt.to, nil)
			if pr.Holds != tt.holds || !pr.Judged {
				t.Fatalf("holds=%v judged=%v, want %v: %v", pr.Holds, pr.Judged, tt.holds, pr.Violations)
			}
			if tt.contains != "" && !strings.Contains(strings.Join(pr.Violations, "\n"), tt.contains) {
				t.Errorf("violations %q lack %q", pr.Violations, tt.contains)
			}
		})
	}
	// A failure sent before the phase (during a fault) and completing in it
	// is not the phase's: it judges requests sent after the heal.
	late := []sample{ // three sent at 0.9 s, failing at 1.1 s: 10/13 would break the 0.9 ratio
		{start: 900 * time.Millisecond, end: 1100 * time.Millisecond}, {start: 900 * time.Millisecond, end: 1100 * time.Millisecond},
		{start: 900 * time.Millisecond, end: 1100 * time.Millisecond}}
	for i := range 10 {
		at := time.Second + time.Duration(i+1)*50*time.Millisecond
		late = append(late, sample{start: at - time.Millisecond, end: at, ok: true})
	}
	slices.SortFunc(late, func(a, b sample) int { return int(a.end - b.end) })
	if pr := judge(h, late, "after", time.Second, 2*time.Second, nil); !pr.Holds {
		t.Errorf("a request sent before the phase was judged in it: %v", pr.Violations)
	}
	if pr := judge(h, ss, "graced", time.Second, 2*time.Second, []interval{{time.Second, 2 * time.Second}}); pr.Judged {
		t.Errorf("window inside a grace interval was judged: %+v", pr)
	}
}

func TestCheckDigest(t *testing.T) {
	body := []byte("hello")
	sum := sha256.Sum256(body)
	good := "sha-256=:" + base64.StdEncoding.EncodeToString(sum[:]) + ":"
	tests := []struct{ field, want string }{
		{good, ""},
		{"md5=:xx:, " + good, ""},
		{"", "missing Content-Digest"},
		{"sha-256=:" + base64.StdEncoding.EncodeToString(make([]byte, 32)) + ":", "digest mismatch"},
		{"sha-256=nocolons", "malformed Content-Digest"},
		{"md5=:xx:", "no supported Content-Digest algorithm"},
	}
	for _, tt := range tests {
		if got := checkDigest(tt.field, body); got != tt.want {
			t.Errorf("checkDigest(%q) = %q, want %q", tt.field, got, tt.want)
		}
	}
}
