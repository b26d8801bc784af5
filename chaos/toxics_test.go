package chaos_test

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"net"
	"syscall"
	"testing"
	"time"

	"github.com/bulwark-go/bulwark/chaos"
)

func TestLatency(t *testing.T) {
	tests := []struct {
		name   string
		stream string
		attrs  chaos.LatencyAttrs
		min    time.Duration
		max    time.Duration
	}{
		{"downstream", chaos.Downstream, chaos.LatencyAttrs{Latency: 100}, 100 * time.Millisecond, 250 * time.Millisecond},
		{"upstream", chaos.Upstream, chaos.LatencyAttrs{Latency: 100}, 100 * time.Millisecond, 250 * time.Millisecond},
		{"jitter", chaos.Downstream, chaos.LatencyAttrs{Latency: 100, Jitter: 50}, 50 * time.Millisecond, 300 * time.Millisecond},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			s := newServer(t, 1)
			p := newProxy(t, s, "echo", echoServer(t))
			addToxic(t, p, &chaos.Toxic{Type: chaos.TypeLatency, Stream: tt.stream, Attributes: &tt.attrs})
			c := dial(t, p.Addr())
			for i := range 3 {
				d := roundTrip(t, c, fmt.Sprintf("ping %d", i))
				if d < tt.min || d > tt.max {
					t.Errorf("round trip %d took %v, want %v..%v", i, d, tt.min, tt.max)
				}
			}
		})
	}
}

func TestLatencyPipelines(t *testing.T) {
	// Chunks in flight are delayed from their arrival, not one after the
	// other: 5 writes 20 ms apart under 100 ms latency take ~180 ms, not 500.
	t.Parallel()
	s := newServer(t, 1)
	p := newProxy(t, s, "echo", echoServer(t))
	addToxic(t, p, &chaos.Toxic{Type: chaos.TypeLatency, Attributes: &chaos.LatencyAttrs{Latency: 100}})
	c := dial(t, p.Addr())
	start := time.Now()
	for range 5 {
		if _, err := c.Write([]byte("x")); err != nil {
			t.Fatal(err)
		}
		time.Sleep(20 * time.Millisecond) // spacing the writes is the input of this test, not a wait for a condition
	}
	_ = c.SetReadDeadline(time.Now().Add(5 * time.Second))
	if _, err := io.ReadFull(c, make([]byte, 5)); err != nil {
		t.Fatal(err)
	}
	if d := time.Since(start); d > 350*time.Millisecond {
		t.Errorf("5 pipelined chunks took %v, want < 350ms", d)
	}
}

func TestBandwidth(t *testing.T) {
	t.Parallel()
	const size, rate = 20_000, 40 // 20 kB at 40 KB/s: 500 ms
	data := bytes.Repeat([]byte("abcdefghij"), size/10)
	s := newServer(t, 1)
	p := newProxy(t, s, "src", sourceServer(t, data))
	addToxic(t, p, &chaos.Toxic{Type: chaos.TypeBandwidth, Attributes: &chaos.BandwidthAttrs{Rate: rate}})
	start := time.Now()
	c := dial(t, p.Addr())
	_ = c.SetReadDeadline(time.Now().Add(10 * time.Second))
	got, err := io.ReadAll(c)
	if err != nil {
		t.Fatal(err)
	}
	d := time.Since(start)
	if !bytes.Equal(got, data) {
		t.Fatalf("got %d bytes, want %d intact", len(got), len(data))
	}
	// Never faster than the rate, and within 10 % of it on a quiet machine;
	// a loaded one (the suite runs packages in parallel on 2 cores) can
	// only make it slower, so the upper bound has room for that.
	want := 500 * time.Millisecond
	if d < want*9/10 || d > want*3/2 {
		t.Errorf("transfer took %v, want %v (-10%%, +50%% for CPU contention)", d, want)
	}
}

func TestSlowClose(t *testing.T) {
	t.Parallel()
	s := newServer(t, 1)
	p := newProxy(t, s, "src", sourceServer(t, []byte("bye")))
	addToxic(t, p, &chaos.Toxic{Type: chaos.TypeSlowClose, Attributes: &chaos.SlowCloseAttrs{Delay: 200}})
	start := time.Now()
	c := dial(t, p.Addr())
	_ = c.SetReadDeadline(time.Now().Add(5 * time.Second))
	got, err := io.ReadAll(c)
	if err != nil || string(got) != "bye" {
		t.Fatalf("read %q, %v", got, err)
	}
	if d := time.Since(start); d < 200*time.Millisecond {
		t.Errorf("closed after %v, want ≥ 200ms", d)
	}
}

