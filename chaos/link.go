package chaos

import (
	"errors"
	"io"
	"math/rand/v2"
	"net"
	"sync"
	"time"
)

// A link is one client connection through a TCP proxy: the client's
// connection, the one dialled to the upstream, and two pipes, one per
// direction.
//
// Concurrency: each pipe runs two goroutines, a reader (src → channel) and
// a writer (channel → toxics → dst). Only the writer touches the pipe's
// toxic state and rand, so neither needs a lock. The toxics come from the
// proxy's chain, an immutable snapshot read atomically; a change closes
// the snapshot's changed channel, which interrupts any wait so the writer
// picks up the new chain without dropping the connection or the data in
// flight (as Toxiproxy's InterruptToxic does).
type link struct {
	p              *Proxy
	client, server net.Conn
	done           chan struct{}
	closeOnce      sync.Once
	mu             sync.Mutex // guards finished
	finished       int
}

// chunk is data read from one side, stamped with when it was read, so
// latency is measured from arrival and chunks in flight pipeline.
type chunk struct {
	data []byte
	at   time.Time
}

// toxicState is a pipe's view of one toxic: whether the toxicity roll let
// it apply, since when, and limit_data's byte count (kept across updates,
// as in Toxiproxy).
type toxicState struct {
	t     *Toxic
	on    bool
	since time.Time
	sent  int64
	next  time.Time // bandwidth pacing: when the next byte may go
}

type pipe struct {
	l        *link
	dir      int
	src, dst net.Conn
	in       chan chunk
	free     chan []byte // buffers the writer is done with, for the reader to reuse
	rng      *rand.Rand
	states   map[string]*toxicState
}

// Errors that end a link from inside a pipe.
var (
	errLinkReset  = errors.New("reset_peer")
	errLinkClosed = errors.New("link closed")
)

func newLink(p *Proxy, client, server net.Conn) *link {
	return &link{p: p, client: client, server: server, done: make(chan struct{})}
}

// start runs the link's four goroutines; wg is the proxy's, so closing the
// proxy waits for them.
func (l *link) start(wg *sync.WaitGroup, seeds [4]uint64) {
	up := &pipe{l: l, dir: dirUp, src: l.client, dst: l.server, in: make(chan chunk, 8), free: make(chan []byte, 9),
		rng: rand.New(rand.NewPCG(seeds[0], seeds[1])), states: map[string]*toxicState{}}
	down := &pipe{l: l, dir: dirDown, src: l.server, dst: l.client, in: make(chan chunk, 8), free: make(chan []byte, 9),
		rng: rand.New(rand.NewPCG(seeds[2], seeds[3])), states: map[string]*toxicState{}}
	for _, pp := range []*pipe{up, down} {
		wg.Add(2)
		go func() { defer wg.Done(); pp.read() }()
		go func() { defer wg.Done(); pp.write() }()
	}
}

// close ends the link; reset makes both sockets send RST (SO_LINGER 0)
// instead of FIN, which is what reset_peer simulates.
func (l *link) close(reset bool) {
	l.closeOnce.Do(func() {
		if reset {
			for _, c := range []net.Conn{l.client, l.server} {
				if tc, ok := c.(*net.TCPConn); ok {
					_ = tc.SetLinger(0)
				}
			}
		}
		close(l.done)
		_ = l.client.Close()
		_ = l.server.Close()
		l.p.removeLink(l)
	})
}

// finish records that one direction ended cleanly; the second closes the link.
func (l *link) finish() {
	l.mu.Lock()
	l.finished++
	n := l.finished
	l.mu.Unlock()
	if n == 2 {
		l.close(false)
	}
}

func (pp *pipe) read() {
	defer close(pp.in)
	for {
		var buf []byte
		select {
		case buf = <-pp.free:
		default:
			buf = make([]byte, 32*1024)
		}
		n, err := pp.src.Read(buf)
		if n > 0 {
			select {
			case pp.in <- chunk{data: buf[:n], at: time.Now()}:
			case <-pp.l.done:
				return
			}
		}
		if err != nil {
			return
		}
	}
}

