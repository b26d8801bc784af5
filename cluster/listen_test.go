package cluster

import (
	"errors"
	"io"
	"net"
	"testing"
	"time"
)

// TestListenerFence: once fenced, a listener drops new SYNs silently (the
// dial times out, it is not refused), while a connection accepted before
// keeps working both ways.
func TestListenerFence(t *testing.T) {
	var lns listeners
	defer lns.close()
	lc := (&Node{}).listenConfigFor(&lns)
	ln, err := lc.Listen(t.Context(), "tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go func() { defer c.Close(); io.Copy(c, c) }()
		}
	}()
	before, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer before.Close()
	k, err := lns.fence()
	if err != nil || k != 1 {
		t.Fatalf("fence: %d sockets, %v", k, err)
	}
	d := net.Dialer{Timeout: 300 * time.Millisecond}
	c, err := d.Dial("tcp", ln.Addr().String())
	var ne net.Error
	if err == nil {
		c.Close()
		t.Fatal("a new connection got through the fence")
	} else if !errors.As(err, &ne) || !ne.Timeout() {
		t.Fatalf("dial error %v, want a timeout (SYN dropped, not refused)", err)
	}
	if _, err := before.Write([]byte("ping")); err != nil {
		t.Fatal(err)
	}
	buf := make([]byte, 4)
	before.SetReadDeadline(time.Now().Add(5 * time.Second))
	if _, err := io.ReadFull(before, buf); err != nil || string(buf) != "ping" {
		t.Fatalf("established connection after the fence: %q %v", buf, err)
	}
	// The gateway closing its listener leaves the socket listening (the
	// duplicate), so SYNs are still dropped rather than reset.
	ln.Close()
	if _, err := d.Dial("tcp", ln.Addr().String()); err == nil || !errors.As(err, &ne) || !ne.Timeout() {
		t.Fatalf("after the gateway's close: %v, want a timeout", err)
	}
}
