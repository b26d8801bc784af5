package monkey

import (
	"bytes"
	"context"
	"errors"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os/exec"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"testing/synctest"
	"time"

	"github.com/bulwark-go/bulwark"
)

// fleet is a fake set of services whose killed instances restart after
// restartAfter (in the synctest bubble's clock). It checks the guard: it
// records the fewest healthy instances any kill left.
type fleet struct {
	mu           sync.Mutex
	restartAfter time.Duration
	down         map[string]time.Time // instance → when killed
	size         int
	kills        int
	minLeft      int
}

func newFleet(size int, restartAfter time.Duration) *fleet {
	return &fleet{size: size, restartAfter: restartAfter, down: map[string]time.Time{}, minLeft: size}
}

func (f *fleet) healthyLocked(service string) ([]bulwark.Instance, int) {
	var out []bulwark.Instance
	n := 0
	for i := range f.size {
		id := string(rune('a' + i))
		h := bulwark.HealthUp
		if t, ok := f.down[service+id]; ok {
			if time.Since(t) >= f.restartAfter {
				delete(f.down, service+id)
			} else {
				h = bulwark.HealthDown
			}
		}
		if h == bulwark.HealthUp {
			n++
		}
		out = append(out, bulwark.Instance{Service: service, ID: id, Health: h})
	}
	return out, n
}

func (f *fleet) Instances(_ context.Context, service string) ([]bulwark.Instance, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	out, _ := f.healthyLocked(service)
	return out, nil
}

func (f *fleet) Kill(_ context.Context, in bulwark.Instance) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.down[in.Service+in.ID] = time.Now()
	f.kills++
	_, n := f.healthyLocked(in.Service)
	f.minLeft = min(f.minLeft, n)
	return nil
}

// TestGuardNeverBelowMinHealthy runs two simulated weeks of a monkey that
// kills every ~5 minutes while instances take 30 minutes to come back:
// most decisions must be skips, and no kill may leave fewer than 2 of 3.
func TestGuardNeverBelowMinHealthy(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		f := newFleet(3, 30*time.Minute)
		m, err := New(Config{Services: []string{"api", "db"}, MeanTimeBetweenKills: 5 * time.Minute,
			MinHealthy: 2, Seed: 1, Location: time.UTC}, f)
		if err != nil {
			t.Fatal(err)
		}
		ctx, cancel := context.WithCancel(t.Context())
		var decisions []Decision
		done := make(chan error)
		go func() { done <- m.Run(ctx, func(d Decision) { decisions = append(decisions, d) }) }()
		time.Sleep(14 * 24 * time.Hour)
		cancel()
		if err := <-done; !errors.Is(err, context.Canceled) {
			t.Errorf("Run = %v", err)
		}
		skipped := 0
		for _, d := range decisions {
			if d.Action == ActionSkipped {
				skipped++
			}
		}
		if len(decisions) < 3000 || f.kills < 100 || skipped < 100 {
			t.Errorf("%d decisions, %d kills, %d skipped: want thousands of decisions, both kinds", len(decisions), f.kills, skipped)
		}
		if f.minLeft < 2 {
			t.Errorf("a kill left %d healthy instances, below MinHealthy 2", f.minLeft)
		}
	})
}

// suspects are instances that missed a renewal but may well be alive.
type suspects struct{ killed []string }

func (s *suspects) Instances(context.Context, string) ([]bulwark.Instance, error) {
	return []bulwark.Instance{{ID: "a", Health: bulwark.HealthSuspect}, {ID: "b", Health: bulwark.HealthSuspect}, {ID: "c", Health: bulwark.HealthUp}}, nil
}

func (s *suspects) Kill(_ context.Context, in bulwark.Instance) error {
	s.killed = append(s.killed, in.ID)
	return nil
}

// A suspect instance counts as healthy for the guard: with 3 alive (2 of
// them late renewing) and MinHealthy 3, nothing may be killed.
func TestGuardCountsSuspects(t *testing.T) {
	v := &suspects{}
	m, err := New(Config{Services: []string{"api"}, MinHealthy: 3, Seed: 1, Location: time.UTC}, v)
	if err != nil {
		t.Fatal(err)
	}
	for range 50 {
		m.Step(t.Context())
	}
	if len(v.killed) != 0 {
		t.Fatalf("killed %v: suspect instances were taken for dead", v.killed)
	}
}

func TestScheduleIsExponentialAndReplays(t *testing.T) {
	times := func(seed uint64) []time.Duration {
		var out []time.Duration
		synctest.Test(t, func(t *testing.T) {
			m, err := New(Config{Services: []string{"api"}, MeanTimeBetweenKills: time.Hour, Seed: seed, DryRun: true}, newFleet(5, time.Minute))
			if err != nil {
				t.Fatal(err)
			}
			ctx, cancel := context.WithCancel(t.Context())
			start := time.Now()
			done := make(chan error)
			go func() { done <- m.Run(ctx, func(d Decision) { out = append(out, d.Time.Sub(start)) }) }()
			time.Sleep(1000 * time.Hour)
			cancel()
			<-done
		})
		return out
	}
	a, b := times(5), times(5)
	if len(a) != len(b) || a[0] != b[0] || a[len(a)-1] != b[len(b)-1] {
		t.Fatalf("same seed, different schedules: %d vs %d decisions", len(a), len(b))
	}
	// ~1000 kills expected at a mean of 1 h over 1000 h (Poisson: sd ≈ 32).
	if len(a) < 850 || len(a) > 1150 {
		t.Errorf("%d decisions in 1000 h at a mean of 1 h", len(a))
	}
	if c := times(6); len(c) == len(a) && c[0] == a[0] {
		t.Error("different seeds gave the same schedule")
	}
}

