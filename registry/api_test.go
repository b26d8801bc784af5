package registry

import (
	"bufio"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"
)

// call sends one raw HTTP request to a node and decodes the JSON answer.
func call(t *testing.T, method, url, token, body string) (int, http.Header, map[string]any) {
	t.Helper()
	req, err := http.NewRequestWithContext(t.Context(), method, url, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var out map[string]any
	b, _ := io.ReadAll(resp.Body)
	if err := json.Unmarshal(b, &out); err != nil {
		t.Fatalf("%s %s: non-JSON answer %q", method, url, b)
	}
	return resp.StatusCode, resp.Header, out
}

func TestAPIValidationAndAuth(t *testing.T) {
	checkLeaks(t)
	t.Cleanup(http.DefaultClient.CloseIdleConnections)
	tc := newCluster(t, 1, func(_ int, c *Config) { c.Token = "s3cret" })
	base := "http://" + tc.nodes[0].HTTPAddr()
	tests := []struct {
		name, method, path, token, body string
		status                          int
		field                           string
	}{
		{"no token", "PUT", "/v1/instances", "", `{"service":"a","id":"1","address":"h:1"}`, 401, ""},
		{"wrong token", "PUT", "/v1/instances", "nope", `{"service":"a","id":"1","address":"h:1"}`, 403, ""},
		{"join without token", "POST", "/v1/join", "", `{"id":"x","raft_addr":"127.0.0.1:1","http_addr":"127.0.0.1:2"}`, 401, ""},
		{"renew without token", "PUT", "/v1/instances/a/1/renew", "", ``, 401, ""},
		{"deregister without token", "DELETE", "/v1/instances/a/1", "", ``, 401, ""},
		{"unknown field", "PUT", "/v1/instances", "s3cret", `{"service":"a","id":"1","address":"h:1","colour":"red"}`, 400, "colour"},
		{"bad service charset", "PUT", "/v1/instances", "s3cret", `{"service":"a b","id":"1","address":"h:1"}`, 400, "service"},
		{"service too long", "PUT", "/v1/instances", "s3cret", `{"service":"` + strings.Repeat("x", 129) + `","id":"1","address":"h:1"}`, 400, "service"},
		{"missing id", "PUT", "/v1/instances", "s3cret", `{"service":"a","address":"h:1"}`, 400, "id"},
		{"missing address", "PUT", "/v1/instances", "s3cret", `{"service":"a","id":"1"}`, 400, "address"},
		{"wrong type", "PUT", "/v1/instances", "s3cret", `{"service":"a","id":1,"address":"h:1"}`, 400, "id"},
		{"ttl too short", "PUT", "/v1/instances", "s3cret", `{"service":"a","id":"1","address":"h:1","ttl":"1ms"}`, 400, "ttl"},
		{"ttl unparsable", "PUT", "/v1/instances", "s3cret", `{"service":"a","id":"1","address":"h:1","ttl":"soon"}`, 400, "ttl"},
		{"bad health url", "PUT", "/v1/instances", "s3cret", `{"service":"a","id":"1","address":"h:1","health_url":"ftp://x"}`, 400, "health_url"},
		{"bad metadata key", "PUT", "/v1/instances", "s3cret", `{"service":"a","id":"1","address":"h:1","metadata":{"a b":"c"}}`, 400, "metadata"},
		{"malformed JSON", "PUT", "/v1/instances", "s3cret", `{"service":`, 400, "body"},
		{"trailing data", "PUT", "/v1/instances", "s3cret", `{"service":"a","id":"1","address":"h:1"} {}`, 400, "body"},
		{"bad index", "GET", "/v1/services/a?index=x", "", ``, 400, "index"},
		{"bad min_index", "GET", "/v1/services/a?min_index=-2", "", ``, 400, "min_index"},
		{"bad wait", "GET", "/v1/services/a?index=1&wait=forever", "", ``, 400, "wait"},
		{"bad service in path", "GET", "/v1/services/a%20b", "", ``, 400, "service"},
		{"renew unknown", "PUT", "/v1/instances/a/nope/renew", "s3cret", ``, 404, ""},
		{"deregister unknown", "DELETE", "/v1/instances/a/nope", "s3cret", ``, 404, ""},
		{"valid", "PUT", "/v1/instances", "s3cret", `{"service":"a","id":"1","address":"h:1","ttl":"5s","metadata":{"zone":"z1"}}`, 200, ""},
		{"reads need no token", "GET", "/v1/services/a", "", ``, 200, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			status, hdr, body := call(t, tt.method, base+tt.path, tt.token, tt.body)
			if status != tt.status {
				t.Fatalf("status %d, want %d (body %v)", status, tt.status, body)
			}
			if tt.field != "" && body["field"] != tt.field {
				t.Errorf("field %v, want %q (error %v)", body["field"], tt.field, body["error"])
			}
			if _, err := strconv.ParseUint(hdr.Get(HeaderIndex), 10, 64); err != nil {
				t.Errorf("missing %s header: %q", HeaderIndex, hdr.Get(HeaderIndex))
			}
		})
	}
}

