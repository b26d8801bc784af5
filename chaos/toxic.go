package chaos

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strings"
)

// Stream directions a toxic applies to, named as in Toxiproxy.
const (
	// Upstream is the client → upstream server direction (requests).
	Upstream = "upstream"
	// Downstream is the upstream server → client direction (responses).
	Downstream = "downstream"
)

// TCP toxic types. Their names and attributes are Toxiproxy's, so its
// clients and documentation apply unchanged.
const (
	TypeLatency   = "latency"    // LatencyAttrs: delay every chunk
	TypeBandwidth = "bandwidth"  // BandwidthAttrs: cap throughput in KB/s
	TypeSlowClose = "slow_close" // SlowCloseAttrs: delay the close
	TypeTimeout   = "timeout"    // TimeoutAttrs: blackhole, close after a while (0 = never)
	TypeResetPeer = "reset_peer" // ResetPeerAttrs: TCP RST after a while
	TypeSlicer    = "slicer"     // SlicerAttrs: cut data into small delayed pieces
	TypeLimitData = "limit_data" // LimitDataAttrs: close after N bytes
	// TypeBitflip is Bulwark's own: the malicious (or broken) middleman
	// that flips bytes in the stream it relays. Toxiproxy has no such
	// toxic; its clients can still create it by name.
	TypeBitflip = "bitflip" // BitflipAttrs: flip one byte in a share of chunks
)

// HTTP toxic types, for proxies with protocol "http". They are Bulwark's
// own: Toxiproxy works below HTTP.
const (
	TypeHTTPAbort   = "http_abort"   // HTTPAbortAttrs: answer with a status without forwarding
	TypeHTTPDelay   = "http_delay"   // HTTPDelayAttrs: delay the request or the response
	TypeHTTPCorrupt = "http_corrupt" // HTTPCorruptAttrs: flip random response body bytes
	TypeHTTPHeader  = "http_header"  // HTTPHeaderAttrs: drop or set a header
)

// LatencyAttrs delays each chunk by Latency ± Jitter milliseconds (jitter
// uniform in [-Jitter, +Jitter)).
type LatencyAttrs struct {
	Latency int64 `json:"latency"`
	Jitter  int64 `json:"jitter"`
}

// BandwidthAttrs limits throughput to Rate KB/s, with Toxiproxy's unit
// (1 KB = 1000 bytes: a chunk of n bytes costs n/Rate milliseconds).
type BandwidthAttrs struct {
	Rate int64 `json:"rate"`
}

// SlowCloseAttrs delays the close of the stream by Delay milliseconds.
type SlowCloseAttrs struct {
	Delay int64 `json:"delay"`
}

// TimeoutAttrs drops all data, and closes the connection Timeout
// milliseconds after the toxic took effect; 0 keeps it open until the
// toxic is removed.
type TimeoutAttrs struct {
	Timeout int64 `json:"timeout"`
}

// ResetPeerAttrs resets the connection (TCP RST) Timeout milliseconds
// after the first data arrives while the toxic is in effect.
type ResetPeerAttrs struct {
	Timeout int64 `json:"timeout"`
}

// SlicerAttrs slices each chunk into pieces of about AverageSize ±
// SizeVariation bytes, with Delay microseconds between pieces.
type SlicerAttrs struct {
	AverageSize   int `json:"average_size"`
	SizeVariation int `json:"size_variation"`
	Delay         int `json:"delay"`
}

// LimitDataAttrs closes the connection once Bytes bytes have passed.
type LimitDataAttrs struct {
	Bytes int64 `json:"bytes"`
}

// BitflipAttrs flips one random byte (XOR 0x01) in each chunk with
// probability Rate (0..1; 0 means 1). Plain HTTP carries the damage to
// the other side, where only a Content-Digest can notice it; TLS rejects
// the record (its AEAD tag fails) and the connection breaks instead.
type BitflipAttrs struct {
	Rate float64 `json:"rate"`
}

// HTTPAbortAttrs answers with Status (default 503) and Body without
// forwarding the request.
type HTTPAbortAttrs struct {
	Status int    `json:"status"`
	Body   string `json:"body"`
}

// HTTPDelayAttrs delays the request (stream upstream) or the response
// (downstream) by Delay ± Jitter milliseconds.
type HTTPDelayAttrs struct {
	Delay  int64 `json:"delay"`
	Jitter int64 `json:"jitter"`
}

// HTTPCorruptAttrs flips Bytes random bytes (default 1) of the response
// body: the Byzantine replica. Headers are passed on as the backend sent
// them, Content-Digest (RFC 9530) included, so that the corruption is
// detectable downstream. Only the downstream stream applies.
type HTTPCorruptAttrs struct {
	Bytes int `json:"bytes"`
}

