package resilienthttp

import (
	"crypto/ed25519"
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"time"
)

// This file implements the response side of HTTP Message Signatures
// (RFC 9421) with Ed25519: an upstream signs its @status, its
// content-digest and a creation time; a gateway verifies. Content-Digest
// alone cannot stop a middleman (it rewrites the body and the digest) nor
// a box that terminates TLS in between; a signature by a key registered
// for the instance can, because nobody else holds the private key.

// Sentinel errors of VerifyResponse, for callers that branch on them.
var (
	// ErrSignatureMissing: the response carries no Signature-Input or
	// Signature, or no label covers what must be covered.
	ErrSignatureMissing = errors.New("response signature missing")
	// ErrSignatureInvalid: malformed fields, an unknown key, or a
	// signature that does not verify.
	ErrSignatureInvalid = errors.New("response signature invalid")
	// ErrSignatureExpired: the signature's created time is outside the
	// accepted window (a replayed old answer, or a clock far off).
	ErrSignatureExpired = errors.New("response signature outside its time window")
)

// SignatureLabel is the label Bulwark signs under. Verification accepts
// any label whose components and key match.
const SignatureLabel = "bulwark"

// signedComponents are what a response signature covers, in order.
var signedComponents = []string{"@status", "content-digest"}

// Signer signs responses. The zero value is not usable: Key and KeyID
// are required.
type Signer struct {
	// KeyID names the key in Signature-Input's keyid parameter; the
	// verifier looks the public key up by it (Bulwark: the instance's
	// registry metadata).
	KeyID string
	// Key is the Ed25519 private key.
	Key ed25519.PrivateKey
	// Now is the clock for the created parameter; nil means time.Now.
	Now func() time.Time
}

// Sign is server middleware that adds Content-Digest (as ContentDigest
// does) and an RFC 9421 signature over @status and content-digest to
// every response. A handler that streams (flushes early) gets neither,
// and a verifying gateway will reject it: sign only handlers that answer
// whole bodies.
func (s Signer) Sign(next http.Handler) http.Handler {
	if len(s.Key) != ed25519.PrivateKeySize || s.KeyID == "" {
		panic("resilienthttp: Signer needs an Ed25519 Key and a KeyID")
	}
	now := s.Now
	if now == nil {
		now = time.Now
	}
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		bw := newBufferedWriter(w)
		next.ServeHTTP(bw, r)
		bw.finish(func(h http.Header, status int, body []byte) {
			if h.Get("Content-Digest") == "" {
				h.Set("Content-Digest", digestValue(wantedAlg(r.Header.Get("Want-Content-Digest")), body))
			}
			params := signatureParams(now().Unix(), s.KeyID)
			base := signatureBase(status, h, signedComponents, params)
			sig := ed25519.Sign(s.Key, []byte(base))
			h.Set("Signature-Input", SignatureLabel+"="+params)
			var b strings.Builder
			b.WriteString(SignatureLabel)
			b.WriteByte('=')
			sfItem{kind: sfBytes, bytes: sig}.serialize(&b)
			h.Set("Signature", b.String())
		})
	})
}

// signatureParams serializes the inner list and parameters Bulwark signs.
func signatureParams(created int64, keyID string) string {
	items := make([]sfItem, len(signedComponents))
	for i, c := range signedComponents {
		items[i] = sfItem{kind: sfString, str: c}
	}
	var b strings.Builder
	serializeInnerList(&b, items, []sfParam{
		{key: "created", val: sfItem{kind: sfInteger, num: created}},
		{key: "keyid", val: sfItem{kind: sfString, str: keyID}},
		{key: "alg", val: sfItem{kind: sfString, str: "ed25519"}},
	})
	return b.String()
}

// signatureBase builds the signature base of RFC 9421 §2.5 for a response:
// one line per covered component, then the @signature-params line, joined
// by LF with no trailing newline. Header values are combined as HTTP
// does: trimmed, joined with ", ".
func signatureBase(status int, h http.Header, components []string, params string) string {
	var b strings.Builder
	for _, c := range components {
		b.WriteByte('"')
		b.WriteString(c)
		b.WriteString(`": `)
		if c == "@status" {
			b.WriteString(strconv.Itoa(status))
		} else {
			vals := h.Values(c)
			for i, v := range vals {
				if i > 0 {
					b.WriteString(", ")
				}
				b.WriteString(strings.TrimSpace(v))
			}
		}
		b.WriteByte('\n')
	}
	b.WriteString(`"@signature-params": `)
	b.WriteString(params)
	return b.String()
}

// VerifyOptions says what VerifyResponse accepts.
type VerifyOptions struct {
	// Key returns the public key for a keyid, or false when it is not
	// known (an instance with no registered key, or a forged id).
	Key func(keyID string) (ed25519.PublicKey, bool)
	// MaxAge bounds how old (and how far in the future, for clock drift)
	// the created parameter may be. Default 5 minutes.
	MaxAge time.Duration
	// Now is the clock; nil means time.Now.
	Now func() time.Time
}