func TestTimeoutBlackholeThenRemove(t *testing.T) {
	t.Parallel()
	s := newServer(t, 1)
	p := newProxy(t, s, "echo", echoServer(t))
	c := dial(t, p.Addr())
	roundTrip(t, c, "before")
	addToxic(t, p, &chaos.Toxic{Name: "hole", Type: chaos.TypeTimeout, Attributes: &chaos.TimeoutAttrs{}})
	if _, err := c.Write([]byte("lost")); err != nil {
		t.Fatal(err)
	}
	_ = c.SetReadDeadline(time.Now().Add(200 * time.Millisecond))
	if n, err := c.Read(make([]byte, 10)); !isTimeout(err) {
		t.Fatalf("read under blackhole = %d, %v; want a timeout", n, err)
	}
	if err := p.RemoveToxic("hole"); err != nil {
		t.Fatal(err)
	}
	// The blackholed connection lost bytes, so removing the toxic closes
	// it (Toxiproxy's behaviour) instead of resuming a stream with a hole.
	_ = c.SetReadDeadline(time.Now().Add(5 * time.Second))
	if _, err := c.Read(make([]byte, 10)); err == nil {
		t.Fatal("blackholed connection resumed after the toxic was removed")
	}
	roundTrip(t, dial(t, p.Addr()), "after")
}

func TestTimeoutUpdateKeepsBlackhole(t *testing.T) {
	// Changing a blackhole's attributes is not healing it: the connection
	// stays open and silent.
	t.Parallel()
	s := newServer(t, 1)
	p := newProxy(t, s, "echo", echoServer(t))
	c := dial(t, p.Addr())
	roundTrip(t, c, "before")
	addToxic(t, p, &chaos.Toxic{Name: "hole", Type: chaos.TypeTimeout, Attributes: &chaos.TimeoutAttrs{}})
	if err := p.ReplaceToxic(&chaos.Toxic{Name: "hole", Type: chaos.TypeTimeout, Stream: chaos.Downstream, Toxicity: 1,
		Attributes: &chaos.TimeoutAttrs{Timeout: 60_000}}); err != nil {
		t.Fatal(err)
	}
	_, _ = c.Write([]byte("lost"))
	_ = c.SetReadDeadline(time.Now().Add(200 * time.Millisecond))
	if n, err := c.Read(make([]byte, 10)); !isTimeout(err) {
		t.Fatalf("read = %d, %v; want a timeout (still blackholed, still open)", n, err)
	}
}

func TestTimeoutCloses(t *testing.T) {
	t.Parallel()
	s := newServer(t, 1)
	p := newProxy(t, s, "echo", echoServer(t))
	addToxic(t, p, &chaos.Toxic{Type: chaos.TypeTimeout, Attributes: &chaos.TimeoutAttrs{Timeout: 100}})
	start := time.Now()
	c := dial(t, p.Addr())
	_ = c.SetReadDeadline(time.Now().Add(5 * time.Second))
	_, err := c.Read(make([]byte, 10))
	if !errors.Is(err, io.EOF) {
		t.Fatalf("read = %v, want EOF", err)
	}
	if d := time.Since(start); d < 100*time.Millisecond || d > 1500*time.Millisecond {
		t.Errorf("closed after %v, want ~100ms", d)
	}
	if got := p.Stats().Timeouts; got != 1 {
		t.Errorf("Stats().Timeouts = %d, want 1", got)
	}
}

func TestResetPeer(t *testing.T) {
	t.Parallel()
	s := newServer(t, 1)
	p := newProxy(t, s, "echo", echoServer(t))
	addToxic(t, p, &chaos.Toxic{Type: chaos.TypeResetPeer, Stream: chaos.Upstream, Attributes: &chaos.ResetPeerAttrs{Timeout: 50}})
	c := dial(t, p.Addr())
	if _, err := c.Write([]byte("hello")); err != nil {
		t.Fatal(err)
	}
	_ = c.SetReadDeadline(time.Now().Add(5 * time.Second))
	_, err := c.Read(make([]byte, 10))
	if !errors.Is(err, syscall.ECONNRESET) {
		t.Fatalf("read = %v, want connection reset by peer", err)
	}
	if got := p.Stats().Resets; got != 1 {
		t.Errorf("Stats().Resets = %d, want 1", got)
	}
}

