package http1

import (
	"bufio"
	"bytes"
	"errors"
	"io"
	"net/http"
	"strings"
	"testing"
)

func readUpstreamResp(s, method string, max int) (*http.Response, error) {
	br := bufio.NewReaderSize(strings.NewReader(s), 64)
	req, _ := http.NewRequest(method, "http://a/", nil)
	return ReadResponse(br, req, max)
}

func TestReadResponseRefusesAmbiguity(t *testing.T) {
	const ok = "HTTP/1.1 200 OK\r\n"
	tests := []struct {
		name string
		in   string
		want error
	}{
		{"CL and TE", ok + "Content-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n", ErrCLAndTE},
		{"TE and CL", ok + "Transfer-Encoding: chunked\r\nContent-Length: 5\r\n\r\n", ErrCLAndTE},
		{"two different CL", ok + "Content-Length: 5\r\nContent-Length: 6\r\n\r\n", ErrBadContentLength},
		{"CL list", ok + "Content-Length: 5, 5\r\n\r\n", ErrBadContentLength},
		{"signed CL", ok + "Content-Length: +5\r\n\r\n", ErrBadContentLength},
		{"negative CL", ok + "Content-Length: -1\r\n\r\n", ErrBadContentLength},
		{"hex CL", ok + "Content-Length: 0x5\r\n\r\n", ErrBadContentLength},
		{"huge CL", ok + "Content-Length: 9999999999999999999\r\n\r\n", ErrBadContentLength},
		{"empty CL", ok + "Content-Length:\r\n\r\n", ErrBadContentLength},
		{"TE gzip", ok + "Transfer-Encoding: gzip, chunked\r\n\r\n", ErrBadTE},
		{"TE chunked twice", ok + "Transfer-Encoding: chunked\r\nTransfer-Encoding: chunked\r\n\r\n", ErrBadTE},
		{"TE identity", ok + "Transfer-Encoding: identity\r\n\r\n", ErrBadTE},
		{"TE in HTTP/1.0", "HTTP/1.0 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n", ErrBadTE},
		{"space before colon", ok + "Transfer-Encoding : chunked\r\n\r\n", ErrBadHeader},
		{"obs-fold", ok + "X-A: 1\r\n  continued\r\n\r\n", ErrObsFold},
		{"obs-fold tab", ok + "X-A: 1\r\n\tcontinued\r\n\r\n", ErrObsFold},
		{"bare LF status", "HTTP/1.1 200 OK\nX-A: 1\r\n\r\n", ErrBadLineEnding},
		{"bare LF field", ok + "X-A: 1\n\r\n", ErrBadLineEnding},
		{"bare LF end", ok + "X-A: 1\r\n\n", ErrBadLineEnding},
		{"bare CR", ok + "X-A: 1\r2\r\n\r\n", ErrBadLineEnding},
		{"NUL in value", ok + "X-A: a\x00b\r\n\r\n", ErrBadHeader},
		{"no colon", ok + "X-A\r\n\r\n", ErrBadHeader},
		{"empty name", ok + ": x\r\n\r\n", ErrBadHeader},
		{"HTTP/2 framing", "HTTP/2.0 200 OK\r\n\r\n", ErrBadVersion},
		{"HTTP/1.2", "HTTP/1.2 200 OK\r\n\r\n", ErrBadStatusLine},
		{"lower-case version", "http/1.1 200 OK\r\n\r\n", ErrBadStatusLine},
		{"two-digit status", "HTTP/1.1 20 OK\r\n\r\n", ErrBadStatusLine},
		{"status 600", "HTTP/1.1 600 X\r\n\r\n", ErrBadStatusLine},
		{"status 099", "HTTP/1.1 099 X\r\n\r\n", ErrBadStatusLine},
		{"double space", "HTTP/1.1  200 OK\r\n\r\n", ErrBadStatusLine},
		{"status glued", "HTTP/1.1 200OK\r\n\r\n", ErrBadStatusLine},
		{"control in reason", "HTTP/1.1 200 O\x01K\r\n\r\n", ErrBadStatusLine},
		{"leading empty line", "\r\n" + ok + "\r\n", ErrBadStatusLine},
		{"too large", ok + "X-A: " + strings.Repeat("a", 300) + "\r\n\r\n", ErrResponseHeadTooLarge},
		{"truncated", ok + "X-A: 1\r\n", io.ErrUnexpectedEOF},
		{"nothing", "", io.EOF},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := readUpstreamResp(tt.in, http.MethodGet, 256)
			if !errors.Is(err, tt.want) {
				t.Fatalf("err = %v, want %v", err, tt.want)
			}
		})
	}
}

