package bulwark

import (
	"fmt"
	"net/http"
	"time"
)

// Message is an HTTP request accepted for asynchronous delivery: the
// gateway stores it durably (package delivery), answers 202, and a worker
// later sends it through the gateway's forwarding path to Upstream.
type Message struct {
	// ID is assigned when the message is stored.
	ID string `json:"id"`
	// Route and Upstream name the gateway route that accepted it and the
	// upstream pool it is delivered to.
	Route    string `json:"route"`
	Upstream string `json:"upstream"`
	// Method, Path (with query) and Header are the request's.
	Method string      `json:"method"`
	Path   string      `json:"path"`
	Header http.Header `json:"header,omitempty"`
	Body   []byte      `json:"body,omitempty"`
	// IdempotencyKey is the client's Idempotency-Key header: the store
	// deduplicates on it, and deliveries carry it so that backends can
	// deduplicate at-least-once delivery.
	IdempotencyKey string `json:"idempotency_key,omitempty"`
	// OrderKey, when set, orders delivery among messages with the same key.
	OrderKey string `json:"order_key,omitempty"`
	// Accepted is when the message was stored.
	Accepted time.Time `json:"accepted"`
}

// DeliveryState is where an asynchronous message stands. The values are
// stable: new states are appended.
type DeliveryState uint8

// The states of an asynchronous message.
const (
	DeliveryUnknown    DeliveryState = iota // no such message (or not yet visible)
	DeliveryQueued                          // stored, waiting for a worker
	DeliveryDelivering                      // a worker is sending it, or waiting to retry
	DeliveryDelivered                       // the backend answered with a non-retryable status
	DeliveryDead                            // moved to the dead-letter stream after max attempts
)

var deliveryNames = [...]string{"unknown", "queued", "delivering", "delivered", "dead_lettered"}

// String returns the state's name as used in the status API.
func (s DeliveryState) String() string {
	if int(s) < len(deliveryNames) {
		return deliveryNames[s]
	}
	return fmt.Sprintf("delivery(%d)", s)
}

// MarshalText implements encoding.TextMarshaler.
func (s DeliveryState) MarshalText() ([]byte, error) { return []byte(s.String()), nil }

// UnmarshalText implements encoding.TextUnmarshaler.
func (s *DeliveryState) UnmarshalText(b []byte) error {
	for i, n := range deliveryNames {
		if n == string(b) {
			*s = DeliveryState(i)
			return nil
		}
	}
	return fmt.Errorf("unknown delivery state %q", b)
}

// DeliveryStatus reports on one asynchronous message.
type DeliveryStatus struct {
	ID    string        `json:"id"`
	State DeliveryState `json:"state"`
	// Attempts counts delivery attempts so far.
	Attempts int `json:"attempts"`
	// Status is the backend's HTTP status of the last attempt (0 if none).
	Status int `json:"status,omitempty"`
	// LastError is the last attempt's error, if it failed.
	LastError string `json:"last_error,omitempty"`
	// Updated is when the status last changed.
	Updated time.Time `json:"updated"`
}
