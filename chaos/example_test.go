package chaos_test

import (
	"fmt"
	"io"
	"net"
	"time"

	"github.com/bulwark-go/bulwark/chaos"
)

// A proxy in front of a TCP service, with 50 ms of latency added to the
// responses while the connection stays open.
func ExampleServer() {
	upstream, _ := net.Listen("tcp", "127.0.0.1:0")
	go func() {
		c, err := upstream.Accept()
		if err != nil {
			return
		}
		defer c.Close()
		_, _ = io.Copy(c, c) // echo
	}()
	defer upstream.Close()

	s, err := chaos.New(chaos.Config{Seed: 1})
	if err != nil {
		panic(err)
	}
	defer s.Close()
	p, err := s.CreateProxy(chaos.ProxyConfig{Name: "db", Upstream: upstream.Addr().String(), Enabled: true})
	if err != nil {
		panic(err)
	}
	err = p.AddToxic(&chaos.Toxic{Name: "slow", Type: chaos.TypeLatency, Stream: chaos.Downstream, Toxicity: 1,
		Attributes: &chaos.LatencyAttrs{Latency: 50}})
	if err != nil {
		panic(err)
	}

	c, _ := net.Dial("tcp", p.Addr())
	defer c.Close()
	start := time.Now()
	_, _ = c.Write([]byte("ping"))
	buf := make([]byte, 4)
	_, _ = io.ReadFull(c, buf)
	fmt.Println(string(buf), time.Since(start) >= 50*time.Millisecond)
	// Output: ping true
}
