package registry

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net/url"
	"reflect"
	"testing"
	"time"

	"github.com/bulwark-go/bulwark"
	"github.com/hashicorp/raft"
)

// memSink is a raft.SnapshotSink into memory.
type memSink struct {
	bytes.Buffer
	cancelled bool
}

func (s *memSink) ID() string    { return "mem" }
func (s *memSink) Cancel() error { s.cancelled = true; return nil }
func (s *memSink) Close() error  { return nil }

// randomCommand draws a command over a small name space so that commands
// collide (re-register, expire a stale incarnation, deregister twice).
func randomCommand(rng *rand.Rand, lastIndex uint64) command {
	svc := fmt.Sprintf("s%d", rng.IntN(3))
	id := fmt.Sprintf("i%d", rng.IntN(4))
	guard := uint64(0)
	if rng.IntN(2) == 0 && lastIndex > 0 {
		guard = 1 + rng.Uint64N(lastIndex) // sometimes right, mostly stale
	}
	switch rng.IntN(6) {
	case 0, 1:
		md := map[string]string{}
		for k := range rng.IntN(3) {
			md[fmt.Sprintf("k%d", k)] = fmt.Sprint(rng.IntN(10))
		}
		return command{Op: opRegister, Service: svc, ID: id, Address: fmt.Sprintf("h:%d", rng.IntN(100)),
			Metadata: md, TTL: Duration(time.Duration(1+rng.IntN(5)) * time.Second)}
	case 2:
		return command{Op: opDeregister, Service: svc, ID: id}
	case 3:
		h := []bulwark.Health{bulwark.HealthUp, bulwark.HealthSuspect}[rng.IntN(2)]
		return command{Op: opHealth, Service: svc, ID: id, Health: h, RegisterIndex: guard}
	case 4:
		return command{Op: opExpire, Service: svc, ID: id, RegisterIndex: guard}
	}
	return command{Op: opMember, NodeID: fmt.Sprintf("n%d", rng.IntN(3)), HTTPAddr: fmt.Sprintf("127.0.0.1:%d", rng.IntN(5))}
}

func applyTo(t *testing.T, f *fsm, c command, index uint64) applyResult {
	t.Helper()
	b, err := json.Marshal(c)
	if err != nil {
		t.Fatal(err)
	}
	res, ok := f.Apply(&raft.Log{Index: index, Data: b}).(applyResult)
	if !ok {
		t.Fatalf("apply %+v: not an applyResult", c)
	}
	return res
}

func snapshotRestore(t *testing.T, f *fsm) *fsm {
	t.Helper()
	snap, err := f.Snapshot()
	if err != nil {
		t.Fatal(err)
	}
	var sink memSink
	if err := snap.Persist(&sink); err != nil {
		t.Fatal(err)
	}
	snap.Release()
	g := newFSM()
	if err := g.Restore(io.NopCloser(&sink)); err != nil {
		t.Fatal(err)
	}
	return g
}

// checkInvariants: no empty service maps, indexes consistent.
func checkInvariants(t *testing.T, cat *catalog) {
	t.Helper()
	for name, svc := range cat.Services {
		if len(svc) == 0 {
			t.Fatalf("service %s kept with no instances", name)
		}
		for id, in := range svc {
			if in.Service != name || in.ID != id {
				t.Fatalf("instance %s/%s filed under %s/%s", in.Service, in.ID, name, id)
			}
			if in.ModifyIndex < in.RegisterIndex || cat.ServiceIndex[name] < in.ModifyIndex || cat.Index < cat.ServiceIndex[name] {
				t.Fatalf("index order broken: %+v service index %d catalog %d", in, cat.ServiceIndex[name], cat.Index)
			}
		}
	}
}

func TestFSMSnapshotRestoreProperty(t *testing.T) {
	for seed := range uint64(50) {
		t.Run(fmt.Sprint("seed", seed), func(t *testing.T) {
			rng := rand.New(rand.NewPCG(seed, 0x5eed))
			f := newFSM()
			n := 1 + rng.IntN(200)
			var index uint64
			for range n {
				index += 1 + rng.Uint64N(3) // raft indexes have gaps (config entries)
				applyTo(t, f, randomCommand(rng, index), index)
				checkInvariants(t, &f.cat)
			}
			g := snapshotRestore(t, f)
			if !reflect.DeepEqual(f.cat, g.cat) {
				t.Fatalf("restored catalog differs:\n got %+v\nwant %+v", g.cat, f.cat)
			}
			// Both replicas continue identically.
			for range 20 {
				index++
				c := randomCommand(rng, index)
				if a, b := applyTo(t, f, c, index), applyTo(t, g, c, index); !reflect.DeepEqual(a, b) {
					t.Fatalf("after restore, %+v gave %+v vs %+v", c, a, b)
				}
			}
			if !reflect.DeepEqual(f.cat, g.cat) {
				t.Fatal("catalogs diverged after restore")
			}
		})
	}
}

