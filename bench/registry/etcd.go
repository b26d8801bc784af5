package main

import (
	"context"
	"errors"
	"fmt"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	pb "go.etcd.io/etcd/api/v3/etcdserverpb"
	clientv3 "go.etcd.io/etcd/client/v3"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
)

// The etcd phase is the same workload against a 3-member etcd cluster
// (Debian's etcd-server): o.services × o.perService leases of o.ttl, each
// kept alive every o.every over LeaseKeepAlive streams (etcd's own
// keepalive path; the Go client's KeepAlive sends one request per lease on
// a shared stream, as here), the leader's CPU and RSS, keepalive latency,
// and a SIGKILL of the leader.

type etcdResult struct {
	Version         string    `json:"version"`
	Leases          int       `json:"leases"`
	GrantSeconds    float64   `json:"grant_seconds"`
	GrantPerSec     float64   `json:"grant_per_second"`
	WindowSeconds   float64   `json:"window_seconds"`
	SentPerS        float64   `json:"keepalives_sent_per_second"`
	KeepalivesPerS  float64   `json:"keepalives_answered_per_second"`
	KeepaliveP50ms  float64   `json:"keepalive_p50_ms"`
	KeepaliveP99ms  float64   `json:"keepalive_p99_ms"`
	KeepaliveMaxms  float64   `json:"keepalive_max_ms"`
	ExpiredSteady   int       `json:"expired_in_steady_state"`
	StreamErrors    int       `json:"stream_errors"`
	LeaderCPUCores  float64   `json:"leader_cpu_cores"`
	LeaderRSSMiB    float64   `json:"leader_rss_mib"`
	FollowerCPU     []float64 `json:"follower_cpu_cores"`
	FollowerRSSMiB  []float64 `json:"follower_rss_mib"`
	LoadAvg         string    `json:"loadavg"`
	KilledLeader    string    `json:"killed_leader"`
	WritesAgainMs   float64   `json:"kill_to_writes_again_ms"`
	ExpiredAfterKil int       `json:"expired_after_failover"`
	ObserveSeconds  float64   `json:"failover_observe_seconds"`
}

func (r etcdResult) print() {
	fmt.Printf("  etcd %s: %d leases granted in %.1f s (%.0f/s)\n", r.Version, r.Leases, r.GrantSeconds, r.GrantPerSec)
	fmt.Printf("  steady %.0f s: %.0f keepalives/s sent, %.0f/s answered, keepalive p50 %.2f p99 %.2f max %.2f ms, distinct leases expired %d, stream errors %d\n",
		r.WindowSeconds, r.SentPerS, r.KeepalivesPerS, r.KeepaliveP50ms, r.KeepaliveP99ms, r.KeepaliveMaxms, r.ExpiredSteady, r.StreamErrors)
	fmt.Printf("  leader CPU %.2f cores, RSS %.0f MiB; followers CPU %v, RSS %v MiB; load %s\n",
		r.LeaderCPUCores, r.LeaderRSSMiB, r.FollowerCPU, r.FollowerRSSMiB, r.LoadAvg)
	fmt.Printf("  kill -9 leader %s: writes again after %.0f ms; distinct leases expired over %.0f s: %d\n",
		r.KilledLeader, r.WritesAgainMs, r.ObserveSeconds, r.ExpiredAfterKil)
}

type etcdMember struct {
	name, client, peer string
	proc               *proc
}

// startEtcd starts three etcd members under dir.
func startEtcd(p *procs, dir string) ([]*etcdMember, error) {
	bin, err := exec.LookPath("etcd")
	if err != nil {
		return nil, fmt.Errorf("etcd not installed (apt-get install etcd-server): %w", err)
	}
	var ms []*etcdMember
	var initial []string
	for i := range 3 {
		c, err := freePort()
		if err != nil {
			return nil, err
		}
		pe, err := freePort()
		if err != nil {
			return nil, err
		}
		m := &etcdMember{name: fmt.Sprintf("e%d", i), client: c, peer: pe}
		ms = append(ms, m)
		initial = append(initial, m.name+"=http://"+pe)
	}
	for _, m := range ms {
		args := []string{"--name", m.name, "--data-dir", filepath.Join(dir, m.name+"-data"),
			"--listen-client-urls", "http://" + m.client, "--advertise-client-urls", "http://" + m.client,
			"--listen-peer-urls", "http://" + m.peer, "--initial-advertise-peer-urls", "http://" + m.peer,
			"--initial-cluster", strings.Join(initial, ","), "--initial-cluster-state", "new",
			"--initial-cluster-token", "regbench", "--log-level", "warn", "--logger", "zap"}
		pr, err := p.start(bin, args, filepath.Join(dir, m.name+".out"), filepath.Join(dir, m.name+".log"))
		if err != nil {
			return nil, err
		}
		m.proc = pr
	}
	return ms, nil
}

