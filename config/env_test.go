package config

import (
	"errors"
	"strings"
	"testing"
	"time"
)

const envBase = `listeners:
  - address: 127.0.0.1:8080
routes:
  - upstream: app
upstreams:
  - name: app
    endpoints: [{url: "http://127.0.0.1:9000"}]
admin:
  address: 127.0.0.1:9090
`

func TestEnvOverrides(t *testing.T) {
	env := map[string]string{
		"BULWARK_ADMIN_ADDRESS":        "0.0.0.0:9100",
		"BULWARK_ACCESS_LOG":           "true",
		"BULWARK_REGISTRY_DATA_DIR":    "/var/lib/bulwark/registry", // adds the section
		"BULWARK_REGISTRY_BOOTSTRAP":   "true",
		"BULWARK_REGISTRY_TTL":         "5s",
		"BULWARK_DELIVERY_NATS":        "nats://a:4222, nats://b:4222",
		"BULWARK_DELIVERY_MAX_BODY":    "2MiB",
		"BULWARK_DELIVERY_BACKOFF":     "1s,3s",
		"BULWARK_TRACING_EXPORTER":     "otlp-grpc",
		"BULWARK_TRACING_HEADERS":      "api-key=s3cret,tenant=t1",
		"BULWARK_TRACING_SAMPLE_RATIO": "0.25",
		"UNRELATED":                    "x",
	}
	lookup := func(k string) (string, bool) { v, ok := env[k]; return v, ok }
	f, err := parse("bulwark.yaml", []byte(envBase), lookup)
	if err != nil {
		t.Fatal(err)
	}
	if f.Admin.Address != "0.0.0.0:9100" || !f.AccessLog {
		t.Errorf("admin %q, access_log %v", f.Admin.Address, f.AccessLog)
	}
	if f.Registry == nil || f.Registry.DataDir != "/var/lib/bulwark/registry" || !f.Registry.Bootstrap || f.Registry.TTL != 5*time.Second {
		t.Errorf("registry %+v", f.Registry)
	}
	if f.Delivery == nil || strings.Join(f.Delivery.NATS, " ") != "nats://a:4222 nats://b:4222" || f.Delivery.MaxBody != 2<<20 ||
		len(f.Delivery.Backoff) != 2 || f.Delivery.Backoff[1] != 3*time.Second {
		t.Errorf("delivery %+v", f.Delivery)
	}
	if f.Tracing.Exporter != "otlp-grpc" || f.Tracing.Headers["api-key"] != "s3cret" || f.Tracing.Headers["tenant"] != "t1" || f.Tracing.SampleRatio != 0.25 {
		t.Errorf("tracing %+v", f.Tracing)
	}
	// Parse reads no environment.
	if f, err := Parse("bulwark.yaml", []byte(envBase)); err != nil || f.Admin.Address != "127.0.0.1:9090" || f.Registry != nil {
		t.Errorf("Parse applied the environment: %+v, %v", f, err)
	}
}

func TestEnvErrors(t *testing.T) {
	for _, tt := range []struct{ env, value, want string }{
		{"BULWARK_REGISTRY_TTL", "soon", "$BULWARK_REGISTRY_TTL"},
		{"BULWARK_ACCESS_LOG", "maybe", "$BULWARK_ACCESS_LOG"},
		{"BULWARK_DELIVERY_REPLICAS", "2", "delivery.replicas"}, // valid YAML, invalid config: validated after
		{"BULWARK_TRACING_EXPORTER", "zipkin", "tracing.exporter"},
	} {
		lookup := func(k string) (string, bool) {
			if k == tt.env {
				return tt.value, true
			}
			if k == "BULWARK_DELIVERY_DATA_DIR" {
				return "/tmp/d", true
			}
			return "", false
		}
		_, err := parse("bulwark.yaml", []byte(envBase), lookup)
		if !errors.Is(err, ErrInvalid) || !strings.Contains(err.Error(), tt.want) {
			t.Errorf("%s=%s: error %v, want one naming %s", tt.env, tt.value, err, tt.want)
		}
	}
}

// FuzzEnvOverride: any value in any BULWARK_* variable gives a valid
// config or an error, never a panic.
func FuzzEnvOverride(f *testing.F) {
	f.Add(0, "0.0.0.0:9100")
	f.Add(8, "5s")
	f.Add(13, "nats://a:4222,,nats://b:4222")
	f.Add(23, "a=b,=c,d")
	f.Add(16, "1s,x")
	keys := EnvNames()
	f.Fuzz(func(t *testing.T, i int, v string) {
		if i < 0 {
			i = -i
		}
		k := keys[i%len(keys)]
		lookup := func(name string) (string, bool) {
			if name == k {
				return v, true
			}
			return "", false
		}
		file, err := parse("bulwark.yaml", []byte(envBase), lookup)
		if (file == nil) == (err == nil) {
			t.Fatalf("%s=%q: file %v, err %v", k, v, file, err)
		}
	})
}
