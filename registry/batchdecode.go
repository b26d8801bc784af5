package registry

// parseRenewBatchFast parses a batch renewal of the shape every client
// sends, {"instances":[{"service":"s","id":"i"},…]}, with JSON whitespace
// anywhere and the two keys in either order, without reflection: it costs
// about a tenth of encoding/json's decoder, which was the leader's largest
// cost per batch (BenchmarkDecodeRenewBatch1000). It appends to dst.
//
// ok is false for anything else, including bodies that are valid JSON but
// unusual (string escapes, other or repeated keys, a null, names outside
// [A-Za-z0-9._-] or longer than 128 bytes): the caller then decodes with
// encoding/json, which accepts or rejects such a body and names the
// problem. So the fast path never changes what is accepted, only how fast;
// FuzzDecodeRenewBatch checks that it agrees with encoding/json.
func parseRenewBatchFast(b []byte, dst []InstanceKey) (out []InstanceKey, ok bool) {
	p := batchParser{b: b}
	if !p.lit('{') || !p.key("instances") || !p.lit(':') || !p.lit('[') {
		return dst, false
	}
	if p.peek() == ']' {
		p.i++
	} else {
		var prev []byte // the previous entry's service: batches list one service's instances together
		var prevS string
		for {
			var svc, id []byte
			if !p.lit('{') {
				return dst, false
			}
			for k := 0; k < 2; k++ {
				if k == 1 && !p.lit(',') {
					return dst, false
				}
				name, v, good := p.pair()
				switch {
				case !good:
					return dst, false
				case name == "service" && svc == nil:
					svc = v
				case name == "id" && id == nil:
					id = v
				default:
					return dst, false
				}
			}
			if !p.lit('}') {
				return dst, false
			}
			if prev == nil || string(svc) != string(prev) {
				prev, prevS = svc, string(svc)
			}
			dst = append(dst, InstanceKey{Service: prevS, ID: string(id)})
			if p.peek() == ',' {
				p.i++
				continue
			}
			if !p.lit(']') {
				return dst, false
			}
			break
		}
	}
	if !p.lit('}') {
		return dst, false
	}
	p.ws()
	return dst, p.i == len(p.b)
}

// batchParser is a cursor over a JSON body.
type batchParser struct {
	b []byte
	i int
}

func (p *batchParser) ws() {
	for p.i < len(p.b) {
		switch p.b[p.i] {
		case ' ', '\t', '\n', '\r':
			p.i++
		default:
			return
		}
	}
}

// peek returns the next byte after whitespace, or 0 at the end.
func (p *batchParser) peek() byte {
	p.ws()
	if p.i == len(p.b) {
		return 0
	}
	return p.b[p.i]
}

// lit consumes whitespace and then c.
func (p *batchParser) lit(c byte) bool {
	if p.peek() != c {
		return false
	}
	p.i++
	return true
}

// name consumes a string made only of name bytes ([A-Za-z0-9._-], 1-128
// of them) and returns it; anything else (an escape, another byte, too
// long) fails.
func (p *batchParser) name() ([]byte, bool) {
	if !p.lit('"') {
		return nil, false
	}
	start := p.i
	for p.i < len(p.b) {
		c := p.b[p.i]
		if c == '"' {
			s := p.b[start:p.i]
			p.i++
			return s, len(s) > 0 && len(s) <= maxNameLen
		}
		if !nameByte[c] {
			return nil, false
		}
		p.i++
	}
	return nil, false
}

// key consumes the string want exactly.
func (p *batchParser) key(want string) bool {
	s, ok := p.name()
	return ok && string(s) == want
}

// pair consumes "key": "value" and returns the key (only "service" and
// "id" are of interest) and the value.
func (p *batchParser) pair() (key string, v []byte, ok bool) {
	k, ok := p.name()
	if !ok || !p.lit(':') {
		return "", nil, false
	}
	switch string(k) {
	case "service":
		key = "service"
	case "id":
		key = "id"
	default:
		return "", nil, false
	}
	v, ok = p.name()
	return key, v, ok
}

// nameByte marks the bytes of [A-Za-z0-9._-].
var nameByte = func() (t [256]bool) {
	for c := range 256 {
		t[c] = c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '.' || c == '_' || c == '-'
	}
	return t
}()
