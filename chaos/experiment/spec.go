// Package experiment runs self-verifying chaos experiments: it drives load
// at a target, judges every response, checks a steady-state hypothesis
// (success ratio and p99 latency over sliding windows) before, during and
// after a method of timed fault actions, always runs the rollbacks, and
// writes a verdict as JSON and as a self-contained HTML report.
//
// It closes the loop that fault injectors leave open (Toxiproxy, Chaos
// Monkey and Envoy's fault filter only inject), as Chaos Toolkit does:
// the hypothesis is checked before the method (a run that is not steady
// to begin with is aborted) and after it.
//
// An experiment is a YAML file; see [Experiment] for the keys and
// testdata/valid.yaml for an example. [Load] parses one, [Run] runs it,
// [WriteJSON] and [WriteHTML] write the result.
package experiment

import (
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/bulwark-go/bulwark/chaos"
)

// ErrInvalid is wrapped by every error about an invalid experiment file.
var ErrInvalid = errors.New("invalid experiment")

// Experiment is a parsed experiment file.
type Experiment struct {
	// Title names the experiment in reports.
	Title string `yaml:"title"`
	// Description says what it shows; optional.
	Description string `yaml:"description"`
	// Target is the base URL load is sent to. Required.
	Target string `yaml:"target"`
	// ChaosAPI is the default chaos (Toxiproxy-compatible) API URL for
	// toxic actions; default "http://127.0.0.1:8474".
	ChaosAPI string `yaml:"chaos_api"`
	// Load is the traffic the runner generates.
	Load LoadProfile `yaml:"load"`
	// Hypothesis is the steady state that must hold.
	Hypothesis Hypothesis `yaml:"hypothesis"`
	// Method is the faults, in order.
	Method []Action `yaml:"method"`
	// Rollbacks undo the method; they always run, also after a failure or
	// a cancellation.
	Rollbacks []Action `yaml:"rollbacks"`

	// File is the path the experiment was loaded from.
	File string `yaml:"-"`
}

// LoadProfile describes the generated traffic: an open loop at Rate requests per
// second, or a closed loop of Concurrency workers.
type LoadProfile struct {
	// Rate is requests per second (open loop). Exactly one of Rate and
	// Concurrency is required.
	Rate float64 `yaml:"rate"`
	// Concurrency is the number of workers sending back to back.
	Concurrency int `yaml:"concurrency"`
	// Duration is the whole run's length; default 10 s. The runner extends
	// it to observe at least Hypothesis.After once the method is over.
	Duration time.Duration `yaml:"duration"`
	// Timeout bounds each request; default 2 s.
	Timeout time.Duration `yaml:"timeout"`
	// Method is the HTTP method; default GET.
	Method string `yaml:"method"`
	// Paths are requested in turn; default ["/"].
	Paths []string `yaml:"paths"`
	// Headers are sent with every request.
	Headers map[string]string `yaml:"headers"`
	// Body is sent with every request (e.g. for POST); default none.
	Body string `yaml:"body"`
	// Expect is how each response is judged.
	Expect Expect `yaml:"expect"`
}

// Expect judges a response.
type Expect struct {
	// Status lists the acceptable statuses; default any 2xx.
	Status []int `yaml:"status"`
	// Body, when set, checks the body.
	Body *BodyCheck `yaml:"body"`
}

// BodyCheck checks a response body. Any combination may be set.
type BodyCheck struct {
	// Exact requires the body to equal this string.
	Exact *string `yaml:"exact"`
	// Contains requires the body to contain this string.
	Contains string `yaml:"contains"`
	// Digest requires a Content-Digest header (RFC 9530; sha-256 or
	// sha-512) that matches the body: catches corrupted replies.
	Digest bool `yaml:"digest"`
}

