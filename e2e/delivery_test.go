package e2e

import (
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// asyncStack is `bulwark run` with an async route in front of one demo
// replica, delivery on an embedded JetStream in dir.
type asyncStack struct {
	dir, conf, admin string
	gw               *proc
}

func newAsyncStack(t *testing.T, backend string, maxAttempts int) *asyncStack {
	dir := t.TempDir()
	s := &asyncStack{dir: dir, conf: filepath.Join(dir, "bulwark.yaml"), admin: freeAddr(t)}
	conf := fmt.Sprintf(`listeners:
  - address: %s
routes:
  - name: writes
    match: {path_prefix: /write, methods: [POST]}
    upstream: demo
    async: true
    order_by: X-Order
upstreams:
  - name: demo
    endpoints: [{url: %s}]
delivery:
  data_dir: %s
  max_attempts: %d
  backoff: [200ms]
admin:
  address: %s
`, freeAddr(t), backend, filepath.Join(dir, "delivery"), maxAttempts, s.admin)
	if err := os.WriteFile(s.conf, []byte(conf), 0o644); err != nil {
		t.Fatal(err)
	}
	s.gw = start(t, "run", "-c", s.conf)
	return s
}

// send posts an async write and returns the status code and message id.
func send(url, key, order string) (int, string) {
	req, _ := http.NewRequest("POST", url+"/write", strings.NewReader("payload "+key))
	req.Header.Set("Idempotency-Key", key)
	if order != "" {
		req.Header.Set("X-Order", order)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return 0, ""
	}
	defer resp.Body.Close()
	var body struct{ ID string }
	json.NewDecoder(resp.Body).Decode(&body)
	return resp.StatusCode, body.ID
}

// writesOf reads what a demo replica recorded.
func writesOf(url string) (count, dups int, keys []string) {
	resp, err := http.Get(url + "/writes")
	if err != nil {
		return -1, 0, nil
	}
	defer resp.Body.Close()
	var w struct {
		Count      int      `json:"count"`
		Duplicates int      `json:"duplicates"`
		Keys       []string `json:"keys"`
	}
	json.NewDecoder(resp.Body).Decode(&w)
	return w.Count, w.Duplicates, w.Keys
}

// TestAsyncBackendDown: the backend is down while a client sends 1,000
// async requests; all are accepted, and once the backend returns each is
// delivered exactly once as the (deduplicating) backend sees it, in order
// for the ordered key (scenario a), and a retried key is delivered once
// (scenario d).
func TestAsyncBackendDown(t *testing.T) {
	backend := start(t, "demo", "--id", "b")
	addr := strings.TrimPrefix(backend.url, "http://")
	s := newAsyncStack(t, backend.url, 1000)
	backend.kill()
	down := time.Now()
	var wg sync.WaitGroup
	codes := make([]int, 1000)
	for w := range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := w; i < 1000; i += 4 {
				order := ""
				if i%4 == 0 {
					order = "ordered" // one worker sends these in sequence
				}
				codes[i], _ = send(s.gw.url, fmt.Sprintf("k-%04d", i), order)
			}
		}()
	}
	wg.Wait()
	for i, c := range codes {
		if c != http.StatusAccepted {
			t.Fatalf("request %d: status %d, want 202", i, c)
		}
	}
	// A client retry of an accepted request must not enqueue it again.
	if c, _ := send(s.gw.url, "k-0001", ""); c != http.StatusAccepted {
		t.Fatalf("retry: %d", c)
	}
	if rest := 5*time.Second - time.Since(down); rest > 0 {
		time.Sleep(rest) // the backend stays down for 5 s, as the scenario says
	}
	back := start(t, "demo", "--id", "b2", "--listen", addr)
	waitFor(t, 60*time.Second, func() bool { n, _, _ := writesOf(back.url); return n >= 1000 })
	n, dups, keys := writesOf(back.url)
	t.Logf("delivered %d distinct, %d duplicate deliveries absorbed by the backend", n, dups)
	if n != 1000 {
		t.Fatalf("%d distinct deliveries, want 1000", n)
	}
	var ordered []string
	for _, k := range keys {
		var i int
		fmt.Sscanf(k, "k-%d", &i)
		if i%4 == 0 {
			ordered = append(ordered, k)
		}
	}
	for j := 1; j < len(ordered); j++ {
		if ordered[j] < ordered[j-1] {
			t.Fatalf("ordered key delivered out of order: %s after %s", ordered[j], ordered[j-1])
		}
	}
}

