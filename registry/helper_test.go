package registry

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"os/exec"
	"os/signal"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/bulwark-go/bulwark"
)

// helperEnv, when set in the environment, turns the test binary into a
// registry node process (see runHelperNode). Integration tests elsewhere
// (e2e, cmd/bulwark) can use the same re-exec trick to SIGKILL real nodes.
const helperEnv = "BULWARK_REGISTRY_HELPER"

// helperConfig is the JSON a helper node reads from helperEnv.
type helperConfig struct {
	NodeID, HTTPAddr, RaftAddr, DataDir string
	Bootstrap                           bool
	Peers                               []Peer
}

func TestMain(m *testing.M) {
	if spec := os.Getenv(helperEnv); spec != "" {
		os.Exit(runHelperNode(spec))
	}
	os.Exit(m.Run())
}

// runHelperNode runs one node until stdin closes or SIGTERM, printing
// "READY <http> <raft>" once it serves.
func runHelperNode(spec string) int {
	var hc helperConfig
	if err := json.Unmarshal([]byte(spec), &hc); err != nil {
		fmt.Fprintln(os.Stderr, "helper config:", err)
		return 2
	}
	cfg := fastConfig(hc.NodeID, hc.DataDir)
	cfg.HTTPAddr, cfg.RaftAddr, cfg.Bootstrap, cfg.Peers = hc.HTTPAddr, hc.RaftAddr, hc.Bootstrap, hc.Peers
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, os.Interrupt)
	defer stop()
	n, err := Open(ctx, cfg)
	if err != nil {
		fmt.Fprintln(os.Stderr, "open:", err)
		return 1
	}
	fmt.Printf("READY %s %s\n", n.HTTPAddr(), n.RaftAddr())
	go func() {
		io.Copy(io.Discard, os.Stdin) // parent gone or closed our stdin
		stop()
	}()
	<-ctx.Done()
	if err := n.Close(); err != nil {
		fmt.Fprintln(os.Stderr, "close:", err)
		return 1
	}
	return 0
}

// helperNode is a node in a child process.
type helperNode struct {
	cmd        *exec.Cmd
	stdin      io.Closer
	id         string
	http, raft string
}

func startHelper(t *testing.T, hc helperConfig) *helperNode {
	t.Helper()
	spec, _ := json.Marshal(hc)
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), helperEnv+"="+string(spec))
	cmd.Stderr = os.Stderr
	stdin, err := cmd.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	h := &helperNode{cmd: cmd, stdin: stdin, id: hc.NodeID}
	t.Cleanup(func() {
		stdin.Close()
		done := make(chan struct{})
		go func() { cmd.Wait(); close(done) }()
		select {
		case <-done:
		case <-time.After(5 * time.Second):
			cmd.Process.Kill()
			<-done
		}
	})
	line, err := bufio.NewReader(out).ReadString('\n')
	f := strings.Fields(line)
	if err != nil || len(f) != 3 || f[0] != "READY" {
		t.Fatalf("helper %s: %q, %v", hc.NodeID, line, err)
	}
	h.http, h.raft = f[1], f[2]
	go io.Copy(io.Discard, out)
	return h
}

func TestSIGKILLLeaderProcess(t *testing.T) {
	if testing.Short() {
		t.Skip("starts processes")
	}
	checkLeaks(t)
	first := startHelper(t, helperConfig{NodeID: "p0", DataDir: t.TempDir(), Bootstrap: true})
	nodes := []*helperNode{first}
	for i := 1; i < 3; i++ {
		nodes = append(nodes, startHelper(t, helperConfig{NodeID: fmt.Sprint("p", i), DataDir: t.TempDir(),
			Peers: []Peer{{ID: first.id, RaftAddr: first.raft, HTTPAddr: first.http}}}))
	}
	var addrs []string
	for _, n := range nodes {
		addrs = append(addrs, n.http)
	}
	c := newTestClient(t, addrs)
	ctx := t.Context()
	// Wait until all three are voters.
	deadline := time.Now().Add(10 * time.Second)
	var st StatusResponse
	for len(st.Nodes) != 3 || st.LeaderID == "" {
		if time.Now().After(deadline) {
			t.Fatalf("cluster of processes did not form: %+v", st)
		}
		st = StatusResponse{}
		c.do(ctx, "GET", "/v1/status", nil, time.Second, &st)
		time.Sleep(20 * time.Millisecond)
	}
	for i := range 5 {
		r, err := c.Register(ctx, bulwark.Instance{Service: "k", ID: fmt.Sprint("i", i), Address: "h:1"}, time.Hour)
		if err != nil {
			t.Fatal(err)
		}
		r.abandon()
	}
	var victim *helperNode
	for _, n := range nodes {
		if n.id == st.LeaderID {
			victim = n
		}
	}
	if victim == nil {
		t.Fatalf("leader %q is not one of the processes", st.LeaderID)
	}
	victim.cmd.Process.Signal(syscall.SIGKILL)
	killed := time.Now()
	for {
		wctx, cancel := context.WithTimeout(ctx, 500*time.Millisecond)
		r, err := c.Register(wctx, bulwark.Instance{Service: "k", ID: "after", Address: "h:2"}, time.Hour)
		cancel()
		if err == nil {
			r.abandon()
			break
		}
		if time.Since(killed) > 3*time.Second {
			t.Fatalf("no write accepted within 3 s of SIGKILL of the leader: %v", err)
		}
	}
	t.Logf("leader process %s SIGKILLed: writes accepted again after %v", victim.id, time.Since(killed).Round(time.Millisecond))
	insts, err := c.Instances(ctx, "k")
	if err != nil || len(insts) != 6 {
		t.Fatalf("after failover: %d instances (%v), want 6 (5 acknowledged before the kill + 1 after)", len(insts), err)
	}
}
