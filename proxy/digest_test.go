package proxy

import (
	"crypto/sha512"
	"encoding/base64"
	"errors"
	"strings"
	"testing"
)

func TestContentDigest(t *testing.T) {
	body := []byte(`{"hello": "world"}`)
	s512 := sha512.Sum512(body)
	both := ContentDigest(body) + ", sha-512=:" + base64.StdEncoding.EncodeToString(s512[:]) + ":"
	// The example from RFC 9530 §2: sha-256 of {"hello": "world"}.
	const rfc = "sha-256=:X48E9qOokqqrvdts8nOJRJN3OWDUoyWxBf7kbu9DBPE=:"
	tests := []struct {
		name     string
		header   string
		body     string
		parseErr bool
		noAlg    bool
		wantErr  error
	}{
		{name: "rfc example", header: rfc, body: string(body)},
		{name: "both algorithms", header: both, body: string(body)},
		{name: "with parameters and unknown alg", header: "md5=:AAAA:, " + rfc + ";x=1", body: string(body)},
		{name: "corrupted body", header: rfc, body: `{"hello": "w0rld"}`, wantErr: ErrDigestMismatch},
		{name: "one of two wrong", header: both, body: `{"hello":"world"}`, wantErr: ErrDigestMismatch},
		{name: "only unknown algorithms", header: "unixsum=:AAAA:", noAlg: true},
		{name: "not a byte sequence", header: "sha-256=abc", parseErr: true},
		{name: "bad base64", header: "sha-256=:!!!:", parseErr: true},
		{name: "wrong length", header: "sha-256=:AAAA:", parseErr: true},
		{name: "uppercase key", header: "SHA-256=:AAAA:", parseErr: true},
		{name: "empty member", header: rfc + ",,", parseErr: true},
		{name: "no value", header: "sha-256", parseErr: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			d, err := parseContentDigest(tt.header)
			if (err != nil) != tt.parseErr {
				t.Fatalf("parse error = %v, want error %v", err, tt.parseErr)
			}
			if err != nil {
				return
			}
			if d.any == tt.noAlg {
				t.Fatalf("any = %v, want %v", d.any, !tt.noAlg)
			}
			v := newVerifier(d)
			// Feed the body in pieces, as a stream would.
			for _, part := range strings.SplitAfter(tt.body, "l") {
				v.Write([]byte(part))
			}
			if err := v.check(); !errors.Is(err, tt.wantErr) || (tt.wantErr == nil && err != nil) {
				t.Fatalf("check = %v, want %v", err, tt.wantErr)
			}
		})
	}
}

func FuzzParseContentDigest(f *testing.F) {
	f.Add("sha-256=:X48E9qOokqqrvdts8nOJRJN3OWDUoyWxBf7kbu9DBPE=:")
	f.Add("sha-512=:AAAA:;a=b, md5=:x:")
	f.Add(",=:")
	f.Fuzz(func(t *testing.T, header string) {
		d, err := parseContentDigest(header)
		if err != nil {
			return
		}
		v := newVerifier(d)
		v.Write([]byte(header))
		v.check() // must not panic
	})
}