func TestLimitData(t *testing.T) {
	t.Parallel()
	s := newServer(t, 1)
	p := newProxy(t, s, "src", sourceServer(t, bytes.Repeat([]byte("z"), 100)))
	addToxic(t, p, &chaos.Toxic{Type: chaos.TypeLimitData, Attributes: &chaos.LimitDataAttrs{Bytes: 10}})
	c := dial(t, p.Addr())
	_ = c.SetReadDeadline(time.Now().Add(5 * time.Second))
	got, err := io.ReadAll(c)
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 10 {
		t.Errorf("read %d bytes, want 10", len(got))
	}
}

func TestSlicerKeepsData(t *testing.T) {
	t.Parallel()
	s := newServer(t, 1)
	p := newProxy(t, s, "echo", echoServer(t))
	addToxic(t, p, &chaos.Toxic{Type: chaos.TypeSlicer, Attributes: &chaos.SlicerAttrs{AverageSize: 8, SizeVariation: 4, Delay: 100}})
	c := dial(t, p.Addr())
	roundTrip(t, c, string(bytes.Repeat([]byte("0123456789"), 50)))
}

// bitflip changes the bytes it relays but not their number: the
// middleman that a Content-Digest or TLS has to catch.
func TestBitflipFlipsOneByteAChunk(t *testing.T) {
	t.Parallel()
	s := newServer(t, 1)
	p := newProxy(t, s, "echo", echoServer(t))
	addToxic(t, p, &chaos.Toxic{Type: chaos.TypeBitflip, Attributes: &chaos.BitflipAttrs{Rate: 1}})
	c := dial(t, p.Addr())
	msg := []byte("the quick brown fox")
	if _, err := c.Write(msg); err != nil {
		t.Fatal(err)
	}
	_ = c.SetReadDeadline(time.Now().Add(10 * time.Second))
	got := make([]byte, len(msg))
	if _, err := io.ReadFull(c, got); err != nil {
		t.Fatal(err)
	}
	diff := 0
	for i := range msg {
		if got[i] != msg[i] {
			diff++
			if got[i]^msg[i] != 0x01 {
				t.Fatalf("byte %d changed by %#x, want one bit", i, got[i]^msg[i])
			}
		}
	}
	if diff == 0 { // one per chunk: one, unless TCP split the echo
		t.Fatalf("no byte changed in %q", got)
	}
	if err := (&chaos.Toxic{Name: "x", Type: chaos.TypeBitflip, Stream: chaos.Downstream, Toxicity: 1, Attributes: &chaos.BitflipAttrs{Rate: 2}}).Validate(); err == nil {
		t.Fatal("rate 2 accepted")
	}
}

func TestToxicityZeroNeverApplies(t *testing.T) {
	t.Parallel()
	s := newServer(t, 1)
	p := newProxy(t, s, "echo", echoServer(t))
	if err := p.AddToxic(&chaos.Toxic{Name: "never", Type: chaos.TypeTimeout, Stream: chaos.Downstream,
		Toxicity: 0, Attributes: &chaos.TimeoutAttrs{}}); err != nil {
		t.Fatal(err)
	}
	for range 5 {
		roundTrip(t, dial(t, p.Addr()), "through")
	}
}

// toxicPattern reports, for n sequential connections, which ones a
// toxic with toxicity 0.5 hit. The toxic (limit_data of 0 bytes) closes
// the connection at the first byte, so the outcome does not depend on
// timing: EOF when hit, the echo when not.
func toxicPattern(t *testing.T, seed uint64, n int) []bool {
	s := newServer(t, seed)
	p := newProxy(t, s, "echo", echoServer(t))
	if err := p.AddToxic(&chaos.Toxic{Name: "half", Type: chaos.TypeLimitData, Stream: chaos.Downstream,
		Toxicity: 0.5, Attributes: &chaos.LimitDataAttrs{Bytes: 0}}); err != nil {
		t.Fatal(err)
	}
	out := make([]bool, n)
	for i := range out {
		c := dial(t, p.Addr())
		_, _ = c.Write([]byte("x"))
		_ = c.SetReadDeadline(time.Now().Add(5 * time.Second))
		_, err := c.Read(make([]byte, 1))
		if err != nil && !errors.Is(err, io.EOF) {
			t.Fatalf("connection %d: %v", i, err)
		}
		out[i] = err != nil
		c.Close()
	}
	return out
}

func TestToxicityReplaysWithSeed(t *testing.T) {
	t.Parallel()
	a, b := toxicPattern(t, 42, 12), toxicPattern(t, 42, 12)
	hits := 0
	for i := range a {
		if a[i] != b[i] {
			t.Fatalf("same seed, different decisions: %v vs %v", a, b)
		}
		if a[i] {
			hits++
		}
	}
	if hits == 0 || hits == len(a) {
		t.Errorf("toxicity 0.5 hit %d of %d connections: %v", hits, len(a), a)
	}
}

