package delivery

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/bulwark-go/bulwark"
	"github.com/bulwark-go/bulwark/internal/diskspace"
)

// Forwarder sends one message to its upstream: the gateway's forwarding path
// satisfies it. It returns the backend's HTTP status, or an error when no
// answer came. Forward must set the request's headers from m.Header (which
// carries the Idempotency-Key) and honour ctx.
type Forwarder interface {
	Forward(ctx context.Context, m *bulwark.Message) (status int, err error)
}

// Sentinel errors callers branch on.
var (
	// ErrNotFound: no message with that id (or its status is not yet visible).
	ErrNotFound = errors.New("delivery: message not found")
	// ErrTooLarge: the body exceeds Config.MaxBody.
	ErrTooLarge = errors.New("delivery: message body too large")
	// ErrInvalidMessage: the message lacks a field delivery needs.
	ErrInvalidMessage = errors.New("delivery: invalid message")
	// ErrClosed: the service was closed.
	ErrClosed = errors.New("delivery: service closed")
	// ErrBacklogFull means the backlog reached Config.MaxBacklog: the
	// message was not stored; retry later.
	ErrBacklogFull = errors.New("delivery: backlog full")
	// ErrStoreFull means the embedded store's disk has less than
	// minFreeDisk left: the message was not stored; free space (the
	// service resumes by itself) or retry later.
	ErrStoreFull = errors.New("delivery: store disk full")
)

// minFreeDisk is the free space under DataDir below which Enqueue refuses
// new messages (at least 4 × MaxBody): JetStream does not answer a publish
// it cannot write, so without this check a full disk would hold every
// Enqueue until its timeout, and the status records and consumer state
// need room too.
const minFreeDisk = 16 << 20

// Service stores messages durably and delivers them. Create it with Open;
// all methods are safe for concurrent use.
type Service struct {
	cfg Config
	fwd Forwarder
	log *slog.Logger

	srv *server.Server // nil with external URLs
	nc  *nats.Conn
	js  jetstream.JetStream

	work, dead jetstream.Stream
	status     jetstream.KeyValue
	cons       []jetstream.Consumer // the work stream's durable consumers
	consSubj   []string             // their filter subjects

	subjAny  string // unordered messages
	subjPart string // ordered messages: subjPart + "." + partition
	subjDead string
	kvPrefix string // "$KV.<bucket>." for asynchronous status creates

	disk   *diskspace.Guard // nil with external URLs
	sems   semaphores
	active activeSet
	stats  stats
	met    *metrics
	fetchC context.CancelFunc // stops fetching
	workC  context.CancelFunc // cancels deliveries in flight
	fetchW sync.WaitGroup     // fetch loops and the stats loop
	workW  sync.WaitGroup     // delivery goroutines

	closeOnce sync.Once
	closeErr  error
	closing   chan struct{}
}

// Open starts (or connects to) JetStream, creates the streams, consumers and
// the status bucket if missing, and starts the workers that deliver through
// fwd. ctx bounds the setup only. Close the Service when done.
func Open(ctx context.Context, cfg Config, fwd Forwarder) (*Service, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if fwd == nil {
		return nil, fmt.Errorf("delivery: a Forwarder is required")
	}
	cfg = cfg.withDefaults()
	s := &Service{
		cfg: cfg, fwd: fwd, log: cfg.Logger,
		subjAny:  cfg.SubjectPrefix + ".work.any",
		subjPart: cfg.SubjectPrefix + ".work.part",
		subjDead: cfg.SubjectPrefix + ".dead",
		kvPrefix: "$KV." + cfg.Name + "_STATUS.",
		closing:  make(chan struct{}),
	}
	s.sems.limit = cfg.MaxInFlight
	if len(cfg.URLs) == 0 {
		s.disk = &diskspace.Guard{Path: cfg.DataDir, Min: max(minFreeDisk, 4*uint64(cfg.MaxBody))}
	}
	if err := s.start(ctx); err != nil {
		s.shutdown()
		return nil, err
	}
	return s, nil
}

