//go:build gwprof

// Command gwprof runs the gateway exactly as `bulwark run` does for a config
// with one route and one round-robin upstream, and writes a CPU profile of
// the whole process until it is stopped (SIGINT/SIGTERM). It exists so the
// gateway can be profiled under real load (bench/proxy/profile.sh) without
// a profiling flag in cmd/bulwark. It imports the gateway, so profile.sh
// builds it in a temporary go.work with the root module, with -tags gwprof
// (the tag keeps it out of the bench module's go build/vet/test ./...).
//
//	gwprof -listen 127.0.0.1:8083 -to http://127.0.0.1:9001 -to ... -cpuprofile cpu.prof
package main

import (
	"context"
	"flag"
	"fmt"
	"log"
	"os"
	"os/signal"
	"runtime/pprof"
	"strings"
	"syscall"
	"time"

	"github.com/bulwark-go/bulwark/proxy"
)

type multiFlag []string

func (m *multiFlag) String() string     { return strings.Join(*m, ",") }
func (m *multiFlag) Set(v string) error { *m = append(*m, v); return nil }

func main() {
	listen := flag.String("listen", "127.0.0.1:8083", "address to accept clients on")
	balance := flag.String("balance", "round-robin", "balance algorithm of the upstream")
	out := flag.String("cpuprofile", "cpu.prof", "CPU profile written at exit")
	hedge := flag.String("hedge", "", `the route's hedge delay ("off": no hedging; default the pool's p99)`)
	lim := flag.String("limit", "", `the route's concurrency limit ("off": none; default Gradient2)`)
	var to multiFlag
	flag.Var(&to, "to", "an upstream endpoint URL (repeat)")
	flag.Parse()
	cfg := proxy.Config{
		Listeners: []proxy.Listener{{Name: "bench", Address: *listen}},
		Routes:    []proxy.Route{{Name: "default", Upstream: "be", Hedge: proxy.Hedge{Delay: *hedge}, Limit: proxy.Limit{Algorithm: *lim}}},
		Upstreams: []proxy.Upstream{{Name: "be", Balance: *balance}},
	}
	for _, u := range to {
		cfg.Upstreams[0].Endpoints = append(cfg.Upstreams[0].Endpoints, proxy.Endpoint{URL: u})
	}
	gw, err := proxy.New(cfg, proxy.Options{})
	if err != nil {
		log.Fatal(err)
	}
	if err := gw.Listen(); err != nil {
		log.Fatal(err)
	}
	f, err := os.Create(*out)
	if err != nil {
		log.Fatal(err)
	}
	if err := pprof.StartCPUProfile(f); err != nil {
		log.Fatal(err)
	}
	fmt.Printf("gwprof listening on %s\n", gw.Addrs()[0])
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	<-ctx.Done()
	pprof.StopCPUProfile()
	f.Close()
	sctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	gw.Shutdown(sctx)
}
