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
