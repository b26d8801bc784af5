package proxy

import (
	"crypto/sha256"
	"crypto/sha512"
	"crypto/subtle"
	"encoding/base64"
	"errors"
	"fmt"
	"hash"
	"strings"
	"sync"
)

// ErrDigestMismatch means an upstream's body does not match the
// Content-Digest it sent: the body was corrupted on the way or by the
// upstream itself (a Byzantine replica). The gateway never passes such a
// body to the client; it counts a failure of the endpoint and retries
// idempotent requests elsewhere.
var ErrDigestMismatch = errors.New("content-digest mismatch")

// ErrDigestMissing means a route that requires digests got a response
// without a Content-Digest the gateway can check.
var ErrDigestMissing = errors.New("content-digest missing")

// digestAlg is one algorithm of RFC 9530's Hash Algorithms registry that
// we verify. The registry's deprecated ones (md5, sha, unixsum, ...) are
// ignored, as the RFC recommends.
type digestAlg struct {
	name string
	new  func() hash.Hash
	size int
}

var digestAlgs = [...]digestAlg{
	{"sha-256", sha256.New, sha256.Size},
	{"sha-512", sha512.New, sha512.Size},
}

// contentDigest is a parsed Content-Digest field: the expected sums by
// algorithm, only for the algorithms we verify. Fixed arrays keep it off
// the heap on the hot path.
type contentDigest struct {
	sums [len(digestAlgs)][sha512.Size]byte
	has  [len(digestAlgs)]bool
	any  bool
}

// parseContentDigest parses a Content-Digest field value (RFC 9530 §2): a
// Structured Fields Dictionary (RFC 8941 §3.2) whose values are byte
// sequences, e.g. `sha-256=:X48E9q...=:, sha-512=:...:`. Unknown
// algorithms are skipped; a malformed member is an error. A known
// algorithm whose value has the wrong length is an error too, since it
// can never match.
func parseContentDigest(v string) (contentDigest, error) {
	var d contentDigest
	for member := range strings.SplitSeq(v, ",") {
		member = strings.TrimSpace(member)
		if member == "" {
			return d, errors.New("content-digest: empty dictionary member")
		}
		key, val, ok := strings.Cut(member, "=")
		if !ok {
			return d, fmt.Errorf("content-digest: member %q has no value", member)
		}
		if !isSFKey(key) {
			return d, fmt.Errorf("content-digest: invalid key %q", key)
		}
		if i := strings.IndexByte(val, ';'); i >= 0 { // parameters are allowed and ignored
			val = val[:i]
		}
		if len(val) < 2 || val[0] != ':' || val[len(val)-1] != ':' {
			return d, fmt.Errorf("content-digest: %s: value is not a byte sequence", key)
		}
		b64 := val[1 : len(val)-1]
		var sum [sha512.Size + 3]byte // room for a decoder that writes a whole quantum
		if base64.StdEncoding.DecodedLen(len(b64)) > len(sum) {
			if _, err := base64.StdEncoding.DecodeString(b64); err != nil {
				return d, fmt.Errorf("content-digest: %s: %w", key, err)
			}
			if i := algIndex(key); i >= 0 {
				return d, fmt.Errorf("content-digest: %s: too long, want %d bytes", key, digestAlgs[i].size)
			}
			continue // an unknown algorithm with a long sum
		}
		n, err := base64.StdEncoding.Decode(sum[:], []byte(b64))
		if err != nil {
			return d, fmt.Errorf("content-digest: %s: %w", key, err)
		}
		if i := algIndex(key); i >= 0 {
			if n != digestAlgs[i].size {
				return d, fmt.Errorf("content-digest: %s: %d bytes, want %d", key, n, digestAlgs[i].size)
			}
			copy(d.sums[i][:], sum[:n])
			d.has[i] = true
			d.any = true
		}
	}
	return d, nil
}

func algIndex(name string) int {
	for i, a := range digestAlgs {
		if a.name == name {
			return i
		}
	}
	return -1
}

// isSFKey reports whether k is a Structured Fields key: lcalpha or "*"
// first, then lcalpha, digits, "_", "-", "." or "*".
func isSFKey(k string) bool {
	if k == "" || !(k[0] == '*' || k[0] >= 'a' && k[0] <= 'z') {
		return false
	}
	for i := 1; i < len(k); i++ {
		c := k[i]
		if !(c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || c == '_' || c == '-' || c == '.' || c == '*') {
			return false
		}
	}
	return true
}

// verifier hashes a body as it passes and checks it against a digest.
// Verifiers and their hash states are pooled: a SHA-512 state is 200+
// bytes, and every response with a digest needs one.
type verifier struct {
	d      contentDigest
	hashes [len(digestAlgs)]hash.Hash
	states [len(digestAlgs)]hash.Hash // allocated once per pooled verifier
	sum    [sha512.Size]byte          // Sum's output: a local array would escape through the interface call
}

var verifierPool = sync.Pool{New: func() any { return new(verifier) }}

func newVerifier(d contentDigest) *verifier {
	v := verifierPool.Get().(*verifier)
	v.d = d
	for i, a := range digestAlgs {
		v.hashes[i] = nil
		if d.has[i] {
			if v.states[i] == nil {
				v.states[i] = a.new()
			}
			v.states[i].Reset()
			v.hashes[i] = v.states[i]
		}
	}
	return v
}

// release returns the verifier to the pool; it must not be used after.
func (v *verifier) release() { verifierPool.Put(v) }

// Write feeds body bytes to every hash; it never fails.
func (v *verifier) Write(p []byte) (int, error) {
	for _, h := range v.hashes {
		if h != nil {
			h.Write(p)
		}
	}
	return len(p), nil
}

// check returns ErrDigestMismatch (wrapped, naming the algorithm) when any
// verified algorithm's sum differs. Every algorithm present must match: an
// attacker who can rewrite one sum can rewrite all, but a corrupting
// replica or link is caught by any of them.
func (v *verifier) check() error {
	for i, h := range v.hashes {
		if h == nil {
			continue
		}
		size := digestAlgs[i].size
		if subtle.ConstantTimeCompare(h.Sum(v.sum[:0]), v.d.sums[i][:size]) != 1 {
			return fmt.Errorf("%s: %w", digestAlgs[i].name, ErrDigestMismatch)
		}
	}
	return nil
}

// ContentDigest returns a Content-Digest field value with the SHA-256 of
// body, for backends (and tests) that want to protect their responses.
func ContentDigest(body []byte) string {
	sum := sha256.Sum256(body)
	return "sha-256=:" + base64.StdEncoding.EncodeToString(sum[:]) + ":"
}