// active returns the states of the toxics in effect on this pipe, rolling
// toxicity the first time the pipe sees a toxic (or a new version of it).
// healed reports that a timeout toxic that was dropping this pipe's data
// no longer applies: the stream has lost bytes, so, as in Toxiproxy, the
// link must be closed rather than resumed with a hole in it.
func (pp *pipe) active(c *chain) (out []*toxicState, healed bool) {
	seen := make(map[string]bool, len(c.dirs[pp.dir]))
	for _, t := range c.dirs[pp.dir] {
		seen[t.Name] = true
		st := pp.states[t.Name]
		if st == nil {
			st = &toxicState{}
			pp.states[t.Name] = st
		}
		if st.t != t {
			wasOn := st.on && st.t != nil && st.t.Type == t.Type
			st.t = t
			st.on = t.Toxicity >= 1 || pp.rng.Float64() < t.Toxicity
			if !wasOn || !st.on {
				st.since = time.Now()
			}
			healed = healed || (wasOn && !st.on && t.Type == TypeTimeout)
		}
		if st.on {
			out = append(out, st)
		}
	}
	for name, st := range pp.states {
		if !seen[name] {
			healed = healed || (st.on && st.t.Type == TypeTimeout)
			delete(pp.states, name)
		}
	}
	return out, healed
}

func (pp *pipe) write() {
	timer := time.NewTimer(time.Hour)
	defer timer.Stop()
	for {
		c := pp.l.p.chain.Load()
		act, healed := pp.active(c)
		if healed {
			pp.l.close(false)
			return
		}
		var deadline <-chan time.Time
		if d, ok := timeoutDeadline(act); ok {
			timer.Reset(time.Until(d))
			deadline = timer.C
		}
		select {
		case ch, ok := <-pp.in:
			// A change that raced with this chunk's arrival must apply to
			// it; otherwise the old chain's closed changed channel would
			// cut every wait short.
			if cur := pp.l.p.chain.Load(); cur != c {
				c = cur
				if act, healed = pp.active(cur); healed {
					pp.l.close(false)
					return
				}
			}
			if !ok {
				pp.eof(c, act)
				return
			}
			err := pp.process(c, act, 0, ch)
			if err != nil {
				pp.l.close(errors.Is(err, errLinkReset))
				return
			}
			// Every toxic is done with the chunk once process returns
			// (writes are synchronous), so its buffer can be reused.
			select {
			case pp.free <- ch.data[:cap(ch.data)]:
			default:
			}
		case <-c.changed:
		case <-deadline:
			pp.l.p.stats.timeouts.Add(1)
			pp.l.close(false)
			return
		case <-pp.l.done:
			return
		}
	}
}

// timeoutDeadline is when an active timeout toxic with a finite timeout
// closes the link.
func timeoutDeadline(act []*toxicState) (time.Time, bool) {
	var d time.Time
	for _, st := range act {
		if a, ok := st.t.Attributes.(*TimeoutAttrs); ok && a.Timeout > 0 {
			at := st.since.Add(time.Duration(a.Timeout) * time.Millisecond)
			if d.IsZero() || at.Before(d) {
				d = at
			}
		}
	}
	return d, !d.IsZero()
}

// eof handles the end of the source: slow_close delays it, then the
// destination is half-closed so the other direction can finish.
func (pp *pipe) eof(c *chain, act []*toxicState) {
	for _, st := range act {
		if a, ok := st.t.Attributes.(*SlowCloseAttrs); ok {
			if pp.wait(c, time.Now().Add(time.Duration(a.Delay)*time.Millisecond)) == errLinkClosed {
				return
			}
		}
	}
	if cw, ok := pp.dst.(interface{ CloseWrite() error }); ok {
		_ = cw.CloseWrite()
	}
	pp.l.finish()
}

// wait sleeps until t. It returns early with nil when the chain changes
// (the data goes on rather than being dropped) and with errLinkClosed
// when the link ends.
func (pp *pipe) wait(c *chain, t time.Time) error {
	d := time.Until(t)
	if d <= 0 {
		return nil
	}
	tm := time.NewTimer(d)
	defer tm.Stop()
	select {
	case <-tm.C:
		return nil
	case <-c.changed:
		return nil
	case <-pp.l.done:
		return errLinkClosed
	}
}

