package chaos

import (
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"strings"

	"github.com/bulwark-go/bulwark"
	"github.com/bulwark-go/bulwark/internal/writeauth"
)

// maxAPIBody bounds request bodies of the API.
const maxAPIBody = 1 << 20

// Handler returns the Toxiproxy-compatible HTTP API:
//
//	GET/POST /proxies, POST /populate, GET/POST/PATCH/DELETE /proxies/{proxy},
//	GET/POST /proxies/{proxy}/toxics, GET/POST/PATCH/DELETE /proxies/{proxy}/toxics/{toxic},
//	POST /reset, GET /version, and Bulwark's GET /proxies/{proxy}/stats.
//
// Errors are JSON {"error": "...", "status": N} as in Toxiproxy.
func (s *Server) Handler() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("POST /reset", s.handleReset)
	mux.HandleFunc("GET /proxies", s.handleProxyIndex)
	mux.HandleFunc("POST /proxies", s.handleProxyCreate)
	mux.HandleFunc("POST /populate", s.handlePopulate)
	mux.HandleFunc("GET /proxies/{proxy}", s.withProxy(s.handleProxyShow))
	mux.HandleFunc("POST /proxies/{proxy}", s.withProxy(s.handleProxyUpdate))
	mux.HandleFunc("PATCH /proxies/{proxy}", s.withProxy(s.handleProxyUpdate))
	mux.HandleFunc("DELETE /proxies/{proxy}", s.handleProxyDelete)
	mux.HandleFunc("GET /proxies/{proxy}/stats", s.withProxy(func(w http.ResponseWriter, _ *http.Request, p *Proxy) {
		writeJSON(w, http.StatusOK, p.Stats())
	}))
	mux.HandleFunc("GET /proxies/{proxy}/toxics", s.withProxy(func(w http.ResponseWriter, _ *http.Request, p *Proxy) {
		writeJSON(w, http.StatusOK, p.Toxics())
	}))
	mux.HandleFunc("POST /proxies/{proxy}/toxics", s.withProxy(s.handleToxicCreate))
	mux.HandleFunc("GET /proxies/{proxy}/toxics/{toxic}", s.withProxy(s.handleToxicShow))
	mux.HandleFunc("POST /proxies/{proxy}/toxics/{toxic}", s.withProxy(s.handleToxicUpdate))
	mux.HandleFunc("PATCH /proxies/{proxy}/toxics/{toxic}", s.withProxy(s.handleToxicUpdate))
	mux.HandleFunc("DELETE /proxies/{proxy}/toxics/{toxic}", s.withProxy(s.handleToxicDelete))
	mux.HandleFunc("GET /version", func(w http.ResponseWriter, _ *http.Request) {
		writeJSON(w, http.StatusOK, map[string]string{"version": bulwark.Version})
	})
	auth := writeauth.Config{Token: s.cfg.Token, Realm: "bulwark-chaos", Deny: func(w http.ResponseWriter, status int, msg string) {
		writeError(w, errors.New(msg), status)
	}}
	return stopBrowsers(writeauth.Protect(mux, auth))
}

// stopBrowsers refuses requests from browsers, as Toxiproxy does: without
// it any web page could add toxics to a proxy on localhost (CSRF).
func stopBrowsers(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if strings.HasPrefix(r.UserAgent(), "Mozilla/") {
			writeError(w, errors.New("user agent not allowed"), http.StatusForbidden)
			return
		}
		next.ServeHTTP(w, r)
	})
}

// proxyJSON is a proxy as the API shows it.
type proxyJSON struct {
	ProxyConfig
	Toxics []*Toxic `json:"toxics"`
}

func showProxy(p *Proxy) proxyJSON {
	t := p.Toxics()
	if t == nil {
		t = []*Toxic{}
	}
	return proxyJSON{ProxyConfig: p.Config(), Toxics: t}
}

// proxyInput is a proxy as clients send it; Enabled defaults to true on
// create and to the current state on update. Toxics are accepted (the Go
// client sends the whole proxy back) and ignored.
type proxyInput struct {
	Name     *string         `json:"name"`
	Listen   *string         `json:"listen"`
	Upstream *string         `json:"upstream"`
	Enabled  *bool           `json:"enabled"`
	Protocol *string         `json:"protocol"`
	Toxics   json.RawMessage `json:"toxics"`
}

func (in proxyInput) apply(c *ProxyConfig) {
	set := func(dst *string, v *string) {
		if v != nil {
			*dst = *v
		}
	}
	set(&c.Name, in.Name)
	set(&c.Listen, in.Listen)
	set(&c.Upstream, in.Upstream)
	set(&c.Protocol, in.Protocol)
	if in.Enabled != nil {
		c.Enabled = *in.Enabled
	}
}

// statusOf is the one table from domain errors to HTTP statuses.
func statusOf(err error) int {
	switch {
	case errors.Is(err, ErrProxyNotFound), errors.Is(err, ErrToxicNotFound):
		return http.StatusNotFound
	case errors.Is(err, ErrProxyExists), errors.Is(err, ErrToxicExists):
		return http.StatusConflict
	case errors.Is(err, ErrInvalidProxy), errors.Is(err, ErrInvalidToxic), errors.Is(err, errBadBody):
		return http.StatusBadRequest
	case errors.Is(err, ErrClosed):
		return http.StatusServiceUnavailable
	}
	return http.StatusInternalServerError
}

