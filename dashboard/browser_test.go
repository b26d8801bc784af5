package dashboard

import (
	"context"
	"fmt"
	"math/rand/v2"
	"net/http/httptest"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
)

// chromiumPath is where Debian's chromium package installs the browser
// (apt-get install chromium; .ci/run does it).
const chromiumPath = "/usr/bin/chromium"

// TestBrowser drives the real page in headless Chromium against a
// dashboard backed by a fake system of three instances: the cards appear,
// the charts grow, "kill" turns an instance red within 2 s, and a
// screenshot is saved (also to $BULWARK_SCREENSHOT when set, for the
// README).
func TestBrowser(t *testing.T) {
	if _, err := os.Stat(chromiumPath); err != nil {
		t.Skipf("browser test skipped: %s not found (apt-get install chromium): %v", chromiumPath, err)
	}
	if testing.Short() {
		t.Skip("browser test skipped in -short mode")
	}
	shotPath := os.Getenv("BULWARK_SCREENSHOT")
	fs := newFakeSystem()
	d := newTestDashboard(t, Config{Source: fs, Controls: fs, Interval: 250 * time.Millisecond, Title: "Bulwark"})
	ev := d.Events()
	ev.Add(KindLeader, "reg-1 elected leader (term 3)")
	ev.Add(KindBreaker, "api-3: breaker closed → open (5 of 10 calls failed)")
	ev.Add(KindEjection, "api-3 ejected for 30s (5 consecutive 5xx)")
	ev.Add(KindBreaker, "api-3: breaker open → half_open")
	if err := d.Start(); err != nil {
		t.Fatal(err)
	}
	stopTraffic := feedTraffic(d.Traffic(), fs)
	defer stopTraffic()
	srv := httptest.NewServer(d.Handler())
	defer srv.Close()
	defer d.Close() // end the page's event stream before srv.Close waits for it

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
		chromedp.WindowSize(1440, 1000),
	)
	allocCtx, cancelAlloc := chromedp.NewExecAllocator(t.Context(), opts...)
	defer cancelAlloc()
	ctx, cancel := chromedp.NewContext(allocCtx)
	defer cancel()
	// The first Run starts the browser; it must not carry a timeout.
	if err := chromedp.Do(ctx, chromedp.EmulateViewport(1440, 1000), chromedp.Navigate(srv.URL)); err != nil {
		t.Fatalf("start chromium and load the page: %v", err)
	}
	within := func(d time.Duration) context.Context {
		c, cancel := context.WithTimeout(ctx, d)
		t.Cleanup(cancel)
		return c
	}

	n, err := chromedp.Run(within(10*time.Second), chromedp.Poll[int](
		`(() => { const n = document.querySelectorAll('[data-instance]').length; return n === 3 ? n : 0; })()`))
	if err != nil {
		t.Fatalf("waiting for three instance cards: %v", err)
	}
	t.Logf("page shows %d instances", n)

	// The supervision tree: every node, a crash loop shown as gave-up.
	if _, err := chromedp.Run(within(5*time.Second), chromedp.Poll[bool](
		`document.querySelectorAll('#tree li').length === 4 && !!document.querySelector('#tree li[data-node="api-3"][data-state="gave-up"]')`)); err != nil {
		t.Fatalf("supervision tree not shown: %v", err)
	}

	// The gateway cluster: g1 owns the VIP; its kill button moves it.
	if _, err := chromedp.Run(within(5*time.Second), chromedp.Poll[bool](
		`document.getElementById('cluster-owner').textContent === 'g1' && document.querySelectorAll('#cluster-nodes li').length === 3 &&
		 document.querySelector('#cluster-nodes li[data-node="g1"]').dataset.holding === 'true'`)); err != nil {
		t.Fatalf("cluster panel does not show g1 owning the VIP: %v", err)
	}
	if err := chromedp.Do(within(5*time.Second), chromedp.Click(chromedp.CSS(`#cluster-nodes button[data-action="kill"][data-target="g1"]`))); err != nil {
		t.Fatalf("click kill on g1: %v", err)
	}
	if _, err := chromedp.Run(within(2*time.Second), chromedp.Poll[bool](
		`document.getElementById('cluster-owner').textContent === 'g2' && document.querySelector('#cluster-nodes li[data-node="g1"]').dataset.state === 'down' &&
		 document.getElementById('cluster-handovers').textContent === '2 · 1'`)); err != nil {
		t.Fatalf("cluster panel does not show the VIP on g2 after killing g1: %v", err)
	}
	if fs.owner() != "g2" {
		t.Errorf("fake system: owner %q after killing g1, want g2", fs.owner())
	}

	p0, err := chromedp.Run(within(5*time.Second), chromedp.Evaluate[int](`+document.getElementById('chart-rps').dataset.points`))
	if err != nil {
		t.Fatal(err)
	}
	p1, err := chromedp.Run(within(5*time.Second), chromedp.Poll[int](fmt.Sprintf(
		`(() => { const n = +document.getElementById('chart-rps').dataset.points; return n > %d ? n : 0; })()`, p0)))
	if err != nil {
		t.Fatalf("chart did not grow beyond %d points: %v", p0, err)
	}
	t.Logf("requests/s chart grew from %d to %d points", p0, p1)

	if err := chromedp.Do(within(5*time.Second), chromedp.Click(chromedp.CSS(`button[data-action="kill"][data-target="api-2"]`))); err != nil {
		t.Fatalf("click kill: %v", err)
	}
	start := time.Now()
	if _, err := chromedp.Run(within(2*time.Second), chromedp.Poll[bool](
		`document.querySelector('[data-instance="api-2"]').dataset.health === 'down'`)); err != nil {
		t.Fatalf("api-2 not shown down within 2s of the click: %v", err)
	}
	t.Logf("api-2 shown down %v after the click", time.Since(start).Round(time.Millisecond))
	if fs.health("api-2") != HealthDown || fs.health("api-1") != HealthUp {
		t.Errorf("fake system: api-2 %s, api-1 %s; want down, up", fs.health("api-2"), fs.health("api-1"))
	}

	// A fault button and the traffic switch go through the same path.
	if err := chromedp.Do(within(5*time.Second), chromedp.Click(chromedp.CSS(`button[data-action="corrupt"][data-target="api-1"]`))); err != nil {
		t.Fatal(err)
	}
	if _, err := chromedp.Run(within(2*time.Second), chromedp.Poll[bool](
		`document.querySelector('[data-instance="api-1"]').dataset.fault === 'corrupt'`)); err != nil {
		t.Fatalf("api-1 fault not shown: %v", err)
	}
	if _, err := chromedp.Run(within(2*time.Second), chromedp.Poll[bool](
		`document.querySelectorAll('#events li[data-kind="chaos"]').length === 3`)); err != nil {
		t.Fatalf("chaos events not listed: %v", err)
	}

	// Let the charts fill a little (more for the README picture).
	minPoints := p1 + 8
	if shotPath != "" {
		minPoints = 100
	}
	if _, err := chromedp.Run(within(40*time.Second), chromedp.Poll[bool](fmt.Sprintf(
		`+document.getElementById('chart-rps').dataset.points >= %d`, minPoints))); err != nil {
		t.Fatalf("charts did not reach %d points: %v", minPoints, err)
	}
	png, err := chromedp.Run(within(10*time.Second), chromedp.FullScreenshot(100))
	if err != nil {
		t.Fatalf("screenshot: %v", err)
	}
	out := filepath.Join(t.TempDir(), "dashboard.png")
	if err := os.WriteFile(out, png, 0o644); err != nil {
		t.Fatal(err)
	}
	t.Logf("screenshot: %s (%d bytes)", out, len(png))
	if shotPath != "" {
		if err := os.WriteFile(shotPath, png, 0o644); err != nil {
			t.Fatal(err)
		}
		t.Logf("screenshot copied to %s", shotPath)
	}
}

