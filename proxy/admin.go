package proxy

import (
	"encoding/json"
	"net/http"
	"net/http/httputil"
	"sort"
	"time"

	"github.com/bulwark-go/bulwark"
	"github.com/bulwark-go/bulwark/proxy/balance"
	"github.com/bulwark-go/bulwark/resilience"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"
)

// EndpointStatus is one endpoint as the admin API and the dashboard show
// it.
type EndpointStatus struct {
	ID        string         `json:"id"`
	Address   string         `json:"address"`
	Health    bulwark.Health `json:"health"`
	Weight    int            `json:"weight"`
	InFlight  int64          `json:"inflight"`
	EWMA      float64        `json:"ewma_ms"` // peak-EWMA latency, ms
	Requests  uint64         `json:"requests"`
	Failures  uint64         `json:"failures"`
	SlowStart float64        `json:"slow_start"`
	Breaker   string         `json:"breaker"`
	// EjectedUntil is set while outlier detection keeps it out.
	EjectedUntil *time.Time `json:"ejected_until,omitempty"`
}

// UpstreamStatus is one upstream pool.
type UpstreamStatus struct {
	Name      string           `json:"name"`
	Discover  string           `json:"discover,omitempty"`
	Balance   string           `json:"balance"`
	Panic     bool             `json:"panic"`
	Endpoints []EndpointStatus `json:"endpoints"`
}

// Upstreams returns a snapshot of every pool, sorted by name.
func (g *Gateway) Upstreams() []UpstreamStatus {
	st := g.state.Load()
	out := make([]UpstreamStatus, 0, len(st.pools))
	for _, p := range st.pools {
		us := UpstreamStatus{Name: p.name, Discover: p.cfg.Discover, Balance: p.cfg.Balance, Panic: p.passive.panicking()}
		if us.Balance == "" {
			us.Balance = "p2c-ewma"
		}
		for _, ep := range p.set.Endpoints() {
			s := ep.Stats()
			es := EndpointStatus{ID: s.ID, Address: s.Address, Health: s.Health, Weight: s.Weight, InFlight: s.InFlight,
				EWMA: float64(s.Latency) / 1e6, Requests: s.Requests, Failures: s.Failures, SlowStart: s.SlowStart, Breaker: "disabled"}
			if m, ok := ep.Data().(*member); ok && m.breaker != nil {
				es.Breaker = m.breaker.State().String()
			}
			if until := p.passive.ejectedUntil(s.ID); !until.IsZero() {
				es.EjectedUntil = &until
			}
			us.Endpoints = append(us.Endpoints, es)
		}
		out = append(out, us)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out
}

// AdminHandler serves /metrics (Prometheus), /api/upstreams (JSON) and
// /healthz, for the admin listener.
func (g *Gateway) AdminHandler() http.Handler {
	mux := http.NewServeMux()
	mux.Handle("GET /metrics", promhttp.HandlerFor(g.metrics.reg, promhttp.HandlerOpts{}))
	mux.HandleFunc("GET /api/upstreams", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		enc := json.NewEncoder(w)
		enc.SetIndent("", "  ")
		enc.Encode(g.Upstreams())
	})
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, r *http.Request) { w.Write([]byte("ok\n")) })
	return mux
}

// stateCollector exports the gauges that are read from the pools at
// scrape time (endpoint health, breaker states, limiter limits), so the
// hot path does not maintain them.
type stateCollector struct{ g *Gateway }

var (
	descHealth  = prometheus.NewDesc("bulwark_gateway_endpoint_up", "1 when the endpoint is routable.", []string{"upstream", "endpoint"}, nil)
	descInfl    = prometheus.NewDesc("bulwark_gateway_endpoint_inflight", "Tries in flight to the endpoint.", []string{"upstream", "endpoint"}, nil)
	descEWMA    = prometheus.NewDesc("bulwark_gateway_endpoint_latency_seconds", "Peak-EWMA latency of the endpoint.", []string{"upstream", "endpoint"}, nil)
	descBreaker = prometheus.NewDesc("bulwark_gateway_breaker_state", "1 for the breaker's current state.", []string{"upstream", "endpoint", "state"}, nil)
	descLimit   = prometheus.NewDesc("bulwark_gateway_concurrency_limit", "The route's adaptive concurrency limit.", []string{"route"}, nil)
)

func (c *stateCollector) Describe(ch chan<- *prometheus.Desc) {
	ch <- descHealth
	ch <- descInfl
	ch <- descEWMA
	ch <- descBreaker
	ch <- descLimit
}

func (c *stateCollector) Collect(ch chan<- prometheus.Metric) {
	for _, us := range c.g.Upstreams() {
		for _, e := range us.Endpoints {
			up := 0.0
			if e.Health.Routable() {
				up = 1
			}
			ch <- prometheus.MustNewConstMetric(descHealth, prometheus.GaugeValue, up, us.Name, e.ID)
			ch <- prometheus.MustNewConstMetric(descInfl, prometheus.GaugeValue, float64(e.InFlight), us.Name, e.ID)
			ch <- prometheus.MustNewConstMetric(descEWMA, prometheus.GaugeValue, e.EWMA/1e3, us.Name, e.ID)
			ch <- prometheus.MustNewConstMetric(descBreaker, prometheus.GaugeValue, 1, us.Name, e.ID, e.Breaker)
		}
	}
	for _, rt := range c.g.state.Load().routes {
		if rt.limiter != nil {
			ch <- prometheus.MustNewConstMetric(descLimit, prometheus.GaugeValue, float64(rt.limiter.Snapshot().Limit), rt.name)
		}
	}
}

// upgrade passes a protocol upgrade (WebSocket) through to one endpoint.
// Upgraded connections are not retried: once switched, bytes flow both
// ways and cannot be replayed.
func (rt *route) upgrade(w http.ResponseWriter, r *http.Request) {
	var tried balance.Tried
	ep, done, err := rt.upstream.pick(r, &tried)
	if err != nil {
		rt.writeFallback(w, &try{kind: failConnect, err: err})
		return
	}
	m := ep.Data().(*member)
	ep.Start()
	start := time.Now()
	failed := false
	rp := &httputil.ReverseProxy{
		Rewrite: func(pr *httputil.ProxyRequest) {
			pr.SetURL(m.url)
			pr.Out.Host = pr.In.Host
			pr.SetXForwarded()
		},
		Transport: rt.upstream.roundTripper(rt.gw.transport),
		ErrorHandler: func(w http.ResponseWriter, r *http.Request, err error) {
			failed = true
			rt.writeFallback(w, &try{kind: failConnect, err: err})
		},
	}
	rp.ServeHTTP(w, r)
	lat := time.Since(start)
	ep.Done(lat, failed)
	if done != nil {
		if failed {
			done(resilience.Outcome{Err: errStatus(http.StatusBadGateway), Latency: lat})
		} else {
			done(resilience.Outcome{Latency: lat})
		}
	}
}
