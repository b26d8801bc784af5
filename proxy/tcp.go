package proxy

import (
	"context"
	"fmt"
	"net"
	"net/http"
	"time"

	"github.com/bulwark-go/bulwark/proxy/balance"
	"github.com/bulwark-go/bulwark/resilience"
)

// tcpConnectAttempts is how many endpoints a TCP connection tries before
// giving up (HAProxy's retries for mode tcp).
const tcpConnectAttempts = 3

// dialTCP connects to an endpoint of the pool, trying others when a
// connect fails. The balancer counts the connection as in flight until
// release is called, so P2C over in-flight picks the endpoint with the
// fewest active connections (weighted by connect latency).
func (p *pool) dialTCP(ctx context.Context, client net.Addr) (net.Conn, func(), error) {
	var tried balance.Tried
	var lastErr error
	r := &http.Request{RemoteAddr: client.String()}
	for range tcpConnectAttempts {
		ep, done, err := p.pick(r, &tried)
		if err != nil {
			if lastErr != nil {
				return nil, nil, fmt.Errorf("%w (last connect error: %v)", err, lastErr)
			}
			return nil, nil, err
		}
		tried.Add(ep)
		m := ep.Data().(*member)
		ep.Start()
		start := time.Now()
		d := net.Dialer{Timeout: DefaultConnectTimeout}
		c, err := d.DialContext(ctx, "tcp", m.addr)
		lat := time.Since(start)
		if done != nil {
			done(resilience.Outcome{Err: err, Latency: lat})
		}
		if err != nil {
			ep.Done(lat, true)
			p.passive.observe(ep, failConnect, 0, lat)
			p.metrics.try(failConnect, lat)
			lastErr = err
			continue
		}
		p.passive.observe(ep, failNone, 0, lat)
		p.metrics.try(failNone, lat)
		return c, func() { ep.Done(lat, false) }, nil
	}
	return nil, nil, fmt.Errorf("no endpoint accepted a connection after %d tries: %w", tcpConnectAttempts, lastErr)
}
