package bulwark

import "fmt"

// Version is the version of this build of Bulwark.
const Version = "0.1.0-dev"

// Health is where an instance stands, as seen by whoever reports it (the
// registry's leases, the gateway's probes and outlier detection). The values
// are stable: new states are appended.
type Health uint8

// The health states an instance moves through.
const (
	HealthUnknown Health = iota // not yet observed
	HealthUp                    // serving and renewing
	HealthSuspect               // missed a renewal or failing probes: route away, do not remove yet
	HealthEjected               // taken out of rotation by outlier detection for a while
	HealthDown                  // gone: lease expired, deregistered, or failing all checks
)

var healthNames = [...]string{"unknown", "up", "suspect", "ejected", "down"}

// String returns the state's lowercase name, as used in APIs and metrics.
func (h Health) String() string {
	if int(h) < len(healthNames) {
		return healthNames[h]
	}
	return fmt.Sprintf("health(%d)", h)
}

// ParseHealth parses a name returned by [Health.String].
func ParseHealth(s string) (Health, error) {
	for i, n := range healthNames {
		if n == s {
			return Health(i), nil
		}
	}
	return HealthUnknown, fmt.Errorf("unknown health state %q: want one of up, suspect, ejected, down, unknown", s)
}

// Routable reports whether a gateway should send new requests to an
// instance in this state.
func (h Health) Routable() bool { return h == HealthUp || h == HealthUnknown }

// MarshalText implements encoding.TextMarshaler.
func (h Health) MarshalText() ([]byte, error) { return []byte(h.String()), nil }

// UnmarshalText implements encoding.TextUnmarshaler.
func (h *Health) UnmarshalText(b []byte) error {
	v, err := ParseHealth(string(b))
	if err != nil {
		return err
	}
	*h = v
	return nil
}

// Instance is one running replica of a service, as registered in the
// registry and balanced over by the gateway.
type Instance struct {
	// Service is the name of the service the instance belongs to.
	Service string `json:"service"`
	// ID identifies the instance within its service.
	ID string `json:"id"`
	// Address is where it serves: a URL ("http://127.0.0.1:9001") or a
	// host:port for TCP services.
	Address string `json:"address"`
	// Metadata is free-form labels (zone, version, weight).
	Metadata map[string]string `json:"metadata,omitempty"`
	// Health is the instance's state as last reported.
	Health Health `json:"health"`
}
