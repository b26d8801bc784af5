package config

import (
	"errors"
	"os"
	"strings"
	"testing"
)

func TestLoadValid(t *testing.T) {
	f, err := Load("testdata/valid.yaml")
	if err != nil {
		t.Fatal(err)
	}
	if len(f.Routes) != 2 || len(f.Upstreams) != 2 || f.Upstreams[0].Endpoints[1].Weight != 2 {
		t.Fatalf("parsed %+v", f)
	}
	if got := f.Routes[0].Retries.MaxBody; got != 64<<10 {
		t.Errorf("max_body = %d, want 64KiB", got)
	}
	if f.Admin.Address != "127.0.0.1:9090" {
		t.Errorf("admin = %q", f.Admin.Address)
	}
}

func TestInvalidGolden(t *testing.T) {
	_, err := Load("testdata/invalid.yaml")
	if !errors.Is(err, ErrInvalid) {
		t.Fatalf("err = %v, want ErrInvalid", err)
	}
	want, _ := os.ReadFile("testdata/invalid.golden")
	if got := err.Error() + "\n"; got != string(want) {
		t.Errorf("errors differ from testdata/invalid.golden:\n got:\n%s\nwant:\n%s", got, want)
	}
}

func TestParseErrors(t *testing.T) {
	tests := []struct {
		name, yaml, want string
	}{
		{"unknown key", "listeners:\n  - address: \":80\"\n    adress: x\n", `c.yaml:3: unknown key "adress"`},
		{"bad duration", "routes:\n  - upstream: a\n    timeouts:\n      total: 5 sec\n", "c.yaml:4: cannot unmarshal"},
		{"bad size", "routes:\n  - upstream: a\n    retries:\n      max_body: 3 parsecs\n", `c.yaml:4: invalid size "3 parsecs"`},
		{"syntax", "routes: [\n", "c.yaml:"},
		{"missing upstream", "upstreams:\n  - name: a\n", "c.yaml:2: upstreams[0].endpoints: no endpoints"},
		{"delivery cluster without names", "delivery:\n  data_dir: /tmp/d\n  cluster:\n    listen: 127.0.0.1:6222\n", "delivery.cluster: a cluster member needs name"},
		{"delivery cluster bad listen", "delivery:\n  data_dir: /tmp/d\n  cluster:\n    name: c\n    server_name: a\n    listen: nowhere\n", `delivery.cluster.listen: "nowhere" is not host:port`},
		{"https without cert", "upstreams:\n  - name: a\n    discover: a\nlisteners:\n  - address: \":443\"\n    protocol: https\n", "c.yaml:5: listeners[0].cert_file: https needs"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := Parse("c.yaml", []byte(tt.yaml))
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("err = %v, want it to contain %q", err, tt.want)
			}
		})
	}
}

func FuzzParse(f *testing.F) {
	for _, name := range []string{"testdata/valid.yaml", "testdata/invalid.yaml"} {
		b, err := os.ReadFile(name)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
	}
	f.Add([]byte("routes: [{upstream: a, retries: {on: [5xx]}}]"))
	f.Fuzz(func(t *testing.T, data []byte) {
		cfg, err := Parse("fuzz.yaml", data)
		if err == nil && cfg == nil {
			t.Fatal("nil config without an error")
		}
		if err != nil && !errors.Is(err, ErrInvalid) {
			t.Fatalf("error does not wrap ErrInvalid: %v", err)
		}
	})
}

// TestExamplesValidate keeps the shipped example config true.
func TestExamplesValidate(t *testing.T) {
	if _, err := Load("../examples/bulwark.yaml"); err != nil {
		t.Fatal(err)
	}
}
