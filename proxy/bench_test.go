package proxy

import (
	"bytes"
	"context"
	"io"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"strconv"
	"sync/atomic"
	"testing"
	"time"

	"github.com/bulwark-go/bulwark/proxy/balance"
	"github.com/bulwark-go/bulwark/resilience"
)

// The hot path of one proxied request, measured with -benchmem so the
// gateway's allocations per request are visible. Every sub-benchmark
// answers GET /read with the same 100-byte body carrying a Content-Digest
// (what `bulwark demo` serves and bench/proxy/run.sh measures), so the
// differences between them are the cost of the layers they add:
//
//	direct          client Transport ─► backend                 (baseline for the loopback rows)
//	handler         gw.ServeHTTP ─► gw.fast ─► 3 backends       (gateway + its upstream hop, HTTP/1.1 engine)
//	handler-nethttp gw.ServeHTTP ─► gw.transport ─► 3 backends  (the same on the net/http engine)
//	listener        client ─► gateway's listener (the fast path, proxy/http1) ─► handler  (the whole proxied round trip)
//	listener-nethttp  the same with engine: net/http on the listener  (what the server half replaces)
//	listener-parallel  the same with 64 concurrent clients (wrk -c64's shape)
//	listener-raw    a raw-socket client ─► listener ─► gateway (every default: P2C, hedging, limit) ─► 3 raw backends;
//	                the client and backends allocate nothing per request, so allocs/op are the gateway's own
//	listener-raw-parallel  the same with 64 concurrent raw clients
//	inmem-backend   the in-memory upstream alone                (baseline for the inmem rows)
//	handler-inmem   gw.ServeHTTP ─► in-memory upstream          (the gateway's own work)
//	reverseproxy-inmem  httputil.ReverseProxy ─► in-memory upstream (stdlib reference)
//
// The loopback rows need an unshaped lo: on this project's shared hosts run
// them inside `unshare -n sh -c 'ip link set lo up; go test ...'` (see
// bench/README.md). Typical use:
//
//	go test -run '^$' -bench ProxyRoundTrip -benchmem ./proxy/
func BenchmarkProxyRoundTrip(b *testing.B) {
	body := bytes.Repeat([]byte("abcdefghijklmnopqrstuvwxyz0123456789"), 3)[:100]
	digest := ContentDigest(body)
	var urls []string
	for range 3 {
		s := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			h := w.Header()
			h["Content-Digest"] = []string{digest}
			h["Content-Type"] = []string{"text/plain"}
			h["Content-Length"] = []string{strconv.Itoa(len(body))}
			w.Write(body)
		}))
		b.Cleanup(s.Close)
		urls = append(urls, s.URL)
	}
	mem := &memUpstream{body: body, digest: []string{digest}, clen: []string{strconv.Itoa(len(body))}}

	b.Run("direct", func(b *testing.B) {
		tr := &http.Transport{MaxIdleConnsPerHost: 16, DisableCompression: true}
		b.Cleanup(tr.CloseIdleConnections)
		benchClient(b, tr, urls[0]+"/read", len(body))
	})
	b.Run("handler", func(b *testing.B) {
		gw := benchGateway(b, urls)
		benchHandler(b, gw, len(body))
	})
	b.Run("handler-nethttp", func(b *testing.B) {
		gw := benchGateway(b, urls, func(c *Config) { c.Upstreams[0].Engine = EngineNetHTTP })
		benchHandler(b, gw, len(body))
	})
	b.Run("listener", func(b *testing.B) {
		gw := benchGateway(b, urls)
		if err := gw.Listen(); err != nil {
			b.Fatal(err)
		}
		tr := &http.Transport{MaxIdleConnsPerHost: 16, DisableCompression: true}
		b.Cleanup(tr.CloseIdleConnections)
		benchClient(b, tr, "http://"+gw.Addrs()[0].String()+"/read", len(body))
	})
	b.Run("listener-nethttp", func(b *testing.B) { // the same through engine: net/http (the server before the fast path)
		gw := benchGateway(b, urls, func(c *Config) { c.Listeners[0].Engine = EngineNetHTTP })
		if err := gw.Listen(); err != nil {
			b.Fatal(err)
		}
		tr := &http.Transport{MaxIdleConnsPerHost: 16, DisableCompression: true}
		b.Cleanup(tr.CloseIdleConnections)
		benchClient(b, tr, "http://"+gw.Addrs()[0].String()+"/read", len(body))
	})
	b.Run("listener-parallel", func(b *testing.B) { // 64 clients at once on 2 Ps, like wrk -c64
		gw := benchGateway(b, urls)
		if err := gw.Listen(); err != nil {
			b.Fatal(err)
		}
		tr := &http.Transport{MaxIdleConnsPerHost: 128, DisableCompression: true}
		b.Cleanup(tr.CloseIdleConnections)
		target := "http://" + gw.Addrs()[0].String() + "/read"
		b.SetParallelism(32)
		b.ReportAllocs()
		b.RunParallel(func(pb *testing.PB) {
			req, _ := http.NewRequest(http.MethodGet, target, nil)
			for pb.Next() {
				resp, err := tr.RoundTrip(req)
				if err != nil {
					b.Error(err)
					return
				}
				io.Copy(io.Discard, resp.Body)
				resp.Body.Close()
			}
		})
	})
	rawResp := rawResponse(body)
	var rawURLs []string
	for range 3 {
		rawURLs = append(rawURLs, newRawBackend(b, rawResp).url())
	}
	defaults := func(c *Config) { c.Upstreams[0].Balance = "" } // P2C-EWMA, as `bulwark proxy` runs
	b.Run("listener-raw", func(b *testing.B) {
		gw := benchGateway(b, rawURLs, defaults)
		if err := gw.Listen(); err != nil {
			b.Fatal(err)
		}
		benchRaw(b, gw, len(body))
	})
	b.Run("listener-raw-parallel", func(b *testing.B) {
		gw := benchGateway(b, rawURLs, defaults)
		if err := gw.Listen(); err != nil {
			b.Fatal(err)
		}
		benchRawParallel(b, gw, len(body))
	})
	b.Run("inmem-backend", func(b *testing.B) {
		req := httptest.NewRequest(http.MethodGet, urls[0]+"/read", nil)
		b.ReportAllocs()
		for b.Loop() {
			resp, _ := mem.RoundTrip(req)
			io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
		}
	})
	b.Run("handler-inmem", func(b *testing.B) {
		gw := benchGateway(b, urls)
		// The test hook: an alternate protocol registered on the gateway's
		// own *http.Transport intercepts every http:// try after the
		// Transport's request checks, so everything but the socket and the
		// backend's server runs as in production (with the net/http engine:
		// see memHook).
		memHook(gw, mem)
		benchHandler(b, gw, len(body))
	})
	b.Run("reverseproxy-inmem", func(b *testing.B) {
		target, _ := url.Parse(urls[0])
		tr := &http.Transport{}
		tr.RegisterProtocol("http", mem)
		rp := &httputil.ReverseProxy{
			Rewrite:   func(pr *httputil.ProxyRequest) { pr.SetURL(target); pr.SetXForwarded() },
			Transport: tr,
		}
		benchHandler(b, rp, len(body))
	})
	b.Run("reverseproxy-pooled-inmem", func(b *testing.B) {
		target, _ := url.Parse(urls[0])
		tr := &http.Transport{}
		tr.RegisterProtocol("http", mem)
		rp := &httputil.ReverseProxy{
			Rewrite:    func(pr *httputil.ProxyRequest) { pr.SetURL(target); pr.SetXForwarded() },
			Transport:  tr,
			BufferPool: &bufPool{},
		}
		benchHandler(b, rp, len(body))
	})
}

