package experiment

import (
	"fmt"
	"math"
	"slices"
	"sort"
	"time"
)

// Verdicts of a run.
const (
	// VerdictPassed: the hypothesis held before, during and after the method.
	VerdictPassed = "passed"
	// VerdictFailed: the hypothesis did not hold during or after the method.
	VerdictFailed = "failed"
	// VerdictAborted: the system was not steady before the method, a method
	// action failed, or the run was cancelled; nothing was shown.
	VerdictAborted = "aborted"
)

// Result is the outcome of a run, written as JSON and rendered as HTML.
// Offsets are seconds from the start of the run.
type Result struct {
	Title       string    `json:"title"`
	Description string    `json:"description,omitempty"`
	File        string    `json:"file,omitempty"`
	Target      string    `json:"target"`
	Started     time.Time `json:"started"`
	// Duration is the run's length in seconds.
	Duration float64 `json:"duration_s"`
	Verdict  string  `json:"verdict"`
	// Reasons say why the verdict is not passed (and note what was not judged).
	Reasons []string `json:"reasons,omitempty"`
	// Hypothesis is the steady state as judged (defaults filled in).
	Hypothesis HypothesisResult `json:"hypothesis"`
	Phases     []PhaseResult    `json:"phases"`
	Timeline   []Bucket         `json:"timeline"`
	Actions    []ActionResult   `json:"actions"`
	Faults     []FaultWindow    `json:"faults"`
	Totals     Totals           `json:"totals"`
}

// HypothesisResult restates the hypothesis in report units.
type HypothesisResult struct {
	SuccessRatio float64 `json:"success_ratio"`
	P99Ms        float64 `json:"p99_ms,omitempty"`
	WindowS      float64 `json:"window_s"`
	MinRequests  int     `json:"min_requests"`
}

// PhaseResult is the hypothesis's judgement over one phase.
type PhaseResult struct {
	Name string  `json:"name"` // before, during, after
	From float64 `json:"from_s"`
	To   float64 `json:"to_s"`
	// Windows is how many windows were judged, Failed how many of them
	// broke the hypothesis.
	Windows int  `json:"windows"`
	Failed  int  `json:"failed"`
	Holds   bool `json:"holds"`
	// Judged is false when the phase did not run or had no full window.
	Judged          bool    `json:"judged"`
	MinSuccessRatio float64 `json:"min_success_ratio"`
	MaxP99Ms        float64 `json:"max_p99_ms"`
	// Violations describe the first failing windows.
	Violations []string `json:"violations,omitempty"`
}

// Bucket is one second of the run, for the charts.
type Bucket struct {
	T            float64 `json:"t_s"`
	Requests     int     `json:"requests"`
	OK           int     `json:"ok"`
	SuccessRatio float64 `json:"success_ratio"`
	P50Ms        float64 `json:"p50_ms"`
	P99Ms        float64 `json:"p99_ms"`
}

// ActionResult is what one action did.
type ActionResult struct {
	Name string `json:"name"`
	Kind string `json:"kind"`
	// Subject is what the action acted on: proxy/toxic, a URL, a program.
	Subject string  `json:"subject"`
	Phase   string  `json:"phase"` // method or rollback
	From    float64 `json:"from_s"`
	To      float64 `json:"to_s"`
	OK      bool    `json:"ok"`
	Error   string  `json:"error,omitempty"`
	Output  string  `json:"output,omitempty"`
}

// FaultWindow is an interval in which a fault was in place (a toxic from
// its add to its removal, a fault switch from one call to the next call
// to the same URL, kill -STOP to kill -CONT) or an action ran; reports
// shade it.
type FaultWindow struct {
	From  float64 `json:"from_s"`
	To    float64 `json:"to_s"`
	Label string  `json:"label"`
}

// Totals count every judged request.
type Totals struct {
	Requests int            `json:"requests"`
	OK       int            `json:"ok"`
	Failures map[string]int `json:"failures,omitempty"`
}

// stats of a set of samples.
type stats struct {
	n, ok    int
	p50, p99 time.Duration
}

