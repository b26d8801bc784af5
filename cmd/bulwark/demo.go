package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/bulwark-go/bulwark"
	"github.com/bulwark-go/bulwark/demo"
	"github.com/bulwark-go/bulwark/registry"
)

// runDemo serves one replica of the demo service (see package demo): the
// child process that `bulwark up` starts three of, and that the end-to-end
// tests kill and stop.
func runDemo(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("demo", flag.ContinueOnError)
	fs.SetOutput(stderr)
	listen := fs.String("listen", "127.0.0.1:0", "address to serve on")
	id := fs.String("id", "demo", "replica id, sent in the X-Replica header")
	seed := fs.Uint64("seed", 1, "seed for the fault injection's random choices")
	registryAddr := fs.String("registry", "", "registry node(s) to register with, comma-separated host:port, tried in turn (default: do not register)")
	service := fs.String("service", "demo", "service name to register under")
	ttl := fs.Duration("ttl", time.Second, "registration lease")
	if err := fs.Parse(args); err != nil {
		return fmt.Errorf("%w: %v", errUsage, err)
	}
	ln, err := net.Listen("tcp", *listen)
	if err != nil {
		return err
	}
	d := demo.New(*id, *seed)
	srv := &http.Server{Handler: d.Handler(), ReadHeaderTimeout: 10 * time.Second}
	errc := make(chan error, 1)
	go func() { errc <- srv.Serve(ln) }()
	if *registryAddr != "" {
		c, err := registry.NewClient(registry.ClientConfig{Addrs: strings.Split(*registryAddr, ","), Token: os.Getenv("BULWARK_REGISTRY_TOKEN")})
		if err != nil {
			return err
		}
		defer c.Close()
		// pid lets a chaos monkey on this machine find and kill the process.
		inst := bulwark.Instance{Service: *service, ID: *id, Address: "http://" + ln.Addr().String(),
			Metadata: map[string]string{"pid": strconv.Itoa(os.Getpid())}}
		reg, err := c.Register(ctx, inst, *ttl)
		if err != nil {
			return fmt.Errorf("registering with %s: %w", *registryAddr, err)
		}
		// A partitioned replica neither answers nor renews; Close deregisters.
		d.OnPartition = func(on bool) { reg.Pause(on) }
		defer reg.Close()
	}
	fmt.Fprintf(stdout, "demo %s listening on http://%s\n", *id, ln.Addr())
	select {
	case err := <-errc:
		return err
	case <-ctx.Done():
	}
	sctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	if err := srv.Shutdown(sctx); err != nil && !errors.Is(err, context.DeadlineExceeded) {
		return err
	}
	return nil
}
