package delivery

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"regexp"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// Config configures a [Service]. Its zero value, plus a DataDir, runs an
// embedded single-node JetStream reachable only in process. Every field
// states its default.
type Config struct {
	// DataDir is where the embedded server keeps its file store. Required
	// unless URLs is set.
	DataDir string
	// ServerName names the embedded server; clustered servers need distinct
	// names. Default "bulwark-delivery".
	ServerName string
	// Host is the client listen address of the embedded server. Default
	// "127.0.0.1".
	Host string
	// Port is the client port of the embedded server: 0 (default) means no
	// client listener at all (nats-server's DontListen; Bulwark connects in
	// process), -1 a random port, anything else that port. A clustered
	// server always listens: there 0 means a random port.
	Port int
	// Cluster, when set, joins the embedded server to a JetStream cluster.
	Cluster *ClusterConfig
	// URLs, when set, connects to an external NATS cluster instead of
	// embedding a server; DataDir and the server fields are then ignored.
	URLs []string
	// TLS, when set, puts every network hop of delivery under mutual TLS:
	// the connection to external URLs (nats.Secure), and the embedded
	// server's cluster routes and client listener (which then require a
	// client certificate). It must present a certificate and trust the CA
	// on both sides (pki.Files.MutualConfig). The in-process connection to
	// an embedded server never touches the network and needs none.
	// Default: plain TCP.
	TLS *tls.Config

	// Name prefixes the JetStream resources: streams <Name>_WORK and
	// <Name>_DEAD, KV bucket <Name>_STATUS. Default "BULWARK".
	Name string
	// SubjectPrefix prefixes the subjects (<prefix>.work.…, <prefix>.dead).
	// Default "bulwark.delivery".
	SubjectPrefix string
	// Replicas is the streams' replication factor: 1 (default), or 3 in a
	// cluster.
	Replicas int
	// Duplicates is the work stream's deduplication window for
	// Idempotency-Keys. Default 2 minutes.
	Duplicates time.Duration
	// StatusTTL is how long a message's status record is kept after its
	// last change. Default 7 days.
	StatusTTL time.Duration
	// SyncInterval is how often the file store fsyncs. Default 0 means
	// nats-server's default, 2 minutes; see the package doc for what that
	// risks.
	SyncInterval time.Duration
	// SyncAlways fsyncs every write before acknowledging it. Default false.
	SyncAlways bool

	// MaxAttempts is how many deliveries a message gets before it is
	// dead-lettered. Default 5.
	MaxAttempts int
	// Backoff is the delay before attempt n+1 after n failed ones,
	// Backoff[n-1], the last entry repeating. Default 1s, 2s, 5s, 10s, 30s.
	Backoff []time.Duration
	// AckWait is how long the server waits for a worker's answer before it
	// redelivers; workers extend it while they wait or forward. Default 30s.
	AckWait time.Duration
	// AttemptTimeout bounds one Forward call. Default 30s.
	AttemptTimeout time.Duration
	// MaxBody is the largest message body Enqueue accepts. Default 1 MiB,
	// at most 4 MiB.
	MaxBody int
	// MaxInFlight bounds concurrent deliveries per upstream. Default 64.
	MaxInFlight int
	// MaxAckPending bounds deliveries outstanding on the unordered consumer
	// (and so delivery goroutines). Default 1024.
	MaxAckPending int
	// Partitions is the number of ordered partitions for messages with an
	// OrderKey. Default 16.
	Partitions int
	// MaxBacklog bounds the messages stored and not yet delivered: beyond
	// it Enqueue fails with ErrBacklogFull (the gateway answers 503 with
	// Retry-After) instead of the backlog growing until the disk is full.
	// Accepted messages are never dropped to make room. Default 1,000,000;
	// -1 for no bound.
	MaxBacklog int
	// MaxPendingPublishes bounds asynchronous publishes awaiting their
	// PubAck; Enqueue blocks beyond it. Default 4096.
	MaxPendingPublishes int

	// ReadyTimeout bounds the embedded server's start. Default 10s.
	ReadyTimeout time.Duration
	// OpTimeout bounds each JetStream management call; Open retries calls
	// that time out (a CreateStream sent before a cluster elected its meta
	// leader blocks until its deadline). Default 3s.
	OpTimeout time.Duration
	// DrainTimeout is how long Close lets deliveries in flight finish.
	// Default 5s.
	DrainTimeout time.Duration
	// StatsInterval is how often backlog gauges are refreshed. Default 1s.
	StatsInterval time.Duration

	// Logger receives the service's and the embedded server's logs. Nil
	// discards them.
	Logger *slog.Logger
	// Registerer receives the metrics. Nil registers none.
	Registerer prometheus.Registerer
	// Run runs one of the service's long-lived loops (a consumer's fetch
	// loop) until ctx ends, and returns once loop has returned for the
	// last time. Nil calls loop(ctx) directly. cmd/bulwark passes one that
	// runs the loop under the process's supervision tree, so a panic in it
	// is recovered and the loop restarted on the same consumer.
	Run func(ctx context.Context, name string, loop func(ctx context.Context) error)
}

// ClusterConfig joins an embedded server to a JetStream cluster. A clustered
// JetStream needs a ServerName and a cluster Name on every server.
type ClusterConfig struct {
	// Name is the cluster's name, the same on every server. Required.
	Name string
	// Host is the route listen address. Default "127.0.0.1".
	Host string
	// Port is the route listen port. Required (peers must know it).
	Port int
	// Routes are the peers' route URLs ("nats://127.0.0.1:6222").
	Routes []string
}

