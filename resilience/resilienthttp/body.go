package resilienthttp

import (
	"bytes"
	"context"
	"io"
	"net/http"
)

// prepareBody decides how the request body can be sent again:
//   - no body: it can;
//   - GetBody set and a known length within MaxReplayBody: through GetBody;
//   - a known length over MaxReplayBody: it cannot, and is sent as is;
//   - otherwise it is read into memory, up to MaxReplayBody; a body that
//     turns out longer is sent once, as the bytes read followed by the rest.
//
// The first attempt sends the original body (or what replaces it); later
// ones send copies. On error it closes the body, as RoundTrip must.
func (c *call) prepareBody() error {
	req := c.req
	if req.Body == nil || req.Body == http.NoBody {
		c.replayable = true
		return nil
	}
	max := c.t.maxReplay
	switch {
	case req.GetBody != nil && req.ContentLength >= 0 && req.ContentLength <= max:
		c.first, c.getBody, c.replayable = req.Body, req.GetBody, true
		return nil
	case req.ContentLength > max:
		c.first = req.Body
		return nil
	}
	b, err := io.ReadAll(io.LimitReader(req.Body, max+1))
	if err != nil {
		req.Body.Close()
		return err
	}
	if int64(len(b)) > max {
		c.first = &prefixBody{prefix: *bytes.NewReader(b), rest: req.Body}
		return nil
	}
	req.Body.Close()
	c.replay, c.length, c.replayable = b, int64(len(b)), true
	return nil
}

// attemptRequest returns the request one attempt sends under ctx: the
// original when nothing about it changes (the first attempt, under the
// caller's context, of a request whose body was not buffered), otherwise a
// shallow copy with a body of its own. Copies share the header map, as
// net/http's own retries do; RoundTrippers must not modify requests.
func (c *call) attemptRequest(ctx context.Context) (*http.Request, error) {
	req := c.req
	var body io.ReadCloser
	switch {
	case c.first != nil && c.firstTaken.CompareAndSwap(false, true):
		if c.first == req.Body && ctx == req.Context() {
			return req, nil
		}
		body = c.first
	case c.replay != nil && len(c.replay) == 0:
		r := req.WithContext(ctx)
		r.Body, r.ContentLength, r.GetBody = http.NoBody, 0, nil
		return r, nil
	case c.replay != nil:
		r := req.WithContext(ctx)
		r.Body, r.ContentLength = newReplayBody(c.replay), c.length
		b := c.replay
		r.GetBody = func() (io.ReadCloser, error) { return newReplayBody(b), nil }
		return r, nil
	case c.getBody != nil:
		var err error
		if body, err = c.getBody(); err != nil {
			return nil, err
		}
	default: // no body
		if ctx == req.Context() {
			return req, nil
		}
		return req.WithContext(ctx), nil
	}
	r := req.WithContext(ctx)
	r.Body = body
	return r, nil
}

// replayBody is one attempt's copy of a buffered request body.
type replayBody struct{ bytes.Reader }

func newReplayBody(b []byte) *replayBody {
	r := &replayBody{}
	r.Reset(b)
	return r
}

func (*replayBody) Close() error { return nil }

// prefixBody is a body of which a prefix was already read: the request
// body too long to buffer, or a failed response's body too long to drain.
type prefixBody struct {
	prefix bytes.Reader
	rest   io.ReadCloser
}

func (b *prefixBody) Read(p []byte) (int, error) {
	if b.prefix.Len() > 0 {
		return b.prefix.Read(p)
	}
	return b.rest.Read(p)
}

func (b *prefixBody) Close() error { return b.rest.Close() }

// buffer reads a failed response's body into memory, up to MaxDrain, so
// that its connection is released before the next attempt: a retried
// attempt whose body is not read to the end would cost a new connection.
// The response keeps the bytes in case it is the one returned. A longer body
// (or one that fails to read) keeps what was read in front of the rest.
func (c *call) buffer(resp *http.Response) {
	b, err := io.ReadAll(io.LimitReader(resp.Body, c.t.maxDrain+1))
	if err == nil && int64(len(b)) <= c.t.maxDrain {
		resp.Body.Close()
		resp.Body = newReplayBody(b)
		return
	}
	resp.Body = &prefixBody{prefix: *bytes.NewReader(b), rest: resp.Body}
}

// wrapBody ties the attempt's context to the response body: cancel runs when
// the body is closed or a read ends it (EOF or an error), as http.Client
// does for its own timeout. Upgraded connections (101 Switching Protocols)
// have a writable body, which httputil.ReverseProxy relies on; the wrapper
// keeps it writable.
func wrapBody(rc io.ReadCloser, cancel context.CancelFunc) io.ReadCloser {
	b := body{rc: rc, cancel: cancel}
	if w, ok := rc.(io.Writer); ok {
		return &readWriteBody{body: b, w: w}
	}
	return &b
}

type body struct {
	rc     io.ReadCloser
	cancel context.CancelFunc
}

func (b *body) Read(p []byte) (int, error) {
	n, err := b.rc.Read(p)
	if err != nil {
		b.cancel() // the transport has released the connection by now
	}
	return n, err
}

func (b *body) Close() error {
	err := b.rc.Close()
	b.cancel()
	return err
}

type readWriteBody struct {
	body
	w io.Writer
}

func (b *readWriteBody) Write(p []byte) (int, error) { return b.w.Write(p) }
