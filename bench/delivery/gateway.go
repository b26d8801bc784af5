package main

import (
	"bytes"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"syscall"
	"time"
)

// gateway is one `bulwark run` process with an async route to the
// recorder and embedded delivery in its own data directory.
type gateway struct {
	cmd  *exec.Cmd
	url  string
	logf string
	done chan error
}

const configTemplate = `listeners:
  - address: %s
routes:
  - name: writes
    match: {path_prefix: /write, methods: [POST]}
    upstream: backend
    async: true
upstreams:
  - name: backend
    endpoints: [{url: http://%s}]
delivery:
  data_dir: %s
  sync_always: %t
admin:
  address: %s
`

func freeAddr() (string, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", err
	}
	defer ln.Close()
	return ln.Addr().String(), nil
}

func startGateway(bin, dir, backend string, syncAlways bool, env []string) (*gateway, error) {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, err
	}
	listen, err := freeAddr()
	if err != nil {
		return nil, err
	}
	admin, err := freeAddr()
	if err != nil {
		return nil, err
	}
	conf := filepath.Join(dir, "bulwark.yaml")
	body := fmt.Sprintf(configTemplate, listen, backend, filepath.Join(dir, "data"), syncAlways, admin)
	if err := os.WriteFile(conf, []byte(body), 0o644); err != nil {
		return nil, err
	}
	g := &gateway{url: "http://" + listen, logf: filepath.Join(dir, "bulwark.log"), done: make(chan error, 1)}
	lf, err := os.Create(g.logf)
	if err != nil {
		return nil, err
	}
	g.cmd = exec.Command(bin, "run", "-c", conf)
	g.cmd.Stdout, g.cmd.Stderr = lf, lf
	g.cmd.Env = append(os.Environ(), env...)
	if err := g.cmd.Start(); err != nil {
		lf.Close()
		return nil, err
	}
	go func() { g.done <- g.cmd.Wait(); lf.Close() }()
	return g, nil
}

func (g *gateway) pid() int { return g.cmd.Process.Pid }

// waitReady posts probes until one is accepted.
func (g *gateway) waitReady(ld *loader, limit time.Duration) error {
	deadline := time.Now().Add(limit)
	for i := 0; time.Now().Before(deadline); i++ {
		s := sample{key: fmt.Sprintf("ready-%d", i)}
		ld.post(&s)
		if s.code == 202 {
			return nil
		}
		select {
		case err := <-g.done:
			return fmt.Errorf("bulwark exited: %v (log %s)", err, g.logf)
		case <-time.After(100 * time.Millisecond):
		}
	}
	return fmt.Errorf("bulwark not accepting after %v (log %s)", limit, g.logf)
}

// logErrors counts ERROR lines in the gateway's log so far.
func (g *gateway) logErrors() int {
	b, _ := os.ReadFile(g.logf)
	return bytes.Count(b, []byte("level=ERROR")) + bytes.Count(b, []byte(`"level":"ERROR"`))
}

// stop sends SIGTERM and waits (SIGKILL after 20 s).
func (g *gateway) stop() {
	g.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-g.done:
	case <-time.After(20 * time.Second):
		g.cmd.Process.Kill()
		<-g.done
	}
}
