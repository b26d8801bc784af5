package main

import (
	"bytes"
	"errors"
	"flag"
	"os/exec"
	"strings"
	"testing"
	"time"
)

// TestHelpEveryCommand: every command answers --help on stdout with its
// usage, examples and flags (with their environment variables), and exits 0.
func TestHelpEveryCommand(t *testing.T) {
	for name := range helps {
		t.Run(name, func(t *testing.T) {
			var out, errOut bytes.Buffer
			args := append(strings.Fields(name), "--help")
			if err := run(t.Context(), args, &out, &errOut); err != nil {
				t.Fatalf("%v: %v", args, err)
			}
			for _, want := range []string{"Usage:", "Examples:", "Exit codes:"} {
				if !strings.Contains(out.String(), want) {
					t.Errorf("%v: no %q in\n%s", args, want, out.String())
				}
			}
			if errOut.Len() > 0 {
				t.Errorf("help went to stderr: %s", errOut.String())
			}
		})
	}
	for _, args := range [][]string{{"chaos", "--help"}, {"delivery", "-h"}, {"help", "proxy"}} {
		var out bytes.Buffer
		if err := run(t.Context(), args, &out, &out); err != nil || !strings.Contains(out.String(), "Usage:") {
			t.Errorf("%v: err %v, output %q", args, err, out.String())
		}
	}
}

func TestFlagsFromEnvironment(t *testing.T) {
	newFS := func() (*flag.FlagSet, *string, *time.Duration, *multiFlag) {
		fs := newFlagSet("proxy", &bytes.Buffer{})
		listen := fs.String("listen", ":8080", "")
		perTry := fs.Duration("per-try-timeout", 0, "")
		var to multiFlag
		fs.Var(&to, "to", "")
		return fs, listen, perTry, &to
	}
	t.Setenv("BULWARK_PROXY_LISTEN", "127.0.0.1:9999")
	t.Setenv("BULWARK_PROXY_PER_TRY_TIMEOUT", "250ms")
	t.Setenv("BULWARK_PROXY_TO", "http://a:1, http://b:2")
	fs, listen, perTry, to := newFS()
	if err := parseFlags(fs, nil); err != nil {
		t.Fatal(err)
	}
	if *listen != "127.0.0.1:9999" || *perTry != 250*time.Millisecond || strings.Join(*to, " ") != "http://a:1 http://b:2" {
		t.Fatalf("from the environment: listen %q, per-try %v, to %v", *listen, *perTry, *to)
	}
	fs, listen, _, _ = newFS()
	if err := parseFlags(fs, []string{"--listen", ":7000"}); err != nil || *listen != ":7000" {
		t.Fatalf("the command line must win over the environment: %q, %v", *listen, err)
	}
	t.Setenv("BULWARK_PROXY_PER_TRY_TIMEOUT", "soon")
	fs, _, _, _ = newFS()
	err := parseFlags(fs, nil)
	if !errors.Is(err, errUsage) || !strings.Contains(err.Error(), "BULWARK_PROXY_PER_TRY_TIMEOUT") {
		t.Fatalf("a bad environment value must be a usage error naming the variable, got %v", err)
	}
	for _, c := range []struct{ cmd, flag, want string }{
		{"run", "c", "BULWARK_CONFIG"}, {"up", "config", "BULWARK_CONFIG"}, {"chaos proxy", "config", "BULWARK_CHAOS_PROXY_CONFIG"},
		{"up", "dashboard", "BULWARK_UP_DASHBOARD"}, {"chaos monkey", "min-healthy", "BULWARK_CHAOS_MONKEY_MIN_HEALTHY"},
	} {
		if got := envName(c.cmd, c.flag); got != c.want {
			t.Errorf("envName(%q, %q) = %s, want %s", c.cmd, c.flag, got, c.want)
		}
	}
}

func TestVersion(t *testing.T) {
	var out bytes.Buffer
	if err := run(t.Context(), []string{"version", "-v"}, &out, &out); err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(out.String(), "bulwark ") || !strings.Contains(out.String(), "go1.") || !strings.Contains(out.String(), "commit ") {
		t.Fatalf("version output: %q", out.String())
	}
}

// TestCompletion: the scripts are valid bash and zsh (checked by the
// shells themselves where installed) and list the commands and flags.
func TestCompletion(t *testing.T) {
	for _, sh := range []string{"bash", "zsh"} {
		var out bytes.Buffer
		if err := run(t.Context(), []string{"completion", sh}, &out, &out); err != nil {
			t.Fatal(err)
		}
		for _, want := range []string{"validate", "chaos", "--per-try-timeout", "--min-healthy"} {
			if !strings.Contains(out.String(), want) {
				t.Errorf("%s completion lacks %q", sh, want)
			}
		}
		path, err := exec.LookPath(sh)
		if err != nil {
			t.Logf("%s not installed: syntax not checked", sh)
			continue
		}
		cmd := exec.Command(path, "-n")
		cmd.Stdin = &out
		if b, err := cmd.CombinedOutput(); err != nil {
			t.Errorf("%s -n: %v\n%s", sh, err, b)
		}
	}
	if sh, err := exec.LookPath("bash"); err == nil {
		// Complete "bulwark chaos monkey --min" for real.
		var script bytes.Buffer
		run(t.Context(), []string{"completion", "bash"}, &script, &script)
		test := script.String() + `
COMP_WORDS=(bulwark chaos monkey --min); COMP_CWORD=3; _bulwark; echo "${COMPREPLY[@]}"
COMP_WORDS=(bulwark val); COMP_CWORD=1; _bulwark; echo "${COMPREPLY[@]}"`
		b, err := exec.Command(sh, "-c", test).CombinedOutput()
		if err != nil || strings.TrimSpace(string(b)) != "--min-healthy\nvalidate" {
			t.Fatalf("bash completion: %v %q", err, b)
		}
	}
	if err := run(t.Context(), []string{"completion", "fish"}, &bytes.Buffer{}, &bytes.Buffer{}); !errors.Is(err, errUsage) {
		t.Fatalf("completion fish: %v, want a usage error", err)
	}
}
