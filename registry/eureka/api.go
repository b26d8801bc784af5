// Package eureka serves a subset of Netflix Eureka's REST API on a
// registry node, so Eureka clients (Spring Cloud Netflix, fargo, …)
// register, heartbeat and discover through Bulwark's registry unchanged.
//
// It is translation only: every write goes through the node's exported
// methods, so through the same Raft log and leader-held leases as the
// node's own API, and reads come from the node's replicated catalog.
//
// # Mapping
//
//	Eureka                                  Bulwark registry
//	application name (case-insensitive)     service, lower case (reported upper case)
//	instanceId (or hostName)                instance ID; IDs with other bytes than
//	                                        [A-Za-z0-9._-] get a safe form plus a hash,
//	                                        the original kept in metadata
//	ipAddr (or hostName) + port/securePort  Address http(s)://host:port
//	leaseInfo.durationInSecs (default 90)   lease TTL, exactly (no doubling: Eureka's
//	                                        Lease.renew bug makes its expiry 2 × duration)
//	heartbeat PUT                           lease renewal
//	status UP                               up; STARTING, DOWN, OUT_OF_SERVICE,
//	                                        UNKNOWN register suspect (not routable)
//	metadata                                metadata (keys as given)
//
// The delta (GET /eureka/apps/delta) is kept per node: each node diffs its
// catalog against the previous full or delta read and keeps the changes
// for three minutes, as Eureka's retentionTimeInMSInDeltaQueue does; the
// apps__hashcode lets a client that missed changes fall back to a full
// fetch, which is what Eureka clients do.
//
// # Concurrency
//
// Handlers run on the node's HTTP server goroutines; the delta tracker has
// its own mutex, taken after the node's catalog has been copied, never
// while calling the node.
package eureka

import (
	"encoding/json"
	"encoding/xml"
	"errors"
	"io"
	"log/slog"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/bulwark-go/bulwark"
	"github.com/bulwark-go/bulwark/registry"
)

// Node is what the API needs of a registry node; *registry.Node
// implements it.
type Node interface {
	OnLeader(h http.HandlerFunc) http.HandlerFunc
	CheckToken(token string) bool
	RegisterInstance(req registry.RegisterRequest, health bulwark.Health) (registry.InstanceInfo, error)
	RenewInstance(service, id string, keepState bool) (registry.InstanceInfo, uint64, error)
	DeregisterInstance(service, id string) (uint64, error)
	Service(service string) registry.ServiceResponse
	Catalog() ([]registry.InstanceInfo, uint64)
}

// Options configure the API. The zero value works.
type Options struct {
	// Logger receives request errors at Debug. nil discards.
	Logger *slog.Logger
	// now replaces time.Now in tests of the delta's retention.
	now func() time.Time
}

// deltaRetention is how long a change stays in the delta (Eureka's
// retentionTimeInMSInDeltaQueue default).
const deltaRetention = 3 * time.Minute

// API serves the Eureka subset for one registry node.
type API struct {
	n     Node
	opts  Options
	delta tracker
}

// New returns the API of node n.
func New(n Node, opts Options) *API {
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	if opts.now == nil {
		opts.now = time.Now
	}
	return &API{n: n, opts: opts}
}

// Mount returns a registry.Config.Mount function serving the Eureka subset
// beside the node's own API.
func Mount(opts Options) func(*registry.Node, *http.ServeMux) {
	return func(n *registry.Node, mux *http.ServeMux) { New(n, opts).Register(mux) }
}

// Register adds the API's routes to mux, under /eureka/apps and (for
// clients configured with Netflix's own context path) /eureka/v2/apps.
func (a *API) Register(mux *http.ServeMux) {
	for _, base := range []string{"/eureka/apps", "/eureka/v2/apps"} {
		mux.HandleFunc("GET "+base, a.handleApps)
		mux.HandleFunc("GET "+base+"/{$}", a.handleApps)
		mux.HandleFunc("GET "+base+"/delta", a.handleDelta)
		mux.HandleFunc("GET "+base+"/{app}", a.handleApp)
		mux.HandleFunc("GET "+base+"/{app}/{id}", a.handleInstance)
		mux.HandleFunc("POST "+base+"/{app}", a.write(a.handleRegister))
		mux.HandleFunc("PUT "+base+"/{app}/{id}", a.write(a.handleHeartbeat))
		mux.HandleFunc("DELETE "+base+"/{app}/{id}", a.write(a.handleCancel))
	}
}

