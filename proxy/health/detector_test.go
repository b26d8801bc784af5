package health

import (
	"errors"
	"fmt"
	"sync"
	"syscall"
	"testing"
	"testing/synctest"
	"time"

	"github.com/bulwark-go/bulwark"
)

var (
	ok200   = Outcome{Status: 200, Latency: 2 * time.Millisecond}
	err500  = Outcome{Status: 500, Latency: 2 * time.Millisecond}
	err502  = Outcome{Status: 502, Latency: 2 * time.Millisecond}
	err503  = Outcome{Status: 503, Latency: time.Millisecond}
	refused = Outcome{Err: syscall.ECONNREFUSED}
	timeout = Outcome{Err: fmt.Errorf("per-try timeout: %w", errors.New("deadline")), Latency: time.Second}
	corrupt = Outcome{Status: 200, DigestMismatch: true, Latency: 2 * time.Millisecond}
	notFnd  = Outcome{Status: 404, Latency: time.Millisecond}
)

// recorder collects OnChange calls.
type recorder struct {
	mu  sync.Mutex
	evs []string
}

func (r *recorder) onChange(id string, h bulwark.Health) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.evs = append(r.evs, id+"="+h.String())
}

func (r *recorder) events() []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]string(nil), r.evs...)
}

// newDetector returns a detector over endpoints e0..e(n-1).
func newDetector(t *testing.T, cfg DetectorConfig, n int) (*Detector, *recorder) {
	t.Helper()
	rec := &recorder{}
	cfg.OnChange = rec.onChange
	d, err := NewDetector(cfg)
	if err != nil {
		t.Fatal(err)
	}
	ids := make([]string, n)
	for i := range ids {
		ids[i] = fmt.Sprint("e", i)
	}
	d.SetEndpoints(ids)
	t.Cleanup(func() { _ = d.Close() })
	return d, rec
}

func TestConsecutiveFailureEjection(t *testing.T) {
	rep := func(o Outcome, n int) []Outcome {
		out := make([]Outcome, n)
		for i := range out {
			out[i] = o
		}
		return out
	}
	cat := func(parts ...[]Outcome) []Outcome {
		var out []Outcome
		for _, p := range parts {
			out = append(out, p...)
		}
		return out
	}
	tests := []struct {
		name       string
		cfg        DetectorConfig
		outcomes   []Outcome
		wantReason Reason // ReasonNone: not ejected
	}{
		{"5 connect errors", DetectorConfig{}, rep(refused, 5), ReasonConsecutiveGatewayFailure},
		{"5 timeouts", DetectorConfig{}, rep(timeout, 5), ReasonConsecutiveGatewayFailure},
		{"4 errors are not enough", DetectorConfig{}, rep(refused, 4), ReasonNone},
		{"a success resets the run", DetectorConfig{}, cat(rep(refused, 4), rep(ok200, 1), rep(refused, 4)), ReasonNone},
		{"5 × 503 is a gateway failure run", DetectorConfig{}, rep(err503, 5), ReasonConsecutiveGatewayFailure},
		{"5 × 500", DetectorConfig{}, rep(err500, 5), ReasonConsecutive5xx},
		{"mixed 500 and 502 count as 5xx", DetectorConfig{}, cat(rep(err500, 3), rep(err502, 2)), ReasonConsecutive5xx},
		{"a 500 breaks a gateway run, not a 5xx run", DetectorConfig{Consecutive5xx: -1},
			cat(rep(refused, 4), rep(err500, 1), rep(refused, 4)), ReasonNone},
		{"digest mismatches are failures", DetectorConfig{}, rep(corrupt, 5), ReasonConsecutive5xx},
		{"4xx is not a failure", DetectorConfig{}, rep(notFnd, 20), ReasonNone},
		{"custom threshold", DetectorConfig{ConsecutiveGatewayFailures: 2}, rep(refused, 2), ReasonConsecutiveGatewayFailure},
		{"both off", DetectorConfig{ConsecutiveGatewayFailures: -1, Consecutive5xx: -1}, rep(refused, 50), ReasonNone},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			d, rec := newDetector(t, tc.cfg, 4)
			for _, o := range tc.outcomes {
				d.Report("e1", o)
				d.Report("e2", ok200)
			}
			st := status(d, "e1")
			if tc.wantReason == ReasonNone {
				if st.Ejected || len(rec.events()) != 0 {
					t.Fatalf("ejected (%v), events %v; want not ejected", st.Reason, rec.events())
				}
				return
			}
			if !st.Ejected || st.Reason != tc.wantReason || d.Health("e1") != bulwark.HealthEjected {
				t.Fatalf("status %+v, want ejected for %v", st, tc.wantReason)
			}
			if got := rec.events(); len(got) != 1 || got[0] != "e1=ejected" {
				t.Errorf("events %v, want [e1=ejected]", got)
			}
		})
	}
}

