package registry

import (
	"bytes"
	"errors"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/bulwark-go/bulwark"
)

// TestRenewBatch: POST /v1/renew renews many leases in one request,
// reports the instances it does not know, brings a suspect one back up,
// and is forwarded by a follower like any write.
func TestRenewBatch(t *testing.T) {
	tc := newCluster(t, 3, nil)
	lead := "http://" + tc.nodes[tc.leader()].HTTPAddr()
	fol := "http://" + tc.nodes[tc.follower()].HTTPAddr()
	for _, id := range []string{"a", "b"} {
		if st, _, body := call(t, "PUT", lead+"/v1/instances", "", `{"service":"s","id":"`+id+`","address":"http://127.0.0.1:1","ttl":"1s"}`); st != 200 {
			t.Fatalf("register %s: %d %v", id, st, body)
		}
	}
	// Keep a and b alive past their 1 s TTL with batches through the follower.
	for range 8 {
		// A 503 (a leader change: the test's Raft timeouts are short, and
		// a loaded machine misses them) is retried, as a client would.
		var st int
		var body map[string]any
		tc.waitFor("a batch renewal answered", 10*time.Second, func() bool {
			st, _, body = call(t, "POST", fol+"/v1/renew", "", `{"instances":[{"service":"s","id":"a"},{"service":"s","id":"b"},{"service":"s","id":"gone"}]}`)
			return st != http.StatusServiceUnavailable
		})
		if st != 200 || body["renewed"] != float64(2) {
			t.Fatalf("batch renew: %d %v", st, body)
		}
		missing, _ := body["missing"].([]any)
		if len(missing) != 1 || missing[0].(map[string]any)["id"] != "gone" {
			t.Fatalf("missing = %v", body["missing"])
		}
		time.Sleep(250 * time.Millisecond)
	}
	n := tc.nodes[tc.leader()]
	for _, in := range n.Service("s").Instances {
		if in.Health != bulwark.HealthUp {
			t.Fatalf("%s is %v after batch renewals", in.ID, in.Health)
		}
	}
	// A suspect instance comes back up on its next batch renewal.
	if _, _, err := n.SetInstanceHealth("s", "a", bulwark.HealthSuspect); err != nil {
		t.Fatal(err)
	}
	if st, _, body := call(t, "POST", lead+"/v1/renew", "", `{"instances":[{"service":"s","id":"a"}]}`); st != 200 {
		t.Fatalf("renew suspect: %d %v", st, body)
	}
	if in := n.Service("s").Instances[0]; in.ID != "a" || in.Health != bulwark.HealthUp {
		t.Fatalf("after renewal: %+v", in)
	}
	for body, field := range map[string]string{
		`{"instances":[{"service":"s","id":"a b"}]}`: "instances[0].id",
		`{"instances":[{"service":"","id":"a"}]}`:    "instances[0].service",
		`{"instances":"x"}`:                          "instances",
		`{"other":1}`:                                "other",
	} {
		if st, _, resp := call(t, "POST", lead+"/v1/renew", "", body); st != 400 || resp["field"] != field {
			t.Errorf("%s: %d %v, want 400 naming %s", body, st, resp, field)
		}
	}
}

func TestDecodeRenewBatchLimit(t *testing.T) {
	var b strings.Builder
	b.WriteString(`{"instances":[`)
	for i := range maxBatch + 1 {
		if i > 0 {
			b.WriteByte(',')
		}
		b.WriteString(`{"service":"s","id":"i"}`)
	}
	b.WriteString(`]}`)
	if _, err := decodeRenewBatch([]byte(b.String())); !errors.Is(err, ErrInvalid) || !strings.Contains(err.Error(), "at most") {
		t.Fatalf("oversized batch: %v", err)
	}
}