// token is the request's credential: a bearer token, or the password of
// HTTP basic auth (Eureka clients put user:password in the service URL).
func token(r *http.Request) string {
	if t, ok := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer "); ok {
		return t
	}
	if _, p, ok := r.BasicAuth(); ok {
		return p
	}
	return ""
}

var errDenied = errors.New("eureka: the registry's token is required (Authorization: Bearer, or as the password of basic auth)")

func (a *API) write(h http.HandlerFunc) http.HandlerFunc {
	lead := a.n.OnLeader(h)
	return func(w http.ResponseWriter, r *http.Request) {
		if !a.n.CheckToken(token(r)) {
			w.Header().Set("WWW-Authenticate", `Basic realm="bulwark-registry"`)
			a.fail(w, errDenied)
			return
		}
		lead(w, r)
	}
}

func (a *API) fail(w http.ResponseWriter, err error) {
	status := registry.HTTPStatus(err)
	if errors.Is(err, errDenied) {
		status = http.StatusUnauthorized
	}
	a.opts.Logger.Debug("eureka API: request failed", "status", status, "err", err)
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	w.WriteHeader(status)
	io.WriteString(w, err.Error())
}

// wantsXML: Eureka answers in the format the client accepts; JSON unless
// only XML is asked for.
func wantsXML(r *http.Request) bool {
	acc := r.Header.Get("Accept")
	return strings.Contains(acc, "xml") && !strings.Contains(acc, "json")
}

// reply writes v as JSON (wrapped in {key: v}, Eureka's root) or XML.
func (a *API) reply(w http.ResponseWriter, r *http.Request, key string, v any) {
	if wantsXML(r) {
		w.Header().Set("Content-Type", "application/xml")
		io.WriteString(w, xml.Header)
		xml.NewEncoder(w).Encode(v)
		return
	}
	w.Header().Set("Content-Type", "application/json")
	json.NewEncoder(w).Encode(map[string]any{key: v})
}

func (a *API) handleRegister(w http.ResponseWriter, r *http.Request) {
	body, err := io.ReadAll(io.LimitReader(r.Body, maxBody+1))
	if err != nil {
		a.fail(w, badRequest("read body: %v", err))
		return
	}
	req, health, err := decodeInstance(body, r.PathValue("app"))
	if err == nil {
		_, err = a.n.RegisterInstance(req, health)
	}
	if err != nil {
		a.fail(w, err)
		return
	}
	w.WriteHeader(http.StatusNoContent) // what Eureka answers, and what fargo checks
}

// handleHeartbeat renews the lease. An instance that registered UP and
// went suspect (a missed renewal) comes back up; one that registered with
// another status stays as it is until it registers again.
func (a *API) handleHeartbeat(w http.ResponseWriter, r *http.Request) {
	service, id := serviceName(r.PathValue("app")), instanceID(r.PathValue("id"))
	info, _, err := a.n.RenewInstance(service, id, true)
	if err == nil && info.Health != bulwark.HealthUp && info.Metadata[metaStatus] == "" {
		_, _, err = a.n.RenewInstance(service, id, false)
	}
	if err != nil {
		a.fail(w, err) // 404 makes a Eureka client register again
		return
	}
	w.WriteHeader(http.StatusOK)
}

func (a *API) handleCancel(w http.ResponseWriter, r *http.Request) {
	if _, err := a.n.DeregisterInstance(serviceName(r.PathValue("app")), instanceID(r.PathValue("id"))); err != nil {
		a.fail(w, err)
		return
	}
	w.WriteHeader(http.StatusOK)
}

func (a *API) handleApps(w http.ResponseWriter, r *http.Request) {
	all, index := a.n.Catalog()
	a.delta.observe(all, a.opts.now())
	a.reply(w, r, "applications", &applicationsOut{VersionsDelta: versions(index),
		AppsHashcode: hashCode(all), Applications: group(all, a.opts.now(), nil)})
}