func TestReadResponseFraming(t *testing.T) {
	tests := []struct {
		name, method, in string
		code             int
		cl               int64
		body             string
		close            bool
		chunked          bool
	}{
		{"content-length", "GET", "HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nhelloEXTRA", 200, 5, "hello", false, false},
		{"identical CL repeated", "GET", "HTTP/1.1 200 OK\r\nContent-Length: 5\r\ncontent-length: 5\r\n\r\nhello", 200, 5, "hello", false, false},
		{"chunked", "GET", "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n6;ext=1\r\n world\r\n0\r\nX-T: 1\r\n\r\nNEXT", 200, -1, "hello world", false, true},
		{"chunked upper-case hex", "GET", "HTTP/1.1 200 OK\r\nTransfer-Encoding: Chunked\r\n\r\nA\r\n0123456789\r\n0\r\n\r\n", 200, -1, "0123456789", false, true},
		{"until close", "GET", "HTTP/1.1 200 OK\r\n\r\nall of it", 200, -1, "all of it", true, false},
		{"HEAD has no body", "HEAD", "HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\n", 200, 5, "", false, false},
		{"204 has no body", "GET", "HTTP/1.1 204 No Content\r\nContent-Length: 5\r\n\r\nhello", 204, 0, "", false, false},
		{"304 has no body", "GET", "HTTP/1.1 304 Not Modified\r\nTransfer-Encoding: chunked\r\n\r\n", 304, 0, "", false, true},
		{"no reason", "GET", "HTTP/1.1 200\r\nContent-Length: 0\r\n\r\n", 200, 0, "", false, false},
		{"connection close", "GET", "HTTP/1.1 200 OK\r\nConnection: keep-alive, close\r\nContent-Length: 2\r\n\r\nok", 200, 2, "ok", true, false},
		{"HTTP/1.0 closes", "GET", "HTTP/1.0 200 OK\r\nContent-Length: 2\r\n\r\nok", 200, 2, "ok", true, false},
		{"HTTP/1.0 keep-alive", "GET", "HTTP/1.0 200 OK\r\nConnection: keep-alive\r\nContent-Length: 2\r\n\r\nok", 200, 2, "ok", false, false},
		{"1xx returned as is", "GET", "HTTP/1.1 100 Continue\r\n\r\n", 100, 0, "", false, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			resp, err := readUpstreamResp(tt.in, tt.method, 1024)
			if err != nil {
				t.Fatal(err)
			}
			b, err := io.ReadAll(resp.Body)
			if err != nil {
				t.Fatalf("body: %v", err)
			}
			if resp.StatusCode != tt.code || resp.ContentLength != tt.cl || string(b) != tt.body || resp.Close != tt.close ||
				(len(resp.TransferEncoding) > 0) != tt.chunked {
				t.Fatalf("got %d cl=%d body=%q close=%v te=%v", resp.StatusCode, resp.ContentLength, b, resp.Close, resp.TransferEncoding)
			}
			if _, ok := resp.Header["Transfer-Encoding"]; ok {
				t.Error("Transfer-Encoding left in Header (net/http moves it to TransferEncoding)")
			}
			if n := len(resp.Header["Content-Length"]); n > 1 {
				t.Errorf("%d Content-Length values kept", n)
			}
		})
	}
}

func TestReadResponseHeaders(t *testing.T) {
	resp, err := readUpstreamResp("HTTP/1.1 404 Not Found\r\ncontent-type: text/plain\r\nX-Multi: a\r\nx-multi: b\r\nX-Empty:\r\nX-Space:  v v \t\r\nContent-Length: 0\r\n\r\n", "GET", 1024)
	if err != nil {
		t.Fatal(err)
	}
	h := resp.Header
	if resp.Status != "404 Not Found" || resp.Proto != "HTTP/1.1" || resp.ProtoMajor != 1 || resp.ProtoMinor != 1 {
		t.Errorf("status line: %q %q %d.%d", resp.Status, resp.Proto, resp.ProtoMajor, resp.ProtoMinor)
	}
	if h.Get("Content-Type") != "text/plain" || strings.Join(h["X-Multi"], ",") != "a,b" || h["X-Empty"][0] != "" || h.Get("X-Space") != "v v" {
		t.Errorf("header = %v", h)
	}
	// A value appended to by the caller must not clobber its neighbour.
	h["Content-Type"] = append(h["Content-Type"], "x")
	if h.Get("X-Multi") != "a" {
		t.Error("appending to a value overwrote another field")
	}
}

