package delivery

import (
	"encoding/json"
	"errors"
	"fmt"

	"github.com/nats-io/nats.go"

	"github.com/bulwark-go/bulwark"
)

// hdrMessage carries a stored message's fields except the body, as one line
// of JSON; the NATS payload is the body itself. Keeping the body out of the
// JSON avoids base64 (a third larger) and scanning it on every delivery.
const hdrMessage = "Bulwark-Message"

// encode returns the header and payload that store m.
func encode(m *bulwark.Message) (nats.Header, []byte, error) {
	meta := *m
	meta.Body = nil
	b, err := json.Marshal(&meta) // escapes control characters: one header line
	if err != nil {
		return nil, nil, fmt.Errorf("delivery: encode: %w", err)
	}
	return nats.Header{hdrMessage: {string(b)}}, m.Body, nil
}

// decode is encode's inverse.
func decode(h nats.Header, data []byte) (bulwark.Message, error) {
	var m bulwark.Message
	v := h.Get(hdrMessage)
	if v == "" {
		return m, errors.New("delivery: stored message lacks its " + hdrMessage + " header")
	}
	if err := json.Unmarshal([]byte(v), &m); err != nil {
		return m, fmt.Errorf("delivery: decode: %w", err)
	}
	m.Body = data
	return m, nil
}

// storedHeader is a new header carrying only the stored message's fields,
// for copying it to another stream.
func storedHeader(h nats.Header) nats.Header {
	out := nats.Header{}
	if v := h.Values(hdrMessage); len(v) > 0 {
		out[hdrMessage] = v
	}
	return out
}