func status(d *Detector, id string) HostStatus {
	for _, s := range d.Status() {
		if s.ID == id {
			return s
		}
	}
	return HostStatus{}
}

func ejectedCount(d *Detector) int {
	n := 0
	for _, s := range d.Status() {
		if s.Ejected {
			n++
		}
	}
	return n
}

func TestEjectionCap(t *testing.T) {
	tests := []struct {
		hosts, maxPercent, want int
	}{
		{4, 0, 2}, // default 50 %
		{3, 50, 1},
		{1, 50, 0}, // never eject the only endpoint
		{2, 100, 2},
		{10, 10, 1},
		{10, 25, 2},
	}
	for _, tc := range tests {
		t.Run(fmt.Sprintf("%d hosts %d%%", tc.hosts, tc.maxPercent), func(t *testing.T) {
			d, _ := newDetector(t, DetectorConfig{MaxEjectionPercent: tc.maxPercent, PanicThreshold: -1}, tc.hosts)
			for i := range tc.hosts {
				for range 5 {
					d.Report(fmt.Sprint("e", i), refused)
				}
			}
			if got := ejectedCount(d); got != tc.want {
				t.Errorf("%d ejected, want %d", got, tc.want)
			}
		})
	}
}

// reportMany sends n outcomes for id, failing every k-th (k = 0: none), so
// that failures never run long enough for consecutive ejection.
func reportMany(d *Detector, id string, n, k int, latency time.Duration) {
	for i := range n {
		o := Outcome{Status: 200, Latency: latency}
		if k > 0 && i%k == 0 {
			o.Status = 500
		}
		d.Report(id, o)
	}
}

func TestSuccessRateOutlier(t *testing.T) {
	tests := []struct {
		name    string
		hosts   int
		volume  int // requests per host in the interval
		badEach int // the bad host fails every badEach-th request
		want    bool
	}{
		{"one bad host among six", 6, 200, 3, true},
		{"too few hosts", 4, 200, 3, false},
		{"too few requests", 6, 50, 3, false},
		{"slightly worse is within the spread", 6, 200, 0, false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				d, _ := newDetector(t, DetectorConfig{LatencyFactor: -1}, tc.hosts)
				for i := range tc.hosts {
					k := 0
					if i == 0 {
						k = tc.badEach
					} else if tc.badEach == 0 && i%2 == 0 {
						k = 50 // a little noise in the pool
					}
					reportMany(d, fmt.Sprint("e", i), tc.volume, k, time.Millisecond)
				}
				d.Tick(time.Now())
				st := status(d, "e0")
				if st.Ejected != tc.want || (tc.want && st.Reason != ReasonSuccessRate) {
					t.Errorf("e0 %+v, want ejected=%v for success rate", st, tc.want)
				}
				if n := ejectedCount(d); n != btoi(tc.want) {
					t.Errorf("%d ejected, want %d", n, btoi(tc.want))
				}
			})
		})
	}
}

func btoi(b bool) int {
	if b {
		return 1
	}
	return 0
}

func TestLatencyOutlier(t *testing.T) {
	tests := []struct {
		name  string
		pool  time.Duration
		slow  time.Duration
		hosts int
		cfg   DetectorConfig
		want  bool
	}{
		{"one slow among four", 5 * time.Millisecond, 200 * time.Millisecond, 4, DetectorConfig{}, true},
		{"one slow among three", 5 * time.Millisecond, 20 * time.Millisecond, 3, DetectorConfig{}, true},
		{"below the factor", 5 * time.Millisecond, 14 * time.Millisecond, 4, DetectorConfig{}, false},
		{"below the absolute floor", time.Millisecond, 8 * time.Millisecond, 4, DetectorConfig{}, false},
		{"too few hosts", 5 * time.Millisecond, 200 * time.Millisecond, 2, DetectorConfig{}, false},
		{"off", 5 * time.Millisecond, 200 * time.Millisecond, 4, DetectorConfig{LatencyFactor: -1}, false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				d, _ := newDetector(t, tc.cfg, tc.hosts)
				reportMany(d, "e0", 100, 0, tc.slow)
				for i := 1; i < tc.hosts; i++ {
					reportMany(d, fmt.Sprint("e", i), 100, 0, tc.pool)
				}
				d.Tick(time.Now())
				st := status(d, "e0")
				if st.Ejected != tc.want || (tc.want && st.Reason != ReasonLatency) {
					t.Errorf("e0 %+v, want ejected=%v for latency", st, tc.want)
				}
				if n := ejectedCount(d); n != btoi(tc.want) {
					t.Errorf("%d ejected, want %d", n, btoi(tc.want))
				}
			})
		})
	}
}

