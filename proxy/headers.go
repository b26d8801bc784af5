package proxy

import (
	"net"
	"net/http"
	"net/netip"
	"strings"
)

// hopHeaders are the hop-by-hop headers of RFC 9110 §7.6.1 (and the
// de-facto Proxy-Connection and Keep-Alive): they describe one connection,
// so a proxy must not forward them.
var hopHeaders = [...]string{
	"Connection",
	"Proxy-Connection",
	"Keep-Alive",
	"Proxy-Authenticate",
	"Proxy-Authorization",
	"Te",
	"Trailer",
	"Transfer-Encoding",
	"Upgrade",
}

// removeHopHeaders deletes hop-by-hop headers from h, including those the
// Connection header names. "TE: trailers" survives on requests because
// gRPC needs it end to end.
func removeHopHeaders(h http.Header, request bool) {
	keepTE := request && teTrailers(h)
	for _, v := range h["Connection"] {
		for f := range strings.SplitSeq(v, ",") {
			if f = strings.TrimSpace(f); f != "" {
				h.Del(f)
			}
		}
	}
	for _, k := range hopHeaders {
		if _, ok := h[k]; ok {
			delete(h, k)
		}
	}
	if keepTE {
		h["Te"] = []string{"trailers"}
	}
}

func teTrailers(h http.Header) bool {
	for _, v := range h["Te"] {
		for f := range strings.SplitSeq(v, ",") {
			if strings.EqualFold(strings.TrimSpace(f), "trailers") {
				return true
			}
		}
	}
	return false
}

// isUpgrade reports whether r asks to switch protocols (WebSocket), and to
// what.
func isUpgrade(h http.Header) (string, bool) {
	for _, v := range h["Connection"] {
		for f := range strings.SplitSeq(v, ",") {
			if strings.EqualFold(strings.TrimSpace(f), "upgrade") {
				up := h.Get("Upgrade")
				return up, up != ""
			}
		}
	}
	return "", false
}

// addForwarded appends the client to X-Forwarded-For and Forwarded (RFC
// 7239) and sets X-Forwarded-Host and X-Forwarded-Proto when absent, so
// upstreams see who asked and how. out is the outgoing request's header,
// in the incoming request.
func addForwarded(out http.Header, in *http.Request) {
	proto := "http"
	if in.TLS != nil {
		proto = "https"
	}
	ip := clientIP(in)
	ipStr := "unknown"
	if ip.IsValid() {
		ipStr = ip.String()
		if prior := out["X-Forwarded-For"]; len(prior) > 0 {
			out["X-Forwarded-For"] = []string{strings.Join(prior, ", ") + ", " + ipStr}
		} else {
			out["X-Forwarded-For"] = []string{ipStr}
		}
	}
	if _, ok := out["X-Forwarded-Host"]; !ok && in.Host != "" {
		out["X-Forwarded-Host"] = []string{in.Host}
	}
	if _, ok := out["X-Forwarded-Proto"]; !ok {
		out["X-Forwarded-Proto"] = []string{proto}
	}
	var b strings.Builder
	prior := out.Get("Forwarded")
	b.Grow(len(prior) + len(ipStr) + len(in.Host) + 32)
	if prior != "" {
		b.WriteString(prior)
		b.WriteString(", ")
	}
	b.WriteString("for=")
	if ip.Is6() {
		b.WriteString(`"[` + ipStr + `]"`)
	} else {
		b.WriteString(ipStr)
	}
	if in.Host != "" && isForwardedToken(in.Host) {
		b.WriteString(";host=")
		b.WriteString(in.Host)
	} else if in.Host != "" {
		b.WriteString(`;host="`)
		b.WriteString(strings.ReplaceAll(in.Host, `"`, ``))
		b.WriteString(`"`)
	}
	b.WriteString(";proto=")
	b.WriteString(proto)
	out["Forwarded"] = []string{b.String()}
}

// isForwardedToken reports whether s can be written as an RFC 7230 token
// (otherwise it must be quoted in a Forwarded header).
func isForwardedToken(s string) bool {
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || strings.IndexByte("!#$%&'*+-.^_`|~", c) >= 0) {
			return false
		}
	}
	return s != ""
}

