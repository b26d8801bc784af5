package resilienthttp

import (
	"crypto/ed25519"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"
)

func testKey(t testing.TB, seed byte) ed25519.PrivateKey {
	t.Helper()
	s := make([]byte, ed25519.SeedSize)
	for i := range s {
		s[i] = seed
	}
	return ed25519.NewKeyFromSeed(s)
}

// signedResponse serves body through a Signer and returns what a client got.
func signedResponse(t *testing.T, signer Signer, status int, body string) *http.Response {
	t.Helper()
	srv := httptest.NewServer(signer.Sign(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.WriteHeader(status)
		io.WriteString(w, body)
	})))
	defer srv.Close()
	resp, err := srv.Client().Get(srv.URL)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	return resp
}

func TestSignVerify(t *testing.T) {
	key := testKey(t, 1)
	other := testKey(t, 2)
	clock := time.Unix(1_800_000_000, 0)
	signer := Signer{KeyID: "orders-1", Key: key, Now: func() time.Time { return clock }}
	keys := func(id string) (ed25519.PublicKey, bool) {
		if id == "orders-1" {
			return key.Public().(ed25519.PublicKey), true
		}
		return nil, false
	}
	opts := VerifyOptions{Key: keys, Now: func() time.Time { return clock.Add(time.Second) }}

	resp := signedResponse(t, signer, 200, "the answer")
	if resp.Header.Get("Content-Digest") != sumHeader("sha-256", "the answer") {
		t.Fatalf("Sign did not add the digest: %v", resp.Header)
	}
	if !strings.HasPrefix(resp.Header.Get("Signature-Input"), `bulwark=("@status" "content-digest");created=1800000000;keyid="orders-1";alg="ed25519"`) {
		t.Fatalf("Signature-Input = %q", resp.Header.Get("Signature-Input"))
	}
	if id, err := VerifyResponse(200, resp.Header, opts); err != nil || id != "orders-1" {
		t.Fatalf("verify a good signature: %q, %v", id, err)
	}

	tests := []struct {
		name   string
		status int
		mutate func(h http.Header)
		opts   VerifyOptions
		want   error
	}{
		{name: "status changed", status: 500, want: ErrSignatureInvalid},
		{name: "digest rewritten", status: 200, mutate: func(h http.Header) {
			h.Set("Content-Digest", sumHeader("sha-256", "a lie"))
		}, want: ErrSignatureInvalid},
		{name: "digest removed", status: 200, mutate: func(h http.Header) { h.Del("Content-Digest") }, want: ErrSignatureInvalid},
		{name: "no signature", status: 200, mutate: func(h http.Header) { h.Del("Signature") }, want: ErrSignatureMissing},
		{name: "no signature input", status: 200, mutate: func(h http.Header) { h.Del("Signature-Input") }, want: ErrSignatureMissing},
		{name: "signature under another label", status: 200, mutate: func(h http.Header) {
			h.Set("Signature", strings.Replace(h.Get("Signature"), "bulwark=", "other=", 1))
		}, want: ErrSignatureMissing},
		{name: "forged with another key", status: 200, mutate: func(h http.Header) {
			forged := signedResponse(t, Signer{KeyID: "orders-1", Key: other, Now: signer.Now}, 200, "the answer")
			h.Set("Signature", forged.Header.Get("Signature"))
		}, want: ErrSignatureInvalid},
		{name: "unknown keyid", status: 200, mutate: func(h http.Header) {
			h.Set("Signature-Input", strings.Replace(h.Get("Signature-Input"), "orders-1", "orders-9", 1))
		}, want: ErrSignatureInvalid},
		{name: "covers too little", status: 200, mutate: func(h http.Header) {
			h.Set("Signature-Input", `bulwark=("@status");created=1800000000;keyid="orders-1"`)
		}, want: ErrSignatureMissing},
		{name: "another algorithm", status: 200, mutate: func(h http.Header) {
			h.Set("Signature-Input", strings.Replace(h.Get("Signature-Input"), `"ed25519"`, `"rsa-pss-sha512"`, 1))
		}, want: ErrSignatureInvalid},
		{name: "garbage", status: 200, mutate: func(h http.Header) { h.Set("Signature", "bulwark=:!!:") }, want: ErrSignatureInvalid},
		{name: "too old", status: 200, opts: VerifyOptions{Key: keys, Now: func() time.Time { return clock.Add(time.Hour) }}, want: ErrSignatureExpired},
		{name: "from the future", status: 200, opts: VerifyOptions{Key: keys, Now: func() time.Time { return clock.Add(-time.Hour) }}, want: ErrSignatureExpired},
		{name: "window set by MaxAge", status: 200, opts: VerifyOptions{Key: keys, MaxAge: time.Hour, Now: func() time.Time { return clock.Add(30 * time.Minute) }}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h := resp.Header.Clone()
			if tt.mutate != nil {
				tt.mutate(h)
			}
			o := opts
			if tt.opts.Now != nil {
				o = tt.opts
			}
			_, err := VerifyResponse(tt.status, h, o)
			if tt.want == nil && err != nil || tt.want != nil && !errors.Is(err, tt.want) {
				t.Fatalf("err = %v, want %v", err, tt.want)
			}
		})
	}
}

func FuzzVerifyResponse(f *testing.F) {
	key := testKey(f, 3)
	f.Add(`bulwark=("@status" "content-digest");created=1800000000;keyid="k";alg="ed25519"`, "bulwark=:AAAA:", "sha-256=:AAAA:")
	f.Add(`a=("x-y" "@status" "content-digest");created=1;keyid="k"`, "a=:AAAA:", "")
	f.Fuzz(func(t *testing.T, input, sig, digest string) {
		h := http.Header{}
		h.Set("Signature-Input", input)
		h.Set("Signature", sig)
		h.Set("Content-Digest", digest)
		opts := VerifyOptions{
			Key: func(string) (ed25519.PublicKey, bool) { return key.Public().(ed25519.PublicKey), true },
			Now: func() time.Time { return time.Unix(1_800_000_000, 0) },
		}
		if _, err := VerifyResponse(200, h, opts); err == nil {
			t.Fatalf("random fields verified: %q %q", input, sig)
		}
	})
}