// memHook sends every try of gw to rt, through the net/http engine's
// RegisterProtocol hook (the HTTP/1.1 engine has no such hook: it owns
// sockets), so the in-memory rows measure the gateway's own work.
func memHook(gw *Gateway, rt http.RoundTripper) {
	gw.transport.RegisterProtocol("http", rt)
	for _, p := range gw.state.Load().pools {
		p.fast = nil
	}
}

// bufPool is the httputil.BufferPool a tuned ReverseProxy would use.
type bufPool struct{}

func (bufPool) Get() []byte  { return (*copyBufPool.Get().(*[]byte))[:32<<10] }
func (bufPool) Put(b []byte) { copyBufPool.Put(&b) }

// BenchmarkProxyHotPathParts prices the steps of one try that
// BenchmarkProxyRoundTrip's profile shows, one by one, so a proposed
// change can be weighed before it is written.
func BenchmarkProxyHotPathParts(b *testing.B) {
	body := bytes.Repeat([]byte("abcdefghijklmnopqrstuvwxyz0123456789"), 3)[:100]
	mem := &memUpstream{body: body, digest: []string{ContentDigest(body)}, clen: []string{strconv.Itoa(len(body))}}
	gw := benchGateway(b, []string{"http://127.0.0.1:1", "http://127.0.0.1:2", "http://127.0.0.1:3"})
	rt := gw.state.Load().routes[0]
	in := httptest.NewRequest(http.MethodGet, "http://127.0.0.1:8080/read", nil)
	in.RemoteAddr = "127.0.0.1:40000"
	base, _ := url.Parse("http://127.0.0.1:1")
	ctx := context.Background()

	b.Run("outgoing", func(b *testing.B) { // Request.Clone + hop-by-hop + forwarding headers
		b.ReportAllocs()
		for b.Loop() {
			rt.outgoing(ctx, in, base, nil)
		}
	})
	b.Run("request-clone", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			in.Clone(ctx)
		}
	})
	b.Run("add-forwarded", func(b *testing.B) {
		h := http.Header{}
		b.ReportAllocs()
		for b.Loop() {
			clear(h)
			addForwarded(h, in)
		}
	})
	b.Run("contexts-and-timer", func(b *testing.B) { // total timeout + per-try cancel + per-try timer
		b.ReportAllocs()
		for b.Loop() {
			tctx, cancel := context.WithTimeout(ctx, DefaultTotalTimeout)
			_, tcancel := context.WithCancel(tctx)
			t := time.AfterFunc(DefaultPerTryTimeout, tcancel)
			t.Stop()
			tcancel()
			cancel()
		}
	})
	b.Run("verify-digest", func(b *testing.B) { // buffer the 100-byte body and check its SHA-256
		req := httptest.NewRequest(http.MethodGet, "/read", nil)
		b.ReportAllocs()
		for b.Loop() {
			resp, _ := mem.RoundTrip(req)
			if err := rt.verify(&try{resp: resp}, nil, rt.upstream.maxVerify); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("pick-and-observe", func(b *testing.B) { // balancer, breaker, passive health
		b.ReportAllocs()
		for b.Loop() {
			var tried balance.Tried
			ep, done, err := rt.upstream.pick(in, &tried)
			if err != nil {
				b.Fatal(err)
			}
			ep.Start()
			ep.Done(time.Millisecond, false)
			done(resilience.Outcome{Latency: time.Millisecond})
			rt.upstream.passive.observe(ep, failNone, http.StatusOK, time.Millisecond)
		}
	})
	b.Run("metrics", func(b *testing.B) { // per request and per try
		start := time.Now()
		b.ReportAllocs()
		for b.Loop() {
			rec := rt.metrics.begin()
			rt.upstream.metrics.try(failNone, time.Millisecond)
			rec.end(http.StatusOK, start)
		}
	})
	b.Run("retry-budget", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			rt.budget.Request()
			rt.budget.Done()
		}
	})
}