func (s *Service) start(ctx context.Context) error {
	if err := s.connect(); err != nil {
		return err
	}
	if err := s.setupStreams(ctx); err != nil {
		return err
	}
	met, err := newMetrics(s.cfg.Registerer, s)
	if err != nil {
		return err
	}
	s.met = met
	return s.startWorkers(ctx)
}

// connect starts the embedded server (unless URLs are set) and connects.
func (s *Service) connect() error {
	js := []jetstream.JetStreamOpt{
		jetstream.WithPublishAsyncMaxPending(s.cfg.MaxPendingPublishes),
		jetstream.WithPublishAsyncTimeout(max(10*time.Second, s.cfg.OpTimeout)),
	}
	var err error
	if len(s.cfg.URLs) > 0 {
		opts := []nats.Option{nats.Name(s.cfg.ServerName), nats.MaxReconnects(-1), nats.ReconnectWait(250 * time.Millisecond)}
		if s.cfg.TLS != nil {
			opts = append(opts, nats.Secure(s.cfg.TLS))
		}
		s.nc, err = nats.Connect(strings.Join(s.cfg.URLs, ","), opts...)
		if err != nil {
			return fmt.Errorf("delivery: connect to %v: %w", s.cfg.URLs, err)
		}
	} else {
		if err := s.startServer(); err != nil {
			return err
		}
		s.nc, err = nats.Connect("", nats.InProcessServer(s.srv), nats.Name(s.cfg.ServerName))
		if err != nil {
			return fmt.Errorf("delivery: connect in process: %w", err)
		}
	}
	s.js, err = jetstream.New(s.nc, js...)
	if err != nil {
		return fmt.Errorf("delivery: jetstream: %w", err)
	}
	return nil
}

func (s *Service) startServer() error {
	c := &s.cfg
	opts := &server.Options{
		ServerName:   c.ServerName,
		Host:         c.Host,
		Port:         c.Port,
		DontListen:   c.Port == 0 && c.Cluster == nil,
		NoSigs:       true,
		JetStream:    true,
		StoreDir:     c.DataDir,
		SyncInterval: c.SyncInterval,
		SyncAlways:   c.SyncAlways,
		// A stored message is its body plus a header with the request's
		// metadata and headers.
		MaxPayload: int32(max(1<<20, c.MaxBody+256<<10)),
	}
	if c.Cluster != nil {
		// nats-server starts routing only after its client listener is up
		// (Server.Start: StartRouting waits for clientListenReady, which
		// DontListen never closes), and its Shutdown then waits forever:
		// a clustered server always listens, on a random port by default.
		if opts.Port == 0 {
			opts.Port = -1
		}
		opts.Cluster = server.ClusterOpts{Name: c.Cluster.Name, Host: c.Cluster.Host, Port: c.Cluster.Port}
		if opts.Cluster.Host == "" {
			opts.Cluster.Host = "127.0.0.1"
		}
		if len(c.Cluster.Routes) > 0 {
			opts.Routes = server.RoutesFromStr(strings.Join(c.Cluster.Routes, ","))
		}
		if c.TLS != nil {
			// Routes both accept and dial with this config: a route from a
			// server without our CA's certificate is refused.
			opts.Cluster.TLSConfig = c.TLS
			opts.Cluster.TLSTimeout = 2
		}
	}
	if c.TLS != nil && !opts.DontListen {
		opts.TLS, opts.TLSVerify, opts.TLSConfig, opts.TLSTimeout = true, true, c.TLS, 2
	}
	srv, err := server.NewServer(opts)
	if err != nil {
		return fmt.Errorf("delivery: embedded nats-server: %w", err)
	}
	srv.SetLogger(serverLog{s.log.With("component", "nats-server")}, false, false)
	s.srv = srv
	srv.Start()
	if !srv.ReadyForConnections(c.ReadyTimeout) {
		return fmt.Errorf("delivery: embedded nats-server not ready after %v", c.ReadyTimeout)
	}
	return nil
}

