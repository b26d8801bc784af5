package experiment

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/url"
	"os/exec"
	"slices"
	"strings"
	"sync"
	"time"
)

// Options tune a run. The zero value works.
type Options struct {
	// Progress receives one status line about every second (stderr in the
	// CLI); nil prints nothing.
	Progress io.Writer
	// Client sends the load; nil uses a private transport that keeps
	// response bytes as sent (no transparent decompression, so
	// Content-Digest checks see the bytes the digest covers).
	Client *http.Client
	// ActionClient sends the actions' HTTP calls; nil uses a private one.
	ActionClient *http.Client
	// Logger logs each phase and action; nil discards.
	Logger *slog.Logger
}

// Run runs the experiment: load starts; the hypothesis is judged over the
// warm-up; the method runs (skipped if the warm-up was not steady); load
// goes on for at least Hypothesis.After; then the rollbacks ALWAYS run,
// also when ctx is cancelled (with a fresh deadline per action).
//
// A broken hypothesis is a verdict, not an error. The error is non-nil
// only when ctx ended the run early (the result is still complete, with
// verdict aborted) or the experiment is invalid.
func Run(ctx context.Context, exp *Experiment, opts Options) (*Result, error) {
	if exp == nil || exp.Target == "" {
		return nil, fmt.Errorf("%w: no target", ErrInvalid)
	}
	log := opts.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	r := &runner{exp: exp, opts: opts, log: log, rec: &recorder{t0: time.Now()}}
	r.res = &Result{Title: exp.Title, Description: exp.Description, File: exp.File, Target: exp.Target,
		Started: r.rec.t0, Actions: []ActionResult{}, Faults: []FaultWindow{}}
	return r.run(ctx)
}

type runner struct {
	exp  *Experiment
	opts Options
	log  *slog.Logger
	rec  *recorder
	res  *Result

	mu    sync.Mutex // guards phase
	phase string
}

func (r *runner) now() time.Duration { return time.Since(r.rec.t0) }

func (r *runner) setPhase(p string) {
	r.mu.Lock()
	r.phase = p
	r.mu.Unlock()
	r.log.Info("phase", "phase", p, "t", r.now().Round(time.Millisecond))
}

func (r *runner) run(ctx context.Context) (*Result, error) {
	h := &r.exp.Hypothesis
	client, closeClient := r.loadClient()
	defer closeClient()

	loadCtx, stopLoad := context.WithCancel(ctx)
	var wg sync.WaitGroup
	gen := &generator{exp: r.exp, client: client, rec: r.rec}
	wg.Go(func() { gen.run(loadCtx) })
	if r.opts.Progress != nil {
		wg.Go(func() { r.progress(loadCtx) })
	}

	r.setPhase("before")
	sleepCtx(ctx, h.Warmup)
	warmEnd := r.now()
	before := judge(h, r.rec.snapshot(), "before", 0, warmEnd, nil)
	var methodStart, methodEnd time.Duration
	var grace []interval
	aborted := ""
	switch {
	case ctx.Err() != nil:
		aborted = "cancelled during the warm-up"
	case !before.Judged:
		aborted = "no request completed during the warm-up: the target is not serving"
	case !before.Holds:
		aborted = "steady state not met before the method; the method was not run"
	default:
		r.setPhase("during")
		methodStart = r.now()
		grace, aborted = r.method(ctx, methodStart)
		methodEnd = r.now()
		r.setPhase("after")
		end := max(r.exp.Load.Duration, methodEnd+h.After)
		sleepCtx(ctx, end-r.now())
		if ctx.Err() != nil && aborted == "" {
			aborted = "cancelled"
		}
	}
	end := r.now()
	stopLoad()
	wg.Wait()

	r.setPhase("rollbacks")
	r.rollbacks(ctx)
	r.finish(before, methodStart, methodEnd, end, grace, aborted)
	if ctx.Err() != nil {
		return r.res, fmt.Errorf("experiment %q: %w", r.exp.Title, context.Cause(ctx))
	}
	return r.res, nil
}

func (r *runner) loadClient() (*http.Client, func()) {
	if r.opts.Client != nil {
		return r.opts.Client, func() {}
	}
	n := max(r.exp.Load.Concurrency, 64)
	tr := &http.Transport{MaxIdleConnsPerHost: n, DisableCompression: true, IdleConnTimeout: 30 * time.Second}
	return &http.Client{Transport: tr}, tr.CloseIdleConnections
}

