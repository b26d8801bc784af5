package main

import (
	"bytes"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/bulwark-go/bulwark/pki"
)

func TestCACommand(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "pki")
	var out, errOut bytes.Buffer
	if err := run(t.Context(), []string{"ca", "issue", "gw", "--dir", dir}, &out, &errOut); !errors.Is(err, pki.ErrNoCA) {
		t.Fatalf("issue before init: %v, want ErrNoCA", err)
	}
	if err := run(t.Context(), []string{"ca", "init", "--dir", dir}, &out, &errOut); err != nil {
		t.Fatal(err, errOut.String())
	}
	if err := run(t.Context(), []string{"ca", "issue", "gw", "--dir", dir, "--dns", "localhost", "--ip", "127.0.0.1", "--days", "30"}, &out, &errOut); err != nil {
		t.Fatal(err, errOut.String())
	}
	if _, err := (pki.FilesFor(dir, "gw")).ServerConfig(); err != nil {
		t.Fatalf("issued files do not make a server config: %v", err)
	}
	for _, f := range []string{"ca.pem", "ca-key.pem", "gw.pem", "gw-key.pem"} {
		if _, err := os.Stat(filepath.Join(dir, f)); err != nil {
			t.Error(err)
		}
	}
	for _, args := range [][]string{
		{"ca"},
		{"ca", "issue"},
		{"ca", "issue", "x", "--dir", dir, "--ip", "not-an-ip"},
		{"ca", "frob"},
	} {
		if err := run(t.Context(), args, &out, &errOut); !errors.Is(err, errUsage) {
			t.Errorf("%v: %v, want a usage error", args, err)
		}
	}
	if !strings.Contains(out.String(), "issued gw") {
		t.Errorf("stdout: %q", out.String())
	}
}
