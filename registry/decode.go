package registry

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/url"
	"strconv"
	"strings"
	"time"
)

// Input limits. They keep one registration small enough that a catalog of
// tens of thousands fits comfortably in memory and in a snapshot.
const (
	maxNameLen     = 128
	maxAddressLen  = 512
	maxMetadata    = 64
	maxMetaValue   = 512
	maxBodyBytes   = 64 << 10
	maxWait        = 5 * time.Minute
	defaultWait    = 30 * time.Second
	fieldInvalidFn = "want 1-128 of [A-Za-z0-9._-]"
)

// RegisterRequest is the body of PUT /v1/instances.
type RegisterRequest struct {
	// Service and ID name the instance: 1-128 of [A-Za-z0-9._-].
	Service string `json:"service"`
	ID      string `json:"id"`
	// Address is where the instance serves (URL or host:port), required.
	Address string `json:"address"`
	// Metadata is up to 64 labels; keys follow the name rules.
	Metadata map[string]string `json:"metadata,omitempty"`
	// HealthURL is an optional absolute http(s) URL.
	HealthURL string `json:"health_url,omitempty"`
	// TTL is the lease duration ("1s"); empty means the server default.
	TTL Duration `json:"ttl,omitzero"`
}

// FieldError is a rejected input field. It wraps ErrInvalid.
type FieldError struct {
	Field string // JSON field or query parameter name
	Msg   string
}

// Error names the field and what is wrong with it.
func (e *FieldError) Error() string { return fmt.Sprintf("invalid %s: %s", e.Field, e.Msg) }

// Unwrap makes errors.Is(err, ErrInvalid) true.
func (e *FieldError) Unwrap() error { return ErrInvalid }

// validName reports whether s is 1-128 of [A-Za-z0-9._-].
func validName(s string) bool {
	if len(s) == 0 || len(s) > maxNameLen {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '.' || c == '_' || c == '-') {
			return false
		}
	}
	return true
}

// decodeStrict decodes exactly one JSON object into v, rejecting unknown
// fields, wrong types and trailing data, and names the offending field.
func decodeStrict(r io.Reader, v any) error { return decodeStrictN(r, v, maxBodyBytes) }

// decodeStrictN is decodeStrict reading at most limit bytes.
func decodeStrictN(r io.Reader, v any, limit int64) error {
	dec := json.NewDecoder(io.LimitReader(r, limit+1))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		var te *json.UnmarshalTypeError
		var se *json.SyntaxError
		switch {
		case errors.As(err, &te):
			if te.Field == "" {
				return &FieldError{Field: "body", Msg: "want a JSON object"}
			}
			return &FieldError{Field: te.Field, Msg: "want " + te.Type.String()}
		case errors.As(err, &se):
			return &FieldError{Field: "body", Msg: "malformed JSON: " + se.Error()}
		case strings.HasPrefix(err.Error(), "json: unknown field "):
			name := strings.Trim(strings.TrimPrefix(err.Error(), "json: unknown field "), `"`)
			if name == "" {
				name = `""`
			}
			return &FieldError{Field: name, Msg: "unknown field"}
		case errors.Is(err, io.EOF):
			return &FieldError{Field: "body", Msg: "empty"}
		}
		// Errors from UnmarshalText (e.g. a bad duration) carry no field
		// name in encoding/json v1; the only text-decoded field is ttl.
		if strings.Contains(err.Error(), "time: ") {
			return &FieldError{Field: "ttl", Msg: err.Error()}
		}
		return &FieldError{Field: "body", Msg: err.Error()}
	}
	if _, err := dec.Token(); err != io.EOF {
		return &FieldError{Field: "body", Msg: "trailing data after the JSON object"}
	}
	return nil
}

// decodeRegister parses and validates a registration. minTTL, maxTTL and
// defTTL come from the node's Config.
func decodeRegister(body []byte, minTTL, maxTTL, defTTL time.Duration) (RegisterRequest, error) {
	var req RegisterRequest
	if len(body) > maxBodyBytes {
		return req, &FieldError{Field: "body", Msg: fmt.Sprintf("larger than %d bytes", maxBodyBytes)}
	}
	if err := decodeStrict(bytes.NewReader(body), &req); err != nil {
		return req, err
	}
	return req, validateRegister(&req, minTTL, maxTTL, defTTL)
}

// validateRegister checks a registration however it arrived (our JSON, or
// a Consul or Eureka translation) and fills in the default TTL.
func validateRegister(req *RegisterRequest, minTTL, maxTTL, defTTL time.Duration) error {
	if !validName(req.Service) {
		return &FieldError{Field: "service", Msg: fmt.Sprintf("%q: %s", req.Service, fieldInvalidFn)}
	}
	if !validName(req.ID) {
		return &FieldError{Field: "id", Msg: fmt.Sprintf("%q: %s", req.ID, fieldInvalidFn)}
	}
	if req.Address == "" || len(req.Address) > maxAddressLen || strings.ContainsAny(req.Address, " \t\r\n") {
		return &FieldError{Field: "address", Msg: fmt.Sprintf("want a URL or host:port of 1-%d bytes without spaces", maxAddressLen)}
	}
	if len(req.Metadata) == 0 {
		req.Metadata = nil // {} and absent mean the same
	}
	if len(req.Metadata) > maxMetadata {
		return &FieldError{Field: "metadata", Msg: fmt.Sprintf("%d entries, at most %d", len(req.Metadata), maxMetadata)}
	}
	for k, v := range req.Metadata {
		if !validName(k) {
			return &FieldError{Field: "metadata", Msg: fmt.Sprintf("key %q: %s", k, fieldInvalidFn)}
		}
		if len(v) > maxMetaValue {
			return &FieldError{Field: "metadata", Msg: fmt.Sprintf("value of %q longer than %d bytes", k, maxMetaValue)}
		}
	}
	if req.HealthURL != "" {
		u, err := url.Parse(req.HealthURL)
		if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" || len(req.HealthURL) > maxAddressLen {
			return &FieldError{Field: "health_url", Msg: "want an absolute http(s) URL"}
		}
	}
	if req.TTL == 0 {
		req.TTL = Duration(defTTL)
	}
	if ttl := time.Duration(req.TTL); ttl < minTTL || ttl > maxTTL {
		return &FieldError{Field: "ttl", Msg: fmt.Sprintf("%v: want between %v and %v", ttl, minTTL, maxTTL)}
	}
	return nil
}

// blockingParams parses ?index=N&wait=D. wait defaults to 30 s when index
// is given and is capped at 5 min.
func blockingParams(q url.Values) (index uint64, wait time.Duration, err error) {
	if s := q.Get("index"); s != "" {
		index, err = strconv.ParseUint(s, 10, 64)
		if err != nil {
			return 0, 0, &FieldError{Field: "index", Msg: "want a non-negative integer"}
		}
		wait = defaultWait
	}
	if s := q.Get("wait"); s != "" {
		wait, err = time.ParseDuration(s)
		if err != nil || wait < 0 {
			return 0, 0, &FieldError{Field: "wait", Msg: "want a duration such as 30s"}
		}
		wait = min(wait, maxWait)
	}
	return index, wait, nil
}

// minIndexParam parses ?min_index=N (0 when absent).
func minIndexParam(q url.Values) (uint64, error) {
	s := q.Get("min_index")
	if s == "" {
		return 0, nil
	}
	v, err := strconv.ParseUint(s, 10, 64)
	if err != nil {
		return 0, &FieldError{Field: "min_index", Msg: "want a non-negative integer"}
	}
	return v, nil
}
