// Package pki is Bulwark's small certificate authority: it creates a CA,
// issues ECDSA P-256 certificates for gateways, registry nodes, upstreams
// and clients, and builds the *tls.Config of each side of a mutually
// authenticated hop.
//
// Why mTLS between hops: Content-Digest (RFC 9530) catches accidental
// corruption, but a middleman who rewrites a body can rewrite its digest
// too. TLS's record MAC makes any byte a middleman flips fail the record
// check, so the try fails, is retried on another endpoint, and the client
// never sees a modified body. Pinning our own CA (not the system roots)
// and requiring client certificates on both ends means a middleman cannot
// present a certificate either side accepts.
//
// Files live in one directory: ca.pem and ca-key.pem for the authority,
// NAME.pem and NAME-key.pem for each issued certificate. Keys are written
// with mode 0600. The package uses only the standard library.
package pki

import (
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/base64"
	"encoding/pem"
	"errors"
	"fmt"
	"io/fs"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"regexp"
	"time"
)

// Default lifetimes. A CA that outlives its leaves lets operators rotate
// leaves without touching every trust store.
const (
	DefaultCALifetime   = 10 * 365 * 24 * time.Hour
	DefaultLeafLifetime = 365 * 24 * time.Hour
)

// ErrNoCA means the directory holds no CA yet: run `bulwark ca init`.
var ErrNoCA = errors.New("pki: no CA in the directory (run `bulwark ca init --dir DIR` first)")

// ErrCAExists means Init would overwrite an existing CA.
var ErrCAExists = errors.New("pki: a CA already exists in the directory (remove ca.pem and ca-key.pem to start over)")

// File names inside a PKI directory.
const (
	CACertFile = "ca.pem"
	CAKeyFile  = "ca-key.pem"
)

// CertFile and KeyFile name the files of an issued certificate.
func CertFile(dir, name string) string { return filepath.Join(dir, name+".pem") }

// KeyFile names the private key file of an issued certificate.
func KeyFile(dir, name string) string { return filepath.Join(dir, name+"-key.pem") }

