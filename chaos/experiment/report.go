package experiment

import (
	"encoding/json"
	"fmt"
	"html/template"
	"io"
	"math"
	"strings"
)

// WriteJSON writes the result as indented JSON.
func WriteJSON(w io.Writer, res *Result) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(res)
}

// WriteHTML writes a self-contained HTML report: a verdict banner, the
// reasons, throughput, success ratio and latency charts as inline SVG with
// fault windows shaded, and tables of phases and actions. No scripts, no
// external resources: it opens from a file or an email attachment.
func WriteHTML(w io.Writer, res *Result) error {
	return reportTmpl.Execute(w, reportData{Result: res, Charts: charts(res)})
}

type reportData struct {
	*Result
	Charts []chart
}

// Chart geometry, in SVG user units.
const (
	chartW, chartH                 = 800, 220
	padL, padR, padT, padB float64 = 56, 16, 24, 32
	plotW                          = chartW - padL - padR
	plotH                          = chartH - padT - padB
)

type chart struct {
	Title          string
	W, H           int
	PlotX, PlotY   float64
	PlotW, PlotH   float64
	Shades         []shade
	Series         []series
	Thresholds     []hline
	XTicks, YTicks []tick
	// Note is said under the chart (e.g. a limit off its scale).
	Note string
	s    scale // data to plot coordinates
}

type shade struct {
	X, W  float64
	Label string
}

type series struct {
	Points string
	Class  string
	Label  string
}

type hline struct {
	Y     float64
	Label string
}

type tick struct {
	X, Y  float64
	Label string
}

// scale maps data to the plot area.
type scale struct{ xMax, yMax float64 }

func (s scale) x(v float64) float64 { return padL + plotW*v/s.xMax }
func (s scale) y(v float64) float64 { return padT + plotH*(1-v/s.yMax) }

// niceMax rounds v up to 1, 2 or 5 times a power of ten.
func niceMax(v float64) float64 {
	if v <= 0 {
		return 1
	}
	p := math.Pow(10, math.Floor(math.Log10(v)))
	for _, m := range []float64{1, 2, 5, 10} {
		if v <= m*p {
			return m * p
		}
	}
	return 10 * p
}

// minBucket is the shortest timeline bucket plotted: the run's last
// bucket is cut short by its end, and a few requests in a sliver of a
// second would draw a misleading drop in throughput.
const minBucket = 0.25

func charts(res *Result) []chart {
	xMax := math.Max(res.Duration, 1)
	var xs, rps, ratio, p50, p99 []float64
	maxRPS, maxLat := 0.0, 0.0
	for _, b := range res.Timeline {
		w := math.Min(1, res.Duration-b.T)
		if w < minBucket {
			continue
		}
		xs = append(xs, b.T+w/2)
		rps = append(rps, float64(b.Requests)/w)
		ratio = append(ratio, b.SuccessRatio)
		p50 = append(p50, b.P50Ms)
		p99 = append(p99, b.P99Ms)
		maxRPS, maxLat = math.Max(maxRPS, float64(b.Requests)/w), math.Max(maxLat, b.P99Ms)
	}
	tput := newChart("Throughput (completed requests/s)", res, scale{xMax, niceMax(maxRPS * 1.1)})
	tput.Series = []series{tput.line(xs, rps, "s-rps", "req/s")}
	succ := newChart("Success ratio", res, scale{xMax, 1})
	succ.Series = []series{succ.line(xs, ratio, "s-ok", "success ratio")}
	succ.Thresholds = []hline{{succ.sc().y(res.Hypothesis.SuccessRatio), fmt.Sprintf("hypothesis ≥ %.3g", res.Hypothesis.SuccessRatio)}}
	// The latency axis follows the data; the p99 limit is drawn when it
	// fits without squashing the data into the bottom third (a 1 s limit
	// over 5 ms answers would flatten both lines onto the axis).
	limit := res.Hypothesis.P99Ms
	yMax := maxLat * 1.1
	if limit > 0 && limit <= 3*maxLat {
		yMax = math.Max(yMax, limit*1.1)
	}
	lat := newChart("Latency (ms)", res, scale{xMax, niceMax(yMax)})
	lat.Series = []series{lat.line(xs, p50, "s-p50", "p50"), lat.line(xs, p99, "s-p99", "p99")}
	switch {
	case limit > 0 && limit <= lat.sc().yMax:
		lat.Thresholds = []hline{{lat.sc().y(limit), fmt.Sprintf("p99 ≤ %gms", limit)}}
	case limit > 0:
		lat.Note = fmt.Sprintf("The p99 limit, %g ms, is far above the chart.", limit)
	}
	return []chart{tput, succ, lat}
}