func TestAllowedHoursAndDryRun(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		f := newFleet(4, time.Minute)
		var logs bytes.Buffer
		m, err := New(Config{Services: []string{"api"}, MeanTimeBetweenKills: 20 * time.Minute, StartHour: 9, EndHour: 15,
			Location: time.UTC, DryRun: true, Seed: 3, Logger: slog.New(slog.NewTextHandler(&logs, nil))}, f)
		if err != nil {
			t.Fatal(err)
		}
		ctx, cancel := context.WithCancel(t.Context())
		var decisions []Decision
		done := make(chan error)
		go func() { done <- m.Run(ctx, func(d Decision) { decisions = append(decisions, d) }) }()
		time.Sleep(72 * time.Hour)
		cancel()
		<-done
		if len(decisions) < 30 {
			t.Fatalf("only %d decisions in 3 days", len(decisions))
		}
		for _, d := range decisions {
			if h := d.Time.UTC().Hour(); h < 9 || h >= 15 {
				t.Errorf("decision at %v, outside 09–15", d.Time)
			}
			if d.Action != ActionDryRun {
				t.Errorf("dry run decided %q", d.Action)
			}
		}
		if f.kills != 0 {
			t.Errorf("dry run killed %d instances", f.kills)
		}
		if n := strings.Count(logs.String(), "monkey decision"); n != len(decisions) {
			t.Errorf("%d log records for %d decisions", n, len(decisions))
		}
	})
}

func TestOutageCheckSkips(t *testing.T) {
	f := newFleet(3, time.Minute)
	for _, tt := range []struct {
		name  string
		check func(context.Context) (bool, error)
	}{
		{"outage", func(context.Context) (bool, error) { return true, nil }},
		{"error", func(context.Context) (bool, error) { return false, errors.New("no answer") }},
	} {
		t.Run(tt.name, func(t *testing.T) {
			m, err := New(Config{Services: []string{"api"}, Seed: 1, OutageCheck: tt.check}, f)
			if err != nil {
				t.Fatal(err)
			}
			if d := m.Step(t.Context()); d.Action != ActionSkipped || f.kills != 0 {
				t.Errorf("decision %+v, kills %d", d, f.kills)
			}
		})
	}
}

func TestConfigValidate(t *testing.T) {
	for _, c := range []Config{
		{},
		{Services: []string{"a"}, MinHealthy: -1},
		{Services: []string{"a"}, StartHour: 15, EndHour: 9},
		{Services: []string{"a"}, EndHour: 25},
	} {
		if _, err := New(c, newFleet(1, 0)); err == nil {
			t.Errorf("New(%+v) accepted", c)
		}
	}
}

func TestStaticVictims(t *testing.T) {
	cmd := exec.Command("sleep", "30")
	if err := cmd.Start(); err != nil {
		t.Skip("no sleep binary:", err)
	}
	waited := make(chan error, 1)
	go func() { waited <- cmd.Wait() }()
	var posts atomic.Int32
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method == http.MethodPost && r.URL.Path == "/kill" {
			posts.Add(1)
		}
	}))
	defer srv.Close()
	sv := &StaticVictims{Client: srv.Client(), List: []StaticVictim{
		{Service: "svc", ID: "proc", PID: cmd.Process.Pid},
		{Service: "svc", ID: "web", KillURL: srv.URL + "/kill"},
	}}
	ctx := t.Context()
	insts, err := sv.Instances(ctx, "svc")
	if err != nil || len(insts) != 2 || insts[0].Health != bulwark.HealthUp {
		t.Fatalf("Instances = %+v, %v", insts, err)
	}
	for _, in := range insts {
		if err := sv.Kill(ctx, in); err != nil {
			t.Fatal(err)
		}
	}
	select {
	case err := <-waited:
		if err == nil || !strings.Contains(err.Error(), "killed") {
			t.Errorf("process ended with %v, want killed", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("process not killed")
	}
	if posts.Load() != 1 {
		t.Errorf("kill URL got %d POSTs", posts.Load())
	}
	insts, _ = sv.Instances(ctx, "svc")
	if insts[0].Health != bulwark.HealthDown || insts[1].Health != bulwark.HealthDown {
		t.Errorf("after kills: %+v", insts)
	}
	sv.Revive("svc", "web")
	if insts, _ = sv.Instances(ctx, "svc"); insts[1].Health != bulwark.HealthUp {
		t.Errorf("after revive: %+v", insts[1])
	}
}