// benchGateway is a gateway with the defaults `bulwark run` gives a config
// that lists three endpoints with balance: round-robin (retries, breakers,
// outlier detection and digest checks all on); tune, if not nil, changes
// the config first.
func benchGateway(b *testing.B, urls []string, tune ...func(*Config)) *Gateway {
	b.Helper()
	cfg := Config{
		Listeners: []Listener{{Name: "bench", Address: "127.0.0.1:0"}},
		Routes:    []Route{{Name: "r", Upstream: "u"}},
		Upstreams: []Upstream{{Name: "u", Balance: "round-robin"}},
	}
	for _, u := range urls {
		cfg.Upstreams[0].Endpoints = append(cfg.Upstreams[0].Endpoints, Endpoint{URL: u})
	}
	for _, f := range tune {
		f(&cfg)
	}
	gw, err := New(cfg, Options{Seed: 1})
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { gw.Close() })
	return gw
}

// benchClient sends sequential keep-alive GETs to target through tr.
func benchClient(b *testing.B, tr *http.Transport, target string, want int) {
	req, err := http.NewRequest(http.MethodGet, target, nil)
	if err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	for b.Loop() {
		resp, err := tr.RoundTrip(req)
		if err != nil {
			b.Fatal(err)
		}
		n, _ := io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK || int(n) != want {
			b.Fatalf("status %d, %d bytes", resp.StatusCode, n)
		}
	}
}

