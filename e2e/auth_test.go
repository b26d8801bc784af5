package e2e

import (
	"bytes"
	"errors"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// TestWriteListenerWithoutAuthRefused: a write API bound to an address other
// hosts can reach, with no token configured, makes bulwark exit non-zero
// with a message saying how to configure one. (The addresses are refused
// before anything listens.)
func TestWriteListenerWithoutAuthRefused(t *testing.T) {
	dir := t.TempDir()
	tests := []struct {
		name string
		conf string
		args []string
		want []string
	}{
		{name: "run: admin on 0.0.0.0", conf: fmt.Sprintf("listeners:\n  - address: %s\nadmin:\n  address: 0.0.0.0:0\n", freeAddr(t)),
			want: []string{"admin.address 0.0.0.0:0", "admin.token", "BULWARK_ADMIN_TOKEN"}},
		{name: "run: registry on 0.0.0.0", conf: fmt.Sprintf("listeners:\n  - address: %s\nregistry:\n  http: 0.0.0.0:0\n  raft: %s\n  data_dir: %s\n  bootstrap: true\n",
			freeAddr(t), freeAddr(t), filepath.Join(dir, "reg")),
			want: []string{"0.0.0.0:0", "registry.token", "BULWARK_REGISTRY_TOKEN"}},
		{name: "up: dashboard on 0.0.0.0", args: []string{"up", "--dir", filepath.Join(dir, "up"), "--dashboard", "0.0.0.0:0"},
			want: []string{"--dashboard 0.0.0.0:0", "BULWARK_ADMIN_TOKEN"}},
	}
	for i, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			args := tt.args
			if tt.conf != "" {
				path := filepath.Join(dir, fmt.Sprintf("c%d.yaml", i))
				if err := os.WriteFile(path, []byte(tt.conf), 0o644); err != nil {
					t.Fatal(err)
				}
				args = []string{"run", "-c", path}
			}
			cmd := exec.CommandContext(t.Context(), binary, args...)
			cmd.Env = withoutTokens(os.Environ())
			var stderr bytes.Buffer
			cmd.Stderr = &stderr
			err := cmd.Run()
			var exit *exec.ExitError
			if !errors.As(err, &exit) || exit.ExitCode() == 0 {
				t.Fatalf("bulwark %v: %v, want a non-zero exit\n%s", args, err, stderr.String())
			}
			for _, w := range tt.want {
				if !strings.Contains(stderr.String(), w) {
					t.Errorf("message %q does not mention %q", stderr.String(), w)
				}
			}
		})
	}
}

func withoutTokens(env []string) []string {
	var out []string
	for _, e := range env {
		if !strings.HasPrefix(e, "BULWARK_ADMIN_TOKEN=") && !strings.HasPrefix(e, "BULWARK_REGISTRY_TOKEN=") {
			out = append(out, e)
		}
	}
	return out
}

// TestAdminWriteAuth: with BULWARK_ADMIN_TOKEN set, the admin listener's
// write APIs (delivery's dead-letter replay, the dashboard's chaos
// controls) answer 401 without the token, 403 with a wrong one or from a
// cross-origin browser page, and work with it; reads stay open.
func TestAdminWriteAuth(t *testing.T) {
	backend := start(t, "demo", "--id", "b")
	t.Setenv("BULWARK_ADMIN_TOKEN", "s3cret")
	s := newAsyncStack(t, backend.url, 3)
	base := "http://" + s.admin
	do := func(method, path string, h map[string]string) int {
		t.Helper()
		req, _ := http.NewRequest(method, base+path, strings.NewReader(`{}`))
		for k, v := range h {
			req.Header.Set(k, v)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		return resp.StatusCode
	}
	deadline := time.Now().Add(20 * time.Second)
	for {
		resp, err := http.Get(base + "/healthz")
		if err == nil {
			resp.Body.Close()
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("admin listener not up: %v", err)
		}
		time.Sleep(20 * time.Millisecond) // polling for the listener
	}
	good := map[string]string{"Authorization": "Bearer s3cret"}
	for _, path := range []string{"/api/delivery/replay", "/api/traffic"} {
		if got := do("POST", path, nil); got != 401 {
			t.Errorf("POST %s without token: %d, want 401", path, got)
		}
		if got := do("POST", path, map[string]string{"Authorization": "Bearer nope"}); got != 403 {
			t.Errorf("POST %s with a wrong token: %d, want 403", path, got)
		}
		if got := do("POST", path, map[string]string{"Authorization": "Bearer s3cret", "Sec-Fetch-Site": "cross-site"}); got != 403 {
			t.Errorf("cross-origin POST %s: %d, want 403", path, got)
		}
		if got := do("POST", path, map[string]string{"Authorization": "Bearer s3cret", "Origin": "http://evil.example"}); got != 403 {
			t.Errorf("POST %s with a foreign Origin: %d, want 403", path, got)
		}
	}
	if got := do("POST", "/api/delivery/replay", good); got != 200 {
		t.Errorf("replay with the token: %d, want 200", got)
	}
	if got := do("GET", "/api/delivery/dead", nil); got != 200 {
		t.Errorf("reading dead letters needs no token: %d, want 200", got)
	}
}