// setupStreams creates or updates the work and dead-letter streams and the
// status bucket.
func (s *Service) setupStreams(ctx context.Context) error {
	c := &s.cfg
	workCfg := jetstream.StreamConfig{
		Name:        c.Name + "_WORK",
		Description: "Bulwark asynchronous deliveries (backlog)",
		Subjects:    []string{c.SubjectPrefix + ".work.>"},
		// Limits, not WorkQueue: a message leaves the work stream only when
		// a worker deletes it after the backend's answer (or after
		// dead-lettering it). With WorkQueue (or Interest) retention the
		// server removes messages on its own judgement of the consumers'
		// state, and a clustered stream's leader judges from its local
		// replica of each consumer: a replica that is behind (a member
		// SIGKILLed twice, then elected stream leader while the consumer's
		// leader was down) proposes the deletion of a message that is
		// still pending — lost without any delivery (the 10-minute soak,
		// seed 42). No limit is set: the stream is bounded by MaxMsgs.
		Retention:  jetstream.LimitsPolicy,
		Storage:    jetstream.FileStorage,
		Replicas:   c.Replicas,
		Duplicates: c.Duplicates,
		MaxMsgs:    backlogLimit(c.MaxBacklog),
		// DiscardNew: when full, refuse the new message (Enqueue fails,
		// the client is told to retry) — DiscardOld would silently drop
		// work that was already acknowledged.
		Discard: jetstream.DiscardNew,
	}
	err := s.retry(ctx, "create work stream", func(ctx context.Context) (err error) {
		s.work, err = s.js.CreateOrUpdateStream(ctx, workCfg)
		if isRetentionChange(err) {
			// A work stream made by an earlier version has WorkQueue
			// retention, which nats-server cannot change: keep using it.
			if old, gerr := s.js.Stream(ctx, workCfg.Name); gerr == nil && old.CachedInfo().Config.Retention == jetstream.WorkQueuePolicy {
				s.log.Warn("delivery: the work stream has WorkQueue retention from an earlier version; delete it once drained to get Limits retention, which cannot lose a pending message when the stream leader's consumer state is behind",
					"stream", workCfg.Name)
				s.work, err = old, nil
			}
		}
		return err
	})
	if err != nil {
		return err
	}
	err = s.retry(ctx, "create dead-letter stream", func(ctx context.Context) (err error) {
		s.dead, err = s.js.CreateOrUpdateStream(ctx, jetstream.StreamConfig{
			Name:        c.Name + "_DEAD",
			Description: "Bulwark dead letters",
			Subjects:    []string{s.subjDead},
			Retention:   jetstream.LimitsPolicy,
			Storage:     jetstream.FileStorage,
			Replicas:    c.Replicas,
			Duplicates:  c.Duplicates,
		})
		return err
	})
	if err != nil {
		return err
	}
	return s.retry(ctx, "create status bucket", func(ctx context.Context) (err error) {
		s.status, err = s.js.CreateOrUpdateKeyValue(ctx, jetstream.KeyValueConfig{
			Bucket:      c.Name + "_STATUS",
			Description: "Bulwark delivery status per message id",
			History:     1,
			TTL:         c.StatusTTL,
			Storage:     jetstream.FileStorage,
			Replicas:    c.Replicas,
		})
		return err
	})
}

// retry runs op with a per-call timeout of OpTimeout until it succeeds, fails
// with an error that retrying cannot fix, or ctx ends. Management calls made
// before a cluster has a meta leader block until their deadline, so a short
// deadline plus retries converges as soon as the cluster forms.
func (s *Service) retry(ctx context.Context, what string, op func(context.Context) error) error {
	wait := 100 * time.Millisecond
	for attempt := 1; ; attempt++ {
		cctx, cancel := context.WithTimeout(ctx, s.cfg.OpTimeout)
		err := op(cctx)
		cancel()
		if err == nil {
			return nil
		}
		if ctx.Err() != nil || !transient(err) {
			return fmt.Errorf("delivery: %s: %w", what, err)
		}
		s.log.Debug("delivery: retrying", "op", what, "attempt", attempt, "err", err)
		t := time.NewTimer(wait)
		select {
		case <-ctx.Done():
			t.Stop()
			return fmt.Errorf("delivery: %s: %w (last error: %w)", what, ctx.Err(), err)
		case <-t.C:
		}
		wait = min(2*wait, time.Second)
	}
}