// TestAsyncSurvivesKill9: the bulwark process is SIGKILLed while it accepts
// and delivers; after a restart every request that got a 202 is delivered
// (scenario b).
func TestAsyncSurvivesKill9(t *testing.T) {
	backend := start(t, "demo", "--id", "b")
	s := newAsyncStack(t, backend.url, 100)
	var mu sync.Mutex
	var acked []string
	stop := make(chan struct{})
	var wg sync.WaitGroup
	for w := range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; ; i++ {
				select {
				case <-stop:
					return
				default:
				}
				key := fmt.Sprintf("w%d-%d", w, i)
				if c, _ := send(s.gw.url, key, ""); c == http.StatusAccepted {
					mu.Lock()
					acked = append(acked, key)
					mu.Unlock()
				}
			}
		}()
	}
	time.Sleep(1500 * time.Millisecond) // accept and deliver for a while
	s.gw.signal(syscall.SIGKILL)
	<-s.gw.done
	close(stop)
	wg.Wait()
	mu.Lock()
	want := append([]string(nil), acked...)
	mu.Unlock()
	before, _, _ := writesOf(backend.url)
	t.Logf("%d requests acknowledged with 202 before SIGKILL; %d delivered by then", len(want), before)
	s.gw = start(t, "run", "-c", s.conf)
	waitFor(t, 60*time.Second, func() bool {
		_, _, keys := writesOf(backend.url)
		have := map[string]bool{}
		for _, k := range keys {
			have[k] = true
		}
		for _, k := range want {
			if !have[k] {
				return false
			}
		}
		return true
	})
}

// TestAsyncDeadLetterAndReplay: a backend that always fails sends the
// message to the dead-letter stream after max attempts, with its error;
// replay delivers it once the backend is fixed (scenario c).
func TestAsyncDeadLetterAndReplay(t *testing.T) {
	backend := start(t, "demo", "--id", "b")
	setFaultMode(t, backend.url, `{"mode": "fail"}`)
	s := newAsyncStack(t, backend.url, 2)
	code, id := send(s.gw.url, "dl-1", "")
	if code != http.StatusAccepted || id == "" {
		t.Fatalf("accept: %d %q", code, id)
	}
	var st struct {
		State     string `json:"state"`
		Attempts  int    `json:"attempts"`
		LastError string `json:"last_error"`
		Status    int    `json:"status"`
	}
	waitFor(t, 20*time.Second, func() bool {
		resp, err := http.Get(s.gw.url + "/_bulwark/messages/" + id)
		if err != nil {
			return false
		}
		defer resp.Body.Close()
		json.NewDecoder(resp.Body).Decode(&st)
		return st.State == "dead_lettered"
	})
	t.Logf("dead-lettered after %d attempts: status %d, error %q", st.Attempts, st.Status, st.LastError)
	if st.Attempts != 2 || (st.LastError == "" && st.Status == 0) {
		t.Fatalf("dead letter without attempts or error: %+v", st)
	}
	setFaultMode(t, backend.url, `{"mode": "ok"}`)
	out, err := exec.Command(binary, "delivery", "replay", "--admin", s.admin).CombinedOutput()
	if err != nil || !strings.Contains(string(out), `"replayed": 1`) {
		t.Fatalf("replay: %v\n%s", err, out)
	}
	waitFor(t, 20*time.Second, func() bool { n, _, _ := writesOf(backend.url); return n == 1 })
}

func setFaultMode(t *testing.T, url, body string) {
	t.Helper()
	resp, err := http.Post(url+"/_demo/fault", "application/json", strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
}