func TestAPIFollowerForwardingAndBlockingQuery(t *testing.T) {
	checkLeaks(t)
	t.Cleanup(http.DefaultClient.CloseIdleConnections)
	tc := newCluster(t, 3, nil)
	f := tc.follower()
	fbase := "http://" + tc.nodes[f].HTTPAddr()

	// Blocking query on the follower, started before the write.
	_, hdr, _ := call(t, "GET", fbase+"/v1/services/web", "", "")
	idx := hdr.Get(HeaderIndex)
	type result struct {
		status int
		body   map[string]any
		took   time.Duration
	}
	done := make(chan result, 1)
	go func() {
		start := time.Now()
		req, _ := http.NewRequest("GET", fbase+"/v1/services/web?index="+idx+"&wait=5s", nil)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			done <- result{}
			return
		}
		defer resp.Body.Close()
		var b map[string]any
		json.NewDecoder(resp.Body).Decode(&b)
		done <- result{resp.StatusCode, b, time.Since(start)}
	}()
	time.Sleep(200 * time.Millisecond) // let the query block first

	// A write sent to the follower is forwarded to the leader.
	status, _, body := call(t, "PUT", fbase+"/v1/instances", "", `{"service":"web","id":"w1","address":"http://127.0.0.1:9"}`)
	if status != 200 {
		t.Fatalf("write via follower: %d %v", status, body)
	}
	if status, _, body := call(t, "PUT", fbase+"/v1/instances/web/w1/renew", "", ""); status != 200 {
		t.Fatalf("renew via follower: %d %v", status, body)
	}
	r := <-done
	if r.status != 200 {
		t.Fatalf("blocking query: status %d", r.status)
	}
	insts, _ := r.body["instances"].([]any)
	if len(insts) != 1 || r.took >= 4*time.Second {
		t.Fatalf("blocking query returned %v after %v, want the new instance well before wait", r.body, r.took)
	}
	// Without a change the query waits for wait, then answers unchanged.
	start := time.Now()
	_, hdr, _ = call(t, "GET", fbase+"/v1/services/web", "", "")
	_, hdr2, _ := call(t, "GET", fbase+"/v1/services/web?index="+hdr.Get(HeaderIndex)+"&wait=300ms", "", "")
	if took := time.Since(start); took < 300*time.Millisecond || hdr2.Get(HeaderIndex) != hdr.Get(HeaderIndex) {
		t.Errorf("idle blocking query took %v with index %s→%s", took, hdr.Get(HeaderIndex), hdr2.Get(HeaderIndex))
	}
	// Status on the follower names the leader.
	_, _, st := call(t, "GET", fbase+"/v1/status", "", "")
	if st["leader_id"] != tc.nodes[tc.leader()].ID() || st["state"] != "Follower" || len(st["nodes"].([]any)) != 3 {
		t.Errorf("status = %v", st)
	}
}

func TestAPIWatchSSE(t *testing.T) {
	checkLeaks(t)
	tc := newCluster(t, 1, nil)
	hc := &http.Client{}
	t.Cleanup(hc.CloseIdleConnections)
	base := "http://" + tc.nodes[0].HTTPAddr()
	req, _ := http.NewRequestWithContext(t.Context(), "GET", base+"/v1/watch/sse", nil)
	resp, err := hc.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if ct := resp.Header.Get("Content-Type"); ct != "text/event-stream" {
		t.Fatalf("content type %q", ct)
	}
	events := make(chan ServiceResponse, 4)
	go func() {
		defer close(events)
		sc := bufio.NewScanner(resp.Body)
		for sc.Scan() {
			if data, ok := strings.CutPrefix(sc.Text(), "data: "); ok {
				var sr ServiceResponse
				json.Unmarshal([]byte(data), &sr)
				events <- sr
			}
		}
	}()
	next := func() ServiceResponse {
		select {
		case ev, ok := <-events:
			if !ok {
				t.Fatal("stream ended")
			}
			return ev
		case <-time.After(3 * time.Second):
			t.Fatal("no event")
		}
		return ServiceResponse{}
	}
	if ev := next(); len(ev.Instances) != 0 {
		t.Fatalf("first event %+v, want the empty current state", ev)
	}
	call(t, "PUT", base+"/v1/instances", "", `{"service":"sse","id":"e1","address":"h:1","ttl":"1h"}`)
	if ev := next(); len(ev.Instances) != 1 || ev.Instances[0].ID != "e1" {
		t.Fatalf("second event %+v, want e1", ev)
	}
	http.DefaultClient.CloseIdleConnections()
	resp.Body.Close()
	for range events {
	}
}

