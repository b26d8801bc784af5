package main

import (
	"bytes"
	"fmt"
	"io"
	"net/http"
	"sync"
	"sync/atomic"
	"time"
)

// sample is one async request as the client saw it.
type sample struct {
	key      string
	intended time.Time // open loop: when the schedule said to send it
	sent     time.Time
	done     time.Time // response fully read
	code     int       // 0: transport error
}

// loader posts async requests through the gateway with keep-alive
// connections, each with a unique Idempotency-Key and a small body.
type loader struct {
	client *http.Client
	url    string
	body   []byte
}

func newLoader(url string, conns, bodySize int) *loader {
	tr := &http.Transport{
		MaxIdleConns:        conns,
		MaxIdleConnsPerHost: conns,
		MaxConnsPerHost:     conns,
		IdleConnTimeout:     time.Minute,
		DisableCompression:  true,
	}
	body := bytes.Repeat([]byte("x"), bodySize)
	return &loader{client: &http.Client{Transport: tr, Timeout: 30 * time.Second}, url: url, body: body}
}

// post sends one request and fills s.
func (l *loader) post(s *sample) {
	req, _ := http.NewRequest(http.MethodPost, l.url, bytes.NewReader(l.body))
	req.Header.Set("Idempotency-Key", s.key)
	req.Header.Set("Content-Type", "application/octet-stream")
	s.sent = time.Now()
	resp, err := l.client.Do(req)
	if err != nil {
		s.done, s.code = time.Now(), 0
		return
	}
	io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	s.done, s.code = time.Now(), resp.StatusCode
}

// closedLoop runs conns workers, each sending its next request as soon as
// the previous one is answered, for dur.
func (l *loader) closedLoop(prefix string, conns int, dur time.Duration) []sample {
	deadline := time.Now().Add(dur)
	per := make([][]sample, conns)
	var wg sync.WaitGroup
	for w := range conns {
		wg.Add(1)
		go func() {
			defer wg.Done()
			out := make([]sample, 0, 4096)
			for i := 0; time.Now().Before(deadline); i++ {
				s := sample{key: fmt.Sprintf("%s-%d-%d", prefix, w, i)}
				l.post(&s)
				s.intended = s.sent
				out = append(out, s)
			}
			per[w] = out
		}()
	}
	wg.Wait()
	var all []sample
	for _, p := range per {
		all = append(all, p...)
	}
	return all
}

// openLoop sends rate requests per second for dur on a fixed schedule,
// whatever the answers' speed (up to conns in flight; later ones queue in
// the client and their latency counts from their scheduled time, so a
// stalled gateway is not hidden by coordinated omission).
func (l *loader) openLoop(prefix string, rate float64, conns int, dur time.Duration) []sample {
	n := int(rate * dur.Seconds())
	out := make([]sample, n)
	start := time.Now()
	var next atomic.Int64 // index of the next request a worker may take
	var released atomic.Int64
	var wg sync.WaitGroup
	wake := make(chan struct{}, conns)
	for range conns {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				i := next.Add(1) - 1
				if i >= int64(n) {
					return
				}
				for i >= released.Load() {
					<-wake
				}
				s := &out[i]
				s.key = fmt.Sprintf("%s-%d", prefix, i)
				s.intended = start.Add(time.Duration(float64(i) / rate * float64(time.Second)))
				l.post(s)
			}
		}()
	}
	// The ticker releases whatever is due; Go timers run at ~1 ms
	// granularity, so requests go out in small bursts of rate/1000.
	t := time.NewTicker(time.Millisecond)
	for released.Load() < int64(n) {
		<-t.C
		due := min(int64(time.Since(start).Seconds()*rate)+1, int64(n))
		released.Store(due)
		for range conns {
			select {
			case wake <- struct{}{}:
			default:
			}
		}
	}
	t.Stop()
	close(wake) // unblocks any worker still waiting; all are released now
	wg.Wait()
	return out
}