// Hypothesis is the steady state: in every judged window, the success
// ratio is at least SuccessRatio and the p99 latency at most P99.
type Hypothesis struct {
	// SuccessRatio is the minimum ratio of good responses; default 0.99.
	SuccessRatio *float64 `yaml:"success_ratio"`
	// P99 is the maximum 99th-percentile latency; 0 (default) skips it.
	P99 time.Duration `yaml:"p99"`
	// Window is the sliding window's width; default 1 s. Windows slide by
	// a quarter of it.
	Window time.Duration `yaml:"window"`
	// Warmup is how long the steady state is checked before the method;
	// default 2 s.
	Warmup time.Duration `yaml:"warmup"`
	// After is the least time observed after the method; default 2 s.
	After time.Duration `yaml:"after"`
	// Grace is how long after each method action windows are not judged
	// (time allowed to recover, e.g. a failover); default 0.
	Grace time.Duration `yaml:"grace"`
	// MinRequests is the fewest completions a window needs to be judged;
	// default 1.
	MinRequests int `yaml:"min_requests"`
}

// Action is one step of a method or of the rollbacks. Exactly one of
// AddToxic, RemoveToxic, HTTP, Run and Wait is set.
type Action struct {
	// Name labels the action in reports; default its kind.
	Name string `yaml:"name"`
	// At is the offset from the method's start at which the action starts;
	// unset means right after the previous action. Not allowed in rollbacks.
	At *time.Duration `yaml:"at"`
	// Timeout bounds the action; default 10 s (30 s for run).
	Timeout time.Duration `yaml:"timeout"`

	// AddToxic adds a toxic through the chaos API.
	AddToxic *AddToxic `yaml:"add_toxic"`
	// RemoveToxic removes one.
	RemoveToxic *RemoveToxic `yaml:"remove_toxic"`
	// HTTP calls an endpoint (kill, restart, flag).
	HTTP *HTTPCall `yaml:"http"`
	// Run is a command as argv, run without a shell.
	Run []string `yaml:"run"`
	// Wait pauses for the duration.
	Wait *time.Duration `yaml:"wait"`
}

// AddToxic adds a toxic through a chaos API; the fields after Proxy are a
// toxic in Toxiproxy's form.
type AddToxic struct {
	// API is the chaos API URL; default the experiment's ChaosAPI.
	API string `yaml:"api"`
	// Proxy names the proxy. Required.
	Proxy string `yaml:"proxy"`
	// Name is the toxic's name; default "<type>_<stream>".
	Name string `yaml:"name"`
	// Type is a chaos toxic type (latency, bandwidth, timeout, http_abort, …).
	Type string `yaml:"type"`
	// Stream is upstream or downstream (default).
	Stream string `yaml:"stream"`
	// Toxicity is the probability it applies; default 1.
	Toxicity *float64 `yaml:"toxicity"`
	// Attributes are the type's attributes, as in Toxiproxy.
	Attributes map[string]any `yaml:"attributes"`
}

// RemoveToxic removes a toxic through a chaos API. A toxic that is
// already gone counts as removed, so rollbacks can repeat the method's
// removals safely.
type RemoveToxic struct {
	// API is the chaos API URL; default the experiment's ChaosAPI.
	API string `yaml:"api"`
	// Proxy and Name identify the toxic. Both required.
	Proxy string `yaml:"proxy"`
	Name  string `yaml:"name"`
}

// HTTPCall calls an endpoint: a kill or restart URL, a feature flag.
type HTTPCall struct {
	// Method defaults to POST.
	Method string `yaml:"method"`
	// URL is required.
	URL string `yaml:"url"`
	// Body and Headers are sent as given.
	Body    string            `yaml:"body"`
	Headers map[string]string `yaml:"headers"`
	// ExpectStatus lists acceptable statuses; default any 2xx.
	ExpectStatus []int `yaml:"expect_status"`
}

// Kind returns the action's kind: add_toxic, remove_toxic, http, run or wait.
func (a *Action) Kind() string {
	switch {
	case a.AddToxic != nil:
		return "add_toxic"
	case a.RemoveToxic != nil:
		return "remove_toxic"
	case a.HTTP != nil:
		return "http"
	case a.Run != nil:
		return "run"
	case a.Wait != nil:
		return "wait"
	}
	return ""
}

// subject names what the action acts on, for reports and for pairing a
// toxic's addition with its removal.
func (a *Action) subject() string {
	switch {
	case a.AddToxic != nil:
		name := a.AddToxic.Name
		if name == "" {
			stream := a.AddToxic.Stream
			if stream == "" {
				stream = "downstream"
			}
			name = a.AddToxic.Type + "_" + stream // the chaos API's default name
		}
		return a.AddToxic.Proxy + "/" + name
	case a.RemoveToxic != nil:
		return a.RemoveToxic.Proxy + "/" + a.RemoveToxic.Name
	case a.HTTP != nil:
		return a.HTTP.Method + " " + a.HTTP.URL
	case len(a.Run) > 0:
		return strings.Join(a.Run, " ")
	case a.Wait != nil:
		return a.Wait.String()
	}
	return ""
}

