// Package e2e holds Bulwark's end-to-end scenario tests: real processes
// (the bulwark binary, built once per test run) killed with SIGKILL,
// stopped with SIGSTOP or switched into fault modes, and real clients
// counting every answer.
package e2e

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"runtime"
	"sort"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/bulwark-go/bulwark/demo"
	"github.com/bulwark-go/bulwark/internal/netns"
)

// binary is the bulwark binary built by TestMain.
var binary string

func TestMain(m *testing.M) {
	// The test binary doubles as a service that registers through the
	// Consul API (consul_test.go).
	if code, ok := runConsulService(); ok {
		os.Exit(code)
	}
	// Scenario timings must not measure the host's (sometimes shaped) lo.
	if code, done := netns.Isolate(); done {
		os.Exit(code)
	}
	dir, err := os.MkdirTemp("", "bulwark-e2e-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	binary = filepath.Join(dir, "bulwark")
	args := []string{"build", "-o", binary}
	if raceEnabled {
		args = append(args, "-race")
	}
	cmd := exec.Command("go", append(args, "../cmd/bulwark")...)
	cmd.Stdout, cmd.Stderr = os.Stderr, os.Stderr
	if err := cmd.Run(); err != nil {
		fmt.Fprintln(os.Stderr, "building bulwark:", err)
		os.Exit(1)
	}
	buildDir = dir
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

var (
	buildDir      string
	plainOnce     sync.Once
	plainBinary   string
	plainBuildErr error
)

// releaseBinary returns bulwark built as users run it: without the race
// detector. Scenarios that assert latency bounds run their processes from
// it, since the race detector slows every process 5-10× and its bounds
// would measure the detector; the race-built binary keeps checking the
// same code paths in the other scenarios. Built once, on first use.
func releaseBinary(t *testing.T) string {
	t.Helper()
	if !raceEnabled {
		return binary
	}
	plainOnce.Do(func() {
		plainBinary = filepath.Join(buildDir, "bulwark-release")
		cmd := exec.Command("go", "build", "-o", plainBinary, "../cmd/bulwark")
		out, err := cmd.CombinedOutput()
		if err != nil {
			plainBuildErr = fmt.Errorf("building bulwark without -race: %v\n%s", err, out)
		}
	})
	if plainBuildErr != nil {
		t.Fatal(plainBuildErr)
	}
	return plainBinary
}

// proc is a child process started from the bulwark binary.
type proc struct {
	t    *testing.T
	cmd  *exec.Cmd
	url  string // the address it printed
	out  *lockedBuffer
	done chan struct{}
}

type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

var urlRE = regexp.MustCompile(`(https?://|listening on )(\S+)`)

// start runs bulwark with args and waits for the line that says where it
// listens. The process is SIGKILLed at the end of the test if still alive.
func start(t *testing.T, args ...string) *proc {
	t.Helper()
	return startBinary(t, binary, args...)
}

// startBinary is start with another build of bulwark.
func startBinary(t *testing.T, bin string, args ...string) *proc {
	t.Helper()
	cmd := exec.Command(bin, args...)
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	p := &proc{t: t, cmd: cmd, out: &lockedBuffer{}, done: make(chan struct{})}
	cmd.Stderr = p.out
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	lines := make(chan string, 1)
	go func() {
		sc := bufio.NewScanner(stdout)
		first := true
		for sc.Scan() {
			p.out.Write([]byte(sc.Text() + "\n"))
			if first {
				lines <- sc.Text()
				first = false
			}
		}
		if first {
			close(lines)
		}
	}()
	go func() { cmd.Wait(); close(p.done) }()
	t.Cleanup(func() {
		p.kill()
		if t.Failed() {
			t.Logf("output of %v:\n%s", args, p.out.String())
		}
	})
	select {
	case line, ok := <-lines:
		if !ok {
			t.Fatalf("%v exited before saying where it listens:\n%s", args, p.out.String())
		}
		m := urlRE.FindStringSubmatch(line)
		if m == nil {
			t.Fatalf("no address in %q", line)
		}
		p.url = m[2]
		if !strings.HasPrefix(p.url, "http") {
			p.url = "http://" + p.url
		}
		if m[1] == "http://" || m[1] == "https://" {
			p.url = m[1] + m[2]
		}
	case <-time.After(30 * time.Second):
		t.Fatalf("%v did not start in 30s:\n%s", args, p.out.String())
	}
	return p
}

func (p *proc) signal(sig syscall.Signal) {
	if p.cmd.Process != nil {
		p.cmd.Process.Signal(sig)
	}
}

// kill SIGKILLs the process (resuming it first if stopped) and waits.
func (p *proc) kill() {
	p.signal(syscall.SIGCONT)
	p.signal(syscall.SIGKILL)
	<-p.done
}

// startDemos starts n demo replicas and returns them.
func startDemos(t *testing.T, n int) []*proc {
	ps := make([]*proc, n)
	for i := range ps {
		ps[i] = start(t, "demo", "--id", fmt.Sprintf("r%d", i+1), "--seed", fmt.Sprint(i+1))
	}
	return ps
}

// setFault switches a demo replica's fault mode.
func setFault(t *testing.T, p *proc, f demo.Fault) {
	t.Helper()
	b, _ := json.Marshal(f)
	resp, err := http.Post(p.url+"/_demo/fault", "application/json", bytes.NewReader(b))
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 200 {
		t.Fatalf("set fault: %s", resp.Status)
	}
}

// result is one request's outcome, as the client saw it.
type result struct {
	at      time.Duration // since the load started
	latency time.Duration
	status  int
	replica string
	err     error
	corrupt bool // the body differed from the expected one
}

// load is a closed-loop client: workers send requests back to back until
// stopped, and every answer is recorded.
type load struct {
	start   time.Time
	mu      sync.Mutex
	results []result
	stop    context.CancelFunc
	wg      sync.WaitGroup
}

// runLoad starts workers sending GET url (checking the body against want
// when want is not nil).
func runLoad(ctx context.Context, workers int, url string, want []byte, timeout time.Duration) *load {
	return runLoadClient(ctx, workers, url, want, &http.Client{Timeout: timeout,
		Transport: &http.Transport{MaxIdleConnsPerHost: workers, DisableCompression: true}})
}

// runLoadTransport is runLoad with a transport of the test's choosing.
func runLoadTransport(t *testing.T, workers int, url string, tr *http.Transport) *load {
	return runLoadClient(t.Context(), workers, url, nil, &http.Client{Timeout: 10 * time.Second, Transport: tr})
}

func runLoadClient(ctx context.Context, workers int, url string, want []byte, client *http.Client) *load {
	ctx, cancel := context.WithCancel(ctx)
	l := &load{start: time.Now(), stop: cancel}
	for range workers {
		l.wg.Add(1)
		go func() {
			defer l.wg.Done()
			for ctx.Err() == nil {
				l.record(one(ctx, client, url, want, l.start))
			}
		}()
	}
	return l
}

func one(ctx context.Context, client *http.Client, url string, want []byte, t0 time.Time) result {
	begin := time.Now()
	r := result{at: begin.Sub(t0)}
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	resp, err := client.Do(req)
	if err != nil {
		r.err = err
		r.latency = time.Since(begin)
		if ctx.Err() != nil {
			r.err = context.Canceled
		}
		return r
	}
	body, err := io.ReadAll(resp.Body)
	resp.Body.Close()
	r.latency = time.Since(begin)
	r.status, r.replica, r.err = resp.StatusCode, resp.Header.Get("X-Replica"), err
	if ctx.Err() != nil && err != nil {
		r.err = context.Canceled
	}
	if err == nil && want != nil && resp.StatusCode == 200 && !bytes.Equal(body, want) {
		r.corrupt = true
	}
	return r
}

func (l *load) record(r result) {
	if r.err == context.Canceled {
		return // the test stopped the load; not an answer
	}
	l.mu.Lock()
	l.results = append(l.results, r)
	l.mu.Unlock()
}

// finish stops the load and returns every result.
func (l *load) finish() []result {
	l.stop()
	l.wg.Wait()
	l.mu.Lock()
	defer l.mu.Unlock()
	return append([]result(nil), l.results...)
}

// since returns the elapsed load time.
func (l *load) since() time.Duration { return time.Since(l.start) }

// waitResults waits until the load has n results or timeout has passed,
// whichever comes first; the caller checks the count it got.
func (l *load) waitResults(n int, timeout time.Duration) {
	deadline := time.Now().Add(timeout)
	for time.Now().Before(deadline) {
		l.mu.Lock()
		got := len(l.results)
		l.mu.Unlock()
		if got >= n {
			return
		}
		time.Sleep(200 * time.Millisecond)
	}
}

// summary counts results.
type summary struct {
	total, failed, corrupt int
	byReplica              map[string]int
	p50, p99, max          time.Duration
}

func summarize(rs []result) summary {
	s := summary{byReplica: map[string]int{}}
	lat := make([]time.Duration, 0, len(rs))
	for _, r := range rs {
		s.total++
		if r.err != nil || r.status != 200 {
			s.failed++
		}
		if r.corrupt {
			s.corrupt++
		}
		if r.replica != "" {
			s.byReplica[r.replica]++
		}
		lat = append(lat, r.latency)
	}
	if len(lat) > 0 {
		sort.Slice(lat, func(i, j int) bool { return lat[i] < lat[j] })
		s.p50 = lat[len(lat)/2]
		s.p99 = lat[min(len(lat)-1, len(lat)*99/100)]
		s.max = lat[len(lat)-1]
	}
	return s
}

func (s summary) String() string {
	return fmt.Sprintf("%d requests, %d failed, %d corrupt, p50 %v, p99 %v, max %v, by replica %v",
		s.total, s.failed, s.corrupt, s.p50.Round(time.Microsecond), s.p99.Round(time.Microsecond), s.max.Round(time.Microsecond), s.byReplica)
}

// window returns the results whose start lies in [from, to).
func window(rs []result, from, to time.Duration) []result {
	var out []result
	for _, r := range rs {
		if r.at >= from && r.at < to {
			out = append(out, r)
		}
	}
	return out
}

// failures describes the failed results, for messages.
func failures(rs []result) string {
	var b strings.Builder
	n := 0
	for _, r := range rs {
		if r.err != nil || r.status != 200 || r.corrupt {
			if n < 10 {
				fmt.Fprintf(&b, "\n  at %v: status %d err %v corrupt %v replica %q", r.at.Round(time.Millisecond), r.status, r.err, r.corrupt, r.replica)
			}
			n++
		}
	}
	return b.String()
}

// sleepUntil waits until the load has run for d (the load's own clock, so
// scenario timings are relative to its start).
func sleepUntil(l *load, d time.Duration) {
	if rest := d - l.since(); rest > 0 {
		time.Sleep(rest)
	}
}

var _ = runtime.NumCPU