// VerifyResponse checks a response's RFC 9421 signature: some label of
// Signature-Input must cover @status and content-digest with alg ed25519
// (or no alg) and a created time within MaxAge, and its Signature must
// verify under the key its keyid names. It returns the keyid on success.
// It does not check the body against Content-Digest: the caller does that
// as it reads the body (Bulwark's gateway always does).
func VerifyResponse(status int, h http.Header, opts VerifyOptions) (string, error) {
	inputs, sigs := h.Values("Signature-Input"), h.Values("Signature")
	if len(inputs) == 0 || len(sigs) == 0 {
		return "", ErrSignatureMissing
	}
	inMembers, err := parseSFDictionary(strings.Join(inputs, ", "))
	if err != nil {
		return "", fmt.Errorf("%w: Signature-Input: %v", ErrSignatureInvalid, err)
	}
	sigMembers, err := parseSFDictionary(strings.Join(sigs, ", "))
	if err != nil {
		return "", fmt.Errorf("%w: Signature: %v", ErrSignatureInvalid, err)
	}
	maxAge := opts.MaxAge
	if maxAge <= 0 {
		maxAge = 5 * time.Minute
	}
	now := time.Now
	if opts.Now != nil {
		now = opts.Now
	}
	var firstErr error
	for _, in := range inMembers {
		if !in.isList || !coversAll(in.list, signedComponents) {
			continue
		}
		keyID, err := verifyMember(status, h, in, sigMembers, opts.Key, maxAge, now())
		if err == nil {
			return keyID, nil
		}
		if firstErr == nil {
			firstErr = err
		}
	}
	if firstErr != nil {
		return "", firstErr
	}
	return "", fmt.Errorf("%w: no signature covers %s", ErrSignatureMissing, strings.Join(signedComponents, " and "))
}

func verifyMember(status int, h http.Header, in sfMember, sigMembers []sfMember, key func(string) (ed25519.PublicKey, bool), maxAge time.Duration, now time.Time) (string, error) {
	var sig []byte
	for _, m := range sigMembers {
		if m.key == in.key && !m.isList && m.item.kind == sfBytes {
			sig = m.item.bytes
		}
	}
	if sig == nil {
		return "", fmt.Errorf("%w: label %q has no signature", ErrSignatureMissing, in.key)
	}
	for _, it := range in.list {
		if it.str != "@status" && len(h.Values(it.str)) == 0 {
			return "", fmt.Errorf("%w: covered field %q is absent", ErrSignatureInvalid, it.str)
		}
	}
	var keyID string
	var created int64
	hasCreated := false
	for _, p := range in.params {
		switch p.key {
		case "keyid":
			if p.val.kind != sfString {
				return "", fmt.Errorf("%w: keyid is not a string", ErrSignatureInvalid)
			}
			keyID = p.val.str
		case "alg":
			if p.val.kind != sfString || p.val.str != "ed25519" {
				return "", fmt.Errorf("%w: alg %q, want ed25519", ErrSignatureInvalid, p.val.str)
			}
		case "created":
			if p.val.kind != sfInteger {
				return "", fmt.Errorf("%w: created is not an integer", ErrSignatureInvalid)
			}
			created, hasCreated = p.val.num, true
		case "expires":
			if p.val.kind != sfInteger {
				return "", fmt.Errorf("%w: expires is not an integer", ErrSignatureInvalid)
			}
			if now.Unix() > p.val.num {
				return "", fmt.Errorf("%w: expired at %d", ErrSignatureExpired, p.val.num)
			}
		}
	}
	if !hasCreated {
		return "", fmt.Errorf("%w: no created time", ErrSignatureInvalid)
	}
	if age := now.Sub(time.Unix(created, 0)); age > maxAge || age < -maxAge {
		return "", fmt.Errorf("%w: created %s ago", ErrSignatureExpired, age.Truncate(time.Second))
	}
	if key == nil {
		return "", fmt.Errorf("%w: no key lookup configured", ErrSignatureInvalid)
	}
	pub, ok := key(keyID)
	if !ok || len(pub) != ed25519.PublicKeySize {
		return "", fmt.Errorf("%w: unknown keyid %q", ErrSignatureInvalid, keyID)
	}
	components := make([]string, len(in.list))
	for i, it := range in.list {
		components[i] = it.str
	}
	var params strings.Builder
	serializeInnerList(&params, in.list, in.params)
	base := signatureBase(status, h, components, params.String())
	if !ed25519.Verify(pub, []byte(base), sig) {
		return "", fmt.Errorf("%w: signature of %q does not verify", ErrSignatureInvalid, keyID)
	}
	return keyID, nil
}

// coversAll reports whether the inner list names every component in want,
// and names only components we can reconstruct (strings: derived
// components we know, or field names).
func coversAll(list []sfItem, want []string) bool {
	for _, it := range list {
		if it.kind != sfString || strings.HasPrefix(it.str, "@") && it.str != "@status" {
			return false
		}
	}
	for _, w := range want {
		found := false
		for _, it := range list {
			if it.str == w {
				found = true
			}
		}
		if !found {
			return false
		}
	}
	return true
}
