package pki

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"os"
	"path/filepath"
)

// Files names the three files one side of an mTLS hop needs: its own
// certificate and key, and the CA that signs its peers. It is the shape
// config files use (`tls: {cert, key, ca}`).
type Files struct {
	// Cert and Key are this side's certificate and private key (PEM).
	Cert string `yaml:"cert"`
	Key  string `yaml:"key"`
	// CA is the certificate of the authority that signs the peers (PEM).
	// It replaces the system roots: only peers our CA signed are trusted.
	CA string `yaml:"ca"`
}

// FilesFor returns the file names `bulwark ca issue NAME --dir DIR` wrote.
func FilesFor(dir, name string) Files {
	return Files{Cert: CertFile(dir, name), Key: KeyFile(dir, name), CA: filepath.Join(dir, CACertFile)}
}

// Validate reports a missing file name, naming the field.
func (f Files) Validate() error {
	var errs []error
	if f.Cert == "" {
		errs = append(errs, errors.New("tls.cert: set the certificate file (bulwark ca issue writes NAME.pem)"))
	}
	if f.Key == "" {
		errs = append(errs, errors.New("tls.key: set the key file (bulwark ca issue writes NAME-key.pem)"))
	}
	if f.CA == "" {
		errs = append(errs, errors.New("tls.ca: set the CA certificate that signs the peers (ca.pem)"))
	}
	return errors.Join(errs...)
}

func (f Files) load() (tls.Certificate, *x509.CertPool, error) {
	if err := f.Validate(); err != nil {
		return tls.Certificate{}, nil, err
	}
	pair, err := tls.LoadX509KeyPair(f.Cert, f.Key)
	if err != nil {
		return tls.Certificate{}, nil, fmt.Errorf("pki: %s / %s: %w", f.Cert, f.Key, err)
	}
	caPEM, err := os.ReadFile(f.CA)
	if err != nil {
		return tls.Certificate{}, nil, fmt.Errorf("pki: %w", err)
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(caPEM) {
		return tls.Certificate{}, nil, fmt.Errorf("pki: %s holds no PEM certificate", f.CA)
	}
	return pair, pool, nil
}

// ServerConfig returns the server side of an mTLS hop: it presents its
// certificate and requires a client certificate signed by the CA. TLS 1.3
// only: every Bulwark peer speaks it, and it removes the downgrade
// surface.
func (f Files) ServerConfig() (*tls.Config, error) { return f.config(true, false) }

// ClientConfig returns the client side of an mTLS hop: it presents its
// certificate and trusts only servers the CA signed, checking their name
// (DNS or IP SAN) as usual.
func (f Files) ClientConfig() (*tls.Config, error) { return f.config(false, true) }

// MutualConfig returns one config for a peer that both accepts and dials
// (a NATS route, a Raft transport that shares a config): it presents its
// certificate, requires one from the other side, and trusts only the CA
// for both directions.
func (f Files) MutualConfig() (*tls.Config, error) { return f.config(true, true) }

// config builds a TLS 1.3 config that presents f's certificate and trusts
// f's CA as a server (requiring client certificates), a client, or both.
func (f Files) config(server, client bool) (*tls.Config, error) {
	pair, pool, err := f.load()
	if err != nil {
		return nil, err
	}
	c := &tls.Config{Certificates: []tls.Certificate{pair}, MinVersion: tls.VersionTLS13}
	if server {
		c.ClientCAs, c.ClientAuth = pool, tls.RequireAndVerifyClientCert
	}
	if client {
		c.RootCAs = pool
	}
	return c, nil
}