// benchHandler serves the same incoming request (as wrk sends it: a Host
// header and nothing else) through h repeatedly. Reusing the request and
// the writer leaves out what net/http's server allocates per request, so
// only the handler's own work is counted.
func benchHandler(b *testing.B, h http.Handler, want int) {
	req := httptest.NewRequest(http.MethodGet, "http://127.0.0.1:8080/read", nil)
	req.RemoteAddr = "127.0.0.1:40000"
	w := &discardWriter{header: http.Header{}}
	b.ReportAllocs()
	for b.Loop() {
		clear(w.header)
		w.code, w.n = 0, 0
		h.ServeHTTP(w, req)
		if w.code != http.StatusOK || w.n != want {
			b.Fatalf("status %d, %d bytes", w.code, w.n)
		}
	}
}

// discardWriter is the cheapest http.ResponseWriter that still records
// what a test must check.
type discardWriter struct {
	header http.Header
	code   int
	n      int
}

func (d *discardWriter) Header() http.Header { return d.header }
func (d *discardWriter) Write(p []byte) (int, error) {
	if d.code == 0 {
		d.code = http.StatusOK
	}
	d.n += len(p)
	return len(p), nil
}
func (d *discardWriter) WriteHeader(code int) {
	if d.code == 0 {
		d.code = code
	}
}

// memUpstream answers every request in memory with the backend's response:
// status 200, Content-Digest, Content-Type, Content-Length and the body.
// Its own allocations are measured by the inmem-backend sub-benchmark.
type memUpstream struct {
	body   []byte
	digest []string
	clen   []string
}

var memCType = []string{"text/plain"}

func (m *memUpstream) RoundTrip(r *http.Request) (*http.Response, error) {
	return &http.Response{
		Status: "200 OK", StatusCode: http.StatusOK, Proto: "HTTP/1.1", ProtoMajor: 1, ProtoMinor: 1,
		Header:        http.Header{"Content-Digest": m.digest, "Content-Type": memCType, "Content-Length": m.clen},
		Body:          io.NopCloser(bytes.NewReader(m.body)),
		ContentLength: int64(len(m.body)),
		Request:       r,
	}, nil
}