// etcdLeader returns the member that leads, asking each live one.
func etcdLeader(ctx context.Context, cli *clientv3.Client, ms []*etcdMember) (*etcdMember, string, error) {
	for _, m := range ms {
		if m.proc.exited() {
			continue
		}
		c, cancel := context.WithTimeout(ctx, 2*time.Second)
		st, err := cli.Status(c, "http://"+m.client)
		cancel()
		if err != nil {
			continue
		}
		if st.Leader == st.Header.MemberId {
			return m, st.Version, nil
		}
	}
	return nil, "", errors.New("no etcd leader")
}

// etcdStream is one keepalive stream with its in-flight requests.
type etcdStream struct {
	mu      sync.Mutex
	sent    map[int64]time.Time
	stream  pb.Lease_LeaseKeepAliveClient
	conn    *grpc.ClientConn
	member  int
	started time.Time
}

func runEtcd(ctx context.Context, p *procs, dir string, o scaleOpts) (etcdResult, error) {
	var res etcdResult
	ms, err := startEtcd(p, dir)
	if err != nil {
		return res, err
	}
	defer func() {
		for _, m := range ms {
			p.kill(m.proc, syscall.SIGKILL)
			<-m.proc.done
		}
	}()
	var eps []string
	for _, m := range ms {
		eps = append(eps, "http://"+m.client)
	}
	cli, err := clientv3.New(clientv3.Config{Endpoints: eps, DialTimeout: 5 * time.Second})
	if err != nil {
		return res, err
	}
	defer cli.Close()
	var lead *etcdMember
	for deadline := time.Now().Add(30 * time.Second); ; {
		if lead, res.Version, err = etcdLeader(ctx, cli, ms); err == nil {
			break
		}
		if time.Now().After(deadline) {
			return res, err
		}
		time.Sleep(200 * time.Millisecond)
	}

	n := o.services * o.perService
	res.Leases = n
	ttl := int64(o.ttl / time.Second)
	ids := make([]int64, n)
	granted := make([]atomic.Bool, n)
	var streamErrs, sentN atomic.Int64
	// expired holds the distinct leases etcd answered TTL 0 for (not found:
	// expired and revoked).
	var expMu sync.Mutex
	expiredSet := map[int64]bool{}
	expired := struct {
		Add   func(id int64)
		Store func()
		Load  func() int
	}{
		Add:   func(id int64) { expMu.Lock(); expiredSet[id] = true; expMu.Unlock() },
		Store: func() { expMu.Lock(); clear(expiredSet); expMu.Unlock() },
		Load:  func() int { expMu.Lock(); defer expMu.Unlock(); return len(expiredSet) },
	}
	var measuring atomic.Bool
	var lat latencies

	// Keepalive shards: shard k owns leases k, k+shards, …, on a stream to
	// the leader, as Bulwark's renewals go to its leader. (Through a
	// follower, etcd 3.4 forwards every keepalive as its own HTTP request
	// to the leader; at 10,000 leases that made most leases expire here.)
	streams := make([]*etcdStream, o.shards)
	open := func(k int, member int) error {
		conn, err := grpc.NewClient(ms[member].client, grpc.WithTransportCredentials(insecure.NewCredentials()))
		if err != nil {
			return err
		}
		st, err := pb.NewLeaseClient(conn).LeaseKeepAlive(ctx)
		if err != nil {
			conn.Close()
			return err
		}
		s := &etcdStream{sent: map[int64]time.Time{}, stream: st, conn: conn, member: member}
		if old := streams[k]; old != nil {
			old.conn.Close()
		}
		streams[k] = s
		go func() {
			for {
				r, err := st.Recv()
				if err != nil {
					return
				}
				now := time.Now()
				s.mu.Lock()
				t0, ok := s.sent[r.ID]
				delete(s.sent, r.ID)
				s.mu.Unlock()
				if r.TTL <= 0 {
					expired.Add(r.ID)
				}
				if ok && measuring.Load() {
					lat.add(now.Sub(t0))
				}
			}
		}()
		return nil
	}
	var mu sync.Mutex // guards streams[] replacement
	leaderIdx := func() int {
		if l, _, err := etcdLeader(ctx, cli, ms); err == nil {
			for i, m := range ms {
				if m == l {
					return i
				}
			}
		}
		return -1
	}
	li := leaderIdx()
	for k := range streams {
		if err := open(k, li); err != nil {
			return res, err
		}
	}
	runCtx, stop := context.WithCancel(ctx)
	var wg sync.WaitGroup
	defer func() {
		stop()
		// Closing the connections unblocks a Send held by flow control
		// (etcd not reading), so the senders can see runCtx end.
		mu.Lock()
		for _, s := range streams {
			if s != nil {
				s.conn.Close()
			}
		}
		mu.Unlock()
		wg.Wait()
	}()
	for k := range streams {
		wg.Go(func() {
			select {
			case <-runCtx.Done():
				return
			case <-time.After(time.Duration(k) * o.every / time.Duration(o.shards)):
			}
			t := time.NewTicker(o.every)
			defer t.Stop()
			for {
				mu.Lock()
				s := streams[k]
				mu.Unlock()
				for i := k; i < n; i += o.shards {
					if !granted[i].Load() {
						continue
					}
					s.mu.Lock()
					s.sent[ids[i]] = time.Now()
					s.mu.Unlock()
					if measuring.Load() {
						sentN.Add(1)
					}
					if err := s.stream.Send(&pb.LeaseKeepAliveRequest{ID: ids[i]}); err != nil {
						streamErrs.Add(1)
						// Reopen on the (new) leader and go on next tick.
						mu.Lock()
						if next := leaderIdx(); next >= 0 {
							open(k, next)
						}
						mu.Unlock()
						break
					}
				}
				select {
				case <-runCtx.Done():
					return
				case <-t.C:
				}
			}
		})
	}

	// Grant every lease, keepalives already running for what is granted.
	jobs := make(chan int, 1024)
	var gwg sync.WaitGroup
	var grantErr atomic.Int64
	t0 := time.Now()
	for range o.regWorkers {
		gwg.Go(func() {
			for i := range jobs {
				for try := 0; ; try++ {
					c, cancel := context.WithTimeout(ctx, 10*time.Second)
					r, err := cli.Grant(c, ttl)
					cancel()
					if err == nil {
						ids[i] = int64(r.ID)
						granted[i].Store(true)
						break
					}
					if try > 10 {
						grantErr.Add(1)
						break
					}
				}
			}
		})
	}
	for i := range n {
		jobs <- i
	}
	close(jobs)
	gwg.Wait()
	res.GrantSeconds = time.Since(t0).Seconds()
	res.GrantPerSec = float64(n) / res.GrantSeconds
	if g := grantErr.Load(); g > 0 {
		return res, fmt.Errorf("%d grants failed", g)
	}
	fmt.Printf("  etcd: granted %d leases in %.1f s\n", n, res.GrantSeconds)

	time.Sleep(2 * o.every)
	expired.Store()
	streamErrs.Store(0)
	lead, _, _ = etcdLeader(ctx, cli, ms)
	ticks := map[*etcdMember]int64{}
	for _, m := range ms {
		ticks[m] = cpuTicks(m.proc.cmd.Process.Pid)
	}
	measuring.Store(true)
	w0 := time.Now()
	time.Sleep(o.window)
	measuring.Store(false)
	el := time.Since(w0).Seconds()
	l := lat.take()
	res.WindowSeconds = el
	res.KeepalivesPerS = float64(len(l)) / el
	res.KeepaliveP50ms, res.KeepaliveP99ms, res.KeepaliveMaxms = ms2(pct(l, 0.5)), ms2(pct(l, 0.99)), ms2(pct(l, 1))
	res.ExpiredSteady, res.StreamErrors = expired.Load(), int(streamErrs.Load())
	res.SentPerS = float64(sentN.Load()) / el
	res.LoadAvg = loadavg()
	for _, m := range ms {
		pid := m.proc.cmd.Process.Pid
		cores := float64(cpuTicks(pid)-ticks[m]) / 100 / el
		if m == lead {
			res.LeaderCPUCores, res.LeaderRSSMiB = cores, rssMiB(pid)
		} else {
			res.FollowerCPU = append(res.FollowerCPU, round2(cores))
			res.FollowerRSSMiB = append(res.FollowerRSSMiB, float64(int(rssMiB(pid))))
		}
	}

	// Kill the leader; probe writes until one succeeds.
	if lead == nil {
		return res, errors.New("no leader before the kill")
	}
	res.KilledLeader = lead.name
	expired.Store()
	kill := time.Now()
	p.kill(lead.proc, syscall.SIGKILL)
	<-lead.proc.done
	for i := 0; ctx.Err() == nil && time.Since(kill) < 30*time.Second; i++ {
		c, cancel := context.WithTimeout(ctx, time.Second)
		_, err := cli.Put(c, fmt.Sprintf("probe-%d", i), "x")
		cancel()
		if err == nil {
			res.WritesAgainMs = ms2(time.Since(kill))
			break
		}
		time.Sleep(20 * time.Millisecond)
	}
	time.Sleep(o.failoverObserve - min(o.failoverObserve, time.Since(kill)))
	res.ObserveSeconds = time.Since(kill).Seconds()
	res.ExpiredAfterKil = expired.Load()
	return res, nil
}

func ms2(d time.Duration) float64 { return round2(ms(d)) }

// etcdAvailable reports why the etcd comparison cannot run, or nil.
func etcdAvailable() error {
	if _, err := exec.LookPath("etcd"); err != nil {
		return fmt.Errorf("etcd not installed (apt-get install etcd-server)")
	}
	return nil
}