func TestClientErrors(t *testing.T) {
	if _, err := NewClient(ClientConfig{}); !errors.Is(err, ErrInvalid) {
		t.Errorf("NewClient without addrs: %v, want ErrInvalid", err)
	}
	if _, err := NewClient(ClientConfig{Addrs: []string{"http://"}}); !errors.Is(err, ErrInvalid) {
		t.Errorf("NewClient with bad addr: %v, want ErrInvalid", err)
	}
}

func TestConfigValidate(t *testing.T) {
	tests := []struct {
		name  string
		cfg   Config
		field string // "" = valid
	}{
		{"zero value needs DataDir", Config{}, "DataDir"},
		{"minimal", Config{DataDir: "/tmp/x"}, ""},
		{"bad node id", Config{DataDir: "d", NodeID: "a b"}, "NodeID"},
		{"bad http addr", Config{DataDir: "d", HTTPAddr: "nope"}, "HTTPAddr"},
		{"ttl bounds", Config{DataDir: "d", MinTTL: time.Second, MaxTTL: time.Millisecond}, "MinTTL"},
		{"default ttl outside", Config{DataDir: "d", DefaultTTL: 2 * time.Hour}, "DefaultTTL"},
		{"negative", Config{DataDir: "d", SuspectTimeout: -1}, "SuspectTimeout"},
		{"duplicate peer", Config{DataDir: "d", NodeID: "a", Peers: []Peer{{ID: "a", RaftAddr: "h:1", HTTPAddr: "h:2"}}}, "Peers[0].ID"},
		{"peer without http", Config{DataDir: "d", Peers: []Peer{{ID: "b", RaftAddr: "h:1"}}}, "Peers[0].HTTPAddr"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := tt.cfg.Validate()
			if tt.field == "" {
				if err != nil {
					t.Fatalf("unexpected error %v", err)
				}
				return
			}
			if !errors.Is(err, ErrInvalid) || !strings.Contains(err.Error(), tt.field) {
				t.Fatalf("error %v, want ErrInvalid naming %s", err, tt.field)
			}
		})
	}
}

// TestAPICrossOriginWriteRefused: a browser page on another origin cannot
// write, even to a node without a token.
func TestAPICrossOriginWriteRefused(t *testing.T) {
	checkLeaks(t)
	t.Cleanup(http.DefaultClient.CloseIdleConnections)
	tc := newCluster(t, 1, nil)
	base := "http://" + tc.nodes[0].HTTPAddr()
	for _, h := range []map[string]string{{"Sec-Fetch-Site": "cross-site"}, {"Origin": "http://evil.example"}} {
		req, _ := http.NewRequest("PUT", base+"/v1/instances", strings.NewReader(`{"service":"a","id":"1","address":"h:1"}`))
		for k, v := range h {
			req.Header.Set(k, v)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusForbidden {
			t.Fatalf("cross-origin write %v: %d, want 403", h, resp.StatusCode)
		}
	}
	if insts := tc.nodes[0].fsm.service("a").instances; len(insts) != 0 {
		t.Fatalf("a refused write registered %v", insts)
	}
}

// TestNonLoopbackWithoutTokenRefused: a node whose HTTP API other hosts
// can reach must have a token.
func TestNonLoopbackWithoutTokenRefused(t *testing.T) {
	_, err := Open(t.Context(), Config{DataDir: t.TempDir(), HTTPAddr: "0.0.0.0:0"})
	if err == nil || !strings.Contains(err.Error(), "BULWARK_REGISTRY_TOKEN") || !errors.Is(err, ErrInvalid) {
		t.Fatalf("Open on 0.0.0.0 without a token: %v, want an error saying how to set one", err)
	}
	if err := (Config{DataDir: t.TempDir(), HTTPAddr: "0.0.0.0:0", Token: "t"}).Validate(); err != nil {
		t.Fatalf("with a token: %v", err)
	}
}