// BenchmarkProxyDefaults prices the fault-tolerant defaults on a healthy
// pool: the gateway as `bulwark proxy` runs it (P2C-EWMA, adaptive per-try
// timeout, hedging after the pool's p95 within a 5% budget, the Gradient2
// concurrency limit) against the same gateway with hedging and the
// concurrency limit off, 64 clients at once through the listener (wrk
// -c64's shape). Run inside `unshare -n` (see BenchmarkProxyRoundTrip):
//
//	go test -run '^$' -bench ProxyDefaults -benchmem -count 6 ./proxy/
func BenchmarkProxyDefaults(b *testing.B) {
	body := bytes.Repeat([]byte("abcdefghijklmnopqrstuvwxyz0123456789"), 3)[:100]
	digest := ContentDigest(body)
	var urls []string
	for range 3 {
		s := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			h := w.Header()
			h["Content-Digest"] = []string{digest}
			h["Content-Length"] = []string{strconv.Itoa(len(body))}
			w.Write(body)
		}))
		b.Cleanup(s.Close)
		urls = append(urls, s.URL)
	}
	mem := &memUpstream{body: body, digest: []string{digest}, clen: []string{strconv.Itoa(len(body))}}
	cases := []struct {
		name string
		tune func(*Route)
	}{
		{"defaults", func(*Route) {}},
		{"hedge-limit-off", func(r *Route) { r.Hedge.Delay = "off"; r.Limit.Algorithm = "off" }},
		{"all-off", func(r *Route) { r.Hedge.Delay = "off"; r.Limit.Algorithm = "off"; r.Timeouts.FixedPerTry = true }},
		{"hedge-off", func(r *Route) { r.Hedge.Delay = "off" }},
		{"limit-off", func(r *Route) { r.Limit.Algorithm = "off" }},
	}
	// The gateway's own work per request, with the in-memory upstream (no
	// sockets, one goroutine): the most stable view of what each default
	// costs.
	for _, tc := range cases {
		b.Run("inmem-"+tc.name, func(b *testing.B) {
			cfg := Config{Routes: []Route{{Name: "r", Upstream: "u"}}, Upstreams: []Upstream{{Name: "u"}}}
			tc.tune(&cfg.Routes[0])
			for _, u := range urls {
				cfg.Upstreams[0].Endpoints = append(cfg.Upstreams[0].Endpoints, Endpoint{URL: u})
			}
			gw, err := New(cfg, Options{Seed: 1})
			if err != nil {
				b.Fatal(err)
			}
			b.Cleanup(func() { gw.Close() })
			memHook(gw, mem)
			benchHandler(b, gw, len(body))
		})
	}
	for _, tc := range cases[:2] {
		b.Run(tc.name, func(b *testing.B) {
			cfg := Config{
				Listeners: []Listener{{Name: "bench", Address: "127.0.0.1:0"}},
				Routes:    []Route{{Name: "r", Upstream: "u"}},
				Upstreams: []Upstream{{Name: "u"}},
			}
			tc.tune(&cfg.Routes[0])
			for _, u := range urls {
				cfg.Upstreams[0].Endpoints = append(cfg.Upstreams[0].Endpoints, Endpoint{URL: u})
			}
			gw, err := New(cfg, Options{Seed: 1})
			if err != nil {
				b.Fatal(err)
			}
			b.Cleanup(func() { gw.Close() })
			if err := gw.Listen(); err != nil {
				b.Fatal(err)
			}
			tr := &http.Transport{MaxIdleConnsPerHost: 128, DisableCompression: true}
			b.Cleanup(tr.CloseIdleConnections)
			target := "http://" + gw.Addrs()[0].String() + "/read"
			var non200 atomic.Int64
			b.SetParallelism(32)
			b.ReportAllocs()
			b.RunParallel(func(pb *testing.PB) {
				req, _ := http.NewRequest(http.MethodGet, target, nil)
				for pb.Next() {
					resp, err := tr.RoundTrip(req)
					if err != nil {
						b.Error(err)
						return
					}
					if resp.StatusCode != 200 {
						non200.Add(1)
					}
					io.Copy(io.Discard, resp.Body)
					resp.Body.Close()
				}
			})
			b.ReportMetric(float64(non200.Load())/float64(b.N), "non200/op")
		})
	}
}