// clientIP is the address of the peer that sent r (not a header the client
// could forge).
func clientIP(r *http.Request) netip.Addr {
	host, _, err := net.SplitHostPort(r.RemoteAddr)
	if err != nil {
		host = r.RemoteAddr
	}
	ip, err := netip.ParseAddr(host)
	if err != nil {
		return netip.Addr{}
	}
	return ip.Unmap()
}

// skipForward is the gateway's http1.Forward.Skip: the fields of the
// client's header that outgoing would not forward as they are (the
// hop-by-hop ones, those Connection names, and X-Forwarded-For and
// Forwarded, which appendForwarded rewrites). h is the client's header.
func skipForward(h http.Header, name string) bool {
	switch name {
	case "Connection", "Proxy-Connection", "Keep-Alive", "Proxy-Authenticate", "Proxy-Authorization",
		"Te", "Trailer", "Transfer-Encoding", "Upgrade", "X-Forwarded-For", "Forwarded":
		return true
	}
	return connectionNames(h, name)
}

// connectionNames reports whether h's Connection field lists name (a hop-
// by-hop field of the client's connection).
func connectionNames(h http.Header, name string) bool {
	for _, v := range h["Connection"] {
		for v != "" {
			f := v
			if i := strings.IndexByte(v, ','); i >= 0 {
				f, v = v[:i], v[i+1:]
			} else {
				v = ""
			}
			if strings.EqualFold(strings.TrimSpace(f), name) {
				return true
			}
		}
	}
	return false
}

// forwardedValues returns the client's values of a field outgoing keeps:
// none when Connection names it.
func forwardedValues(h http.Header, name string) []string {
	vs := h[name]
	if len(vs) == 0 || connectionNames(h, name) {
		return nil
	}
	return vs
}

// appendForwarded appends to b, as field lines, what outgoing adds to or
// rewrites in the client's header on the way to an endpoint (TE:
// trailers kept, X-Forwarded-For, X-Forwarded-Host, X-Forwarded-Proto,
// Forwarded), for the fast path, where the client's header is written as
// it is minus skipForward's fields. TestForwardFastPath checks that both
// paths send the same fields.
func appendForwarded(b []byte, in *http.Request) []byte {
	h := in.Header
	if teTrailers(h) {
		b = append(b, "Te: trailers\r\n"...)
	}
	proto := "http"
	if in.TLS != nil {
		proto = "https"
	}
	ip := clientIP(in)
	if ip.IsValid() {
		b = append(b, "X-Forwarded-For: "...)
		for _, v := range forwardedValues(h, "X-Forwarded-For") {
			b = append(b, v...)
			b = append(b, ", "...)
		}
		b = ip.AppendTo(b)
		b = append(b, "\r\n"...)
	} else { // no address to add: the client's values go on as they are
		for _, v := range forwardedValues(h, "X-Forwarded-For") {
			b = append(b, "X-Forwarded-For: "...)
			b = append(b, v...)
			b = append(b, "\r\n"...)
		}
	}
	if _, ok := h["X-Forwarded-Host"]; (!ok || connectionNames(h, "X-Forwarded-Host")) && in.Host != "" {
		b = append(b, "X-Forwarded-Host: "...)
		b = append(b, in.Host...)
		b = append(b, "\r\n"...)
	}
	if _, ok := h["X-Forwarded-Proto"]; !ok || connectionNames(h, "X-Forwarded-Proto") {
		b = append(b, "X-Forwarded-Proto: "...)
		b = append(b, proto...)
		b = append(b, "\r\n"...)
	}
	b = append(b, "Forwarded: "...)
	if prior := forwardedValues(h, "Forwarded"); len(prior) > 0 && prior[0] != "" {
		b = append(b, prior[0]...)
		b = append(b, ", "...)
	}
	b = append(b, "for="...)
	switch {
	case !ip.IsValid():
		b = append(b, "unknown"...)
	case ip.Is6():
		b = append(b, `"[`...)
		b = ip.AppendTo(b)
		b = append(b, `]"`...)
	default:
		b = ip.AppendTo(b)
	}
	if in.Host != "" && isForwardedToken(in.Host) {
		b = append(b, ";host="...)
		b = append(b, in.Host...)
	} else if in.Host != "" {
		b = append(b, `;host="`...)
		for i := 0; i < len(in.Host); i++ {
			if c := in.Host[i]; c != '"' {
				b = append(b, c)
			}
		}
		b = append(b, '"')
	}
	b = append(b, ";proto="...)
	b = append(b, proto...)
	return append(b, "\r\n"...)
}
