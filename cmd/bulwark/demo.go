package main

import (
	"context"
	"crypto/ed25519"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/bulwark-go/bulwark"
	"github.com/bulwark-go/bulwark/demo"
	"github.com/bulwark-go/bulwark/pki"
	"github.com/bulwark-go/bulwark/proxy"
	"github.com/bulwark-go/bulwark/registry"
	"github.com/bulwark-go/bulwark/resilience/resilienthttp"
	"github.com/bulwark-go/bulwark/supervise"
)

// runDemo serves one replica of the demo service (see package demo): the
// child process that `bulwark up` starts three of, and that the end-to-end
// tests kill and stop.
func runDemo(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := newFlagSet("demo", stderr)
	listen := fs.String("listen", "127.0.0.1:0", "address to serve on")
	id := fs.String("id", "demo", "replica id, sent in the X-Replica header")
	seed := fs.Uint64("seed", 1, "seed for the fault injection's random choices")
	registryAddr := fs.String("registry", "", "registry node(s) to register with, comma-separated host:port, tried in turn (default: do not register)")
	service := fs.String("service", "demo", "service name to register under")
	ttl := fs.Duration("ttl", time.Second, "registration lease")
	var tlsFiles pki.Files
	fs.StringVar(&tlsFiles.Cert, "tls-cert", "", "serve HTTPS with this certificate (PEM), requiring client certificates signed by --tls-ca")
	fs.StringVar(&tlsFiles.Key, "tls-key", "", "the certificate's key (PEM)")
	fs.StringVar(&tlsFiles.CA, "tls-ca", "", "the CA whose client certificates are accepted (PEM); with --registry, the replica also registers over mTLS with this certificate")
	signKey := fs.String("sign-key", "", "sign every answer (RFC 9421, Ed25519) with this key (bulwark ca sign-key writes one); its public key is registered as sig-key metadata")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	scheme := "http"
	var tlsCfg *tls.Config
	if tlsFiles != (pki.Files{}) {
		var err error
		if tlsCfg, err = tlsFiles.ServerConfig(); err != nil {
			return err
		}
		scheme = "https"
	}
	ln, err := net.Listen("tcp", *listen)
	if err != nil {
		return err
	}
	if tlsCfg != nil {
		ln = tls.NewListener(ln, tlsCfg)
	}
	d := demo.New(*id, *seed)
	handler := d.Handler()
	var sigPub string
	if *signKey != "" {
		key, err := pki.LoadSigningKey(*signKey)
		if err != nil {
			ln.Close()
			return err
		}
		handler = resilienthttp.Signer{KeyID: *id, Key: key}.Sign(handler)
		sigPub = pki.PublicKeyString(key.Public().(ed25519.PublicKey))
	}
	// The replica's own tree: the registration's renewal loop (when it
	// registers) and the HTTP server (docs/architecture.md).
	loops := newLoopRunner()
	root := supervise.New(supervise.Config{Name: "demo", MaxRestarts: 20, Period: time.Minute,
		Observer: supervise.LogObserver(slog.New(slog.NewTextHandler(stderr, &slog.HandlerOptions{Level: slog.LevelWarn})))},
		supervise.Spec{Name: "loops", Service: loops.sup},
		supervise.Spec{Name: "http", Service: &httpService{ln: ln, addr: ln.Addr().String(), handler: handler}})
	if *registryAddr != "" {
		rc := registry.ClientConfig{Addrs: strings.Split(*registryAddr, ","), Token: os.Getenv("BULWARK_REGISTRY_TOKEN"), Run: loops.run}
		if tlsCfg != nil {
			// A replica under mTLS registers over mTLS too, with the same
			// certificate (pki issues every leaf for both ends of a hop).
			if rc.TLS, err = tlsFiles.ClientConfig(); err != nil {
				ln.Close()
				return err
			}
		}
		c, err := registry.NewClient(rc)
		if err != nil {
			ln.Close()
			return err
		}
		defer c.Close()
		// pid lets a chaos monkey on this machine find and kill the process.
		inst := bulwark.Instance{Service: *service, ID: *id, Address: scheme + "://" + ln.Addr().String(),
			Metadata: map[string]string{"pid": strconv.Itoa(os.Getpid())}}
		if sigPub != "" {
			inst.Metadata[proxy.MetadataSignatureKey] = sigPub
		}
		reg, err := registerRetrying(ctx, c, inst, *ttl, stderr)
		if err != nil {
			ln.Close()
			return fmt.Errorf("registering with %s: %w", *registryAddr, err)
		}
		// A partitioned replica neither answers nor renews; Close deregisters
		// (after the tree has stopped the server).
		d.OnPartition = func(on bool) { reg.Pause(on) }
		defer reg.Close()
	}
	ctx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	stopTree := serveTree(root, func(err error) { cancel(err) })
	fmt.Fprintf(stdout, "demo %s listening on %s://%s\n", *id, scheme, ln.Addr())
	<-ctx.Done()
	stopTree()
	if err := context.Cause(ctx); err != nil && !errors.Is(err, context.Canceled) {
		return fmt.Errorf("supervision tree gave up: %w", err)
	}
	return nil
}

// registerWait is how long a starting replica keeps trying to register: a
// registry electing a leader on a loaded machine can answer 503 for longer
// than the registry client's own 5 s retry window (the soak's restarted
// demo exited so and stayed down).
const registerWait = 60 * time.Second

// registerRetrying registers inst, retrying with backoff for up to
// registerWait while no registry node can take it (registry.ErrUnavailable:
// every node unreachable or answering 5xx); a refusal (4xx: a bad token, an
// invalid instance) fails at once.
func registerRetrying(ctx context.Context, c *registry.Client, inst bulwark.Instance, ttl time.Duration, stderr io.Writer) (*registry.Registration, error) {
	deadline := time.Now().Add(registerWait)
	wait := 100 * time.Millisecond
	for {
		reg, err := c.Register(ctx, inst, ttl)
		if err == nil || !errors.Is(err, registry.ErrUnavailable) || ctx.Err() != nil || time.Now().After(deadline) {
			return reg, err
		}
		fmt.Fprintf(stderr, "demo %s: registering: %v (retrying in %v)\n", inst.ID, err, wait)
		select {
		case <-ctx.Done():
			return nil, ctx.Err()
		case <-time.After(wait):
		}
		wait = min(2*wait, 2*time.Second)
	}
}