// feedTraffic records synthetic requests until stopped, as a gateway
// would: a few milliseconds each with a tail, and a burst of failures for
// a moment after an instance dies (until outlier detection would route
// around it). It returns a function that stops it and waits.
func feedTraffic(tr *Traffic, fs *fakeSystem) (stop func()) {
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		rng := rand.New(rand.NewPCG(1, 2))
		tick := time.NewTicker(5 * time.Millisecond)
		defer tick.Stop()
		var downSince time.Time
		for i := 0; ; i++ {
			select {
			case <-ctx.Done():
				return
			case now := <-tick.C:
				failP := 0.003
				if fs.health("api-2") == HealthDown {
					if downSince.IsZero() {
						downSince = now
					}
					if now.Sub(downSince) < 1500*time.Millisecond {
						failP = 0.2
					}
				}
				// Wavy load: 2..6 requests per 5 ms tick.
				n := 2 + int(2+2*sinApprox(float64(i)/120))
				for range n {
					lat := time.Duration(3+rng.ExpFloat64()*4) * time.Millisecond
					if rng.Float64() < 0.015 {
						lat = time.Duration(60+rng.IntN(80)) * time.Millisecond
					}
					tr.Record(lat, rng.Float64() >= failP)
				}
			}
		}
	}()
	return func() { cancel(); wg.Wait() }
}

// sinApprox is a cheap periodic wave in [-1, 1] (a triangle), enough to
// make the synthetic load visibly move.
func sinApprox(x float64) float64 {
	f := x - float64(int(x))
	if f < 0.5 {
		return 4*f - 1
	}
	return 3 - 4*f
}