var errBadBody = errors.New("bad request body")

func readBody(r *http.Request, v any) error {
	b, err := io.ReadAll(io.LimitReader(r.Body, maxAPIBody))
	if err != nil {
		return errors.Join(errBadBody, err)
	}
	if v == nil {
		return nil
	}
	if err := json.Unmarshal(b, v); err != nil {
		if errors.Is(err, ErrInvalidToxic) {
			return err
		}
		return errors.Join(errBadBody, err)
	}
	return nil
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v)
}

func writeError(w http.ResponseWriter, err error, status int) {
	if status == 0 {
		status = statusOf(err)
	}
	msg := strings.ReplaceAll(err.Error(), "\n", ": ")
	writeJSON(w, status, map[string]any{"error": msg, "status": status})
}

func (s *Server) withProxy(h func(http.ResponseWriter, *http.Request, *Proxy)) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		p, err := s.Proxy(r.PathValue("proxy"))
		if err != nil {
			writeError(w, err, 0)
			return
		}
		h(w, r, p)
	}
}

func (s *Server) handleReset(w http.ResponseWriter, _ *http.Request) {
	if err := s.Reset(); err != nil {
		writeError(w, err, 0)
		return
	}
	w.WriteHeader(http.StatusNoContent)
}

func (s *Server) handleProxyIndex(w http.ResponseWriter, _ *http.Request) {
	out := map[string]proxyJSON{}
	for _, p := range s.Proxies() {
		out[p.Name()] = showProxy(p)
	}
	writeJSON(w, http.StatusOK, out)
}

func (s *Server) handleProxyCreate(w http.ResponseWriter, r *http.Request) {
	var in proxyInput
	if err := readBody(r, &in); err != nil {
		writeError(w, err, 0)
		return
	}
	cfg := ProxyConfig{Enabled: true}
	in.apply(&cfg)
	p, err := s.CreateProxy(cfg)
	if err != nil {
		writeError(w, err, 0)
		return
	}
	writeJSON(w, http.StatusCreated, showProxy(p))
}

func (s *Server) handlePopulate(w http.ResponseWriter, r *http.Request) {
	var ins []proxyInput
	if err := readBody(r, &ins); err != nil {
		writeError(w, err, 0)
		return
	}
	cfgs := make([]ProxyConfig, len(ins))
	for i, in := range ins {
		cfgs[i].Enabled = true
		in.apply(&cfgs[i])
	}
	ps, err := s.Populate(cfgs)
	out := struct {
		Error   string      `json:"error,omitempty"`
		Status  int         `json:"status,omitempty"`
		Proxies []proxyJSON `json:"proxies"`
	}{Proxies: []proxyJSON{}}
	for _, p := range ps {
		out.Proxies = append(out.Proxies, showProxy(p))
	}
	status := http.StatusCreated
	if err != nil {
		status = statusOf(err)
		out.Error, out.Status = err.Error(), status
	}
	writeJSON(w, status, out)
}

func (s *Server) handleProxyShow(w http.ResponseWriter, _ *http.Request, p *Proxy) {
	writeJSON(w, http.StatusOK, showProxy(p))
}

func (s *Server) handleProxyUpdate(w http.ResponseWriter, r *http.Request, p *Proxy) {
	var in proxyInput
	if err := readBody(r, &in); err != nil {
		writeError(w, err, 0)
		return
	}
	cfg := p.Config()
	in.apply(&cfg)
	if err := p.Update(cfg); err != nil {
		writeError(w, err, 0)
		return
	}
	writeJSON(w, http.StatusOK, showProxy(p))
}

func (s *Server) handleProxyDelete(w http.ResponseWriter, r *http.Request) {
	if err := s.DeleteProxy(r.PathValue("proxy")); err != nil {
		writeError(w, err, 0)
		return
	}
	w.WriteHeader(http.StatusNoContent)
}

func (s *Server) handleToxicCreate(w http.ResponseWriter, r *http.Request, p *Proxy) {
	var t Toxic
	if err := readBody(r, &t); err != nil {
		writeError(w, err, 0)
		return
	}
	if err := p.AddToxic(&t); err != nil {
		writeError(w, err, 0)
		return
	}
	writeJSON(w, http.StatusOK, &t)
}

func (s *Server) handleToxicShow(w http.ResponseWriter, r *http.Request, p *Proxy) {
	t, err := p.Toxic(r.PathValue("toxic"))
	if err != nil {
		writeError(w, err, 0)
		return
	}
	writeJSON(w, http.StatusOK, t)
}

func (s *Server) handleToxicUpdate(w http.ResponseWriter, r *http.Request, p *Proxy) {
	b, err := io.ReadAll(io.LimitReader(r.Body, maxAPIBody))
	if err != nil {
		writeError(w, errors.Join(errBadBody, err), 0)
		return
	}
	t, err := p.updateToxic(r.PathValue("toxic"), b)
	if err != nil {
		writeError(w, err, 0)
		return
	}
	writeJSON(w, http.StatusOK, t)
}

func (s *Server) handleToxicDelete(w http.ResponseWriter, r *http.Request, p *Proxy) {
	if err := p.RemoveToxic(r.PathValue("toxic")); err != nil {
		writeError(w, err, 0)
		return
	}
	w.WriteHeader(http.StatusNoContent)
}