func TestChunkedRefusesBadFraming(t *testing.T) {
	const head = "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"
	tests := []struct {
		name, in string
		want     error
	}{
		{"bare LF after size", "5\nhello\r\n0\r\n\r\n", ErrBadResponseChunk},
		{"bare LF after data", "5\r\nhello\n0\r\n\r\n", ErrBadResponseChunk},
		{"data longer than size", "5\r\nhello!\r\n0\r\n\r\n", ErrBadResponseChunk},
		{"no size", "\r\nhello\r\n0\r\n\r\n", ErrBadResponseChunk},
		{"negative size", "-5\r\nhello\r\n0\r\n\r\n", ErrBadResponseChunk},
		{"size overflow", "10000000000000000\r\n", ErrBadResponseChunk},
		{"garbage after size", "5x\r\nhello\r\n0\r\n\r\n", ErrBadResponseChunk},
		{"control in extension", "5;a=\x01\r\nhello\r\n0\r\n\r\n", ErrBadResponseChunk},
		{"bare LF in trailer", "0\r\nX-T: 1\n\r\n", ErrBadLineEnding},
		{"obs-fold in trailer", "0\r\nX-T: 1\r\n 2\r\n\r\n", ErrObsFold},
		{"huge trailer", "0\r\n" + strings.Repeat("X-T: 0123456789abcdef\r\n", 1000) + "\r\n", ErrBadResponseChunk},
		{"truncated data", "5\r\nhel", io.ErrUnexpectedEOF},
		{"truncated before last chunk", "5\r\nhello\r\n", io.ErrUnexpectedEOF},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			resp, err := readUpstreamResp(head+tt.in, "GET", 1024)
			if err != nil {
				t.Fatal(err)
			}
			if _, err := io.ReadAll(resp.Body); !errors.Is(err, tt.want) {
				t.Fatalf("err = %v, want %v", err, tt.want)
			}
		})
	}
}

func TestBodyLengthShort(t *testing.T) {
	resp, err := readUpstreamResp("HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nshort", "GET", 1024)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := io.ReadAll(resp.Body); !errors.Is(err, io.ErrUnexpectedEOF) {
		t.Fatalf("err = %v, want unexpected EOF", err)
	}
	resp.Body.Close()
	if _, err := resp.Body.Read(make([]byte, 1)); !errors.Is(err, ErrBodyClosed) {
		t.Fatalf("read after close: %v", err)
	}
}

// FuzzReadResponse checks the response parser against net/http's: every
// response ReadResponse accepts, http.ReadResponse accepts too, with the
// same status, the same body framing and the same body bytes. (The
// reverse does not hold: ReadResponse refuses on purpose what net/http
// tolerates, such as Content-Length with Transfer-Encoding.)
func FuzzReadResponse(f *testing.F) {
	for _, s := range []string{
		"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nhello",
		"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n",
		"HTTP/1.1 204 No Content\r\n\r\n",
		"HTTP/1.0 200 OK\r\n\r\nuntil close",
		"HTTP/1.1 100 Continue\r\n\r\n",
		"HTTP/1.1 200 OK\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n",
		"HTTP/1.1 200 OK\r\nX: 1\r\n 2\r\nContent-Length: 0\r\n\r\n",
		"HTTP/1.1 304 Not Modified\r\nContent-Length: 10\r\n\r\n",
	} {
		f.Add([]byte(s), false)
		f.Add([]byte(s), true)
	}
	f.Fuzz(func(t *testing.T, data []byte, head bool) {
		method := http.MethodGet
		if head {
			method = http.MethodHead
		}
		req, _ := http.NewRequest(method, "http://a/", nil)
		ours, err := ReadResponse(bufio.NewReader(bytes.NewReader(data)), req, 4096)
		if err != nil {
			return
		}
		ourBody, ourErr := io.ReadAll(ours.Body)
		theirs, err := http.ReadResponse(bufio.NewReader(bytes.NewReader(data)), req)
		if err != nil {
			t.Fatalf("we accept what net/http refuses (%v): %q", err, data)
		}
		if ours.StatusCode != theirs.StatusCode || ours.ProtoMinor != theirs.ProtoMinor {
			t.Fatalf("status %d/1.%d, net/http %d/1.%d: %q", ours.StatusCode, ours.ProtoMinor, theirs.StatusCode, theirs.ProtoMinor, data)
		}
		if ours.ContentLength != theirs.ContentLength && theirs.StatusCode >= 200 {
			t.Fatalf("ContentLength %d, net/http %d: %q", ours.ContentLength, theirs.ContentLength, data)
		}
		if (len(ours.TransferEncoding) > 0) != (len(theirs.TransferEncoding) > 0) {
			t.Fatalf("chunked %v, net/http %v: %q", ours.TransferEncoding, theirs.TransferEncoding, data)
		}
		if theirs.StatusCode >= 200 && ours.Close != theirs.Close {
			t.Fatalf("Close %v, net/http %v: %q", ours.Close, theirs.Close, data)
		}
		theirBody, theirErr := io.ReadAll(theirs.Body)
		if ourErr == nil {
			if theirErr != nil || !bytes.Equal(ourBody, theirBody) {
				t.Fatalf("body %q, net/http %q (%v): %q", ourBody, theirBody, theirErr, data)
			}
		}
	})
}
