package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/bulwark-go/bulwark/dashboard"
	"github.com/bulwark-go/bulwark/delivery"
	"github.com/bulwark-go/bulwark/internal/writeauth"
)

// adminTokenEnv supplies the admin token when the config has none.
const adminTokenEnv = "BULWARK_ADMIN_TOKEN"

// adminAuth is how the admin listener authenticates writes: the config's
// token, else $BULWARK_ADMIN_TOKEN.
func adminAuth(token string) writeauth.Config {
	if token == "" {
		token = os.Getenv(adminTokenEnv)
	}
	return writeauth.Config{Token: token, Realm: "bulwark-admin"}
}

// checkAdminListener refuses an admin listener that other hosts can reach
// when no token is configured.
func checkAdminListener(addr, what string, auth writeauth.Config) error {
	return writeauth.CheckListener(addr, auth, what, "admin.token in the config file or "+adminTokenEnv+" in the environment")
}

// adminHandler is the admin listener of `bulwark run` and the dashboard
// port of `bulwark up`: Prometheus metrics, the gateway's admin API, the
// delivery admin API, and the dashboard. Its write APIs (dead-letter
// replay, chaos controls) need auth's token when set, and refuse
// cross-origin browser requests.
func adminHandler(c *components, d *dashboard.Dashboard, auth writeauth.Config) http.Handler {
	mux := http.NewServeMux()
	admin := c.gateway.AdminHandler()
	mux.Handle("GET /metrics", admin)
	mux.Handle("GET /api/upstreams", admin)
	mux.Handle("GET /healthz", admin)
	if c.cluster != nil {
		mux.Handle("GET /api/cluster", clusterHandler(c.cluster))
	}
	if c.delivery != nil {
		mux.HandleFunc("POST /api/delivery/replay", func(w http.ResponseWriter, r *http.Request) { replayHandler(w, r, c.delivery) })
		mux.HandleFunc("GET /api/delivery/dead", func(w http.ResponseWriter, r *http.Request) {
			n, _ := strconv.Atoi(r.URL.Query().Get("limit"))
			if n <= 0 {
				n = 100
			}
			dls, err := c.delivery.DeadLetters(r.Context(), n)
			if err != nil {
				http.Error(w, err.Error(), http.StatusServiceUnavailable)
				return
			}
			writeJSONTo(w, http.StatusOK, dls)
		})
	}
	if d != nil {
		mux.Handle("/", d.Handler())
	}
	return writeauth.Protect(mux, auth)
}

// replayRequest is the body of POST /api/delivery/replay.
type replayRequest struct {
	IDs      []string `json:"ids,omitempty"`
	Upstream string   `json:"upstream,omitempty"`
	Route    string   `json:"route,omitempty"`
	Limit    int      `json:"limit,omitempty"`
}

func replayHandler(w http.ResponseWriter, r *http.Request, s *delivery.Service) {
	filter, err := decodeReplay(r.Body)
	if err != nil {
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	n, err := s.Replay(r.Context(), filter)
	if err != nil {
		http.Error(w, "replay: "+err.Error(), http.StatusServiceUnavailable)
		return
	}
	writeJSONTo(w, http.StatusOK, map[string]int{"replayed": n})
}

// decodeReplay reads the body of POST /api/delivery/replay (empty means
// replay everything): at most 1 MiB, no unknown fields, no trailing data,
// a non-negative limit.
func decodeReplay(body io.Reader) (delivery.ReplayFilter, error) {
	var req replayRequest
	const want = ` (want {"ids": [...], "upstream": "...", "route": "...", "limit": N}, all optional)`
	dec := json.NewDecoder(io.LimitReader(body, 1<<20))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&req); err != nil && err != io.EOF {
		return delivery.ReplayFilter{}, fmt.Errorf("replay: invalid body: %v%s", err, want)
	}
	if dec.More() {
		return delivery.ReplayFilter{}, fmt.Errorf("replay: invalid body: data after the JSON object%s", want)
	}
	if req.Limit < 0 {
		return delivery.ReplayFilter{}, fmt.Errorf("replay: limit must not be negative")
	}
	return delivery.ReplayFilter{IDs: req.IDs, Upstream: req.Upstream, Route: req.Route, Limit: req.Limit}, nil
}

func writeJSONTo(w http.ResponseWriter, code int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(code)
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	enc.Encode(v)
}

// runDelivery is `bulwark delivery replay|dead`: it asks a running node's
// admin API, since the store belongs to that process.
func runDelivery(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	const usage = "usage: bulwark delivery replay --admin HOST:PORT [--id ID ...] [--upstream U] [--route R] [--limit N]\n       bulwark delivery dead --admin HOST:PORT [--limit N]\n"
	if len(args) == 0 || (args[0] != "replay" && args[0] != "dead") {
		fmt.Fprint(stderr, usage)
		return fmt.Errorf("%w: delivery needs replay or dead", errUsage)
	}
	fs := newFlagSet("delivery "+args[0], stderr)
	admin := fs.String("admin", "127.0.0.1:8081", "the node's admin (or `bulwark up` dashboard) address")
	var ids multiFlag
	fs.Var(&ids, "id", "a dead-lettered message id to replay (repeat; default: all that match)")
	upstream := fs.String("upstream", "", "replay only messages for this upstream")
	route := fs.String("route", "", "replay only messages from this route")
	limit := fs.Int("limit", 0, "replay (or list) at most this many")
	token := fs.String("token", os.Getenv(adminTokenEnv), "the admin token (default $"+adminTokenEnv+")")
	if err := parseFlags(fs, args[1:]); err != nil {
		return err
	}
	base := *admin
	if !strings.Contains(base, "://") {
		base = "http://" + base
	}
	client := &http.Client{Timeout: 30 * time.Second}
	var resp *http.Response
	var err error
	if args[0] == "dead" {
		req, _ := http.NewRequestWithContext(ctx, http.MethodGet, fmt.Sprintf("%s/api/delivery/dead?limit=%d", base, *limit), nil)
		resp, err = client.Do(req)
	} else {
		b, _ := json.Marshal(replayRequest{IDs: ids, Upstream: *upstream, Route: *route, Limit: *limit})
		req, _ := http.NewRequestWithContext(ctx, http.MethodPost, base+"/api/delivery/replay", bytes.NewReader(b))
		req.Header.Set("Content-Type", "application/json")
		if *token != "" {
			req.Header.Set("Authorization", "Bearer "+*token)
		}
		resp, err = client.Do(req)
	}
	if err != nil {
		return fmt.Errorf("delivery %s: %w", args[0], err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("delivery %s: %s: %s", args[0], resp.Status, strings.TrimSpace(string(body)))
	}
	stdout.Write(body)
	return nil
}