// toxicJSON is the toxic an AddToxic posts.
func (t *AddToxic) toxicJSON() ([]byte, error) {
	m := map[string]any{"name": t.Name, "type": t.Type, "stream": t.Stream}
	if t.Toxicity != nil {
		m["toxicity"] = *t.Toxicity
	}
	if t.Attributes != nil {
		m["attributes"] = t.Attributes
	}
	return json.Marshal(m)
}

// problem is one validation finding, at a YAML path.
type problem struct {
	path []string
	msg  string
}

// applyDefaults fills in defaults; validate is run on the result.
func (e *Experiment) applyDefaults() {
	if e.ChaosAPI == "" {
		e.ChaosAPI = "http://127.0.0.1:8474"
	}
	l := &e.Load
	if l.Duration == 0 {
		l.Duration = 10 * time.Second
	}
	if l.Timeout == 0 {
		l.Timeout = 2 * time.Second
	}
	if l.Method == "" {
		l.Method = http.MethodGet
	}
	if len(l.Paths) == 0 {
		l.Paths = []string{"/"}
	}
	h := &e.Hypothesis
	if h.SuccessRatio == nil {
		r := 0.99
		h.SuccessRatio = &r
	}
	if h.Window == 0 {
		h.Window = time.Second
	}
	if h.Warmup == 0 {
		h.Warmup = 2 * time.Second
	}
	if h.After == 0 {
		h.After = 2 * time.Second
	}
	if h.MinRequests == 0 {
		h.MinRequests = 1
	}
	for _, list := range [][]Action{e.Method, e.Rollbacks} {
		for i := range list {
			a := &list[i]
			if a.Name == "" {
				a.Name = a.Kind()
			}
			if a.Timeout == 0 {
				a.Timeout = 10 * time.Second
				if a.Run != nil {
					a.Timeout = 30 * time.Second
				}
			}
			if a.AddToxic != nil && a.AddToxic.API == "" {
				a.AddToxic.API = e.ChaosAPI
			}
			if a.RemoveToxic != nil && a.RemoveToxic.API == "" {
				a.RemoveToxic.API = e.ChaosAPI
			}
			if a.HTTP != nil && a.HTTP.Method == "" {
				a.HTTP.Method = http.MethodPost
			}
		}
	}
}

func checkURL(s string) string {
	u, err := url.Parse(s)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return fmt.Sprintf("%q is not an http(s) URL: write e.g. http://127.0.0.1:8080", s)
	}
	return ""
}

// validate returns every problem found, with the YAML path it is at.
func (e *Experiment) validate() []problem {
	var ps []problem
	add := func(msg string, path ...string) { ps = append(ps, problem{path, msg}) }
	if e.Target == "" {
		add("target is required: the base URL to send load to, e.g. http://127.0.0.1:8080")
	} else if m := checkURL(e.Target); m != "" {
		add("target: "+m, "target")
	}
	if m := checkURL(e.ChaosAPI); m != "" {
		add("chaos_api: "+m, "chaos_api")
	}
	ps = append(ps, e.Load.validate()...)
	ps = append(ps, e.Hypothesis.validate()...)
	for i := range e.Method {
		ps = append(ps, e.Method[i].validate("method", i, true)...)
	}
	for i := range e.Rollbacks {
		ps = append(ps, e.Rollbacks[i].validate("rollbacks", i, false)...)
	}
	return ps
}