func TestLiveChangesKeepConnection(t *testing.T) {
	t.Parallel()
	s := newServer(t, 1)
	p := newProxy(t, s, "echo", echoServer(t))
	c := dial(t, p.Addr())
	seq := 0
	rt := func() time.Duration { seq++; return roundTrip(t, c, fmt.Sprintf("msg-%04d", seq)) }
	if d := rt(); d > 80*time.Millisecond {
		t.Fatalf("baseline round trip %v", d)
	}
	addToxic(t, p, &chaos.Toxic{Name: "lat", Type: chaos.TypeLatency, Attributes: &chaos.LatencyAttrs{Latency: 150}})
	if d := rt(); d < 150*time.Millisecond {
		t.Errorf("with latency: %v, want ≥ 150ms", d)
	}
	if err := p.ReplaceToxic(&chaos.Toxic{Name: "lat", Type: chaos.TypeLatency, Stream: chaos.Downstream,
		Toxicity: 1, Attributes: &chaos.LatencyAttrs{Latency: 50}}); err != nil {
		t.Fatal(err)
	}
	if d := rt(); d < 50*time.Millisecond || d > 140*time.Millisecond {
		t.Errorf("after update to 50ms: %v", d)
	}
	// A removal while a chunk is being delayed releases it at once.
	if err := p.ReplaceToxic(&chaos.Toxic{Name: "lat", Type: chaos.TypeLatency, Stream: chaos.Downstream,
		Toxicity: 1, Attributes: &chaos.LatencyAttrs{Latency: 5000}}); err != nil {
		t.Fatal(err)
	}
	done := make(chan time.Duration, 1)
	go func() {
		start := time.Now()
		seq++
		msg := fmt.Sprintf("msg-%04d", seq)
		_, _ = c.Write([]byte(msg))
		_ = c.SetReadDeadline(time.Now().Add(10 * time.Second))
		buf := make([]byte, len(msg))
		_, err := io.ReadFull(c, buf)
		if err != nil || string(buf) != msg {
			done <- -1
			return
		}
		done <- time.Since(start)
	}()
	time.Sleep(50 * time.Millisecond) // let the chunk reach the 5 s wait: the scenario's input, not a sync
	if err := p.RemoveToxic("lat"); err != nil {
		t.Fatal(err)
	}
	if d := <-done; d < 0 || d > 2*time.Second {
		t.Fatalf("in-flight chunk after removal: %v (negative = lost)", d)
	}
	for range 5 {
		if d := rt(); d > 100*time.Millisecond {
			t.Errorf("after removal: %v", d)
		}
	}
	if got := p.Stats().Connections; got != 1 {
		t.Errorf("connections = %d, want 1 (never dropped)", got)
	}
}

func TestDisableEnable(t *testing.T) {
	t.Parallel()
	s := newServer(t, 1)
	p := newProxy(t, s, "echo", echoServer(t))
	c := dial(t, p.Addr())
	roundTrip(t, c, "up")
	cfg := p.Config()
	cfg.Enabled = false
	if err := p.Update(cfg); err != nil {
		t.Fatal(err)
	}
	_ = c.SetReadDeadline(time.Now().Add(5 * time.Second))
	if _, err := c.Read(make([]byte, 1)); err == nil {
		t.Fatal("connection survived disable")
	}
	if _, err := net.DialTimeout("tcp", cfg.Listen, time.Second); err == nil {
		t.Fatal("disabled proxy accepts connections")
	}
	cfg.Enabled = true
	if err := p.Update(cfg); err != nil {
		t.Fatal(err)
	}
	roundTrip(t, dial(t, p.Addr()), "again")
}

