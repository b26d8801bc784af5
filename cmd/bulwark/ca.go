package main

import (
	"context"
	"fmt"
	"io"
	"net"
	"strings"
	"time"

	"github.com/bulwark-go/bulwark/pki"
)

const caUsage = `Usage:
  bulwark ca init [--dir DIR] [--name "Bulwark CA"]
      create a certificate authority (ECDSA P-256): DIR/ca.pem, DIR/ca-key.pem
  bulwark ca issue NAME [--dir DIR] [--dns HOST ...] [--ip ADDR ...] [--days N]
      issue a certificate for both server and client authentication:
      DIR/NAME.pem and DIR/NAME-key.pem, signed by the CA in DIR
  bulwark ca sign-key NAME [--dir DIR]
      an Ed25519 key for signed answers (RFC 9421): DIR/NAME-sign-key.pem;
      prints the public key, for the gateway's signature_key (or the
      instance's sig-key metadata, which bulwark demo --sign-key registers)

Examples:
  bulwark ca init --dir ./pki
  bulwark ca issue gateway --dir ./pki --dns gw.internal --ip 127.0.0.1
  bulwark ca issue orders-1 --dir ./pki --dns orders-1.internal
  bulwark ca sign-key orders-1 --dir ./pki

Point each hop's tls: {cert, key, ca} at these files; every side then
requires a certificate from this CA and trusts no other.
`

const defaultPKIDir = "pki"

func runCA(_ context.Context, args []string, stdout, stderr io.Writer) error {
	if len(args) == 0 {
		fmt.Fprint(stderr, caUsage)
		return fmt.Errorf("%w: ca needs a subcommand (init or issue)", errUsage)
	}
	switch args[0] {
	case "init":
		fs := newFlagSet("ca init", stderr)
		dir := fs.String("dir", defaultPKIDir, "directory for the CA's files")
		name := fs.String("name", "Bulwark CA", "the CA's common name")
		if err := parseFlags(fs, args[1:]); err != nil {
			return err
		}
		ca, err := pki.Init(*dir, *name)
		if err != nil {
			return err
		}
		fmt.Fprintf(stdout, "CA %q created in %s (valid until %s)\n", ca.Cert.Subject.CommonName, *dir, ca.Cert.NotAfter.Format("2006-01-02"))
		return nil
	case "issue":
		if len(args) == 2 && wantsHelp(args[1:]) {
			printHelp(stdout, newFlagSet("ca issue", stdout))
			return nil
		}
		if len(args) < 2 || strings.HasPrefix(args[1], "-") {
			fmt.Fprint(stderr, caUsage)
			return fmt.Errorf("%w: ca issue needs a NAME first", errUsage)
		}
		name := args[1]
		fs := newFlagSet("ca issue", stderr)
		dir := fs.String("dir", defaultPKIDir, "directory of the CA (and where the certificate goes)")
		var dns, ips multiFlag
		fs.Var(&dns, "dns", "a DNS name the certificate is valid for (repeatable)")
		fs.Var(&ips, "ip", "an IP address the certificate is valid for (repeatable)")
		days := fs.Int("days", 365, "lifetime in days (capped at the CA's)")
		if err := parseFlags(fs, args[2:]); err != nil {
			return err
		}
		req := pki.Request{Name: name, DNS: dns}
		for _, s := range ips {
			ip := net.ParseIP(s)
			if ip == nil {
				return fmt.Errorf("%w: --ip %q is not an IP address", errUsage, s)
			}
			req.IPs = append(req.IPs, ip)
		}
		if *days <= 0 {
			return fmt.Errorf("%w: --days must be positive", errUsage)
		}
		req.Lifetime = time.Duration(*days) * 24 * time.Hour
		ca, err := pki.Load(*dir)
		if err != nil {
			return err
		}
		pair, err := ca.Issue(req)
		if err != nil {
			return err
		}
		fmt.Fprintf(stdout, "issued %s: %s and %s (valid until %s)\n", name, pki.CertFile(*dir, name), pki.KeyFile(*dir, name), pair.Leaf.NotAfter.Format("2006-01-02"))
		return nil
	case "sign-key":
		if len(args) == 2 && wantsHelp(args[1:]) {
			printHelp(stdout, newFlagSet("ca sign-key", stdout))
			return nil
		}
		if len(args) < 2 || strings.HasPrefix(args[1], "-") {
			fmt.Fprint(stderr, caUsage)
			return fmt.Errorf("%w: ca sign-key needs a NAME first", errUsage)
		}
		fs := newFlagSet("ca sign-key", stderr)
		dir := fs.String("dir", defaultPKIDir, "directory for the key")
		if err := parseFlags(fs, args[2:]); err != nil {
			return err
		}
		pub, err := pki.NewSigningKey(*dir, args[1])
		if err != nil {
			return err
		}
		fmt.Fprintf(stdout, "wrote %s\npublic key: %s\n", pki.SigningKeyFile(*dir, args[1]), pub)
		return nil
	case "help", "--help", "-h":
		fmt.Fprint(stdout, caUsage)
		return nil
	}
	fmt.Fprint(stderr, caUsage)
	return fmt.Errorf("%w: unknown ca subcommand %q", errUsage, args[0])
}
