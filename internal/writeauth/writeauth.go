// Package writeauth guards Bulwark's write APIs (the registry's writes, the
// gateway's and delivery's admin actions, the dashboard's chaos controls):
// unsafe requests must come from the same origin as far as a browser is
// concerned, and carry the bearer token or a verified TLS client
// certificate when one is configured. CheckListener refuses a write API on
// a non-loopback address with no authentication, so that a listener
// reachable from other machines is never open by accident; on loopback
// (`bulwark up`) no setup is needed.
package writeauth

import (
	"crypto/subtle"
	"errors"
	"fmt"
	"net"
	"net/http"
	"strings"
)

// Config is what authenticates a write. The zero value authenticates
// nothing: on loopback that is allowed, and only the cross-origin check
// applies.
type Config struct {
	// Token, when set, is required as "Authorization: Bearer <Token>" on
	// every unsafe request (POST, PUT, PATCH, DELETE, …).
	Token string
	// ClientCerts accepts, instead of the token, a request whose TLS
	// connection presented a client certificate that the listener's
	// tls.Config verified (ClientAuth: tls.RequireAndVerifyClientCert or
	// VerifyClientCertIfGiven, with ClientCAs). The listener must be TLS.
	ClientCerts bool
	// Realm names the API in WWW-Authenticate. Default "bulwark".
	Realm string
	// Deny, when set, writes refusals (status 401 or 403 and a message)
	// in the API's own error format; WWW-Authenticate is already set.
	// Default: JSON {"error": msg}.
	Deny func(w http.ResponseWriter, status int, msg string)
}

// Enabled reports whether writes are authenticated at all.
func (c Config) Enabled() bool { return c.Token != "" || c.ClientCerts }

// ErrUnauthenticated is CheckListener's error: a write API on a
// non-loopback address without authentication.
var ErrUnauthenticated = errors.New("write API reachable from other hosts without authentication")

// CheckListener returns an error when addr (host:port, as given to
// net.Listen) is not a loopback address and c authenticates nothing. what
// names the listener and howto says how to configure a token, both for the
// message.
func CheckListener(addr string, c Config, what, howto string) error {
	if c.Enabled() || Loopback(addr) {
		return nil
	}
	return fmt.Errorf("%s %s: %w: set %s (or bind it to 127.0.0.1)", what, addr, ErrUnauthenticated, howto)
}

// Loopback reports whether a listen address binds only loopback: an IP in
// 127.0.0.0/8 or ::1, or "localhost". An empty host or 0.0.0.0 binds every
// interface and is not loopback.
func Loopback(addr string) bool {
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		host = addr
	}
	if strings.EqualFold(host, "localhost") {
		return true
	}
	ip := net.ParseIP(strings.Trim(host, "[]"))
	return ip != nil && ip.IsLoopback()
}

// safe methods read; everything else is a write.
func safe(method string) bool {
	switch method {
	case http.MethodGet, http.MethodHead, http.MethodOptions, http.MethodTrace:
		return true
	}
	return false
}

// Protect wraps h: safe requests pass; unsafe ones are refused with 403
// when a browser sends them cross-origin (Sec-Fetch-Site / Origin, Go's
// http.CrossOriginProtection), with 401 when authentication is configured
// and the request carries none, and with 403 when its token is wrong.
// Errors are JSON {"error": "..."}.
func Protect(h http.Handler, c Config) http.Handler {
	realm := c.Realm
	if realm == "" {
		realm = "bulwark"
	}
	deny := c.Deny
	if deny == nil {
		deny = denyJSON
	}
	cop := http.NewCrossOriginProtection()
	cop.SetDenyHandler(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		deny(w, http.StatusForbidden, "cross-origin request refused: write APIs accept only same-origin browser requests")
	}))
	want := []byte("Bearer " + c.Token)
	auth := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if safe(r.Method) || !c.Enabled() {
			h.ServeHTTP(w, r)
			return
		}
		if c.ClientCerts && r.TLS != nil && len(r.TLS.VerifiedChains) > 0 {
			h.ServeHTTP(w, r)
			return
		}
		got := r.Header.Get("Authorization")
		if got == "" || c.Token == "" {
			w.Header().Set("WWW-Authenticate", `Bearer realm="`+realm+`"`)
			deny(w, http.StatusUnauthorized, "authentication required: send Authorization: Bearer <token>"+certHint(c))
			return
		}
		if subtle.ConstantTimeCompare([]byte(got), want) != 1 {
			deny(w, http.StatusForbidden, "wrong bearer token")
			return
		}
		h.ServeHTTP(w, r)
	})
	return cop.Handler(auth)
}

func certHint(c Config) string {
	if c.ClientCerts {
		return " or a client certificate"
	}
	return ""
}

func denyJSON(w http.ResponseWriter, code int, msg string) {
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("X-Content-Type-Options", "nosniff")
	w.WriteHeader(code)
	fmt.Fprintf(w, "{\"error\":%q}\n", msg)
}