// TestParseRenewBatchFast: the reflection-free path takes the usual
// shapes and leaves everything unusual to encoding/json, which then
// accepts or rejects it as before.
func TestParseRenewBatchFast(t *testing.T) {
	for _, c := range []struct {
		body string
		fast bool // taken by the fast path
		ok   bool // accepted in the end
		want string
	}{
		{`{"instances":[{"service":"s","id":"a"},{"service":"t","id":"b"}]}`, true, true, "s/a t/b"},
		{" \n{ \"instances\" :\t[ { \"id\" : \"a\" , \"service\":\"s\" } ]\r}\n", true, true, "s/a"},
		{`{"instances":[]}`, true, true, ""},
		{`{"instances":[{"service":"s","id":"\u0061"}]}`, false, true, "s/a"},     // an escape: encoding/json decodes it
		{`{"Instances":[{"Service":"s","ID":"a"}]}`, false, true, "s/a"},          // encoding/json matches keys case-insensitively
		{`{"instances":[{"service":"s","id":"a","id":"b"}]}`, false, true, "s/b"}, // a repeated key: the last wins
		{`{"instances":null}`, false, true, ""},
		{`{"instances":[{"service":"s"}]}`, false, false, ""},
		{`{"instances":[{"service":"s","id":"a b"}]}`, false, false, ""},
		{`{"instances":[{"service":"s","id":"a"}]} x`, false, false, ""},
		{`{"instances":[{"service":"s","id":"a"},]}`, false, false, ""},
		{`{"instances":[{"service":"s","id":"a"}],"x":1}`, false, false, ""},
		{`{"instances":[{"service":"s","id":"` + strings.Repeat("a", maxNameLen+1) + `"}]}`, false, false, ""},
	} {
		_, fast := parseRenewBatchFast([]byte(c.body), nil)
		req, err := decodeRenewBatch([]byte(c.body))
		var got []string
		for _, k := range req.Instances {
			got = append(got, k.Service+"/"+k.ID)
		}
		if fast != c.fast || (err == nil) != c.ok || (err == nil && strings.Join(got, " ") != c.want) {
			t.Errorf("%q: fast %v, err %v, got %v; want fast %v, ok %v, %q", c.body, fast, err, got, c.fast, c.ok, c.want)
		}
	}
}

// FuzzDecodeRenewBatch: any body is a valid batch or an ErrInvalid naming
// a field, never a panic; and whatever the fast path accepts, encoding/json
// decodes to the same instances.
func FuzzDecodeRenewBatch(f *testing.F) {
	f.Add([]byte(`{"instances":[{"service":"s","id":"a"},{"service":"t","id":"b"}]}`))
	f.Add([]byte(`{"instances":[{"service":"s"}]}`))
	f.Add([]byte(`{"instances":null}`))
	f.Add([]byte(`[]`))
	f.Add([]byte(` {"instances" : [ {"id":"a", "service":"s"} , {"service":"s","id":"b"}] } `))
	f.Fuzz(func(t *testing.T, body []byte) {
		if keys, ok := parseRenewBatchFast(body, nil); ok {
			var std RenewBatchRequest
			if err := decodeStrictN(bytes.NewReader(body), &std, maxBatchBytes); err != nil {
				t.Fatalf("fast path accepted %q, encoding/json: %v", body, err)
			}
			if len(keys) != len(std.Instances) {
				t.Fatalf("%q: fast path %v, encoding/json %v", body, keys, std.Instances)
			}
			for i := range keys {
				if keys[i] != std.Instances[i] {
					t.Fatalf("%q: fast path %v, encoding/json %v", body, keys, std.Instances)
				}
			}
		}
		req, err := decodeRenewBatch(body)
		if err != nil {
			var fe *FieldError
			if !errors.As(err, &fe) || !errors.Is(err, ErrInvalid) {
				t.Fatalf("error %v is not a FieldError", err)
			}
			return
		}
		for _, k := range req.Instances {
			if !validName(k.Service) || !validName(k.ID) {
				t.Fatalf("accepted %+v", k)
			}
		}
	})
}
