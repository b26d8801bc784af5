package consulapi

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/bulwark-go/bulwark"
	"github.com/bulwark-go/bulwark/registry"
)

// Node is what the API needs of a registry node; *registry.Node
// implements it.
type Node interface {
	ID() string
	OnLeader(h http.HandlerFunc) http.HandlerFunc
	CheckToken(token string) bool
	RegisterInstance(req registry.RegisterRequest, health bulwark.Health) (registry.InstanceInfo, error)
	RenewInstance(service, id string, keepState bool) (registry.InstanceInfo, uint64, error)
	SetInstanceHealth(service, id string, h bulwark.Health) (registry.InstanceInfo, uint64, error)
	DeregisterInstance(service, id string) (uint64, error)
	Service(service string) registry.ServiceResponse
	WaitService(ctx context.Context, service string, index uint64, wait time.Duration) (registry.ServiceResponse, bool)
	Catalog() ([]registry.InstanceInfo, uint64)
	FindInstance(id string) []registry.InstanceInfo
	FindInstanceFunc(match func(*registry.InstanceInfo) bool) (registry.InstanceInfo, bool)
	Status() registry.StatusResponse
	Stale() bool
	LastContact() time.Duration
}

// Options configure the API. The zero value works.
type Options struct {
	// Datacenter is the name reported as every entry's Datacenter; a
	// request naming another (?dc=) is refused as Consul refuses an
	// unknown one. Default "dc1".
	Datacenter string
	// Logger receives request errors at Debug. nil discards.
	Logger *slog.Logger
}

// API serves the Consul subset for one registry node.
type API struct {
	n    Node
	opts Options
}

// New returns the API of node n.
func New(n Node, opts Options) *API {
	if opts.Datacenter == "" {
		opts.Datacenter = "dc1"
	}
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	return &API{n: n, opts: opts}
}

// Mount returns a registry.Config.Mount function serving the Consul
// subset beside the node's own API.
func Mount(opts Options) func(*registry.Node, *http.ServeMux) {
	return func(n *registry.Node, mux *http.ServeMux) { New(n, opts).Register(mux) }
}

// Register adds the API's routes to mux (all under /v1/agent, /v1/catalog,
// /v1/health and /v1/status/leader|peers, which the node's own API does
// not use).
func (a *API) Register(mux *http.ServeMux) {
	mux.HandleFunc("PUT /v1/agent/service/register", a.write(a.handleRegister))
	mux.HandleFunc("PUT /v1/agent/service/deregister/{id}", a.write(a.handleDeregister))
	mux.HandleFunc("PUT /v1/agent/check/pass/{id}", a.write(a.handleCheck("passing")))
	mux.HandleFunc("PUT /v1/agent/check/warn/{id}", a.write(a.handleCheck("warning")))
	mux.HandleFunc("PUT /v1/agent/check/fail/{id}", a.write(a.handleCheck("critical")))
	mux.HandleFunc("PUT /v1/agent/check/update/{id}", a.write(a.handleCheck("")))
	mux.HandleFunc("GET /v1/catalog/services", a.read(a.handleCatalogServices))
	mux.HandleFunc("GET /v1/catalog/service/{name}", a.read(a.handleCatalogService))
	mux.HandleFunc("GET /v1/health/service/{name}", a.read(a.handleHealthService))
	mux.HandleFunc("GET /v1/status/leader", a.read(a.handleLeader))
	mux.HandleFunc("GET /v1/status/peers", a.read(a.handlePeers))
}

// token is the request's Consul ACL token: X-Consul-Token, then
// "Authorization: Bearer", then ?token= (Consul's three ways).
func token(r *http.Request) string {
	if t := r.Header.Get("X-Consul-Token"); t != "" {
		return t
	}
	if t, ok := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer "); ok {
		return t
	}
	return r.URL.Query().Get("token")
}

// errDenied answers 403 as Consul does for a missing or wrong token.
var errDenied = errors.New("Permission denied: token with write access to the registry required (X-Consul-Token)")

// write checks the token (on every node, so a follower never forwards an
// unauthenticated write) and runs h on the leader.
func (a *API) write(h http.HandlerFunc) http.HandlerFunc {
	lead := a.n.OnLeader(h)
	return func(w http.ResponseWriter, r *http.Request) {
		if !a.n.CheckToken(token(r)) {
			a.fail(w, errDenied)
			return
		}
		if err := a.checkDC(r); err != nil {
			a.fail(w, err)
			return
		}
		lead(w, r)
	}
}

func (a *API) read(h http.HandlerFunc) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		if err := a.checkDC(r); err != nil {
			a.fail(w, err)
			return
		}
		if r.URL.Query().Has("filter") {
			a.fail(w, badRequest("?filter= expressions are not supported"))
			return
		}
		h(w, r)
	}
}

