package proxy

import (
	"crypto/ed25519"
	"fmt"
	"time"

	"github.com/bulwark-go/bulwark/resilience/resilienthttp"
)

// MetadataSignatureKey is the instance metadata key under which an
// instance registers its Ed25519 public key (base64), so that a gateway
// following it through the registry can check its signed answers.
const MetadataSignatureKey = "sig-key"

// DefaultSignatureMaxAge bounds a signature's age when
// Signatures.MaxAge is 0.
const DefaultSignatureMaxAge = 5 * time.Minute

// checkSignature verifies the RFC 9421 signature of a try's answer with
// the key registered for its endpoint (any keyid the answer names must be
// signed by that key: an endpoint cannot answer as another). The digest
// it covers is checked against the body by verify, as for every answer.
func (p *pool) checkSignature(t *try, m *member) error {
	key := m.sigKey.Load()
	if key == nil {
		return fmt.Errorf("%w: no signature key registered for the endpoint", resilienthttp.ErrSignatureInvalid)
	}
	_, err := resilienthttp.VerifyResponse(t.resp.StatusCode, t.resp.Header, resilienthttp.VerifyOptions{
		Key:    func(string) (ed25519.PublicKey, bool) { return *key, true },
		MaxAge: p.sigMaxAge,
	})
	return err
}