func TestInvalidToxics(t *testing.T) {
	t.Parallel()
	s := newServer(t, 1)
	p := newProxy(t, s, "echo", echoServer(t))
	tests := []struct {
		name string
		tox  chaos.Toxic
		want error
	}{
		{"bad stream", chaos.Toxic{Name: "a", Type: chaos.TypeLatency, Stream: "sideways", Toxicity: 1, Attributes: &chaos.LatencyAttrs{}}, chaos.ErrInvalidToxic},
		{"toxicity > 1", chaos.Toxic{Name: "a", Type: chaos.TypeLatency, Stream: chaos.Upstream, Toxicity: 2, Attributes: &chaos.LatencyAttrs{}}, chaos.ErrInvalidToxic},
		{"negative", chaos.Toxic{Name: "a", Type: chaos.TypeLatency, Stream: chaos.Upstream, Toxicity: 1, Attributes: &chaos.LatencyAttrs{Latency: -1}}, chaos.ErrInvalidToxic},
		{"wrong attrs", chaos.Toxic{Name: "a", Type: chaos.TypeLatency, Stream: chaos.Upstream, Toxicity: 1, Attributes: &chaos.BandwidthAttrs{}}, chaos.ErrInvalidToxic},
		{"http on tcp", chaos.Toxic{Name: "a", Type: chaos.TypeHTTPAbort, Stream: chaos.Upstream, Toxicity: 1, Attributes: &chaos.HTTPAbortAttrs{Status: 500}}, chaos.ErrInvalidToxic},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if err := p.AddToxic(&tt.tox); !errors.Is(err, tt.want) {
				t.Errorf("AddToxic = %v, want %v", err, tt.want)
			}
		})
	}
	addToxic(t, p, &chaos.Toxic{Name: "dup", Type: chaos.TypeLatency, Attributes: &chaos.LatencyAttrs{}})
	if err := p.AddToxic(&chaos.Toxic{Name: "dup", Type: chaos.TypeLatency, Stream: chaos.Upstream, Toxicity: 1,
		Attributes: &chaos.LatencyAttrs{}}); !errors.Is(err, chaos.ErrToxicExists) {
		t.Errorf("duplicate = %v, want ErrToxicExists", err)
	}
	if err := p.RemoveToxic("nope"); !errors.Is(err, chaos.ErrToxicNotFound) {
		t.Errorf("remove missing = %v, want ErrToxicNotFound", err)
	}
}

func isTimeout(err error) bool {
	var ne net.Error
	return errors.As(err, &ne) && ne.Timeout()
}

// waitFor polls cond until it holds, failing the test after 5 s: a
// bounded wait on a condition for real-socket tests, where synctest
// cannot run.
func waitFor(t *testing.T, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatal("condition not met within 5s")
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// TestToxicChurnUnderTraffic adds, updates and removes toxics 100 times
// while one connection carries a steady stream of echoes: no message may
// be lost, reordered or corrupted, and the connection must survive.
func TestToxicChurnUnderTraffic(t *testing.T) {
	t.Parallel()
	s := newServer(t, 1)
	p := newProxy(t, s, "echo", echoServer(t))
	c := dial(t, p.Addr())
	stop := make(chan struct{})
	errc := make(chan error, 1)
	go func() {
		_ = c.SetDeadline(time.Now().Add(30 * time.Second))
		for i := 0; ; i++ {
			select {
			case <-stop:
				if i >= 100 {
					errc <- nil
					return
				}
			default:
			}
			msg := []byte(fmt.Sprintf("message-%05d;", i))
			if _, err := c.Write(msg); err != nil {
				errc <- err
				return
			}
			got := make([]byte, len(msg))
			if _, err := io.ReadFull(c, got); err != nil {
				errc <- err
				return
			}
			if !bytes.Equal(got, msg) {
				errc <- fmt.Errorf("echo %d = %q, want %q", i, got, msg)
				return
			}
		}
	}()
	toxics := []*chaos.Toxic{
		{Name: "lat", Type: chaos.TypeLatency, Stream: chaos.Downstream, Toxicity: 1, Attributes: &chaos.LatencyAttrs{Latency: 3, Jitter: 2}},
		{Name: "bw", Type: chaos.TypeBandwidth, Stream: chaos.Upstream, Toxicity: 1, Attributes: &chaos.BandwidthAttrs{Rate: 500}},
		{Name: "slice", Type: chaos.TypeSlicer, Stream: chaos.Downstream, Toxicity: 0.5, Attributes: &chaos.SlicerAttrs{AverageSize: 3, Delay: 50}},
	}
	for i := range 100 {
		tox := toxics[i%len(toxics)]
		var err error
		switch _, missing := p.Toxic(tox.Name); {
		case missing != nil:
			err = p.AddToxic(tox)
		case i%2 == 0:
			err = p.ReplaceToxic(tox)
		default:
			err = p.RemoveToxic(tox.Name)
		}
		if err != nil {
			t.Fatal(err)
		}
		time.Sleep(time.Millisecond) // pacing of the churn: the scenario's input
	}
	close(stop)
	if err := <-errc; err != nil {
		t.Fatal(err)
	}
	if got := p.Stats().Connections; got != 1 {
		t.Errorf("%d connections, want 1 (never dropped)", got)
	}
}