func (a *API) checkDC(r *http.Request) error {
	if dc := r.URL.Query().Get("dc"); dc != "" && dc != a.opts.Datacenter {
		return fmt.Errorf("No path to datacenter %q", dc)
	}
	return nil
}

// fail answers an error as Consul does: a status and a plain-text body.
func (a *API) fail(w http.ResponseWriter, err error) {
	status := registry.HTTPStatus(err)
	switch {
	case errors.Is(err, errDenied):
		status = http.StatusForbidden
	case strings.HasPrefix(err.Error(), "No path to datacenter"):
		status = http.StatusInternalServerError
	}
	a.opts.Logger.Debug("consul API: request failed", "status", status, "err", err)
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	w.WriteHeader(status)
	io.WriteString(w, err.Error())
}

// meta sets the headers Consul's clients parse on every read (the Go
// client refuses a response without X-Consul-LastContact).
func (a *API) meta(w http.ResponseWriter, index uint64) {
	h := w.Header()
	h.Set("X-Consul-Index", strconv.FormatUint(max(index, 1), 10))
	lc := a.n.LastContact()
	h.Set("X-Consul-KnownLeader", strconv.FormatBool(lc >= 0 && !a.n.Stale()))
	h.Set("X-Consul-LastContact", strconv.FormatInt(max(lc, 0).Milliseconds(), 10))
	h.Set("X-Consul-Effective-Consistency", "leader")
}

func (a *API) writeJSON(w http.ResponseWriter, index uint64, v any) {
	a.meta(w, index)
	w.Header().Set("Content-Type", "application/json")
	json.NewEncoder(w).Encode(v)
}

func (a *API) handleRegister(w http.ResponseWriter, r *http.Request) {
	body, err := io.ReadAll(io.LimitReader(r.Body, maxBody+1))
	if err != nil {
		a.fail(w, badRequest("read body: %v", err))
		return
	}
	host, _, _ := net.SplitHostPort(r.RemoteAddr)
	req, health, err := decodeRegistration(body, host)
	if err != nil {
		a.fail(w, err)
		return
	}
	if _, err := a.n.RegisterInstance(req, health); err != nil {
		a.fail(w, err)
		return
	}
	w.WriteHeader(http.StatusOK)
}

// instanceByID finds the one instance Consul's agent endpoints name by ID.
func (a *API) instanceByID(id string) (registry.InstanceInfo, error) {
	found := a.n.FindInstance(id)
	switch len(found) {
	case 0:
		return registry.InstanceInfo{}, fmt.Errorf("%w: Unknown service ID %q", registry.ErrNotFound, id)
	case 1:
		return found[0], nil
	}
	names := make([]string, len(found))
	for i, f := range found {
		names[i] = f.Service
	}
	return registry.InstanceInfo{}, badRequest("service ID %q is ambiguous: registered in services %s", id, strings.Join(names, ", "))
}

// instanceByCheck resolves a check ID: "service:<id>" (Consul's default
// for a service's single check), or a custom CheckID recorded at
// registration (found by a catalog scan).
func (a *API) instanceByCheck(checkID string) (registry.InstanceInfo, error) {
	if id, ok := strings.CutPrefix(checkID, "service:"); ok {
		if inst, err := a.instanceByID(id); err == nil || !errors.Is(err, registry.ErrNotFound) {
			return inst, err
		}
	}
	inst, ok := a.n.FindInstanceFunc(func(i *registry.InstanceInfo) bool { return i.Metadata[metaCheckID] == checkID })
	if !ok {
		return registry.InstanceInfo{}, fmt.Errorf("%w: Unknown check ID %q", registry.ErrNotFound, checkID)
	}
	return inst, nil
}

func (a *API) handleDeregister(w http.ResponseWriter, r *http.Request) {
	inst, err := a.instanceByID(r.PathValue("id"))
	if err == nil {
		_, err = a.n.DeregisterInstance(inst.Service, inst.ID)
	}
	if err != nil {
		a.fail(w, err)
		return
	}
	w.WriteHeader(http.StatusOK)
}