func TestPanicThreshold(t *testing.T) {
	tests := []struct {
		name      string
		threshold int
		hosts     int
		down      int // by probe
		ejected   int // attempts, capped by MaxEjectionPercent 50
		want      bool
	}{
		{"all healthy", 0, 4, 0, 0, false},
		{"half down is not below 50%", 0, 4, 2, 0, false},
		{"three of four down", 0, 4, 3, 0, true},
		{"probe down plus ejected", 0, 4, 2, 1, true},
		{"ejections alone stay within the cap", 0, 4, 0, 4, false},
		{"higher threshold", 80, 5, 0, 2, true},
		{"never", -1, 4, 4, 0, false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			d, _ := newDetector(t, DetectorConfig{PanicThreshold: tc.threshold}, tc.hosts)
			for i := range tc.down {
				d.SetProbeHealth(fmt.Sprint("e", i), bulwark.HealthDown)
			}
			for i := range tc.ejected {
				for range 5 {
					d.Report(fmt.Sprint("e", tc.hosts-1-i), refused)
				}
			}
			if got := d.Panic(); got != tc.want {
				t.Errorf("Panic() = %v, want %v (status %+v)", got, tc.want, d.Status())
			}
		})
	}
}

// TestEjectionTimeGrowsAndShrinks drives the detector's own loop in a
// synctest bubble: the n-th ejection lasts n × base (capped), the endpoint
// comes back after it, and the multiplier shrinks while it behaves.
func TestEjectionTimeGrowsAndShrinks(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		const base = 30 * time.Second
		d, rec := newDetector(t, DetectorConfig{Interval: time.Second, BaseEjectionTime: base, MaxEjectionTime: 75 * time.Second}, 4)
		if err := d.Start(); err != nil {
			t.Fatal(err)
		}
		ejectFor := func(want time.Duration) {
			t.Helper()
			start := time.Now()
			for range 5 {
				d.Report("e0", refused)
			}
			for d.Health("e0") == bulwark.HealthEjected {
				time.Sleep(time.Second)
			}
			// Un-ejection happens on the first tick at or after the end.
			if got := time.Since(start); got < want || got > want+time.Second {
				t.Fatalf("ejected for %v, want %v", got, want)
			}
		}
		ejectFor(base)             // 1st: 30 s
		ejectFor(2 * base)         // 2nd: 60 s
		ejectFor(75 * time.Second) // 3rd: 90 s, capped at 75 s
		if got := status(d, "e0").Ejections; got != 3 {
			t.Fatalf("multiplier %d, want 3", got)
		}
		time.Sleep(2*base + time.Second) // two calm periods: 3 → 1
		if got := status(d, "e0").Ejections; got != 1 {
			t.Fatalf("multiplier after 2 calm periods %d, want 1", got)
		}
		ejectFor(2 * base) // 1 + 1
		synctest.Wait()    // let the loop finish delivering the last OnChange
		want := []string{"e0=ejected", "e0=up", "e0=ejected", "e0=up", "e0=ejected", "e0=up", "e0=ejected", "e0=up"}
		if got := rec.events(); fmt.Sprint(got) != fmt.Sprint(want) {
			t.Errorf("events %v, want %v", got, want)
		}
		if err := d.Start(); err == nil {
			t.Error("a second Start succeeded")
		}
		if err := d.Close(); err != nil {
			t.Fatal(err)
		}
		if err := d.Close(); err != nil {
			t.Fatal("second Close:", err)
		}
		if err := d.Start(); !errors.Is(err, ErrClosed) {
			t.Errorf("Start after Close: %v, want ErrClosed", err)
		}
	})
}