func (l *LoadProfile) validate() []problem {
	var ps []problem
	add := func(msg string, path ...string) { ps = append(ps, problem{append([]string{"load"}, path...), msg}) }
	switch {
	case l.Rate < 0:
		add("rate must be positive", "rate")
	case l.Concurrency < 0:
		add("concurrency must be positive", "concurrency")
	case l.Rate > 0 && l.Concurrency > 0:
		add("set either rate (requests/s, open loop) or concurrency (workers), not both", "concurrency")
	case l.Rate == 0 && l.Concurrency == 0:
		add("set rate (requests/s) or concurrency (workers)")
	case l.Rate > 10000:
		add("rate above 10000 requests/s is beyond this load generator", "rate")
	case l.Concurrency > 1000:
		add("concurrency above 1000 workers is beyond this load generator", "concurrency")
	}
	if l.Duration < 0 {
		add("duration must be positive", "duration")
	}
	if l.Timeout < 0 {
		add("timeout must be positive", "timeout")
	}
	for i, p := range l.Paths {
		if len(p) == 0 || p[0] != '/' {
			add(fmt.Sprintf("path %q must start with /", p), "paths", fmt.Sprint(i))
		}
	}
	for i, s := range l.Expect.Status {
		if s < 100 || s > 599 {
			add(fmt.Sprintf("status %d is not an HTTP status (100..599)", s), "expect", "status", fmt.Sprint(i))
		}
	}
	return ps
}

func (h *Hypothesis) validate() []problem {
	var ps []problem
	add := func(msg string, key string) { ps = append(ps, problem{[]string{"hypothesis", key}, msg}) }
	if r := *h.SuccessRatio; !(r >= 0 && r <= 1) {
		add(fmt.Sprintf("success_ratio %v must be between 0 and 1 (e.g. 0.99)", r), "success_ratio")
	}
	for _, kd := range []struct {
		key string
		d   time.Duration
	}{{"p99", h.P99}, {"warmup", h.Warmup}, {"after", h.After}, {"grace", h.Grace}} {
		if kd.d < 0 {
			add(kd.key+" must not be negative", kd.key)
		}
	}
	if h.Window < 100*time.Millisecond {
		add("window must be at least 100ms", "window")
	}
	if h.Warmup > 0 && h.Warmup < h.Window {
		add("warmup must be at least one window long to judge the steady state before the method", "warmup")
	}
	if h.MinRequests < 0 {
		add("min_requests must not be negative", "min_requests")
	}
	return ps
}

func (a *Action) validate(list string, i int, inMethod bool) []problem {
	var ps []problem
	idx := fmt.Sprint(i)
	add := func(msg string, path ...string) {
		ps = append(ps, problem{append([]string{list, idx}, path...), msg})
	}
	n := 0
	for _, set := range []bool{a.AddToxic != nil, a.RemoveToxic != nil, a.HTTP != nil, a.Run != nil, a.Wait != nil} {
		if set {
			n++
		}
	}
	if n != 1 {
		add("an action needs exactly one of add_toxic, remove_toxic, http, run, wait")
		return ps
	}
	if a.At != nil && (!inMethod || *a.At < 0) {
		add("at must be a non-negative offset, and only in the method (rollbacks run in order)", "at")
	}
	switch {
	case a.AddToxic != nil:
		t := a.AddToxic
		if t.Proxy == "" {
			add("add_toxic needs proxy: the proxy's name", "add_toxic")
		}
		if b, err := t.toxicJSON(); err != nil {
			add("add_toxic: "+err.Error(), "add_toxic")
		} else if err := json.Unmarshal(b, new(chaos.Toxic)); err != nil {
			msg := strings.Replace(err.Error(), "json: unknown field", "unknown attribute", 1)
			if strings.Contains(msg, "attributes") {
				add("add_toxic: "+msg, "add_toxic", "attributes")
			} else {
				add("add_toxic: "+msg, "add_toxic")
			}
		}
		if m := checkURL(t.API); m != "" {
			add("api: "+m, "add_toxic", "api")
		}
	case a.RemoveToxic != nil:
		if a.RemoveToxic.Proxy == "" || a.RemoveToxic.Name == "" {
			add("remove_toxic needs proxy and name", "remove_toxic")
		}
		if m := checkURL(a.RemoveToxic.API); m != "" {
			add("api: "+m, "remove_toxic", "api")
		}
	case a.HTTP != nil:
		if m := checkURL(a.HTTP.URL); m != "" {
			add("url: "+m, "http", "url")
		}
	case a.Run != nil:
		if len(a.Run) == 0 || a.Run[0] == "" {
			add("run needs a command as a list: [program, arg, ...] (no shell)", "run")
		}
	case a.Wait != nil:
		if *a.Wait < 0 {
			add("wait must not be negative", "wait")
		}
	}
	return ps
}