func statsOf(ss []sample) stats {
	st := stats{n: len(ss)}
	lat := make([]time.Duration, len(ss))
	for i, s := range ss {
		if s.ok {
			st.ok++
		}
		lat[i] = s.end - s.start
	}
	slices.Sort(lat)
	st.p50, st.p99 = quantile(lat, 0.50), quantile(lat, 0.99)
	return st
}

// quantile of sorted values, nearest rank.
func quantile(sorted []time.Duration, q float64) time.Duration {
	if len(sorted) == 0 {
		return 0
	}
	i := int(math.Ceil(q*float64(len(sorted)))) - 1
	return sorted[max(i, 0)]
}

func (st stats) ratio() float64 {
	if st.n == 0 {
		return 1
	}
	return float64(st.ok) / float64(st.n)
}

// between returns the samples (sorted by end) that completed in [from, to).
func between(ss []sample, from, to time.Duration) []sample {
	i := sort.Search(len(ss), func(i int) bool { return ss[i].end >= from })
	j := sort.Search(len(ss), func(i int) bool { return ss[i].end >= to })
	return ss[i:j]
}

func ms(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }
func sec(d time.Duration) float64 {
	return math.Round(float64(d)/float64(time.Millisecond)) / 1000
}

type interval struct{ from, to time.Duration }

// judge checks the hypothesis over sliding windows inside [from, to),
// skipping windows that overlap an excluded interval (grace periods).
// Only requests sent in the phase count: one sent during a fault that
// completes after the heal (on a slow host, or a 1 s timeout) tells about
// the fault, not about the recovery.
func judge(h *Hypothesis, ss []sample, name string, from, to time.Duration, excluded []interval) PhaseResult {
	ss = slices.DeleteFunc(slices.Clone(ss), func(s sample) bool { return s.start < from })
	pr := PhaseResult{Name: name, From: sec(from), To: sec(to), Holds: true, MinSuccessRatio: 1}
	step := h.Window / 4
	for w := from; w+h.Window <= to; w += step {
		if slices.ContainsFunc(excluded, func(iv interval) bool { return w < iv.to && w+h.Window > iv.from }) {
			continue
		}
		st := statsOf(between(ss, w, w+h.Window))
		if st.n < h.MinRequests {
			continue
		}
		pr.Windows++
		pr.Judged = true
		pr.MinSuccessRatio = min(pr.MinSuccessRatio, st.ratio())
		pr.MaxP99Ms = max(pr.MaxP99Ms, ms(st.p99))
		var why string
		switch {
		case st.ratio() < *h.SuccessRatio:
			why = fmt.Sprintf("success ratio %.3f < %.3f (%d/%d good)", st.ratio(), *h.SuccessRatio, st.ok, st.n)
		case h.P99 > 0 && st.p99 > h.P99:
			why = fmt.Sprintf("p99 %v > %v over %d requests", st.p99.Round(time.Millisecond), h.P99, st.n)
		default:
			continue
		}
		pr.Failed++
		pr.Holds = false
		if len(pr.Violations) < 5 {
			pr.Violations = append(pr.Violations, fmt.Sprintf("%s: window %.2fs–%.2fs: %s", name, sec(w), sec(w+h.Window), why))
		}
	}
	return pr
}

// timeline buckets the samples by second of completion.
func timeline(ss []sample, end time.Duration) []Bucket {
	var out []Bucket
	for t := time.Duration(0); t < end; t += time.Second {
		st := statsOf(between(ss, t, t+time.Second))
		out = append(out, Bucket{T: sec(t), Requests: st.n, OK: st.ok, SuccessRatio: st.ratio(),
			P50Ms: ms(st.p50), P99Ms: ms(st.p99)})
	}
	return out
}

func totals(ss []sample) Totals {
	t := Totals{Requests: len(ss)}
	for _, s := range ss {
		if s.ok {
			t.OK++
			continue
		}
		if t.Failures == nil {
			t.Failures = map[string]int{}
		}
		t.Failures[s.reason]++
	}
	return t
}
