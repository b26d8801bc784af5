// Command backend is the upstream of the gateway benchmark (bench/proxy/run.sh):
// the cheapest net/http server that answers like `bulwark demo`'s GET /read,
// 100 bytes with a Content-Digest, so the proxies, not the backends, use the
// CPU. The body and its digest are computed once.
//
//	backend -listen 127.0.0.1:9001
package main

import (
	"crypto/sha256"
	"encoding/base64"
	"flag"
	"log"
	"net/http"
	"strconv"
	"time"
)

func main() {
	listen := flag.String("listen", "127.0.0.1:9001", "address to serve on")
	size := flag.Int("size", 100, "body size in bytes")
	flag.Parse()
	body := make([]byte, *size)
	for i := range body {
		body[i] = "abcdefghijklmnopqrstuvwxyz0123456789"[i%36]
	}
	sum := sha256.Sum256(body)
	digest := []string{"sha-256=:" + base64.StdEncoding.EncodeToString(sum[:]) + ":"}
	ctype := []string{"text/plain"}
	clen := []string{strconv.Itoa(len(body))}
	srv := &http.Server{
		Addr:              *listen,
		ReadHeaderTimeout: 10 * time.Second,
		Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			h := w.Header()
			h["Content-Digest"] = digest
			h["Content-Type"] = ctype
			h["Content-Length"] = clen
			w.Write(body)
		}),
	}
	log.Fatal(srv.ListenAndServe())
}