// tickLabel formats an axis value briefly: 7500, 0.25, 1.5.
func tickLabel(v float64) string {
	if v == math.Trunc(v) {
		return fmt.Sprintf("%.0f", v)
	}
	return fmt.Sprintf("%.3g", v)
}

func newChart(title string, res *Result, s scale) chart {
	c := chart{Title: title, W: chartW, H: chartH, PlotX: padL, PlotY: padT, PlotW: plotW, PlotH: plotH}
	c.YTicks = []tick{}
	for i := 0; i <= 4; i++ {
		v := s.yMax * float64(i) / 4
		c.YTicks = append(c.YTicks, tick{X: padL - 6, Y: s.y(v), Label: tickLabel(v)})
	}
	step := math.Max(1, niceMax(s.xMax/10))
	for v := 0.0; v <= s.xMax+1e-9; v += step {
		c.XTicks = append(c.XTicks, tick{X: s.x(v), Y: padT + plotH + 16, Label: fmt.Sprintf("%gs", v)})
	}
	for _, f := range res.Faults {
		// At least 3 units wide: an instant action must still be visible.
		c.Shades = append(c.Shades, shade{X: s.x(f.From), W: math.Max(3, s.x(f.To)-s.x(f.From)), Label: f.Label})
	}
	c.s = s
	return c
}

func (c *chart) sc() scale { return c.s }

// line plots vals at the times xs.
func (c *chart) line(xs, vals []float64, class, label string) series {
	s := c.sc()
	var b strings.Builder
	for i, v := range vals {
		fmt.Fprintf(&b, "%.1f,%.1f ", s.x(math.Min(xs[i], s.xMax)), s.y(math.Min(v, s.yMax)))
	}
	return series{Points: strings.TrimSpace(b.String()), Class: class, Label: label}
}

var reportTmpl = template.Must(template.New("report").Funcs(template.FuncMap{
	"pct": func(f float64) string { return fmt.Sprintf("%.2f%%", 100*f) },
	"add": func(a, b float64) float64 { return a + b },
}).Parse(reportHTML))

