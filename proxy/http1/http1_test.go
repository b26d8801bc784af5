package http1

import (
	"bufio"
	"errors"
	"io"
	"net/http"
	"strings"
	"testing"
)

func read(s string, max int) (*Request, *bufio.Reader, error) {
	br := bufio.NewReaderSize(strings.NewReader(s), 64)
	r := &Request{}
	err := ReadRequest(br, r, max)
	return r, br, err
}

func TestReadRequestRefusesAmbiguity(t *testing.T) {
	const ok = "GET /x HTTP/1.1\r\nHost: a\r\n"
	tests := []struct {
		name   string
		in     string
		want   error
		status int
	}{
		{"CL and TE", "POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n", ErrCLAndTE, 400},
		{"TE and CL", "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\nContent-Length: 5\r\n\r\n", ErrCLAndTE, 400},
		{"two different CL", "POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\nContent-Length: 6\r\n\r\n", ErrBadContentLength, 400},
		{"CL list", "POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 5, 5\r\n\r\n", ErrBadContentLength, 400},
		{"signed CL", "POST / HTTP/1.1\r\nHost: a\r\nContent-Length: +5\r\n\r\n", ErrBadContentLength, 400},
		{"hex CL", "POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 0x5\r\n\r\n", ErrBadContentLength, 400},
		{"huge CL", "POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 9999999999999999999\r\n\r\n", ErrBadContentLength, 400},
		{"empty CL", "POST / HTTP/1.1\r\nHost: a\r\nContent-Length:\r\n\r\n", ErrBadContentLength, 400},
		{"TE gzip", "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: gzip, chunked\r\n\r\n", ErrBadTE, 400},
		{"TE chunked twice", "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\nTransfer-Encoding: chunked\r\n\r\n", ErrBadTE, 400},
		{"TE obfuscated", "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: xchunked\r\n\r\n", ErrBadTE, 400},
		{"space before colon", "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding : chunked\r\n\r\n", ErrBadHeader, 400},
		{"obs-fold", ok + "X-A: 1\r\n  continued\r\n\r\n", ErrObsFold, 400},
		{"obs-fold tab", ok + "X-A: 1\r\n\tcontinued\r\n\r\n", ErrObsFold, 400},
		{"bare LF in head", "GET /x HTTP/1.1\nHost: a\r\n\r\n", ErrBadLineEnding, 400},
		{"bare LF end", ok + "\n", ErrBadLineEnding, 400},
		{"bare CR", ok + "X-A: 1\r2\r\n\r\n", ErrBadLineEnding, 400},
		{"NUL in value", ok + "X-A: a\x00b\r\n\r\n", ErrBadHeader, 400},
		{"no colon", ok + "X-A\r\n\r\n", ErrBadHeader, 400},
		{"bad method", "G(T /x HTTP/1.1\r\nHost: a\r\n\r\n", ErrBadRequestLine, 400},
		{"space in target", "GET /a b HTTP/1.1\r\nHost: a\r\n\r\n", ErrBadRequestLine, 400},
		{"no version", "GET /x\r\nHost: a\r\n\r\n", ErrBadRequestLine, 400},
		{"HTTP/2 framing", "GET /x HTTP/2.0\r\nHost: a\r\n\r\n", ErrBadVersion, 505},
		{"HTTP/1.2", "GET /x HTTP/1.2\r\nHost: a\r\n\r\n", ErrBadRequestLine, 400},
		{"no host", "GET /x HTTP/1.1\r\n\r\n", ErrMissingHost, 400},
		{"two hosts", "GET /x HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n", ErrMissingHost, 400},
		{"too large", ok + "X-A: " + strings.Repeat("a", 300) + "\r\n\r\n", ErrHeadTooLarge, 431},
		{"too many empty lines", strings.Repeat("\r\n", 200) + ok + "\r\n", ErrHeadTooLarge, 431},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, _, err := read(tt.in, 256)
			if !errors.Is(err, tt.want) {
				t.Fatalf("err = %v, want %v", err, tt.want)
			}
			if s := Status(err); s != tt.status {
				t.Fatalf("Status = %d, want %d", s, tt.status)
			}
		})
	}
}