var (
	nameRe    = regexp.MustCompile(`^[A-Za-z0-9_-]+$`)
	subjectRe = regexp.MustCompile(`^[A-Za-z0-9_-]+(\.[A-Za-z0-9_-]+)*$`)
)

// maxBodyLimit keeps a stored message (body plus metadata header) well under
// the 8 MiB above which nats-server warns that payloads hurt performance.
const maxBodyLimit = 4 << 20

// Validate reports every invalid field at once.
func (c *Config) Validate() error {
	var errs []error
	bad := func(format string, a ...any) { errs = append(errs, fmt.Errorf(format, a...)) }
	if len(c.URLs) == 0 && c.DataDir == "" {
		bad("delivery: DataDir is required unless URLs is set")
	}
	if c.Port < -1 || c.Port > 65535 {
		bad("delivery: Port %d: want 0 (in process only), -1 (random) or 1-65535", c.Port)
	}
	if c.Cluster != nil {
		if c.Cluster.Name == "" {
			bad("delivery: Cluster.Name is required")
		}
		if c.Cluster.Port < 1 || c.Cluster.Port > 65535 {
			bad("delivery: Cluster.Port %d: want 1-65535", c.Cluster.Port)
		}
		if c.ServerName == "" {
			bad("delivery: ServerName is required in a cluster")
		}
	}
	if c.Name != "" && !nameRe.MatchString(c.Name) {
		bad("delivery: Name %q: want letters, digits, - and _", c.Name)
	}
	if c.SubjectPrefix != "" && !subjectRe.MatchString(c.SubjectPrefix) {
		bad("delivery: SubjectPrefix %q: want dot-separated tokens without wildcards", c.SubjectPrefix)
	}
	if c.MaxBacklog < -1 {
		bad("delivery: MaxBacklog %d: want -1 (no bound), 0 (default) or a positive count", c.MaxBacklog)
	}
	if c.Replicas < 0 || c.Replicas > 5 {
		bad("delivery: Replicas %d: want 1-5", c.Replicas)
	}
	for name, v := range map[string]int{"MaxAttempts": c.MaxAttempts, "MaxBody": c.MaxBody, "MaxInFlight": c.MaxInFlight,
		"MaxAckPending": c.MaxAckPending, "Partitions": c.Partitions, "MaxPendingPublishes": c.MaxPendingPublishes} {
		if v < 0 {
			bad("delivery: %s %d: must not be negative (0 means the default)", name, v)
		}
	}
	if c.MaxBody > maxBodyLimit {
		bad("delivery: MaxBody %d: at most %d", c.MaxBody, maxBodyLimit)
	}
	if c.Partitions > 1024 {
		bad("delivery: Partitions %d: at most 1024", c.Partitions)
	}
	for name, d := range map[string]time.Duration{"Duplicates": c.Duplicates, "StatusTTL": c.StatusTTL, "SyncInterval": c.SyncInterval,
		"AckWait": c.AckWait, "AttemptTimeout": c.AttemptTimeout, "ReadyTimeout": c.ReadyTimeout,
		"OpTimeout": c.OpTimeout, "DrainTimeout": c.DrainTimeout, "StatsInterval": c.StatsInterval} {
		if d < 0 {
			bad("delivery: %s %v: must not be negative (0 means the default)", name, d)
		}
	}
	if c.AckWait != 0 && c.AckWait < 100*time.Millisecond {
		bad("delivery: AckWait %v: at least 100ms", c.AckWait)
	}
	for i, d := range c.Backoff {
		if d <= 0 {
			bad("delivery: Backoff[%d] %v: must be positive", i, d)
		}
	}
	return errors.Join(errs...)
}

// withDefaults returns a copy with every zero field set to its default.
func (c Config) withDefaults() Config {
	def := func(p *time.Duration, d time.Duration) {
		if *p == 0 {
			*p = d
		}
	}
	defInt := func(p *int, d int) {
		if *p == 0 {
			*p = d
		}
	}
	if c.ServerName == "" {
		c.ServerName = "bulwark-delivery"
	}
	if c.Host == "" {
		c.Host = "127.0.0.1"
	}
	if c.Name == "" {
		c.Name = "BULWARK"
	}
	if c.SubjectPrefix == "" {
		c.SubjectPrefix = "bulwark.delivery"
	}
	defInt(&c.Replicas, 1)
	defInt(&c.MaxAttempts, 5)
	defInt(&c.MaxBody, 1<<20)
	defInt(&c.MaxInFlight, 64)
	defInt(&c.MaxAckPending, 1024)
	defInt(&c.Partitions, 16)
	defInt(&c.MaxPendingPublishes, 4096)
	defInt(&c.MaxBacklog, 1_000_000)
	def(&c.Duplicates, 2*time.Minute)
	def(&c.StatusTTL, 7*24*time.Hour)
	def(&c.AckWait, 30*time.Second)
	def(&c.AttemptTimeout, 30*time.Second)
	def(&c.ReadyTimeout, 10*time.Second)
	def(&c.OpTimeout, 3*time.Second)
	def(&c.DrainTimeout, 5*time.Second)
	def(&c.StatsInterval, time.Second)
	if len(c.Backoff) == 0 {
		c.Backoff = []time.Duration{time.Second, 2 * time.Second, 5 * time.Second, 10 * time.Second, 30 * time.Second}
	}
	if c.Logger == nil {
		c.Logger = slog.New(slog.DiscardHandler)
	}
	return c
}

// backoff is the delay after the attempt-th failed delivery (1-based).
func (c *Config) backoff(attempt int) time.Duration {
	i := min(max(attempt-1, 0), len(c.Backoff)-1)
	return c.Backoff[i]
}
