// Package demo is the small service that `bulwark up` runs three replicas
// of, and that the end-to-end tests run as real child processes: a read
// endpoint whose answers carry a Content-Digest, a write endpoint that
// records what it received (deduplicated by Idempotency-Key), and a fault
// switch that makes the replica slow, failing, corrupting, hanging or
// resetting connections, so that the gateway's defences can be watched
// and tested.
//
// Endpoints:
//
//	GET  /read?size=N       a deterministic body of N bytes (default 100) with Content-Digest
//	GET  /health            200 "ok" (obeys the fault mode)
//	POST /write             records the body under its Idempotency-Key; 200 with the count
//	GET  /writes            JSON: how many writes and distinct keys were received, in order
//	POST /_demo/fault       sets the fault: JSON Fault (mode, rate, delay, slots); modes ok, slow, fail, corrupt, lie, hang, reset, partition, limited
//	GET  /_demo/fault       reads it
//
// The fault endpoint itself never fails, so a test can always restore a
// replica.
package demo

import (
	"encoding/json"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"net/http"
	"strconv"
	"sync"
	"time"

	"github.com/bulwark-go/bulwark/resilience/resilienthttp"
)

// Mode is a fault the replica injects into its own answers.
type Mode string

// The fault modes.
const (
	ModeOK      Mode = "ok"      // answer normally
	ModeSlow    Mode = "slow"    // add Delay to every answer
	ModeFail    Mode = "fail"    // answer 500 to a share Rate of requests
	ModeCorrupt Mode = "corrupt" // flip a byte in a share Rate of bodies, keeping the digest
	// ModeLie answers /read with wrong data and a valid digest of that
	// wrong data: the replica whose state is bad. A digest cannot catch
	// it; only comparing replicas (voting) can. Every liar tells the same
	// lie, so two liars agree with each other.
	ModeLie   Mode = "lie"
	ModeHang  Mode = "hang"  // accept and never answer
	ModeReset Mode = "reset" // reset the connection without answering
	// ModeLimited serves at most Slots requests at once, each holding its
	// slot for Delay; the others wait in line. Latency grows with
	// concurrency beyond Slots (the knee) and throughput is capped at
	// Slots/Delay: an overloaded service.
	ModeLimited Mode = "limited"
	// ModePartition hangs every request and, through OnPartition, stops the
	// replica's registry renewals: the replica is cut off from everyone.
	ModePartition Mode = "partition"
)

// Fault is the replica's current fault.
type Fault struct {
	Mode  Mode     `json:"mode"`
	Rate  float64  `json:"rate,omitempty"`  // share of requests affected, 0..1; default 1
	Delay Duration `json:"delay,omitempty"` // for slow and limited
	Slots int      `json:"slots,omitempty"` // for limited: requests served at once
}

// Duration is a time.Duration written in JSON as "300ms" (or as
// nanoseconds).
type Duration time.Duration

// MarshalJSON writes the duration as a string such as "300ms".
func (d Duration) MarshalJSON() ([]byte, error) { return json.Marshal(time.Duration(d).String()) }

// UnmarshalJSON reads "300ms" or a number of nanoseconds.
func (d *Duration) UnmarshalJSON(b []byte) error {
	var s string
	if err := json.Unmarshal(b, &s); err == nil {
		v, err := time.ParseDuration(s)
		if err != nil {
			return fmt.Errorf("delay: %w", err)
		}
		*d = Duration(v)
		return nil
	}
	var n int64
	if err := json.Unmarshal(b, &n); err != nil {
		return fmt.Errorf("delay: write a duration such as \"300ms\"")
	}
	*d = Duration(n)
	return nil
}

// Server is one demo replica.
type Server struct {
	// ID names the replica in its answers (X-Replica header).
	ID string
	// OnPartition, when set, is called when the partition fault starts
	// (true) and ends (false); the demo command pauses its registry
	// renewals with it.
	OnPartition func(on bool)

	mu     sync.Mutex
	fault  Fault
	slots  chan struct{} // for limited, made by SetFault
	rnd    *rand.Rand
	writes []string        // idempotency keys in arrival order ("" when absent)
	seen   map[string]bool // distinct keys
	dups   int
}

