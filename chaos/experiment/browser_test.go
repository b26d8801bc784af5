package experiment

import (
	"bytes"
	"context"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
)

// chromiumPath is where Debian's chromium package installs the browser
// (apt-get install chromium).
const chromiumPath = "/usr/bin/chromium"

// flakyBackend answers 200 until POST /fault with body "on", then 500 to
// every other request until POST /fault with "off": a fault switch like
// the demo replicas' for a real run.
func flakyBackend(t *testing.T) string {
	var failing atomic.Bool
	var n atomic.Uint64
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch {
		case r.URL.Path == "/fault":
			b, _ := io.ReadAll(r.Body)
			failing.Store(string(b) == "on")
		case failing.Load() && n.Add(1)%2 == 0:
			http.Error(w, "injected", http.StatusInternalServerError)
		default:
			w.Write([]byte("ok"))
		}
	}))
	t.Cleanup(srv.Close)
	return srv.URL
}

// TestReportInBrowser renders the HTML report of a real run (a backend
// that fails during the method) in headless Chromium and checks what a
// reader sees: the verdict banner, three SVG charts with their lines
// drawn, the fault window shaded. It saves a screenshot (also to
// $BULWARK_REPORT_SCREENSHOT when set).
func TestReportInBrowser(t *testing.T) {
	if _, err := os.Stat(chromiumPath); err != nil {
		t.Skipf("browser test skipped: %s not found (apt-get install chromium): %v", chromiumPath, err)
	}
	if testing.Short() {
		t.Skip("browser test skipped in -short mode")
	}
	target := flakyBackend(t)
	e := parse(t, `
title: a backend fails for a while
target: %[1]s
load: {rate: 100, duration: 3s, expect: {status: [200]}}
hypothesis: {success_ratio: 0.99, p99: 500ms, warmup: 500ms, window: 500ms, after: 1s}
method:
  - {name: backend fails, at: 200ms, http: {url: "%[1]s/fault", body: "on"}}
  - {name: backend healed, at: 1200ms, http: {url: "%[1]s/fault", body: "off"}}
rollbacks:
  - http: {url: "%[1]s/fault", body: "off"}
`, target)
	res, err := Run(t.Context(), e, Options{})
	if err != nil {
		t.Fatal(err)
	}
	if len(res.Faults) != 1 || res.Faults[0].To-res.Faults[0].From < 0.8 {
		t.Fatalf("fault windows %+v: want one from the failure to the heal (~1 s)", res.Faults)
	}
	dir := t.TempDir()
	page := filepath.Join(dir, "report.html")
	f, err := os.Create(page)
	if err != nil {
		t.Fatal(err)
	}
	if err := WriteHTML(f, res); err != nil {
		t.Fatal(err)
	}
	if err := f.Close(); err != nil {
		t.Fatal(err)
	}

	ctx := newBrowser(t)
	if err := chromedp.Do(ctx, chromedp.EmulateViewport(1400, 1000), chromedp.Navigate("file://"+page)); err != nil {
		t.Fatalf("start chromium and load the report: %v", err)
	}
	within := func(d time.Duration) context.Context {
		c, cancel := context.WithTimeout(ctx, d)
		t.Cleanup(cancel)
		return c
	}
	eval := func(expr string, v any) {
		t.Helper()
		var err error
		switch p := v.(type) {
		case *string:
			*p, err = chromedp.Run(within(5*time.Second), chromedp.Evaluate[string](expr))
		case *[]int:
			*p, err = chromedp.Run(within(5*time.Second), chromedp.Evaluate[[]int](expr))
		}
		if err != nil {
			t.Fatalf("evaluate %s: %v", expr, err)
		}
	}

	var banner, class string
	eval(`document.querySelector('.banner h1').textContent`, &banner)
	eval(`document.querySelector('.banner').className`, &class)
	if !strings.HasPrefix(banner, string(res.Verdict)+": "+res.Title) || !strings.Contains(class, string(res.Verdict)) {
		t.Errorf("banner %q (class %q), want the verdict %q and the title", banner, class, res.Verdict)
	}
	t.Logf("banner: %q", banner)

	// Per chart: rendered width, polylines with at least two points, and
	// the widest fault shading, in CSS pixels as laid out.
	var perChart []int
	eval(`[...document.querySelectorAll('svg')].flatMap(s => [
		Math.round(s.getBoundingClientRect().width),
		[...s.querySelectorAll('polyline')].filter(p => p.points.numberOfItems >= 2).length,
		Math.round(Math.max(0, ...[...s.querySelectorAll('rect.fault')].map(r => r.getBoundingClientRect().width)))])`, &perChart)
	if len(perChart) != 3*3 {
		t.Fatalf("got %d values for the charts (%v), want three SVG charts", len(perChart), perChart)
	}
	wantLines := []int{1, 1, 2} // throughput; success ratio; p50 and p99
	for i := range 3 {
		width, lines, shade := perChart[3*i], perChart[3*i+1], perChart[3*i+2]
		if width < 400 || lines != wantLines[i] || shade < 50 {
			t.Errorf("chart %d: %d px wide, %d drawn lines, fault shading %d px; want ≥ 400 px, %d lines, ≥ 50 px",
				i+1, width, lines, shade, wantLines[i])
		}
	}
	t.Logf("charts (width px, lines, shade px): %v", perChart)

	png, err := chromedp.Run(within(10*time.Second), chromedp.FullScreenshot(100)) // 100: a PNG; below, a JPEG
	if err != nil {
		t.Fatalf("screenshot: %v", err)
	}
	if !bytes.HasPrefix(png, []byte("\x89PNG\r\n\x1a\n")) {
		t.Fatalf("screenshot is not a PNG (%d bytes)", len(png))
	}
	shot := filepath.Join(dir, "report.png")
	if err := os.WriteFile(shot, png, 0o644); err != nil {
		t.Fatal(err)
	}
	t.Logf("screenshot: %s (%d bytes)", shot, len(png))
	if p := os.Getenv("BULWARK_REPORT_SCREENSHOT"); p != "" {
		if err := os.WriteFile(p, png, 0o644); err != nil {
			t.Fatal(err)
		}
		t.Logf("screenshot copied to %s", p)
	}
}

// newBrowser starts headless Chromium for the test; it stops with it.
func newBrowser(t *testing.T) context.Context {
	opts := append(chromedp.DefaultExecAllocatorOptions[:],
		chromedp.ExecPath(chromiumPath),
		chromedp.Headless,
		chromedp.NoSandbox,
		chromedp.DisableGPU,
		chromedp.NoFirstRun,
		chromedp.Flag("disable-background-networking", true),
		chromedp.Flag("disable-component-update", true),
		chromedp.Flag("disable-sync", true),
		chromedp.UserDataDir(t.TempDir()),
		chromedp.WindowSize(1400, 1000),
	)
	allocCtx, cancelAlloc := chromedp.NewExecAllocator(t.Context(), opts...)
	ctx, cancel := chromedp.NewContext(allocCtx)
	t.Cleanup(func() { cancel(); cancelAlloc() })
	return ctx
}
