package consulapi

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/bulwark-go/bulwark"
	"github.com/bulwark-go/bulwark/registry"
)

// Metadata keys this package keeps beside the service's own Meta. Consul
// allows only [A-Za-z0-9_-] in Meta keys, so a dotted key never collides.
const (
	metaTags      = "consul.tags"
	metaCheckID   = "consul.check_id"
	metaCheckName = "consul.check_name"
)

// maxBody bounds a registration body.
const maxBody = 64 << 10

// agentService is the part of Consul's AgentServiceRegistration this
// package understands. encoding/json matches field names case-insensitively,
// as Consul's own decoder does for these fields.
type agentService struct {
	Kind    string
	ID      string
	Name    string
	Tags    []string
	Port    int
	Address string
	Meta    map[string]string
	Check   *agentCheck
	Checks  []*agentCheck
	Proxy   json.RawMessage
	Connect json.RawMessage
}

// agentCheck is the part of Consul's AgentServiceCheck this package
// understands; the other kinds of check are recognised to be refused.
type agentCheck struct {
	CheckID    string
	Name       string
	TTL        string
	Status     string
	ScriptArgs []string
	HTTP       string
	TCP        string
	UDP        string
	GRPC       string
	H2PING     string
	Docker     string `json:"DockerContainerID"`
	Alias      string `json:"AliasService"`
}

// errBadRequest wraps every rejected Consul request; it wraps
// registry.ErrInvalid so the status table answers 400.
var errBadRequest = fmt.Errorf("%w (consul API)", registry.ErrInvalid)

func badRequest(format string, args ...any) error {
	return fmt.Errorf("%w: %s", errBadRequest, fmt.Sprintf(format, args...))
}

// decodeRegistration parses PUT /v1/agent/service/register into a
// registration and its initial health. defaultHost is used when the body
// gives no Address (Consul would use its agent's address; here that is the
// caller's).
func decodeRegistration(body []byte, defaultHost string) (registry.RegisterRequest, bulwark.Health, error) {
	var req registry.RegisterRequest
	if len(body) > maxBody {
		return req, 0, badRequest("body larger than %d bytes", maxBody)
	}
	var s agentService
	dec := json.NewDecoder(bytes.NewReader(body))
	if err := dec.Decode(&s); err != nil {
		var te *json.UnmarshalTypeError
		if errors.As(err, &te) && te.Field != "" {
			return req, 0, badRequest("field %s: want %s", te.Field, te.Type)
		}
		return req, 0, badRequest("want a JSON service definition: %v", err)
	}
	if dec.More() {
		return req, 0, badRequest("trailing data after the JSON object")
	}
	if s.Kind != "" || len(s.Proxy) > 0 && string(s.Proxy) != "null" || len(s.Connect) > 0 && string(s.Connect) != "null" {
		return req, 0, badRequest("Connect, proxies and service kinds are not supported; register a plain service")
	}
	if s.Name == "" {
		return req, 0, badRequest("missing service Name")
	}
	if s.ID == "" {
		s.ID = s.Name
	}
	if s.Port < 0 || s.Port > 65535 {
		return req, 0, badRequest("Port %d: want 0-65535", s.Port)
	}
	host := s.Address
	if host == "" {
		host = defaultHost
	}
	if host == "" {
		return req, 0, badRequest("missing Address")
	}
	if strings.Contains(host, "://") {
		req.Address = host // already a URL (some clients register one)
	} else if s.Port > 0 {
		req.Address = "http://" + net.JoinHostPort(host, strconv.Itoa(s.Port))
	} else {
		req.Address = "http://" + host
	}
	req.Service, req.ID = s.Name, s.ID

	checks := s.Checks
	if s.Check != nil {
		checks = append([]*agentCheck{s.Check}, checks...)
	}
	var ttlCheck *agentCheck
	for _, c := range checks {
		if c == nil {
			continue
		}
		if kind := c.otherKind(); kind != "" {
			return req, 0, badRequest("%s checks are not supported: the registry has no prober; use a TTL check and pass it from the service", kind)
		}
		if c.TTL == "" {
			return req, 0, badRequest("check without TTL: only TTL checks are supported")
		}
		if ttlCheck != nil {
			return req, 0, badRequest("more than one TTL check: one check carries the instance's lease")
		}
		ttlCheck = c
	}
	if ttlCheck == nil {
		return req, 0, badRequest("a TTL check is required (Check: {TTL: \"10s\"}): without one a crashed instance would never leave the catalog")
	}
	ttl, err := time.ParseDuration(ttlCheck.TTL)
	if err != nil || ttl <= 0 {
		return req, 0, badRequest("Check.TTL %q: want a duration such as 10s", ttlCheck.TTL)
	}
	req.TTL = registry.Duration(ttl)

	meta := make(map[string]string, len(s.Meta)+3)
	for k, v := range s.Meta {
		if strings.HasPrefix(k, "consul.") {
			return req, 0, badRequest("Meta key %q: the consul. prefix is reserved", k)
		}
		meta[k] = v
	}
	if len(s.Tags) > 0 {
		b, _ := json.Marshal(s.Tags)
		meta[metaTags] = string(b)
	}
	if ttlCheck.CheckID != "" && ttlCheck.CheckID != defaultCheckID(s.ID) {
		meta[metaCheckID] = ttlCheck.CheckID
	}
	if ttlCheck.Name != "" {
		meta[metaCheckName] = ttlCheck.Name
	}
	if len(meta) > 0 {
		req.Metadata = meta
	}
	health := bulwark.HealthSuspect // Consul's default initial status is critical
	if ttlCheck.Status == "passing" {
		health = bulwark.HealthUp
	}
	switch ttlCheck.Status {
	case "", "passing", "warning", "critical":
	default:
		return req, 0, badRequest("Check.Status %q: want passing, warning or critical", ttlCheck.Status)
	}
	return req, health, nil
}

