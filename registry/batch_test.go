package registry

import (
	"errors"
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
		st, _, body := call(t, "POST", fol+"/v1/renew", "", `{"instances":[{"service":"s","id":"a"},{"service":"s","id":"b"},{"service":"s","id":"gone"}]}`)
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

// FuzzDecodeRenewBatch: any body is a valid batch or an ErrInvalid naming
// a field, never a panic.
func FuzzDecodeRenewBatch(f *testing.F) {
	f.Add([]byte(`{"instances":[{"service":"s","id":"a"},{"service":"t","id":"b"}]}`))
	f.Add([]byte(`{"instances":[{"service":"s"}]}`))
	f.Add([]byte(`{"instances":null}`))
	f.Add([]byte(`[]`))
	f.Fuzz(func(t *testing.T, body []byte) {
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