// handleCheck serves pass, warn, fail (status fixed) and update (status
// from the body). Every update renews the lease, as it resets a TTL check's
// timer in Consul; passing puts a suspect instance back up, warning and
// critical take an up one out of routing.
func (a *API) handleCheck(status string) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		st := status
		if st == "" {
			body, err := io.ReadAll(io.LimitReader(r.Body, maxBody+1))
			if err == nil {
				st, err = decodeCheckUpdate(body)
			}
			if err != nil {
				a.fail(w, err)
				return
			}
		}
		inst, err := a.instanceByCheck(r.PathValue("id"))
		if err == nil {
			_, _, err = a.n.RenewInstance(inst.Service, inst.ID, st != "passing")
		}
		if err == nil && st != "passing" && inst.Health == bulwark.HealthUp {
			_, _, err = a.n.SetInstanceHealth(inst.Service, inst.ID, bulwark.HealthSuspect)
		}
		if err != nil {
			a.fail(w, err)
			return
		}
		w.WriteHeader(http.StatusOK)
	}
}

func (a *API) handleCatalogServices(w http.ResponseWriter, r *http.Request) {
	all, index := a.n.Catalog()
	out := map[string][]string{}
	for _, inst := range all {
		tags := out[inst.Service]
		if tags == nil {
			tags = []string{}
		}
		for _, t := range tagsOf(inst) {
			if !slices.Contains(tags, t) {
				tags = append(tags, t)
			}
		}
		out[inst.Service] = tags
	}
	a.writeJSON(w, index, out)
}

// serviceQuery runs a possibly blocking read of one service.
func (a *API) serviceQuery(w http.ResponseWriter, r *http.Request) (registry.ServiceResponse, bool) {
	name := r.PathValue("name")
	index, wait, err := blocking(r.URL.Query())
	if err != nil {
		a.fail(w, err)
		return registry.ServiceResponse{}, false
	}
	if index == 0 {
		return a.n.Service(name), true
	}
	return a.n.WaitService(r.Context(), name, index, wait)
}

func (a *API) handleCatalogService(w http.ResponseWriter, r *http.Request) {
	sr, ok := a.serviceQuery(w, r)
	if !ok {
		return
	}
	tags := r.URL.Query()["tag"]
	out := []catalogService{}
	for _, inst := range sr.Instances {
		if hasTags(inst, tags) {
			out = append(out, a.catalogEntry(inst))
		}
	}
	a.writeJSON(w, sr.Index, out)
}

func (a *API) handleHealthService(w http.ResponseWriter, r *http.Request) {
	sr, ok := a.serviceQuery(w, r)
	if !ok {
		return
	}
	q := r.URL.Query()
	passing := q.Has("passing") && q.Get("passing") != "false" && q.Get("passing") != "0"
	tags := q["tag"]
	out := []serviceEntry{}
	for _, inst := range sr.Instances {
		if (passing && inst.Health != bulwark.HealthUp) || !hasTags(inst, tags) {
			continue
		}
		out = append(out, a.healthEntry(inst))
	}
	a.writeJSON(w, sr.Index, out)
}

// leaderAddr and peers report Raft addresses, as Consul does.
func (a *API) handleLeader(w http.ResponseWriter, r *http.Request) {
	st := a.n.Status()
	leader := ""
	for _, n := range st.Nodes {
		if n.ID == st.LeaderID {
			leader = n.RaftAddr
		}
	}
	a.writeJSON(w, st.Index, leader)
}

func (a *API) handlePeers(w http.ResponseWriter, r *http.Request) {
	st := a.n.Status()
	peers := []string{}
	for _, n := range st.Nodes {
		if n.Voter {
			peers = append(peers, n.RaftAddr)
		}
	}
	a.writeJSON(w, st.Index, peers)
}

// tagsOf returns an instance's Consul tags (none for instances registered
// through another API).
func tagsOf(inst registry.InstanceInfo) []string {
	s := inst.Metadata[metaTags]
	if s == "" {
		return []string{}
	}
	var tags []string
	if json.Unmarshal([]byte(s), &tags) != nil || tags == nil {
		return []string{}
	}
	return tags
}

func hasTags(inst registry.InstanceInfo, want []string) bool {
	if len(want) == 0 {
		return true
	}
	have := tagsOf(inst)
	for _, t := range want {
		if !slices.Contains(have, t) {
			return false
		}
	}
	return true
}

// hostPort splits an instance address ("http://10.0.0.1:8080",
// "10.0.0.1:8080", "host") into Consul's Address and Port.
func hostPort(addr string) (string, int) {
	if u, err := url.Parse(addr); err == nil && u.Host != "" {
		addr = u.Host
	}
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		return addr, 0
	}
	p, _ := strconv.Atoi(port)
	return host, p
}

// serviceMeta is the instance's metadata without this package's own keys.
func serviceMeta(inst registry.InstanceInfo) map[string]string {
	out := make(map[string]string, len(inst.Metadata))
	for k, v := range inst.Metadata {
		if !strings.HasPrefix(k, "consul.") {
			out[k] = v
		}
	}
	return out
}