// otherKind names a non-TTL check kind, or "".
func (c *agentCheck) otherKind() string {
	switch {
	case len(c.ScriptArgs) > 0:
		return "script"
	case c.HTTP != "":
		return "HTTP"
	case c.TCP != "":
		return "TCP"
	case c.UDP != "":
		return "UDP"
	case c.GRPC != "":
		return "gRPC"
	case c.H2PING != "":
		return "H2PING"
	case c.Docker != "":
		return "Docker"
	case c.Alias != "":
		return "alias"
	}
	return ""
}

// defaultCheckID is the ID Consul gives the single check of a service
// registration.
func defaultCheckID(serviceID string) string { return "service:" + serviceID }

// checkUpdate is the body of PUT /v1/agent/check/update/:id.
type checkUpdate struct {
	Status string
	Output string
}

// decodeCheckUpdate parses PUT /v1/agent/check/update/:id.
func decodeCheckUpdate(body []byte) (string, error) {
	var u checkUpdate
	if len(body) > maxBody {
		return "", badRequest("body larger than %d bytes", maxBody)
	}
	if err := json.Unmarshal(body, &u); err != nil {
		return "", badRequest("want {\"Status\": \"passing\"}: %v", err)
	}
	switch u.Status {
	case "passing", "warning", "critical":
		return u.Status, nil
	}
	return "", badRequest("Status %q: want passing, warning or critical", u.Status)
}

// blocking parses Consul's ?index=N&wait=D. wait defaults to 5 min and is
// capped at 10 min, as in Consul; a wait without a unit is seconds.
func blocking(q url.Values) (index uint64, wait time.Duration, err error) {
	s := q.Get("index")
	if s == "" {
		return 0, 0, nil
	}
	if index, err = strconv.ParseUint(s, 10, 64); err != nil {
		return 0, 0, badRequest("index %q: want a non-negative integer", s)
	}
	wait = 5 * time.Minute
	if w := q.Get("wait"); w != "" {
		if n, err := strconv.ParseUint(w, 10, 32); err == nil {
			wait = time.Duration(n) * time.Second
		} else if wait, err = time.ParseDuration(w); err != nil || wait < 0 {
			return 0, 0, badRequest("wait %q: want a duration such as 10s", w)
		}
	}
	return index, min(wait, 10*time.Minute), nil
}
