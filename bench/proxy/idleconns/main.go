// Command idleconns opens N keep-alive HTTP/1.1 connections to a proxy,
// sends one GET on each and reads its answer, then holds them all open and
// idle until its standard input closes — so bench/proxy/idle.sh can read
// the proxy's memory with N idle clients attached.
//
//	idleconns -addr 127.0.0.1:8081 -n 10000 -path /read
//
// It prints "ready N" on standard output once every connection has had
// its answer, and exits non-zero if any connection failed.
package main

import (
	"bufio"
	"flag"
	"fmt"
	"io"
	"log"
	"net"
	"net/http"
	"os"
	"sync"
	"time"
)

func main() {
	addr := flag.String("addr", "127.0.0.1:8081", "proxy address")
	n := flag.Int("n", 10000, "connections to open and hold")
	path := flag.String("path", "/read", "path of the one request sent on each connection")
	par := flag.Int("parallel", 64, "connections being opened at once")
	flag.Parse()

	conns := make([]net.Conn, *n)
	errs := make(chan error, *n)
	sem := make(chan struct{}, *par)
	var wg sync.WaitGroup
	req := []byte("GET " + *path + " HTTP/1.1\r\nHost: bench\r\n\r\n")
	for i := range conns {
		wg.Add(1)
		sem <- struct{}{}
		go func() {
			defer wg.Done()
			defer func() { <-sem }()
			c, err := net.DialTimeout("tcp", *addr, 10*time.Second)
			if err != nil {
				errs <- err
				return
			}
			c.SetDeadline(time.Now().Add(30 * time.Second))
			if _, err := c.Write(req); err != nil {
				errs <- err
				c.Close()
				return
			}
			resp, err := http.ReadResponse(bufio.NewReaderSize(c, 1024), nil)
			if err != nil {
				errs <- err
				c.Close()
				return
			}
			io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
			if resp.StatusCode != http.StatusOK || resp.Close {
				errs <- fmt.Errorf("status %d, close %v", resp.StatusCode, resp.Close)
				c.Close()
				return
			}
			c.SetDeadline(time.Time{})
			conns[i] = c
		}()
	}
	wg.Wait()
	close(errs)
	failed := 0
	for err := range errs {
		if failed == 0 {
			log.Printf("first failure: %v", err)
		}
		failed++
	}
	if failed > 0 {
		log.Fatalf("%d of %d connections failed", failed, *n)
	}
	fmt.Printf("ready %d\n", *n)
	io.Copy(io.Discard, os.Stdin) // hold until the script closes our stdin
	open := 0
	for _, c := range conns {
		// A connection the proxy closed while idle reads EOF at once.
		c.SetReadDeadline(time.Now().Add(time.Millisecond))
		if _, err := c.Read(make([]byte, 1)); err != nil {
			if ne, ok := err.(net.Error); ok && ne.Timeout() {
				open++
			}
		}
		c.Close()
	}
	fmt.Printf("still open %d\n", open)
}
