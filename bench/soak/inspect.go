package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/bulwark-go/bulwark"
)

// jsState is what the JetStream cluster holds once the soak has settled:
// every accepted write should have left the work stream, and nothing
// should be dead-lettered.
type jsState struct {
	Error      string        `json:"error,omitempty"`
	Work       streamState   `json:"work"`
	Dead       streamState   `json:"dead"`
	Consumers  []consumerRec `json:"consumers"`
	WorkKeys   []string      `json:"work_keys,omitempty"` // Idempotency-Keys still in the work stream (up to 50)
	DeadKeys   []string      `json:"dead_keys,omitempty"`
	StatusKeys int           `json:"status_records"`
}

type streamState struct {
	Retention string `json:"retention"`
	Msgs      uint64 `json:"msgs"`
	FirstSeq  uint64 `json:"first_seq"`
	LastSeq   uint64 `json:"last_seq"`
	Leader    string `json:"leader"`
}

type consumerRec struct {
	Name           string `json:"name"`
	Leader         string `json:"leader"`
	DeliveredSeq   uint64 `json:"delivered_stream_seq"`
	AckFloorSeq    uint64 `json:"ack_floor_stream_seq"`
	NumAckPending  int    `json:"num_ack_pending"`
	NumRedelivered int    `json:"num_redelivered"`
	NumPending     uint64 `json:"num_pending"`
}

// jsWhere is where the cluster has one key.
type jsWhere struct {
	workSeq uint64
	dead    bool
	status  string
}

// inspectJetStream connects to the members as a client and reads the
// work and dead-letter streams, their consumers, and the status records of
// the messages ids names (Idempotency-Key → message id).
func inspectJetStream(s *stack, ids map[string]string) (*jsState, map[string]jsWhere) {
	where := map[string]jsWhere{}
	st := &jsState{}
	urls := s.clientURLs()
	if len(urls) == 0 {
		st.Error = "no member's client URL found in the logs"
		return st, where
	}
	nc, err := nats.Connect(strings.Join(urls, ","), nats.Timeout(5*time.Second))
	if err != nil {
		st.Error = err.Error()
		return st, where
	}
	defer nc.Close()
	js, err := jetstream.New(nc)
	if err != nil {
		st.Error = err.Error()
		return st, where
	}
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	scan := func(name string, ss *streamState, keys *[]string, mark func(key string, seq uint64)) {
		str, err := js.Stream(ctx, name)
		if err != nil {
			st.Error += fmt.Sprintf("%s: %v; ", name, err)
			return
		}
		info, err := str.Info(ctx)
		if err != nil {
			st.Error += fmt.Sprintf("%s info: %v; ", name, err)
			return
		}
		*ss = streamState{Retention: info.Config.Retention.String(), Msgs: info.State.Msgs,
			FirstSeq: info.State.FirstSeq, LastSeq: info.State.LastSeq}
		if info.Cluster != nil {
			ss.Leader = info.Cluster.Leader
		}
		subj := ">"
		if len(info.Config.Subjects) == 1 {
			subj = info.Config.Subjects[0]
		}
		for seq, n := info.State.FirstSeq, 0; info.State.Msgs > 0 && seq <= info.State.LastSeq && n < 100000; seq, n = seq+1, n+1 {
			m, err := str.GetMsg(ctx, seq, jetstream.WithGetMsgSubject(subj))
			if errors.Is(err, jetstream.ErrMsgNotFound) {
				break
			}
			if err != nil {
				st.Error += fmt.Sprintf("%s get %d: %v; ", name, seq, err)
				break
			}
			seq = m.Sequence
			key := storedKey(m.Header)
			if len(*keys) < 50 {
				*keys = append(*keys, key)
			}
			mark(key, seq)
		}
		if name == "BULWARK_WORK" {
			for c := range str.ListConsumers(ctx).Info() {
				r := consumerRec{Name: c.Name, DeliveredSeq: c.Delivered.Stream, AckFloorSeq: c.AckFloor.Stream,
					NumAckPending: c.NumAckPending, NumRedelivered: c.NumRedelivered, NumPending: c.NumPending}
				if c.Cluster != nil {
					r.Leader = c.Cluster.Leader
				}
				// The idle ordered partitions (the soak sends no order
				// key) are left out.
				if c.Name == "any" || r.NumAckPending > 0 || r.NumPending > 0 || r.NumRedelivered > 0 {
					st.Consumers = append(st.Consumers, r)
				}
			}
		}
	}
	scan("BULWARK_WORK", &st.Work, &st.WorkKeys, func(key string, seq uint64) {
		w := where[key]
		w.workSeq = seq
		where[key] = w
	})
	scan("BULWARK_DEAD", &st.Dead, &st.DeadKeys, func(key string, _ uint64) {
		w := where[key]
		w.dead = true
		where[key] = w
	})
	kv, err := js.KeyValue(ctx, "BULWARK_STATUS")
	if err != nil {
		st.Error += "status bucket: " + err.Error()
		return st, where
	}
	if si, err := kv.Status(ctx); err == nil {
		st.StatusKeys = int(si.Values())
	}
	for key, id := range ids {
		w := where[key]
		if e, err := kv.Get(ctx, id); err != nil {
			w.status = "no record: " + err.Error()
		} else {
			w.status = fmt.Sprintf("%s (revision %d, %s)", e.Value(), e.Revision(), e.Created().UTC().Format(time.RFC3339Nano))
		}
		where[key] = w
	}
	return st, where
}

// storedKey is the Idempotency-Key of a message delivery stored: its
// fields are one JSON header (delivery/codec.go), the body the payload.
func storedKey(h nats.Header) string {
	var m bulwark.Message
	if err := json.Unmarshal([]byte(h.Get("Bulwark-Message")), &m); err != nil {
		return "undecodable: " + err.Error()
	}
	return m.IdempotencyKey
}