// process passes ch through the active toxics from index i on, then
// writes it to the destination. A toxic may split, delay, drop or end.
func (pp *pipe) process(c *chain, act []*toxicState, i int, ch chunk) error {
	if i == len(act) {
		if len(ch.data) == 0 {
			return nil
		}
		_, err := pp.dst.Write(ch.data)
		return err
	}
	st := act[i]
	next := func(ch chunk) error { return pp.process(c, act, i+1, ch) }
	switch a := st.t.Attributes.(type) {
	case *LatencyAttrs:
		d := a.Latency
		if a.Jitter > 0 {
			d += pp.rng.Int64N(2*a.Jitter) - a.Jitter
		}
		if err := pp.wait(c, ch.at.Add(time.Duration(d)*time.Millisecond)); err != nil {
			return err
		}
		ch.at = time.Now()
		return next(ch)
	case *BandwidthAttrs:
		return pp.bandwidth(c, st, a, ch, next)
	case *SlicerAttrs:
		return pp.slice(c, a, ch, next)
	case *BitflipAttrs:
		if len(ch.data) > 0 && (a.Rate == 0 || pp.rng.Float64() < a.Rate) {
			ch.data[pp.rng.IntN(len(ch.data))] ^= 0x01
			pp.l.p.stats.corruptedBytes.Add(1)
		}
		return next(ch)
	case *TimeoutAttrs:
		return nil // blackholed
	case *ResetPeerAttrs:
		if err := pp.wait(c, time.Now().Add(time.Duration(a.Timeout)*time.Millisecond)); err != nil {
			return err
		}
		pp.l.p.stats.resets.Add(1)
		return errLinkReset
	case *LimitDataAttrs:
		left := a.Bytes - st.sent
		if left < int64(len(ch.data)) {
			ch.data = ch.data[:max(left, 0)]
		}
		st.sent += int64(len(ch.data))
		if err := next(ch); err != nil {
			return err
		}
		if st.sent >= a.Bytes {
			return io.EOF
		}
		return nil
	}
	return next(ch) // slow_close acts at EOF only
}

// bandwidth paces bytes at Rate KB/s, in pieces of at most 100 ms worth,
// carrying the schedule across chunks so the average rate is exact.
func (pp *pipe) bandwidth(c *chain, st *toxicState, a *BandwidthAttrs, ch chunk, next func(chunk) error) error {
	if a.Rate <= 0 {
		return next(ch)
	}
	perSec := a.Rate * 1000
	piece := int(max(perSec/10, 1))
	for len(ch.data) > 0 {
		n := min(piece, len(ch.data))
		now := time.Now()
		if st.next.Before(now) {
			st.next = now
		}
		st.next = st.next.Add(time.Duration(int64(n) * int64(time.Second) / perSec))
		if err := pp.wait(c, st.next); err != nil {
			return err
		}
		if err := next(chunk{data: ch.data[:n], at: ch.at}); err != nil {
			return err
		}
		ch.data = ch.data[n:]
	}
	return nil
}

// slice cuts a chunk as Toxiproxy's slicer does: recursive halving with
// a random offset of up to SizeVariation, until pieces are near AverageSize.
func (pp *pipe) slice(c *chain, a *SlicerAttrs, ch chunk, next func(chunk) error) error {
	bounds := sliceBounds(pp.rng, a, 0, len(ch.data), nil)
	for k := 1; k < len(bounds); k += 2 {
		if err := next(chunk{data: ch.data[bounds[k-1]:bounds[k]], at: ch.at}); err != nil {
			return err
		}
		if k+1 < len(bounds) {
			if err := pp.wait(c, time.Now().Add(time.Duration(a.Delay)*time.Microsecond)); err != nil {
				return err
			}
		}
	}
	return nil
}

func sliceBounds(rng *rand.Rand, a *SlicerAttrs, start, end int, out []int) []int {
	if a.AverageSize <= 0 || (end-start)-a.AverageSize <= a.SizeVariation {
		return append(out, start, end)
	}
	mid := start + (end-start)/2
	if a.SizeVariation > 0 {
		mid += rng.IntN(a.SizeVariation*2) - a.SizeVariation
	}
	mid = min(max(mid, start+1), end-1)
	out = sliceBounds(rng, a, start, mid, out)
	return sliceBounds(rng, a, mid, end, out)
}
