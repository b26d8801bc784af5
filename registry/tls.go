package registry

import (
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"net"
	"time"

	"github.com/hashicorp/raft"
)

// This file puts the node's two channels — the HTTP API and the Raft
// transport — under mutually authenticated TLS when Config.ServerTLS is
// set: every peer and client must present a certificate from the
// cluster's CA (`bulwark ca`), so nobody else can join, vote, forge
// writes or read the catalog, and a middleman cannot change a byte.

// scheme is the URL scheme of this node's peers' HTTP APIs.
func (n *Node) scheme() string {
	if n.cfg.ServerTLS != nil {
		return "https"
	}
	return "http"
}

// validateTLS checks that the two TLS configs come as a pair.
func (c *Config) validateTLS() error {
	switch {
	case c.ServerTLS == nil && c.ClientTLS == nil:
		return nil
	case c.ServerTLS == nil || c.ClientTLS == nil:
		return errors.New("registry: set both ServerTLS and ClientTLS (a node is a server to its peers and a client of them)")
	case len(c.ServerTLS.Certificates) == 0 && c.ServerTLS.GetCertificate == nil:
		return errors.New("registry: ServerTLS has no certificate")
	case c.ServerTLS.ClientAuth != tls.RequireAndVerifyClientCert:
		return errors.New("registry: ServerTLS must require and verify client certificates (pki.Files.ServerConfig does)")
	}
	return nil
}

// tlsStream is a raft.StreamLayer over TLS: it accepts TLS connections
// on the bind address and dials peers with the client config.
type tlsStream struct {
	net.Listener
	advertise net.Addr
	client    *tls.Config
}

func (s *tlsStream) Dial(addr raft.ServerAddress, timeout time.Duration) (net.Conn, error) {
	d := &net.Dialer{Timeout: timeout}
	return tls.DialWithDialer(d, "tcp", string(addr), s.client)
}

func (s *tlsStream) Addr() net.Addr { return s.advertise }

// newTLSTransport is raft.NewTCPTransport's TLS twin.
func newTLSTransport(bind string, server, client *tls.Config, w io.Writer) (*raft.NetworkTransport, error) {
	ln, err := net.Listen("tcp", bind)
	if err != nil {
		return nil, fmt.Errorf("registry: raft transport: %w", err)
	}
	addr := ln.Addr().(*net.TCPAddr)
	if addr.IP.IsUnspecified() {
		ln.Close()
		return nil, fmt.Errorf("registry: raft transport: %s is not an address peers can reach", bind)
	}
	s := &tlsStream{Listener: tls.NewListener(ln, server), advertise: addr, client: client}
	return raft.NewNetworkTransport(s, 3, 10*time.Second, w), nil
}