func TestReadRequest(t *testing.T) {
	in := "\r\nPOST /a?b=1 HTTP/1.1\r\nHost: example.com\r\nContent-Length: 5\r\nX-Long: " + strings.Repeat("v", 100) + "\r\nConnection: keep-alive\r\n\r\nhelloGET / HTTP/1.0\r\n\r\n"
	r, br, err := read(in, 4096)
	if err != nil {
		t.Fatal(err)
	}
	if string(r.Method) != "POST" || string(r.Target) != "/a?b=1" || r.Minor != 1 || string(r.Host) != "example.com" || r.ContentLength != 5 || r.Chunked || r.Close {
		t.Fatalf("parsed %+v", r)
	}
	if len(r.Fields) != 4 || string(r.Fields[2].Value) != strings.Repeat("v", 100) {
		t.Fatalf("fields %q", r.Fields)
	}
	if !strings.HasPrefix(string(r.Raw), "POST /a?b=1 HTTP/1.1\r\n") || !strings.HasSuffix(string(r.Raw), "\r\n\r\n") {
		t.Fatalf("raw %q", r.Raw)
	}
	body := make([]byte, r.ContentLength)
	if _, err := io.ReadFull(br, body); err != nil || string(body) != "hello" {
		t.Fatalf("body %q %v", body, err)
	}
	// Pipelined: the next request is read from the same reader.
	if err := ReadRequest(br, r, 4096); err != nil {
		t.Fatal(err)
	}
	if string(r.Method) != "GET" || r.Minor != 0 || !r.Close || r.ContentLength != -1 {
		t.Fatalf("second request %+v", r)
	}
	if err := ReadRequest(br, r, 4096); err != io.EOF {
		t.Fatalf("after the last request: %v, want io.EOF", err)
	}

	r, _, err = read("POST / HTTP/1.1\r\nhost: a\r\ntransfer-encoding: Chunked\r\nconnection: Close\r\n\r\n", 4096)
	if err != nil || !r.Chunked || !r.Close || r.ContentLength != -1 {
		t.Fatalf("chunked, close: %+v %v", r, err)
	}
	r, _, err = read("GET / HTTP/1.0\r\nConnection: keep-alive\r\n\r\n", 4096)
	if err != nil || r.Close {
		t.Fatalf("HTTP/1.0 keep-alive: %+v %v", r, err)
	}
	r, _, err = read("POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 3\r\nContent-Length: 3\r\n\r\n", 4096)
	if err != nil || r.ContentLength != 3 {
		t.Fatalf("repeated equal Content-Length (RFC 9112 §6.3 allows it): %+v %v", r, err)
	}
	if _, _, err := read("GET / HTTP/1.1\r\nHost: a\r\n", 4096); err == nil || Status(err) != 0 {
		t.Fatalf("a head cut short: %v (status %d), want a read error", err, Status(err))
	}
}

// FuzzReadRequest checks that the parser never panics, and that whenever
// it accepts a head, net/http reads the same head the same way: the same
// method, target, host and body framing. Two parsers that disagree on
// framing are what request smuggling exploits.
func FuzzReadRequest(f *testing.F) {
	for _, s := range []string{
		"GET / HTTP/1.1\r\nHost: a\r\n\r\n",
		"POST /x HTTP/1.1\r\nHost: a\r\nContent-Length: 3\r\n\r\nabc",
		"POST /x HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n",
		"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n",
		"GET / HTTP/1.0\r\nConnection: keep-alive\r\n\r\n",
		"GET / HTTP/1.1\r\nHost: a\r\nX: 1\r\n 2\r\n\r\n",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		r, _, err := read(s, 8192)
		if err != nil {
			return
		}
		std, err := http.ReadRequest(bufio.NewReader(strings.NewReader(s)))
		if err != nil {
			t.Fatalf("we accept what net/http refuses (%v): %q", err, s)
		}
		if std.Method != string(r.Method) || std.RequestURI != string(r.Target) || std.Host != string(r.Host) {
			t.Fatalf("request line or host differ: net/http %q %q %q, ours %q %q %q", std.Method, std.RequestURI, std.Host, r.Method, r.Target, r.Host)
		}
		chunked := len(std.TransferEncoding) > 0
		if chunked != r.Chunked {
			t.Fatalf("chunked: net/http %v, ours %v: %q", chunked, r.Chunked, s)
		}
		if !chunked && r.ContentLength >= 0 && std.ContentLength != r.ContentLength {
			t.Fatalf("Content-Length: net/http %d, ours %d: %q", std.ContentLength, r.ContentLength, s)
		}
	})
}