func (a *API) handleApp(w http.ResponseWriter, r *http.Request) {
	sr := a.n.Service(serviceName(r.PathValue("app")))
	if len(sr.Instances) == 0 {
		a.fail(w, registry.ErrNotFound)
		return
	}
	apps := group(sr.Instances, a.opts.now(), nil)
	a.reply(w, r, "application", apps[0])
}

func (a *API) handleInstance(w http.ResponseWriter, r *http.Request) {
	service, id := serviceName(r.PathValue("app")), instanceID(r.PathValue("id"))
	sr := a.n.Service(service)
	for i := range sr.Instances {
		if inst := &sr.Instances[i]; inst.ID == id {
			a.reply(w, r, "instance", render(inst, a.opts.now()))
			return
		}
	}
	a.fail(w, registry.ErrNotFound)
}

func (a *API) handleDelta(w http.ResponseWriter, r *http.Request) {
	all, index := a.n.Catalog()
	now := a.opts.now()
	changes := a.delta.observe(all, now)
	insts := make([]registry.InstanceInfo, len(changes))
	actions := make(map[*registry.InstanceInfo]string, len(changes))
	for i, c := range changes {
		insts[i] = c.inst
	}
	for i := range insts {
		actions[&insts[i]] = changes[i].action
	}
	apps := groupKeepOrder(insts, now, func(in *registry.InstanceInfo) string { return actions[in] })
	a.reply(w, r, "applications", &applicationsOut{VersionsDelta: versions(index),
		AppsHashcode: hashCode(all), Applications: apps})
}

func versions(index uint64) string { return strconv.FormatUint(index, 10) }

// groupKeepOrder groups changes by application without reordering the
// changes of one application (a client applies them in order).
func groupKeepOrder(insts []registry.InstanceInfo, now time.Time, action func(*registry.InstanceInfo) string) []*applicationOut {
	byName := map[string]*applicationOut{}
	apps := []*applicationOut{}
	for i := range insts {
		inst := &insts[i]
		name := appName(inst.Service)
		app := byName[name]
		if app == nil {
			app = &applicationOut{Name: name}
			byName[name] = app
			apps = append(apps, app)
		}
		o := render(inst, now)
		o.ActionType = action(inst)
		app.Instances = append(app.Instances, o)
	}
	return apps
}

// change is one entry of the delta queue.
type change struct {
	at     time.Time
	action string // ADDED, MODIFIED, DELETED
	inst   registry.InstanceInfo
}

type instKey struct{ service, id string }

// tracker derives Eureka's delta queue from successive catalog reads.
type tracker struct {
	mu      sync.Mutex
	started bool
	prev    map[instKey]registry.InstanceInfo
	queue   []change
}

// observe diffs the catalog against the previous read, queues the changes,
// drops those older than the retention, and returns the queue. The first
// read only sets the baseline: a client that has not done a full fetch has
// nothing to apply a delta to (its hash check sends it to a full fetch).
func (t *tracker) observe(all []registry.InstanceInfo, now time.Time) []change {
	t.mu.Lock()
	defer t.mu.Unlock()
	cur := make(map[instKey]registry.InstanceInfo, len(all))
	for _, inst := range all {
		cur[instKey{inst.Service, inst.ID}] = inst
	}
	if t.started {
		for _, inst := range all {
			old, ok := t.prev[instKey{inst.Service, inst.ID}]
			switch {
			case !ok:
				t.queue = append(t.queue, change{now, "ADDED", inst})
			case old.ModifyIndex != inst.ModifyIndex:
				t.queue = append(t.queue, change{now, "MODIFIED", inst})
			}
		}
		for k, old := range t.prev {
			if _, ok := cur[k]; !ok {
				t.queue = append(t.queue, change{now, "DELETED", old})
			}
		}
	}
	t.started = true
	t.prev = cur
	keep := t.queue[:0]
	for _, c := range t.queue {
		if now.Sub(c.at) <= deltaRetention {
			keep = append(keep, c)
		}
	}
	t.queue = keep
	return append([]change(nil), t.queue...)
}
