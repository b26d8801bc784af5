package main

import (
	"bytes"
	"encoding/json"
	"strings"
	"testing"
)

func TestDecodeReplay(t *testing.T) {
	tests := []struct {
		body string
		ok   bool
	}{
		{``, true},
		{`{}`, true},
		{`{"ids":["a","b"],"upstream":"u","route":"r","limit":3}`, true},
		{`{"limit":-1}`, false},
		{`{"colour":"red"}`, false},
		{`{"ids":"a"}`, false},
		{`{} {}`, false},
		{`[`, false},
	}
	for _, tt := range tests {
		_, err := decodeReplay(strings.NewReader(tt.body))
		if (err == nil) != tt.ok {
			t.Errorf("%q: err %v, want ok=%v", tt.body, err, tt.ok)
		}
		if err != nil && !strings.Contains(err.Error(), "replay:") {
			t.Errorf("%q: error %q does not say what it is about", tt.body, err)
		}
	}
}

// FuzzReplayBody: the admin API's replay body is accepted only when it is
// a JSON object of the documented fields, and what is accepted is what was
// sent.
func FuzzReplayBody(f *testing.F) {
	for _, s := range []string{``, `{}`, `{"ids":["x"]}`, `{"limit":2,"route":"r"}`, `{"limit":-5}`, `{"x":1}`, `null`, `{} []`} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, body []byte) {
		filter, err := decodeReplay(bytes.NewReader(body))
		if err != nil {
			return
		}
		if filter.Limit < 0 {
			t.Fatalf("accepted limit %d", filter.Limit)
		}
		// Accepted input re-encodes to a body that decodes the same.
		b, _ := json.Marshal(replayRequest{IDs: filter.IDs, Upstream: filter.Upstream, Route: filter.Route, Limit: filter.Limit})
		again, err := decodeReplay(bytes.NewReader(b))
		if err != nil || again.Limit != filter.Limit || again.Route != filter.Route || again.Upstream != filter.Upstream || len(again.IDs) != len(filter.IDs) {
			t.Fatalf("round trip of %q: %+v, %v; want %+v", body, again, err, filter)
		}
	})
}