// method runs the method's actions at their offsets. It returns the grace
// intervals after each action and, if an action failed or ctx ended, why
// the run is aborted.
func (r *runner) method(ctx context.Context, start time.Duration) ([]interval, string) {
	var grace []interval
	for i := range r.exp.Method {
		a := &r.exp.Method[i]
		if a.At != nil {
			sleepCtx(ctx, start+*a.At-r.now())
		}
		if ctx.Err() != nil {
			return grace, "cancelled during the method"
		}
		ar := r.act(ctx, a, "method")
		grace = append(grace, interval{time.Duration(ar.To * float64(time.Second)),
			time.Duration(ar.To*float64(time.Second)) + r.exp.Hypothesis.Grace})
		if !ar.OK {
			if ctx.Err() != nil {
				return grace, "cancelled during the method"
			}
			return grace, fmt.Sprintf("method action %q failed: %s", a.Name, ar.Error)
		}
	}
	return grace, ""
}

// rollbacks run every rollback action, in order, whatever happened:
// detached from ctx's cancellation, each under its own timeout.
func (r *runner) rollbacks(ctx context.Context) {
	rctx := context.WithoutCancel(ctx)
	for i := range r.exp.Rollbacks {
		r.act(rctx, &r.exp.Rollbacks[i], "rollback")
	}
}

// act runs one action and records it.
func (r *runner) act(ctx context.Context, a *Action, phase string) ActionResult {
	from := r.now()
	actx, cancel := context.WithTimeout(ctx, a.Timeout)
	defer cancel()
	out, err := r.do(actx, a)
	ar := ActionResult{Name: a.Name, Kind: a.Kind(), Subject: a.subject(), Phase: phase, From: sec(from), To: sec(r.now()),
		OK: err == nil, Output: out}
	if err != nil {
		ar.Error = err.Error()
		r.log.Warn("action failed", "action", a.Name, "phase", phase, "err", err)
	} else {
		r.log.Info("action done", "action", a.Name, "phase", phase)
	}
	r.res.Actions = append(r.res.Actions, ar)
	return ar
}

func (r *runner) do(ctx context.Context, a *Action) (string, error) {
	switch {
	case a.AddToxic != nil:
		t := a.AddToxic
		body, err := t.toxicJSON()
		if err != nil {
			return "", err
		}
		return r.call(ctx, http.MethodPost, t.API+"/proxies/"+url.PathEscape(t.Proxy)+"/toxics", body, nil, nil, false)
	case a.RemoveToxic != nil:
		t := a.RemoveToxic
		return r.call(ctx, http.MethodDelete, t.API+"/proxies/"+url.PathEscape(t.Proxy)+"/toxics/"+url.PathEscape(t.Name), nil, nil, nil, true)
	case a.HTTP != nil:
		c := a.HTTP
		return r.call(ctx, c.Method, c.URL, []byte(c.Body), c.Headers, c.ExpectStatus, false)
	case a.Run != nil:
		cmd := exec.CommandContext(ctx, a.Run[0], a.Run[1:]...)
		cmd.WaitDelay = time.Second
		out, err := cmd.CombinedOutput()
		return truncate(string(out)), err
	case a.Wait != nil:
		sleepCtx(ctx, *a.Wait)
		return "", ctx.Err()
	}
	return "", errors.New("empty action")
}

// call makes an action's HTTP request; notFoundOK treats 404 as done.
func (r *runner) call(ctx context.Context, method, u string, body []byte, hdr map[string]string, want []int, notFoundOK bool) (string, error) {
	req, err := http.NewRequestWithContext(ctx, method, u, bytes.NewReader(body))
	if err != nil {
		return "", err
	}
	if len(body) > 0 {
		req.Header.Set("Content-Type", "application/json")
	}
	for k, v := range hdr {
		req.Header.Set(k, v)
	}
	client := r.opts.ActionClient
	if client == nil {
		tr := &http.Transport{}
		defer tr.CloseIdleConnections()
		client = &http.Client{Transport: tr}
	}
	resp, err := client.Do(req)
	if err != nil {
		return "", err
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(io.LimitReader(resp.Body, 4096))
	out := truncate(string(b))
	if notFoundOK && resp.StatusCode == http.StatusNotFound {
		return "already absent", nil
	}
	if !statusOK(resp.StatusCode, want) {
		return out, fmt.Errorf("%s %s: status %d: %s", method, u, resp.StatusCode, strings.TrimSpace(out))
	}
	return out, nil
}

func truncate(s string) string {
	if len(s) > 2048 {
		return s[:2048] + "…"
	}
	return s
}

// sleepCtx sleeps for d or until ctx ends.
func sleepCtx(ctx context.Context, d time.Duration) {
	if d <= 0 {
		return
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
	case <-ctx.Done():
	}
}

// progress prints a status line about every second until ctx ends.
func (r *runner) progress(ctx context.Context) {
	tick := time.NewTicker(time.Second)
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		}
		now := r.now()
		st := statsOf(between(r.rec.snapshot(), now-time.Second, now+1))
		r.mu.Lock()
		phase := r.phase
		r.mu.Unlock()
		fmt.Fprintf(r.opts.Progress, "[%5.1fs] %-7s %4d req/s  ok %6.2f%%  p50 %6.1fms  p99 %6.1fms\n",
			now.Seconds(), phase, st.n, 100*st.ratio(), ms(st.p50), ms(st.p99))
	}
}