// validName keeps issued names usable as file names on every system.
var validName = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$`)

// CA is a loaded certificate authority.
type CA struct {
	Cert *x509.Certificate
	Key  *ecdsa.PrivateKey
	dir  string
	now  func() time.Time
}

// Init creates a new CA in dir (created if missing) and returns it. It
// refuses to overwrite an existing one.
func Init(dir, commonName string) (*CA, error) {
	if commonName == "" {
		commonName = "Bulwark CA"
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("pki: %w", err)
	}
	if _, err := os.Stat(filepath.Join(dir, CACertFile)); err == nil {
		return nil, ErrCAExists
	}
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, fmt.Errorf("pki: generating the CA key: %w", err)
	}
	now := time.Now()
	tmpl := &x509.Certificate{
		SerialNumber:          serial(),
		Subject:               pkix.Name{CommonName: commonName, Organization: []string{"Bulwark"}},
		NotBefore:             now.Add(-time.Hour), // tolerate clock drift between hosts
		NotAfter:              now.Add(DefaultCALifetime),
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageCRLSign | x509.KeyUsageDigitalSignature,
		BasicConstraintsValid: true,
		IsCA:                  true,
		MaxPathLenZero:        true,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		return nil, fmt.Errorf("pki: creating the CA certificate: %w", err)
	}
	if err := writePair(filepath.Join(dir, CACertFile), filepath.Join(dir, CAKeyFile), der, key); err != nil {
		return nil, err
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		return nil, fmt.Errorf("pki: %w", err)
	}
	return &CA{Cert: cert, Key: key, dir: dir, now: time.Now}, nil
}

// Load reads the CA of dir.
func Load(dir string) (*CA, error) {
	certPEM, err := os.ReadFile(filepath.Join(dir, CACertFile))
	if errors.Is(err, fs.ErrNotExist) {
		return nil, ErrNoCA
	}
	if err != nil {
		return nil, fmt.Errorf("pki: %w", err)
	}
	keyPEM, err := os.ReadFile(filepath.Join(dir, CAKeyFile))
	if err != nil {
		return nil, fmt.Errorf("pki: reading the CA key: %w", err)
	}
	pair, err := tls.X509KeyPair(certPEM, keyPEM)
	if err != nil {
		return nil, fmt.Errorf("pki: %s: %w", dir, err)
	}
	key, ok := pair.PrivateKey.(*ecdsa.PrivateKey)
	if !ok {
		return nil, fmt.Errorf("pki: %s: the CA key is not an ECDSA key", dir)
	}
	cert, err := x509.ParseCertificate(pair.Certificate[0])
	if err != nil {
		return nil, fmt.Errorf("pki: %w", err)
	}
	if !cert.IsCA {
		return nil, fmt.Errorf("pki: %s is not a CA certificate", filepath.Join(dir, CACertFile))
	}
	return &CA{Cert: cert, Key: key, dir: dir, now: time.Now}, nil
}

// Request says what to put in an issued certificate.
type Request struct {
	// Name is the certificate's common name and its file name in the
	// directory.
	Name string
	// DNS and IPs are the subject alternative names a server certificate
	// is valid for. Clients check them; a client-only certificate may
	// leave both empty.
	DNS []string
	IPs []net.IP
	// Lifetime defaults to DefaultLeafLifetime.
	Lifetime time.Duration
}

// Issue creates a key and a certificate signed by the CA, valid for both
// server and client authentication (every Bulwark hop is mutual), writes
// them as NAME.pem and NAME-key.pem and returns the pair.
func (ca *CA) Issue(req Request) (tls.Certificate, error) {
	if !validName.MatchString(req.Name) {
		return tls.Certificate{}, fmt.Errorf("pki: name %q: use letters, digits, '.', '_' or '-' (at most 64)", req.Name)
	}
	lifetime := req.Lifetime
	if lifetime <= 0 {
		lifetime = DefaultLeafLifetime
	}
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return tls.Certificate{}, fmt.Errorf("pki: generating a key: %w", err)
	}
	now := ca.now()
	notAfter := now.Add(lifetime)
	if notAfter.After(ca.Cert.NotAfter) {
		notAfter = ca.Cert.NotAfter
	}
	tmpl := &x509.Certificate{
		SerialNumber: serial(),
		Subject:      pkix.Name{CommonName: req.Name, Organization: []string{"Bulwark"}},
		DNSNames:     req.DNS,
		IPAddresses:  req.IPs,
		NotBefore:    now.Add(-time.Hour),
		NotAfter:     notAfter,
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageClientAuth},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca.Cert, &key.PublicKey, ca.Key)
	if err != nil {
		return tls.Certificate{}, fmt.Errorf("pki: signing %s: %w", req.Name, err)
	}
	if err := writePair(CertFile(ca.dir, req.Name), KeyFile(ca.dir, req.Name), der, key); err != nil {
		return tls.Certificate{}, err
	}
	leaf, err := x509.ParseCertificate(der)
	if err != nil {
		return tls.Certificate{}, fmt.Errorf("pki: %w", err)
	}
	return tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key, Leaf: leaf}, nil
}

// Pool returns a certificate pool holding only the CA: peers are trusted
// because our CA signed them, never because a public root did.
func (ca *CA) Pool() *x509.CertPool {
	p := x509.NewCertPool()
	p.AddCert(ca.Cert)
	return p
}

func serial() *big.Int {
	n, err := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 127))
	if err != nil { // crypto/rand does not fail on supported systems
		panic(err)
	}
	return n
}

func writePair(certPath, keyPath string, der []byte, key *ecdsa.PrivateKey) error {
	keyDER, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		return fmt.Errorf("pki: %w", err)
	}
	if err := os.WriteFile(keyPath, pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: keyDER}), 0o600); err != nil {
		return fmt.Errorf("pki: %w", err)
	}
	if err := os.WriteFile(certPath, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o644); err != nil {
		return fmt.Errorf("pki: %w", err)
	}
	return nil
}

// SigningKeyFile names the Ed25519 key `bulwark ca sign-key NAME` writes:
// the key an upstream signs its responses with (RFC 9421).
func SigningKeyFile(dir, name string) string { return filepath.Join(dir, name+"-sign-key.pem") }

// NewSigningKey creates an Ed25519 key pair for response signatures,
// writes the private key (PKCS#8 PEM, mode 0600) as NAME-sign-key.pem in
// dir and returns the public key in the form configs and registry
// metadata carry it: base64 of the 32 raw bytes.
func NewSigningKey(dir, name string) (string, error) {
	if !validName.MatchString(name) {
		return "", fmt.Errorf("pki: name %q: use letters, digits, '.', '_' or '-' (at most 64)", name)
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return "", fmt.Errorf("pki: %w", err)
	}
	pub, priv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		return "", fmt.Errorf("pki: %w", err)
	}
	der, err := x509.MarshalPKCS8PrivateKey(priv)
	if err != nil {
		return "", fmt.Errorf("pki: %w", err)
	}
	if err := os.WriteFile(SigningKeyFile(dir, name), pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der}), 0o600); err != nil {
		return "", fmt.Errorf("pki: %w", err)
	}
	return base64.StdEncoding.EncodeToString(pub), nil
}

// LoadSigningKey reads an Ed25519 private key written by NewSigningKey.
func LoadSigningKey(path string) (ed25519.PrivateKey, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("pki: %w", err)
	}
	blk, _ := pem.Decode(b)
	if blk == nil {
		return nil, fmt.Errorf("pki: %s holds no PEM block", path)
	}
	k, err := x509.ParsePKCS8PrivateKey(blk.Bytes)
	if err != nil {
		return nil, fmt.Errorf("pki: %s: %w", path, err)
	}
	priv, ok := k.(ed25519.PrivateKey)
	if !ok {
		return nil, fmt.Errorf("pki: %s is not an Ed25519 key", path)
	}
	return priv, nil
}

// ParsePublicKey reads a public signing key in NewSigningKey's form.
func ParsePublicKey(s string) (ed25519.PublicKey, error) {
	b, err := base64.StdEncoding.DecodeString(s)
	if err != nil || len(b) != ed25519.PublicKeySize {
		return nil, fmt.Errorf("pki: %q is not an Ed25519 public key (base64 of 32 bytes, as `bulwark ca sign-key` prints)", s)
	}
	return ed25519.PublicKey(b), nil
}

// PublicKeyString is the base64 form of an Ed25519 public key.
func PublicKeyString(k ed25519.PublicKey) string { return base64.StdEncoding.EncodeToString(k) }
