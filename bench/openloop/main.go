// Command openloop is an open-loop HTTP load generator: it sends GETs at a
// fixed rate whatever the server does, and measures each request's
// latency from the time it was *scheduled* to be sent, not from when a
// free connection let it go. A closed-loop tool (wrk, ab, hey) waits for
// an answer before sending the next request, so a server that stalls
// slows the load down and the stall hides in a few samples: coordinated
// omission (Gil Tene, "How NOT to measure latency"; wrk2 fixes wrk the
// same way). Here a stall delays every request scheduled during it, and
// each of them counts it.
//
// Requests are scheduled at start + i/rate. A pool of workers takes them
// in order; when every worker is busy, requests wait in a queue and the
// wait is part of their latency. Latencies go into a log-linear
// histogram (HdrHistogram's layout, 0.8 % precision).
//
//	openloop -url http://127.0.0.1:8083/read -rate 500 -duration 10s -warmup 2s
//
// Output: one line of key=value pairs (for scripts) and, with -json, the
// same as JSON.
package main

import (
	"bytes"
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"net/http"
	"os"
	"slices"
	"strings"
	"sync"
	"time"
)

type result struct {
	URL        string  `json:"url"`
	Rate       float64 `json:"rate"`
	Seconds    float64 `json:"seconds"`
	Scheduled  int     `json:"scheduled"`
	OK         int     `json:"ok"`
	Non2xx     int     `json:"non2xx"`
	Errors     int     `json:"errors"`
	Wrong      int     `json:"wrong_body"`
	Achieved   float64 `json:"achieved_rps"`
	P50ms      float64 `json:"p50_ms"`
	P90ms      float64 `json:"p90_ms"`
	P99ms      float64 `json:"p99_ms"`
	P999ms     float64 `json:"p999_ms"`
	MaxMs      float64 `json:"max_ms"`
	MeanMs     float64 `json:"mean_ms"`
	MaxQueue   int     `json:"max_queue"`
	MaxSendLag float64 `json:"max_send_lag_ms"` // how late the scheduler itself ran
	// Codes counts the answers by status code.
	Codes map[int]int `json:"codes"`
}

func main() {
	url := flag.String("url", "", "URL to GET (required)")
	rate := flag.Float64("rate", 100, "requests per second")
	duration := flag.Duration("duration", 10*time.Second, "measured duration")
	warmup := flag.Duration("warmup", 2*time.Second, "unmeasured run at the same rate first")
	workers := flag.Int("workers", 512, "concurrent requests at most (and connections); requests beyond wait in a queue, their wait counted")
	timeout := flag.Duration("timeout", 10*time.Second, "per-request timeout (an error)")
	expect := flag.String("expect-file", "", "file whose bytes every 200 body must equal (wrong bodies are counted)")
	asJSON := flag.Bool("json", false, "print JSON instead of key=value")
	flag.Parse()
	if *url == "" || *rate <= 0 || *duration <= 0 || *workers < 1 {
		fmt.Fprintln(os.Stderr, "openloop: -url, a positive -rate, -duration and -workers are required")
		os.Exit(2)
	}
	var want []byte
	if *expect != "" {
		b, err := os.ReadFile(*expect)
		if err != nil {
			fmt.Fprintln(os.Stderr, "openloop:", err)
			os.Exit(2)
		}
		want = b
	}
	client := &http.Client{Timeout: *timeout, Transport: &http.Transport{
		MaxIdleConns: *workers, MaxIdleConnsPerHost: *workers, MaxConnsPerHost: *workers,
		IdleConnTimeout: time.Minute, DisableCompression: true}}
	if *warmup > 0 {
		run(client, *url, *rate, *warmup, *workers, want)
	}
	r := run(client, *url, *rate, *duration, *workers, want)
	if *asJSON {
		json.NewEncoder(os.Stdout).Encode(r)
		return
	}
	codes := make([]int, 0, len(r.Codes))
	for c := range r.Codes {
		codes = append(codes, c)
	}
	slices.Sort(codes)
	var cs []string
	for _, c := range codes {
		cs = append(cs, fmt.Sprintf("%d:%d", c, r.Codes[c]))
	}
	fmt.Printf("rate=%g seconds=%.2f scheduled=%d ok=%d non2xx=%d errors=%d wrong_body=%d achieved_rps=%.1f p50_ms=%.3f p90_ms=%.3f p99_ms=%.3f p999_ms=%.3f max_ms=%.3f mean_ms=%.3f max_queue=%d max_send_lag_ms=%.3f codes=%s\n",
		r.Rate, r.Seconds, r.Scheduled, r.OK, r.Non2xx, r.Errors, r.Wrong, r.Achieved, r.P50ms, r.P90ms, r.P99ms, r.P999ms, r.MaxMs, r.MeanMs, r.MaxQueue, r.MaxSendLag, strings.Join(cs, ";"))
}

// run sends GET url at rate for d and waits for every answer.
func run(client *http.Client, url string, rate float64, d time.Duration, workers int, want []byte) result {
	n := int(rate * d.Seconds())
	interval := time.Duration(float64(time.Second) / rate)
	queue := make(chan time.Time, n) // never blocks the scheduler
	var mu sync.Mutex
	var h hist
	res := result{URL: url, Rate: rate, Scheduled: n, Codes: map[int]int{}}
	var wg sync.WaitGroup
	for range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			buf := new(bytes.Buffer)
			for at := range queue {
				status, body, err := get(client, url, buf)
				lat := time.Since(at)
				mu.Lock()
				if err == nil {
					res.Codes[status]++
				}
				switch {
				case err != nil:
					res.Errors++
				case status < 200 || status > 299:
					res.Non2xx++
				default:
					res.OK++
					if want != nil && !bytes.Equal(body, want) {
						res.Wrong++
					}
				}
				h.record(lat) // every answer, failed or not, from its scheduled time
				mu.Unlock()
			}
		}()
	}
	start := time.Now()
	var lag time.Duration
	for i := 0; i < n; i++ {
		at := start.Add(time.Duration(i) * interval)
		if w := time.Until(at); w > 0 {
			time.Sleep(w)
		} else {
			lag = max(lag, -w)
		}
		queue <- at
		res.MaxQueue = max(res.MaxQueue, len(queue))
	}
	close(queue)
	wg.Wait()
	el := time.Since(start)
	ms := func(d time.Duration) float64 { return float64(d) / 1e6 }
	res.Seconds = el.Seconds()
	res.Achieved = float64(res.OK+res.Non2xx) / el.Seconds()
	res.P50ms, res.P90ms, res.P99ms, res.P999ms = ms(h.quantile(.5)), ms(h.quantile(.9)), ms(h.quantile(.99)), ms(h.quantile(.999))
	res.MaxMs, res.MeanMs, res.MaxSendLag = ms(h.max), ms(h.mean()), ms(lag)
	return res
}

func get(client *http.Client, url string, buf *bytes.Buffer) (int, []byte, error) {
	req, err := http.NewRequestWithContext(context.Background(), http.MethodGet, url, nil)
	if err != nil {
		return 0, nil, err
	}
	resp, err := client.Do(req)
	if err != nil {
		return 0, nil, err
	}
	defer resp.Body.Close()
	buf.Reset()
	_, err = io.Copy(buf, resp.Body)
	return resp.StatusCode, buf.Bytes(), err
}