func TestFSMGuards(t *testing.T) {
	f := newFSM()
	reg := applyTo(t, f, command{Op: opRegister, Service: "s", ID: "a", Address: "h:1", TTL: Duration(time.Second)}, 10)
	tests := []struct {
		name    string
		cmd     command
		changed bool
	}{
		{"suspect of an old incarnation is ignored", command{Op: opHealth, Service: "s", ID: "a", Health: bulwark.HealthSuspect, RegisterIndex: 3}, false},
		{"expire of an old incarnation is ignored", command{Op: opExpire, Service: "s", ID: "a", RegisterIndex: 3}, false},
		{"suspect of this incarnation", command{Op: opHealth, Service: "s", ID: "a", Health: bulwark.HealthSuspect, RegisterIndex: reg.info.RegisterIndex}, true},
		{"same state again is no change", command{Op: opHealth, Service: "s", ID: "a", Health: bulwark.HealthSuspect}, false},
		{"unknown instance", command{Op: opDeregister, Service: "s", ID: "zz"}, false},
		{"expire this incarnation", command{Op: opExpire, Service: "s", ID: "a", RegisterIndex: reg.info.RegisterIndex}, true},
	}
	for i, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			before := f.index()
			res := applyTo(t, f, tt.cmd, uint64(20+i))
			if res.changed != tt.changed {
				t.Fatalf("changed = %v, want %v", res.changed, tt.changed)
			}
			if !tt.changed && f.index() != before {
				t.Fatalf("index moved %d→%d without a change", before, f.index())
			}
		})
	}
	if v := f.service("s"); len(v.instances) != 0 || v.index != 25 {
		t.Fatalf("service after expiry: %d instances, index %d; want 0 and 25 (removal stays visible)", len(v.instances), v.index)
	}
	if _, ok := f.Apply(&raft.Log{Index: 99, Data: []byte("{")}).(error); !ok {
		t.Fatal("corrupt entry: want an error result")
	}
}

func FuzzDecodeRegister(f *testing.F) {
	for _, s := range []string{
		`{"service":"a","id":"1","address":"h:1"}`,
		`{"service":"a","id":"1","address":"http://h:1","ttl":"2s","metadata":{"zone":"z"},"health_url":"http://h/health"}`,
		`{"service":"a","id":1}`, `{`, `null`, `{"ttl":"-1s"}`, `{"x":1}`, `{} {}`,
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, body []byte) {
		req, err := decodeRegister(body, 100*time.Millisecond, time.Hour, time.Second)
		if err != nil {
			var fe *FieldError
			if !errors.As(err, &fe) || fe.Field == "" || !errors.Is(err, ErrInvalid) {
				t.Fatalf("error %v is not a FieldError naming a field", err)
			}
			return
		}
		if !validName(req.Service) || !validName(req.ID) || req.Address == "" {
			t.Fatalf("accepted invalid request %+v", req)
		}
		if ttl := time.Duration(req.TTL); ttl < 100*time.Millisecond || ttl > time.Hour {
			t.Fatalf("accepted ttl %v", ttl)
		}
		// What was accepted survives a round trip unchanged.
		b, err := json.Marshal(req)
		if err != nil {
			t.Fatal(err)
		}
		again, err := decodeRegister(b, 100*time.Millisecond, time.Hour, time.Second)
		if err != nil || !reflect.DeepEqual(again, req) {
			t.Fatalf("round trip: %+v, %v; want %+v", again, err, req)
		}
	})
}

func FuzzBlockingParams(f *testing.F) {
	f.Add("index=5&wait=10s")
	f.Add("index=-1")
	f.Add("wait=99999h")
	f.Fuzz(func(t *testing.T, q string) {
		vals, err := url.ParseQuery(q)
		if err != nil {
			return
		}
		_, wait, err := blockingParams(vals)
		if err == nil && (wait < 0 || wait > maxWait) {
			t.Fatalf("wait %v out of bounds", wait)
		}
	})
}