const reportHTML = `<!doctype html>
<html lang="en"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>{{.Title}} — {{.Verdict}}</title>
<style>
body{font:14px/1.45 system-ui,-apple-system,"Segoe UI",sans-serif;margin:0;background:#f6f7f9;color:#1d2430}
main{max-width:860px;margin:0 auto;padding:16px}
.banner{padding:16px 20px;border-radius:8px;color:#fff;margin:12px 0}
.banner h1{margin:0;font-size:22px}.banner p{margin:4px 0 0}.banner code{background:rgba(255,255,255,.2);color:#fff}
.passed{background:#1f8a4c}.failed{background:#c0392b}.aborted{background:#b9770e}
section{background:#fff;border:1px solid #dde1e7;border-radius:8px;padding:12px 16px;margin:12px 0}
h2{font-size:16px;margin:0 0 8px}
table{border-collapse:collapse;width:100%}td,th{text-align:left;padding:4px 8px;border-bottom:1px solid #eef0f3}
.nw{white-space:nowrap}.bad{color:#c0392b}.good{color:#1f8a4c}
svg{width:100%;height:auto}
svg text{font:11px system-ui,sans-serif;fill:#4a5568}
.axis{stroke:#9aa5b1;stroke-width:1}.grid{stroke:#eef0f3;stroke-width:1}
.fault{fill:#e74c3c;fill-opacity:.12}.fault-label{fill:#c0392b;color:#e74c3c}
.threshold{stroke:#c0392b;stroke-dasharray:6 4;stroke-width:1.2}
polyline{fill:none;stroke-width:2}.s-rps{stroke:#2b6cb0;color:#2b6cb0}.s-ok{stroke:#1f8a4c;color:#1f8a4c}.s-p50{stroke:#2b6cb0;color:#2b6cb0}.s-p99{stroke:#d35400;color:#d35400}
.legend{color:#4a5568;margin:4px 0 0}
code{background:#eef0f3;padding:1px 4px;border-radius:3px}
</style></head>
<body><main>
<div class="banner {{.Verdict}}"><h1>{{.Verdict}}: {{.Title}}</h1>
<p>target <code>{{.Target}}</code> · {{printf "%.1f" .Duration}} s · started {{.Started.Format "2006-01-02 15:04:05 MST"}}{{with .File}} · {{.}}{{end}}</p></div>
{{with .Description}}<section><p>{{.}}</p></section>{{end}}
<section><h2>Why</h2>{{if .Reasons}}<ul>{{range .Reasons}}<li>{{.}}</li>{{end}}</ul>{{else}}<p class="good">The steady-state hypothesis held before, during and after the method.</p>{{end}}
<p>Hypothesis: success ratio ≥ {{.Hypothesis.SuccessRatio}}{{if .Hypothesis.P99Ms}} and p99 ≤ {{.Hypothesis.P99Ms}} ms{{end}} in every {{.Hypothesis.WindowS}} s window with at least {{.Hypothesis.MinRequests}} {{if eq .Hypothesis.MinRequests 1}}request{{else}}requests{{end}}.</p></section>
{{range .Charts}}<section><h2>{{.Title}}</h2>
<svg viewBox="0 0 {{.W}} {{.H}}" role="img" aria-label="{{.Title}}" xmlns="http://www.w3.org/2000/svg">
{{range .YTicks}}<line class="grid" x1="56" y1="{{.Y}}" x2="784" y2="{{.Y}}"/><text x="{{.X}}" y="{{add .Y 4}}" text-anchor="end">{{.Label}}</text>
{{end}}{{range .Shades}}<rect class="fault" x="{{.X}}" y="24" width="{{.W}}" height="164"><title>{{.Label}}</title></rect><text class="fault-label" x="{{add .X 3}}" y="36">{{.Label}}</text>
{{end}}<line class="axis" x1="56" y1="188" x2="784" y2="188"/><line class="axis" x1="56" y1="24" x2="56" y2="188"/>
{{range .XTicks}}<text x="{{.X}}" y="{{.Y}}" text-anchor="middle">{{.Label}}</text>
{{end}}{{range .Thresholds}}<line class="threshold" x1="56" y1="{{.Y}}" x2="784" y2="{{.Y}}"/><text x="780" y="{{add .Y -4}}" text-anchor="end">{{.Label}}</text>
{{end}}{{range .Series}}<polyline class="{{.Class}}" points="{{.Points}}"><title>{{.Label}}</title></polyline>
{{end}}</svg>
<p class="legend">{{range .Series}}<span class="{{.Class}}">━</span> {{.Label}} &nbsp; {{end}}{{if .Shades}}<span class="fault-label">▮</span> fault window{{end}}{{with .Note}} &nbsp; {{.}}{{end}}</p></section>
{{end}}
<section><h2>Phases</h2><table><tr><th>phase</th><th>from–to (s)</th><th>windows</th><th>failed</th><th>min success</th><th>max p99 (ms)</th><th>holds</th></tr>
{{range .Phases}}<tr><td>{{.Name}}</td><td class="nw">{{.From}}–{{.To}}</td><td>{{.Windows}}</td><td>{{.Failed}}</td><td>{{pct .MinSuccessRatio}}</td><td>{{printf "%.1f" .MaxP99Ms}}</td><td>{{if not .Judged}}not judged{{else if .Holds}}<span class="good">yes</span>{{else}}<span class="bad">no</span>{{end}}</td></tr>
{{end}}</table></section>
<section><h2>Actions</h2><table><tr><th>phase</th><th>action</th><th>on</th><th>at (s)</th><th>result</th></tr>
{{range .Actions}}<tr><td>{{.Phase}}</td><td>{{.Name}} <small>({{.Kind}})</small></td><td><code>{{.Subject}}</code></td><td class="nw">{{.From}}–{{.To}}</td><td>{{if .OK}}<span class="good">ok</span>{{with .Output}} <small>{{.}}</small>{{end}}{{else}}<span class="bad">{{.Error}}</span>{{end}}</td></tr>
{{end}}</table></section>
<section><h2>Requests</h2><p>{{.Totals.Requests}} judged, {{.Totals.OK}} good.</p>
{{if .Totals.Failures}}<table><tr><th>failure</th><th>count</th></tr>{{range $k, $v := .Totals.Failures}}<tr><td>{{$k}}</td><td>{{$v}}</td></tr>{{end}}</table>{{end}}</section>
</main></body></html>
`
