package experiment

import (
	"errors"
	"flag"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

var update = flag.Bool("update", false, "rewrite golden files")

func TestLoadValid(t *testing.T) {
	e, err := Load("testdata/valid.yaml")
	if err != nil {
		t.Fatal(err)
	}
	checks := []struct {
		name      string
		got, want any
	}{
		{"target", e.Target, "http://127.0.0.1:8080"},
		{"rate", e.Load.Rate, 50.0},
		{"duration", e.Load.Duration, 30 * time.Second},
		{"paths", len(e.Load.Paths), 2},
		{"status", e.Load.Expect.Status[0], 200},
		{"digest", e.Load.Expect.Body.Digest, true},
		{"success ratio", *e.Hypothesis.SuccessRatio, 0.99},
		{"p99", e.Hypothesis.P99, 300 * time.Millisecond},
		{"window default", e.Hypothesis.Window, time.Second},
		{"method", len(e.Method), 5},
		{"add toxic api default", e.Method[0].AddToxic.API, "http://127.0.0.1:8474"},
		{"latency attr", e.Method[0].AddToxic.Attributes["latency"], 400},
		{"at", *e.Method[1].At, 10 * time.Second},
		{"http method default", e.Method[2].HTTP.Method, "POST"},
		{"wait name default", e.Method[3].Name, "wait"},
		{"run", strings.Join(e.Method[4].Run, " "), "echo killed"},
		{"run timeout default", e.Method[4].Timeout, 30 * time.Second},
		{"rollbacks", len(e.Rollbacks), 2},
		{"subject", e.Method[0].subject(), "replica-1/slow"},
	}
	for _, c := range checks {
		if c.got != c.want {
			t.Errorf("%s = %v, want %v", c.name, c.got, c.want)
		}
	}
}

// TestInvalidGolden checks the messages for invalid files against golden
// files: each names file:line and says what to write instead.
func TestInvalidGolden(t *testing.T) {
	files, err := filepath.Glob("testdata/invalid/*.yaml")
	if err != nil || len(files) == 0 {
		t.Fatalf("no testdata: %v", err)
	}
	for _, f := range files {
		t.Run(filepath.Base(f), func(t *testing.T) {
			_, err := Load(f)
			if err == nil {
				t.Fatal("Load succeeded on an invalid file")
			}
			if !errors.Is(err, ErrInvalid) {
				t.Errorf("error does not wrap ErrInvalid: %v", err)
			}
			for _, line := range strings.Split(err.Error(), "\n") {
				if !strings.HasPrefix(line, f+":") {
					t.Errorf("message without file:line: %q", line)
				}
			}
			golden := strings.TrimSuffix(f, ".yaml") + ".golden"
			got := err.Error() + "\n"
			if *update {
				if err := os.WriteFile(golden, []byte(got), 0o644); err != nil {
					t.Fatal(err)
				}
			}
			want, err := os.ReadFile(golden)
			if err != nil {
				t.Fatalf("%v (run with -update to create)", err)
			}
			if got != string(want) {
				t.Errorf("messages differ from %s:\ngot:\n%swant:\n%s", golden, got, want)
			}
		})
	}
}

func FuzzParse(f *testing.F) {
	for _, p := range []string{"testdata/valid.yaml", "testdata/invalid/bad_action.yaml", "testdata/invalid/syntax.yaml"} {
		b, err := os.ReadFile(p)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
	}
	f.Add([]byte("target: http://x:1\nload: {concurrency: 1}\n"))
	f.Fuzz(func(t *testing.T, data []byte) {
		e, err := Parse("fuzz.yaml", data)
		if err != nil {
			for _, line := range strings.Split(err.Error(), "\n") {
				if !strings.HasPrefix(line, "fuzz.yaml:") {
					t.Fatalf("message without file:line: %q", line)
				}
			}
			return
		}
		// Whatever parses is runnable: the invariants Run relies on hold.
		if e.Target == "" || (e.Load.Rate <= 0) == (e.Load.Concurrency <= 0) || len(e.Load.Paths) == 0 ||
			e.Load.Timeout <= 0 || e.Hypothesis.Window <= 0 || e.Hypothesis.SuccessRatio == nil {
			t.Fatalf("accepted an unrunnable experiment: %+v", e)
		}
		for _, a := range append(e.Method, e.Rollbacks...) {
			if a.Kind() == "" || a.Timeout <= 0 {
				t.Fatalf("accepted action %+v", a)
			}
		}
	})
}