func TestEffectiveHealth(t *testing.T) {
	d, rec := newDetector(t, DetectorConfig{}, 3)
	d.SetProbeHealth("e0", bulwark.HealthUp)
	for range 5 {
		d.Report("e0", refused)
	}
	d.SetProbeHealth("e0", bulwark.HealthDown) // down outranks ejected
	d.SetProbeHealth("e0", bulwark.HealthUp)   // still ejected
	d.SetProbeHealth("e9", bulwark.HealthDown) // unknown id: ignored
	d.Report("e9", refused)
	want := []string{"e0=up", "e0=ejected", "e0=down", "e0=ejected"}
	if got := rec.events(); fmt.Sprint(got) != fmt.Sprint(want) {
		t.Errorf("events %v, want %v", got, want)
	}
	if d.Health("e1") != bulwark.HealthUnknown || d.Health("e9") != bulwark.HealthUnknown {
		t.Error("unobserved endpoints must be unknown")
	}
	// Membership changes keep the state of endpoints that stay.
	d.SetEndpoints([]string{"e0", "e5"})
	if st := status(d, "e0"); !st.Ejected || len(d.Status()) != 2 {
		t.Errorf("after SetEndpoints: %+v", d.Status())
	}
}

func TestDetectorConfigValidate(t *testing.T) {
	tests := []struct {
		name string
		cfg  DetectorConfig
		ok   bool
	}{
		{"zero", DetectorConfig{}, true},
		{"negative interval", DetectorConfig{Interval: -1}, false},
		{"percent above 100", DetectorConfig{MaxEjectionPercent: 101}, false},
		{"panic above 100", DetectorConfig{PanicThreshold: 101}, false},
		{"negative volume", DetectorConfig{RequestVolume: -1}, false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, err := NewDetector(tc.cfg)
			if (err == nil) != tc.ok {
				t.Errorf("err %v, want ok=%v", err, tc.ok)
			}
		})
	}
}

// TestConcurrentReports exercises Report, Tick and membership changes at
// once; run with -race.
func TestConcurrentReports(t *testing.T) {
	d, _ := newDetector(t, DetectorConfig{MaxEjectionPercent: 100}, 8)
	var wg sync.WaitGroup
	for g := range 4 {
		wg.Go(func() {
			for i := range 2000 {
				o := ok200
				if (i+g)%3 == 0 {
					o = refused
				}
				d.Report(fmt.Sprint("e", i%8), o)
				_ = d.Panic()
			}
		})
	}
	for i := range 50 {
		d.Tick(time.Now().Add(time.Duration(i) * time.Minute))
		if i%10 == 0 {
			d.SetEndpoints([]string{"e0", "e1", "e2", "e3", "e4", "e5", "e6", "e7"})
		}
	}
	wg.Wait()
}

// TestFlapDamping: an endpoint that probes see come back a second time
// within BaseEjectionTime is ejected instead of re-admitted, for longer on
// each flap; a single return, or one after a calm spell, is not a flap.
func TestFlapDamping(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		const base = 10 * time.Second
		d, rec := newDetector(t, DetectorConfig{Interval: time.Second, BaseEjectionTime: base}, 3)
		if err := d.Start(); err != nil {
			t.Fatal(err)
		}
		flap := func() {
			d.SetProbeHealth("e0", bulwark.HealthDown)
			time.Sleep(2 * time.Second)
			d.SetProbeHealth("e0", bulwark.HealthUp)
		}
		d.SetProbeHealth("e0", bulwark.HealthUp)
		flap() // the first return: back in rotation
		if h := d.Health("e0"); h != bulwark.HealthUp {
			t.Fatalf("after one return: %v, want up", h)
		}
		time.Sleep(2 * time.Second)
		flap() // 4 s after the last return: flapping
		if st := status(d, "e0"); !st.Ejected || st.Reason != ReasonFlapping {
			t.Fatalf("after a second return within %v: %+v, want ejected for flapping", base, st)
		}
		start := time.Now()
		for d.Health("e0") == bulwark.HealthEjected {
			time.Sleep(time.Second)
		}
		if got := time.Since(start); got < base || got > base+time.Second {
			t.Fatalf("first flap ejection lasted %v, want %v", got, base)
		}
		flap() // again soon after: twice as long
		start = time.Now()
		for d.Health("e0") == bulwark.HealthEjected {
			time.Sleep(time.Second)
		}
		if got := time.Since(start); got < 2*base || got > 2*base+time.Second {
			t.Fatalf("second flap ejection lasted %v, want %v", got, 2*base)
		}
		time.Sleep(3 * base) // calm
		flap()               // a return long after the last one is not a flap
		if h := d.Health("e0"); h != bulwark.HealthUp {
			t.Fatalf("a return after a calm spell: %v, want up", h)
		}
		synctest.Wait()
		t.Log(rec.events())
	})
}
