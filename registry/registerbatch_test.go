package registry

import (
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"
)

// TestRegisterBatch: POST /v1/register commits many registrations as one
// Raft entry (through a follower, which forwards it), every node's catalog
// holds them all with the entry's index as their register_index, their
// leases run from the commit (batch renewals keep them, and without
// renewals they go suspect), and a bad entry
// refuses the whole batch, naming the entry.
func TestRegisterBatch(t *testing.T) {
	tc := newCluster(t, 3, nil)
	fol := "http://" + tc.nodes[tc.follower()].HTTPAddr()
	const n = 300
	var b, renew strings.Builder
	b.WriteString(`{"instances":[`)
	renew.WriteString(`{"instances":[`)
	for i := range n {
		if i > 0 {
			b.WriteByte(',')
			renew.WriteByte(',')
		}
		fmt.Fprintf(&b, `{"service":"svc-%d","id":"i-%d","address":"http://127.0.0.1:%d","ttl":"1s","metadata":{"zone":"z%d"}}`, i%3, i, 10000+i, i%2)
		fmt.Fprintf(&renew, `{"service":"svc-%d","id":"i-%d"}`, i%3, i)
	}
	b.WriteString(`]}`)
	renew.WriteString(`]}`)
	st, _, body := call(t, "POST", fol+"/v1/register", "", b.String())
	if st != 200 || body["registered"] != float64(n) {
		t.Fatalf("batch register: %d %v", st, body)
	}
	index := uint64(body["index"].(float64))
	for _, nd := range tc.nodes {
		tc.waitFor("every node applied the batch", 10*time.Second, func() bool {
			total := 0
			for s := range 3 {
				total += len(nd.Service(fmt.Sprint("svc-", s)).Instances)
			}
			return total == n
		})
		for s := range 3 {
			for _, in := range nd.Service(fmt.Sprint("svc-", s)).Instances {
				if in.RegisterIndex != index || in.ModifyIndex != index || in.TTL != Duration(time.Second) || in.Metadata["zone"] == "" {
					t.Fatalf("%s: %+v, want register_index %d (one entry)", nd.ID(), in, index)
				}
			}
		}
	}
	// Leases started: batch renewals keep all 300 past their 1 s TTL.
	for range 6 {
		// Through the follower (forwarded), retrying a 503 of a leader
		// change: the test's Raft timeouts are short.
		tc.waitFor("a batch renewal answered", 10*time.Second, func() bool {
			st, _, body := call(t, "POST", fol+"/v1/renew", "", renew.String())
			if st == 200 && body["renewed"] != float64(n) {
				t.Fatalf("batch renew: %d %v", st, body)
			}
			return st == 200
		})
		time.Sleep(250 * time.Millisecond)
	}
	for s := range 3 {
		for _, in := range tc.nodes[tc.leader()].Service(fmt.Sprint("svc-", s)).Instances {
			if !in.Health.Routable() {
				t.Fatalf("%s/%s is %v though renewed", in.Service, in.ID, in.Health)
			}
		}
	}
	// Without renewals they expire like any registration.
	// Without renewals they go suspect like any registration (each a Raft
	// entry of its own, so 300 of them take a few seconds).
	tc.waitFor("unrenewed batch instances suspect", 60*time.Second, func() bool {
		for _, in := range tc.nodes[tc.leader()].Service("svc-0").Instances {
			if in.Health.Routable() {
				return false
			}
		}
		return true
	})
	for body, field := range map[string]string{
		`{"instances":[{"service":"a","id":"1","address":"h:1"},{"service":"a","id":"2","address":""}]}`:    "instances[1].address",
		`{"instances":[{"service":"a","id":"1","address":"h:1"},{"service":"a","id":"1","address":"h:2"}]}`: "instances[1]",
		`{"instances":[{"service":"a","id":"1","address":"h:1","ttl":"1ms"}]}`:                              "instances[0].ttl",
		`{"instances":[]}`: "instances",
		`{"instances":[{"service":"a","id":"1","address":"h:1","x":1}]}`: "x",
	} {
		if st, _, resp := call(t, "POST", fol+"/v1/register", "", body); st != 400 || resp["field"] != field {
			t.Errorf("%s: %d %v, want 400 naming %s", body, st, resp, field)
		}
	}
	if got := tc.nodes[tc.leader()].Service("a").Instances; len(got) != 0 {
		t.Fatalf("a refused batch registered %v", got)
	}
}

func TestDecodeRegisterBatchLimit(t *testing.T) {
	var b strings.Builder
	b.WriteString(`{"instances":[`)
	for i := range maxRegisterBatch + 1 {
		if i > 0 {
			b.WriteByte(',')
		}
		fmt.Fprintf(&b, `{"service":"s","id":"i%d","address":"h:1"}`, i)
	}
	b.WriteString(`]}`)
	if _, err := decodeRegisterBatch([]byte(b.String()), time.Second, time.Hour, time.Minute); !errors.Is(err, ErrInvalid) || !strings.Contains(err.Error(), "at most") {
		t.Fatalf("oversized batch: %v", err)
	}
}

// FuzzDecodeRegisterBatch: any body is a batch of valid, distinct
// registrations within the limits, or an ErrInvalid naming a field; never a
// panic.
func FuzzDecodeRegisterBatch(f *testing.F) {
	f.Add([]byte(`{"instances":[{"service":"s","id":"a","address":"http://h:1","ttl":"2s"},{"service":"s","id":"b","address":"h:2","metadata":{"k":"v"},"health_url":"http://h/h"}]}`))
	f.Add([]byte(`{"instances":[{"service":"s","id":"a","address":"h:1"},{"service":"s","id":"a","address":"h:1"}]}`))
	f.Add([]byte(`{"instances":[{"service":"s","id":"a","address":"h:1","ttl":"x"}]}`))
	f.Add([]byte(`{"instances":null}`))
	f.Add([]byte(`{"instances":[{}]}`))
	f.Add([]byte(`[]`))
	f.Fuzz(func(t *testing.T, body []byte) {
		req, err := decodeRegisterBatch(body, 100*time.Millisecond, time.Hour, time.Second)
		if err != nil {
			var fe *FieldError
			if !errors.As(err, &fe) || !errors.Is(err, ErrInvalid) || fe.Field == "" {
				t.Fatalf("error %v is not a FieldError naming a field", err)
			}
			return
		}
		if len(req.Instances) == 0 || len(req.Instances) > maxRegisterBatch {
			t.Fatalf("accepted %d entries", len(req.Instances))
		}
		seen := map[InstanceKey]bool{}
		for _, r := range req.Instances {
			k := InstanceKey{r.Service, r.ID}
			if seen[k] {
				t.Fatalf("accepted %v twice", k)
			}
			seen[k] = true
			if err := validateRegister(&r, 100*time.Millisecond, time.Hour, time.Second); err != nil {
				t.Fatalf("accepted an invalid entry %+v: %v", r, err)
			}
		}
	})
}