// transient reports whether a JetStream call may succeed when repeated:
// timeouts, no responders, and 5xx API errors (e.g. "JetStream cluster not
// available" while the meta leader is being elected).
func transient(err error) bool {
	var api *jetstream.APIError
	switch {
	case errors.Is(err, context.DeadlineExceeded), errors.Is(err, nats.ErrTimeout),
		errors.Is(err, nats.ErrNoResponders), errors.Is(err, jetstream.ErrNoStreamResponse),
		errors.Is(err, jetstream.ErrJetStreamNotEnabled), errors.Is(err, errLeaderUnavailable):
		return true
	case errors.As(err, &api):
		return api.Code >= 500
	}
	return false
}

// Close stops fetching, lets deliveries in flight finish for up to
// DrainTimeout (then cancels them and hands them back with a Nak), closes
// the connection and shuts the embedded server down, waiting for all
// goroutines. Messages the client library had fetched but no worker had
// started yet are handed back with a Nak too. It is idempotent.
func (s *Service) Close() error {
	s.closeOnce.Do(func() {
		close(s.closing)
		s.closeErr = s.shutdown()
	})
	return s.closeErr
}

func (s *Service) shutdown() error {
	if s.fetchC != nil {
		s.fetchC()
	}
	// Fetch loops end first (ordered partitions may still be delivering in
	// them), so no delivery goroutine starts after workW.Wait begins.
	done := make(chan struct{})
	go func() {
		s.fetchW.Wait()
		s.workW.Wait()
		close(done)
	}()
	t := time.NewTimer(s.cfg.DrainTimeout)
	select {
	case <-done:
		t.Stop()
	case <-t.C:
		s.log.Warn("delivery: drain timeout, cancelling deliveries in flight", "timeout", s.cfg.DrainTimeout)
	}
	if s.workC != nil {
		s.workC()
	}
	<-done
	if s.met != nil {
		s.met.unregister()
	}
	var err error
	if s.nc != nil {
		// Flush outstanding acks before closing so they are not redelivered.
		if ferr := s.nc.FlushTimeout(time.Second); ferr != nil && !errors.Is(ferr, nats.ErrConnectionClosed) {
			err = fmt.Errorf("delivery: flush: %w", ferr)
		}
		s.nc.Close()
	}
	if s.srv != nil {
		s.srv.Shutdown()
		s.srv.WaitForShutdown()
	}
	return err
}

// ClientURL is the embedded server's client URL ("" when it does not
// listen or is external), for tools and peers.
func (s *Service) ClientURL() string {
	if s.srv == nil || (s.cfg.Port == 0 && s.cfg.Cluster == nil) {
		return ""
	}
	return s.srv.ClientURL()
}

// serverLog adapts nats-server's logger to slog.
type serverLog struct{ l *slog.Logger }

func (l serverLog) Noticef(f string, v ...any) { l.log(slog.LevelInfo, f, v) }
func (l serverLog) Warnf(f string, v ...any)   { l.log(slog.LevelWarn, f, v) }
func (l serverLog) Fatalf(f string, v ...any)  { l.log(slog.LevelError, f, v) }
func (l serverLog) Errorf(f string, v ...any)  { l.log(slog.LevelError, f, v) }
func (l serverLog) Debugf(f string, v ...any)  { l.log(slog.LevelDebug, f, v) }
func (l serverLog) Tracef(f string, v ...any)  { l.log(slog.LevelDebug, f, v) }

func (l serverLog) log(level slog.Level, f string, v []any) {
	if l.l.Enabled(context.Background(), level) {
		l.l.Log(context.Background(), level, fmt.Sprintf(f, v...))
	}
}

// isRetentionChange reports whether a stream update was refused because it
// changes the retention policy (nats-server answers it with a 500).
func isRetentionChange(err error) bool {
	var api *jetstream.APIError
	return errors.As(err, &api) && strings.Contains(api.Description, "retention policy")
}

// backlogLimit is the work stream's MaxMsgs for a MaxBacklog setting.
func backlogLimit(n int) int64 {
	if n <= 0 {
		return -1
	}
	return int64(n)
}
