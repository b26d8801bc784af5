package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"time"

	"github.com/bulwark-go/bulwark/demo"
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
	if err := fs.Parse(args); err != nil {
		return fmt.Errorf("%w: %v", errUsage, err)
	}
	ln, err := net.Listen("tcp", *listen)
	if err != nil {
		return err
	}
	srv := &http.Server{Handler: demo.New(*id, *seed).Handler(), ReadHeaderTimeout: 10 * time.Second}
	fmt.Fprintf(stdout, "demo %s listening on http://%s\n", *id, ln.Addr())
	errc := make(chan error, 1)
	go func() { errc <- srv.Serve(ln) }()
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
