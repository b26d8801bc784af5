package delivery

import (
	"net/http"
	"reflect"
	"testing"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/bulwark-go/bulwark"
)

func TestCodecRoundTrip(t *testing.T) {
	tests := []struct {
		name string
		m    bulwark.Message
	}{
		{"empty body", bulwark.Message{ID: "a", Upstream: "u", Method: "GET", Path: "/"}},
		{"full", bulwark.Message{ID: "k1", Route: "r", Upstream: "u", Method: "POST", Path: "/x?y=1",
			Header:         http.Header{"X-Multi": {"a", "b"}, "X-Ctl": {"line\r\nbreak\x00"}, "X-Utf8": {"ünï"}},
			Body:           []byte("\x00\xffbinary\r\n"),
			IdempotencyKey: "key:with:colons", OrderKey: "o", Accepted: time.Date(2026, 1, 2, 3, 4, 5, 6, time.UTC)}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h, data, err := encode(&tt.m)
			if err != nil {
				t.Fatal(err)
			}
			got, err := decode(storedHeader(h), data)
			if err != nil {
				t.Fatal(err)
			}
			if len(tt.m.Body) == 0 {
				got.Body = tt.m.Body // nil vs empty
			}
			if !reflect.DeepEqual(got, tt.m) {
				t.Errorf("round trip:\n got %+v\nwant %+v", got, tt.m)
			}
		})
	}
	if _, err := decode(nats.Header{}, []byte("x")); err == nil {
		t.Error("decode without header succeeded")
	}
}

// FuzzDecode: decoding what the store hands back never panics, and what
// decodes re-encodes to the same message.
func FuzzDecode(f *testing.F) {
	f.Add(`{"id":"a","upstream":"u","method":"GET","path":"/"}`, []byte("body"))
	f.Add(`{"header":{"A":["1"]}}`, []byte{})
	f.Add(`not json`, []byte(nil))
	f.Fuzz(func(t *testing.T, meta string, body []byte) {
		m, err := decode(nats.Header{hdrMessage: {meta}}, body)
		if err != nil {
			return
		}
		h, data, err := encode(&m)
		if err != nil {
			t.Fatal(err)
		}
		m2, err := decode(h, data)
		if err != nil {
			t.Fatalf("re-decode: %v", err)
		}
		if !reflect.DeepEqual(m, m2) {
			t.Fatalf("unstable: %+v vs %+v", m, m2)
		}
	})
}