// HTTPHeaderAttrs drops (Action "drop") or sets (Action "set", the
// default when Value is not empty) the header Header on the request
// (stream upstream) or the response (downstream).
type HTTPHeaderAttrs struct {
	Header string `json:"header"`
	Action string `json:"action"`
	Value  string `json:"value"`
}

// Toxic is one fault on a proxy. Toxics are immutable once added: an update
// replaces the value, so a connection can tell whether its toxic changed.
type Toxic struct {
	// Name identifies the toxic within its proxy; default "<type>_<stream>".
	Name string
	// Type is one of the Type* constants.
	Type string
	// Stream is Upstream or Downstream (default Downstream).
	Stream string
	// Toxicity is the probability (0..1, default 1) that the toxic applies:
	// decided once per connection for TCP toxics and once per request for
	// HTTP toxics.
	Toxicity float64
	// Attributes is a pointer to the type's attribute struct
	// (*LatencyAttrs for TypeLatency, and so on).
	Attributes any
}

// wireToxic is a toxic's JSON form, Toxiproxy's field names.
type wireToxic struct {
	Name       string          `json:"name"`
	Type       string          `json:"type"`
	Stream     string          `json:"stream"`
	Toxicity   *float64        `json:"toxicity,omitempty"`
	Attributes json.RawMessage `json:"attributes,omitempty"`
}

// MarshalJSON writes the toxic with Toxiproxy's field names.
func (t *Toxic) MarshalJSON() ([]byte, error) {
	attrs, err := json.Marshal(t.Attributes)
	if err != nil {
		return nil, err
	}
	tox := t.Toxicity
	return json.Marshal(wireToxic{Name: t.Name, Type: t.Type, Stream: t.Stream, Toxicity: &tox, Attributes: attrs})
}

// UnmarshalJSON reads a toxic as a client sends it, fills in Toxiproxy's
// defaults (stream downstream, toxicity 1, name "<type>_<stream>") and
// validates it.
func (t *Toxic) UnmarshalJSON(b []byte) error {
	var w wireToxic
	if err := strictDecode(b, &w); err != nil {
		return fmt.Errorf("%w: %w", ErrInvalidToxic, err)
	}
	nt, err := toxicFromWire(w)
	if err != nil {
		return err
	}
	*t = *nt
	return nil
}

func toxicFromWire(w wireToxic) (*Toxic, error) {
	t := &Toxic{Name: w.Name, Type: w.Type, Stream: w.Stream, Toxicity: 1}
	if t.Stream == "" {
		t.Stream = Downstream
	}
	if w.Toxicity != nil {
		t.Toxicity = *w.Toxicity
	}
	if t.Name == "" {
		t.Name = t.Type + "_" + t.Stream
	}
	attrs, err := newAttrs(t.Type)
	if err != nil {
		return nil, err
	}
	if len(w.Attributes) > 0 && !bytes.Equal(bytes.TrimSpace(w.Attributes), []byte("null")) {
		if err := strictDecode(w.Attributes, attrs); err != nil {
			return nil, fmt.Errorf("%w: %s attributes: %w", ErrInvalidToxic, t.Type, err)
		}
	}
	t.Attributes = attrs
	if err := t.Validate(); err != nil {
		return nil, err
	}
	return t, nil
}

// strictDecode decodes JSON refusing unknown fields, so that a typo in an
// attribute name is an error rather than a silently absent fault.
func strictDecode(b []byte, v any) error {
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.DisallowUnknownFields()
	return dec.Decode(v)
}

// newAttrs returns a fresh attribute struct for a toxic type, with its
// defaults. A switch rather than a registry: no package-level state.
func newAttrs(typ string) (any, error) {
	switch typ {
	case TypeLatency:
		return &LatencyAttrs{}, nil
	case TypeBandwidth:
		return &BandwidthAttrs{}, nil
	case TypeSlowClose:
		return &SlowCloseAttrs{}, nil
	case TypeTimeout:
		return &TimeoutAttrs{}, nil
	case TypeResetPeer:
		return &ResetPeerAttrs{}, nil
	case TypeSlicer:
		return &SlicerAttrs{}, nil
	case TypeLimitData:
		return &LimitDataAttrs{}, nil
	case TypeBitflip:
		return &BitflipAttrs{}, nil
	case TypeHTTPAbort:
		return &HTTPAbortAttrs{Status: http.StatusServiceUnavailable}, nil
	case TypeHTTPDelay:
		return &HTTPDelayAttrs{}, nil
	case TypeHTTPCorrupt:
		return &HTTPCorruptAttrs{Bytes: 1}, nil
	case TypeHTTPHeader:
		return &HTTPHeaderAttrs{}, nil
	}
	return nil, fmt.Errorf("%w: unknown type %q", ErrInvalidToxic, typ)
}

// isHTTPType reports whether a toxic type works on HTTP proxies.
func isHTTPType(typ string) bool { return strings.HasPrefix(typ, "http_") }