// New returns a replica with the given id and seed for its random choices.
func New(id string, seed uint64) *Server {
	return &Server{ID: id, fault: Fault{Mode: ModeOK}, rnd: rand.New(rand.NewPCG(seed, seed^0x9e3779b97f4a7c15)), seen: map[string]bool{}}
}

// Handler returns the replica's HTTP handler.
func (s *Server) Handler() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /_demo/fault", s.getFault)
	mux.HandleFunc("POST /_demo/fault", s.setFault)
	mux.HandleFunc("GET /read", s.faulty(resilienthttp.ContentDigest(http.HandlerFunc(s.read)).ServeHTTP))
	mux.HandleFunc("GET /health", s.faulty(func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, "ok\n") }))
	mux.HandleFunc("POST /write", s.faulty(s.write))
	mux.HandleFunc("GET /writes", s.listWrites)
	return mux
}

// SetFault changes the replica's fault.
func (s *Server) SetFault(f Fault) {
	if f.Mode == "" {
		f.Mode = ModeOK
	}
	if f.Rate == 0 {
		f.Rate = 1
	}
	s.mu.Lock()
	was := s.fault.Mode == ModePartition
	s.fault = f
	if f.Mode == ModeLimited {
		s.slots = make(chan struct{}, max(f.Slots, 1))
	}
	s.mu.Unlock()
	if now := f.Mode == ModePartition; now != was && s.OnPartition != nil {
		s.OnPartition(now)
	}
}

func (s *Server) getFault(w http.ResponseWriter, r *http.Request) {
	s.mu.Lock()
	f := s.fault
	s.mu.Unlock()
	w.Header().Set("Content-Type", "application/json")
	json.NewEncoder(w).Encode(f)
}

func (s *Server) setFault(w http.ResponseWriter, r *http.Request) {
	var f Fault
	dec := json.NewDecoder(io.LimitReader(r.Body, 4096))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&f); err != nil {
		http.Error(w, "fault: "+err.Error(), http.StatusBadRequest)
		return
	}
	switch f.Mode {
	case "", ModeOK, ModeSlow, ModeFail, ModeCorrupt, ModeLie, ModeHang, ModeReset, ModePartition, ModeLimited:
	default:
		http.Error(w, fmt.Sprintf("fault: unknown mode %q", f.Mode), http.StatusBadRequest)
		return
	}
	if f.Slots < 0 {
		http.Error(w, "fault: slots must not be negative", http.StatusBadRequest)
		return
	}
	if f.Rate < 0 || f.Rate > 1 {
		http.Error(w, "fault: rate must be between 0 and 1", http.StatusBadRequest)
		return
	}
	s.SetFault(f)
	s.getFault(w, r)
}

// hit decides whether this request is affected by the fault.
func (s *Server) hit() (Fault, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	f := s.fault
	return f, f.Mode != ModeOK && s.rnd.Float64() < f.Rate
}

func (s *Server) faulty(h http.HandlerFunc) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("X-Replica", s.ID)
		f, hit := s.hit()
		if !hit {
			h(w, r)
			return
		}
		switch f.Mode {
		case ModeSlow:
			select {
			case <-time.After(time.Duration(f.Delay)):
			case <-r.Context().Done():
				return
			}
			h(w, r)
		case ModeLimited:
			s.mu.Lock()
			slots := s.slots
			s.mu.Unlock()
			select {
			case slots <- struct{}{}:
			case <-r.Context().Done():
				return
			}
			select {
			case <-time.After(time.Duration(f.Delay)):
				<-slots
			case <-r.Context().Done():
				<-slots
				return
			}
			h(w, r)
		case ModeFail:
			http.Error(w, "injected failure", http.StatusInternalServerError)
		case ModeHang, ModePartition:
			<-r.Context().Done()
		case ModeReset:
			if c, _, err := http.NewResponseController(w).Hijack(); err == nil {
				if tc, ok := c.(*net.TCPConn); ok {
					tc.SetLinger(0) // RST instead of FIN
				}
				c.Close()
			}
		case ModeCorrupt:
			h(&corrupter{ResponseWriter: w, rnd: s.rnd, mu: &s.mu}, r)
		case ModeLie:
			if r.URL.Path == "/read" {
				resilienthttp.ContentDigest(http.HandlerFunc(s.lie)).ServeHTTP(w, r)
			} else {
				h(w, r)
			}
		default:
			h(w, r)
		}
	}
}