// finish judges the phases and fills in the result.
func (r *runner) finish(before PhaseResult, mStart, mEnd, end time.Duration, grace []interval, aborted string) {
	h := &r.exp.Hypothesis
	ss := r.rec.snapshot()
	res := r.res
	res.Duration = sec(end)
	res.Hypothesis = HypothesisResult{SuccessRatio: *h.SuccessRatio, P99Ms: ms(h.P99), WindowS: h.Window.Seconds(), MinRequests: h.MinRequests}
	res.Timeline = timeline(ss, end)
	res.Totals = totals(ss)
	res.Faults = faultWindows(res.Actions, res.Duration)
	res.Phases = []PhaseResult{before}
	ran := mEnd > 0
	if ran {
		res.Phases = append(res.Phases,
			judge(h, ss, "during", mStart, mEnd, grace),
			judge(h, ss, "after", mEnd+h.Grace, end, grace))
	}
	for _, p := range res.Phases {
		res.Reasons = append(res.Reasons, p.Violations...)
		if p.Failed > len(p.Violations) {
			res.Reasons = append(res.Reasons, fmt.Sprintf("%s: %d more failing windows", p.Name, p.Failed-len(p.Violations)))
		}
	}
	switch {
	case aborted != "":
		res.Verdict = VerdictAborted
		res.Reasons = append([]string{aborted}, res.Reasons...)
	case slices.ContainsFunc(res.Phases, func(p PhaseResult) bool { return !p.Holds }):
		res.Verdict = VerdictFailed
	case ran && !res.Phases[2].Judged:
		res.Verdict = VerdictFailed
		res.Reasons = append(res.Reasons, "after: no window could be judged: no requests completed after the method")
	default:
		res.Verdict = VerdictPassed
	}
	for _, p := range res.Phases {
		if !p.Judged && p.Name == "during" {
			res.Reasons = append(res.Reasons, "during: the method was shorter than a window; not judged")
		}
	}
	for _, a := range res.Actions {
		if !a.OK && a.Phase == "rollback" {
			res.Reasons = append(res.Reasons, fmt.Sprintf("rollback %q failed: %s (the system may need manual repair)", a.Name, a.Error))
		}
	}
	r.log.Info("verdict", "verdict", res.Verdict, "reasons", len(res.Reasons))
}

// faultWindows pairs each fault with the action that ends it, for the
// report's shading: an add_toxic with the first later remove_toxic of the
// same toxic (or the end of the run); an http call with the next call to
// the same URL (a fault switch set, then reset); a run with the next run
// of the same program on the same last argument (kill -STOP PID, then
// kill -CONT PID). Other actions are shaded while they ran.
func faultWindows(actions []ActionResult, end float64) []FaultWindow {
	out := []FaultWindow{}
	used := make([]bool, len(actions))
	for i, a := range actions {
		if a.Phase != "method" || !a.OK || used[i] {
			continue
		}
		switch a.Kind {
		case "add_toxic":
			to := end
			if j := closer(actions, used, i, "remove_toxic", func(b ActionResult) bool { return b.Subject == a.Subject }); j >= 0 {
				to = actions[j].From
			}
			out = append(out, FaultWindow{From: a.From, To: min(to, end), Label: a.Name})
		case "http", "run":
			to := max(a.To, a.From+0.05)
			if j := closer(actions, used, i, a.Kind, func(b ActionResult) bool { return sameTarget(a, b) }); j >= 0 {
				to = actions[j].From
			}
			out = append(out, FaultWindow{From: a.From, To: min(to, end), Label: a.Name})
		case "remove_toxic", "wait":
		default:
			out = append(out, FaultWindow{From: a.From, To: max(a.To, a.From+0.05), Label: a.Name})
		}
	}
	return out
}

// closer finds the first unused method action after i of the given kind
// that match accepts, marks it used and returns its index, or -1.
func closer(actions []ActionResult, used []bool, i int, kind string, match func(ActionResult) bool) int {
	for j := i + 1; j < len(actions); j++ {
		b := actions[j]
		if !used[j] && b.Phase == "method" && b.Kind == kind && match(b) {
			used[j] = true
			return j
		}
	}
	return -1
}

// sameTarget reports whether two http or run actions act on the same
// thing: the same method and URL, or the same program and last argument.
func sameTarget(a, b ActionResult) bool {
	if a.Kind == "http" {
		return a.Subject == b.Subject
	}
	fa, fb := strings.Fields(a.Subject), strings.Fields(b.Subject)
	return len(fa) > 1 && len(fb) > 1 && fa[0] == fb[0] && fa[len(fa)-1] == fb[len(fb)-1]
}