// Validate checks the toxic's fields and attributes.
func (t *Toxic) Validate() error {
	if t.Name == "" || strings.ContainsAny(t.Name, "/?#") {
		return fmt.Errorf("%w: name %q must be non-empty without / ? #", ErrInvalidToxic, t.Name)
	}
	if t.Stream != Upstream && t.Stream != Downstream {
		return fmt.Errorf("%w: stream %q: want upstream or downstream", ErrInvalidToxic, t.Stream)
	}
	if !(t.Toxicity >= 0 && t.Toxicity <= 1) {
		return fmt.Errorf("%w: toxicity %v: want 0..1", ErrInvalidToxic, t.Toxicity)
	}
	if t.Type == TypeHTTPCorrupt && t.Stream != Downstream {
		return fmt.Errorf("%w: http_corrupt corrupts responses: stream must be downstream", ErrInvalidToxic)
	}
	if err := validateAttrs(t.Type, t.Attributes); err != nil {
		return fmt.Errorf("%w: %s: %w", ErrInvalidToxic, t.Type, err)
	}
	return nil
}

var errNegative = errors.New("values must not be negative")

func validateAttrs(typ string, a any) error {
	ok := true
	switch a := a.(type) {
	case *LatencyAttrs:
		ok = typ == TypeLatency && a.Latency >= 0 && a.Jitter >= 0
	case *BandwidthAttrs:
		ok = typ == TypeBandwidth && a.Rate >= 0
	case *SlowCloseAttrs:
		ok = typ == TypeSlowClose && a.Delay >= 0
	case *TimeoutAttrs:
		ok = typ == TypeTimeout && a.Timeout >= 0
	case *ResetPeerAttrs:
		ok = typ == TypeResetPeer && a.Timeout >= 0
	case *SlicerAttrs:
		ok = typ == TypeSlicer && a.AverageSize >= 0 && a.SizeVariation >= 0 && a.Delay >= 0
	case *LimitDataAttrs:
		ok = typ == TypeLimitData && a.Bytes >= 0
	case *BitflipAttrs:
		if typ != TypeBitflip || !(a.Rate >= 0 && a.Rate <= 1) {
			return fmt.Errorf("rate %v: want 0..1", a.Rate)
		}
	case *HTTPAbortAttrs:
		if typ != TypeHTTPAbort || a.Status < 100 || a.Status > 599 {
			return fmt.Errorf("status %d: want 100..599", a.Status)
		}
	case *HTTPDelayAttrs:
		ok = typ == TypeHTTPDelay && a.Delay >= 0 && a.Jitter >= 0
	case *HTTPCorruptAttrs:
		ok = typ == TypeHTTPCorrupt && a.Bytes >= 0
	case *HTTPHeaderAttrs:
		return validateHeaderAttrs(typ, a)
	default:
		return fmt.Errorf("attributes of type %T", a)
	}
	if !ok {
		return errNegative
	}
	return nil
}

func validateHeaderAttrs(typ string, a *HTTPHeaderAttrs) error {
	if typ != TypeHTTPHeader {
		return fmt.Errorf("attributes of type %T", a)
	}
	if a.Header == "" {
		return errors.New("header: required")
	}
	switch a.Action {
	case "":
		a.Action = "drop"
		if a.Value != "" {
			a.Action = "set"
		}
	case "drop", "set":
	default:
		return fmt.Errorf("action %q: want drop or set", a.Action)
	}
	return nil
}

// patched returns a copy of t with a Toxiproxy update applied: the
// attributes in patch are merged onto t's, and toxicity replaced if given.
func (t *Toxic) patched(patch []byte) (*Toxic, error) {
	var w struct {
		Toxicity   *float64        `json:"toxicity"`
		Attributes json.RawMessage `json:"attributes"`
		// Toxiproxy's clients may send the whole toxic back.
		Name   string `json:"name"`
		Type   string `json:"type"`
		Stream string `json:"stream"`
	}
	if err := strictDecode(patch, &w); err != nil {
		return nil, fmt.Errorf("%w: %w", ErrInvalidToxic, err)
	}
	cur, err := json.Marshal(t.Attributes)
	if err != nil {
		return nil, err
	}
	attrs, err := newAttrs(t.Type)
	if err != nil {
		return nil, err
	}
	if err := json.Unmarshal(cur, attrs); err != nil {
		return nil, err
	}
	if len(w.Attributes) > 0 && !bytes.Equal(bytes.TrimSpace(w.Attributes), []byte("null")) {
		if err := strictDecode(w.Attributes, attrs); err != nil {
			return nil, fmt.Errorf("%w: %s attributes: %w", ErrInvalidToxic, t.Type, err)
		}
	}
	nt := &Toxic{Name: t.Name, Type: t.Type, Stream: t.Stream, Toxicity: t.Toxicity, Attributes: attrs}
	if w.Toxicity != nil {
		nt.Toxicity = *w.Toxicity
	}
	return nt, nt.Validate()
}