// Body returns the deterministic body of the given size that /read serves.
func Body(size int) []byte {
	b := make([]byte, size)
	for i := range b {
		b[i] = "abcdefghijklmnopqrstuvwxyz0123456789"[i%36]
	}
	return b
}

// LieBody is what a lying replica serves instead of Body(size): the same
// length, different bytes.
func LieBody(size int) []byte {
	b := Body(size)
	for i := range b {
		if b[i] >= 'a' && b[i] <= 'z' {
			b[i] -= 'a' - 'A'
		}
	}
	return b
}

// readSize is /read's size parameter; ok is false when it answered 400.
func readSize(w http.ResponseWriter, r *http.Request) (int, bool) {
	size := 100
	if v := r.URL.Query().Get("size"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 0 || n > 64<<20 {
			http.Error(w, "size must be between 0 and 64MiB", http.StatusBadRequest)
			return 0, false
		}
		size = n
	}
	return size, true
}

// read serves Body(size); resilienthttp.ContentDigest adds its digest.
func (s *Server) read(w http.ResponseWriter, r *http.Request) {
	if size, ok := readSize(w, r); ok {
		w.Header().Set("Content-Type", "text/plain")
		w.Write(Body(size))
	}
}

func (s *Server) lie(w http.ResponseWriter, r *http.Request) {
	if size, ok := readSize(w, r); ok {
		w.Header().Set("Content-Type", "text/plain")
		w.Write(LieBody(size))
	}
}

func (s *Server) write(w http.ResponseWriter, r *http.Request) {
	io.Copy(io.Discard, io.LimitReader(r.Body, 1<<20))
	key := r.Header.Get("Idempotency-Key")
	s.mu.Lock()
	if key != "" && s.seen[key] {
		s.dups++
	} else {
		s.writes = append(s.writes, key)
		if key != "" {
			s.seen[key] = true
		}
	}
	n := len(s.writes)
	s.mu.Unlock()
	fmt.Fprintf(w, "%d\n", n)
}

// Writes is what /writes reports.
type Writes struct {
	Count      int      `json:"count"`      // distinct writes recorded
	Duplicates int      `json:"duplicates"` // writes whose key was seen before
	Keys       []string `json:"keys"`       // in arrival order
}

func (s *Server) listWrites(w http.ResponseWriter, r *http.Request) {
	s.mu.Lock()
	out := Writes{Count: len(s.writes), Duplicates: s.dups, Keys: append([]string(nil), s.writes...)}
	s.mu.Unlock()
	w.Header().Set("Content-Type", "application/json")
	json.NewEncoder(w).Encode(out)
}

// corrupter flips one byte of the body it writes (the Byzantine replica:
// the answer looks fine, the status is 200, the digest header is intact).
type corrupter struct {
	http.ResponseWriter
	rnd  *rand.Rand
	mu   *sync.Mutex
	done bool
}

func (c *corrupter) Write(b []byte) (int, error) {
	if !c.done && len(b) > 0 {
		c.done = true
		cp := append([]byte(nil), b...)
		c.mu.Lock()
		i := c.rnd.IntN(len(cp))
		c.mu.Unlock()
		cp[i] ^= 0x20
		return c.ResponseWriter.Write(cp)
	}
	return c.ResponseWriter.Write(b)
}
