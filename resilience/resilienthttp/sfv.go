package resilienthttp

import (
	"encoding/base64"
	"errors"
	"fmt"
	"strconv"
	"strings"
)

// This file holds the part of Structured Field Values (RFC 8941) that
// Content-Digest, Want-Content-Digest, Signature-Input and Signature
// use: dictionaries whose members are bare items (integer, string,
// token, byte sequence, boolean) or inner lists of bare items, each with
// parameters. Decimals are not needed by those fields and are refused.

// sfKind is the type of a bare item.
type sfKind uint8

const (
	sfInteger sfKind = iota + 1
	sfString
	sfToken
	sfBytes
	sfBool
)

// sfItem is a bare item.
type sfItem struct {
	kind  sfKind
	str   string // string, token
	num   int64  // integer
	bytes []byte // byte sequence
	bool  bool
}

// sfParam is one parameter of an item or an inner list, in order.
type sfParam struct {
	key string
	val sfItem
}

// sfMember is a dictionary member: an item, or an inner list when list
// is non-nil (an empty inner list is a non-nil empty slice).
type sfMember struct {
	key    string
	item   sfItem
	list   []sfItem
	isList bool
	params []sfParam
}

var errSFV = errors.New("structured field")

type sfParser struct {
	s string
	i int
}

func (p *sfParser) errorf(format string, args ...any) error {
	return fmt.Errorf("%w: at byte %d: %s", errSFV, p.i, fmt.Sprintf(format, args...))
}

func (p *sfParser) skipSP() {
	for p.i < len(p.s) && p.s[p.i] == ' ' {
		p.i++
	}
}

func (p *sfParser) skipOWS() {
	for p.i < len(p.s) && (p.s[p.i] == ' ' || p.s[p.i] == '\t') {
		p.i++
	}
}

// parseSFDictionary parses a dictionary field value (RFC 8941 §4.2.2).
// Duplicate keys keep the last value, as the RFC says.
func parseSFDictionary(s string) ([]sfMember, error) {
	p := &sfParser{s: s}
	p.skipSP()
	var members []sfMember
	for p.i < len(p.s) {
		key, err := p.key()
		if err != nil {
			return nil, err
		}
		m := sfMember{key: key}
		if p.i < len(p.s) && p.s[p.i] == '=' {
			p.i++
			if p.i < len(p.s) && p.s[p.i] == '(' {
				m.list, err = p.innerList()
				m.isList = true
			} else {
				m.item, err = p.bareItem()
			}
			if err != nil {
				return nil, err
			}
		} else {
			m.item = sfItem{kind: sfBool, bool: true}
		}
		if m.params, err = p.params(); err != nil {
			return nil, err
		}
		replaced := false
		for j := range members {
			if members[j].key == key {
				members[j], replaced = m, true
			}
		}
		if !replaced {
			members = append(members, m)
		}
		p.skipOWS()
		if p.i >= len(p.s) {
			return members, nil
		}
		if p.s[p.i] != ',' {
			return nil, p.errorf("expected ',' between members")
		}
		p.i++
		p.skipOWS()
		if p.i >= len(p.s) {
			return nil, p.errorf("trailing ','")
		}
	}
	return members, nil
}

func (p *sfParser) key() (string, error) {
	start := p.i
	if p.i >= len(p.s) || !(p.s[p.i] == '*' || p.s[p.i] >= 'a' && p.s[p.i] <= 'z') {
		return "", p.errorf("a key starts with a lowercase letter or '*'")
	}
	p.i++
	for p.i < len(p.s) {
		c := p.s[p.i]
		if !(c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || c == '_' || c == '-' || c == '.' || c == '*') {
			break
		}
		p.i++
	}
	return p.s[start:p.i], nil
}

func (p *sfParser) innerList() ([]sfItem, error) {
	p.i++ // '('
	items := []sfItem{}
	for p.i < len(p.s) {
		p.skipSP()
		if p.i < len(p.s) && p.s[p.i] == ')' {
			p.i++
			return items, nil
		}
		it, err := p.bareItem()
		if err != nil {
			return nil, err
		}
		// Parameters on items inside an inner list are legal; nothing we
		// read uses them, so they are parsed and dropped.
		if _, err := p.params(); err != nil {
			return nil, err
		}
		items = append(items, it)
		if p.i < len(p.s) && p.s[p.i] != ' ' && p.s[p.i] != ')' {
			return nil, p.errorf("expected ' ' or ')' in an inner list")
		}
	}
	return nil, p.errorf("unterminated inner list")
}

func (p *sfParser) params() ([]sfParam, error) {
	var ps []sfParam
	for p.i < len(p.s) && p.s[p.i] == ';' {
		p.i++
		p.skipSP()
		key, err := p.key()
		if err != nil {
			return nil, err
		}
		val := sfItem{kind: sfBool, bool: true}
		if p.i < len(p.s) && p.s[p.i] == '=' {
			p.i++
			if val, err = p.bareItem(); err != nil {
				return nil, err
			}
		}
		replaced := false
		for j := range ps {
			if ps[j].key == key {
				ps[j].val, replaced = val, true
			}
		}
		if !replaced {
			ps = append(ps, sfParam{key: key, val: val})
		}
	}
	return ps, nil
}

func (p *sfParser) bareItem() (sfItem, error) {
	if p.i >= len(p.s) {
		return sfItem{}, p.errorf("missing item")
	}
	switch c := p.s[p.i]; {
	case c == '-' || c >= '0' && c <= '9':
		return p.integer()
	case c == '"':
		return p.str()
	case c == ':':
		return p.byteSeq()
	case c == '?':
		if p.i+1 < len(p.s) && (p.s[p.i+1] == '0' || p.s[p.i+1] == '1') {
			p.i += 2
			return sfItem{kind: sfBool, bool: p.s[p.i-1] == '1'}, nil
		}
		return sfItem{}, p.errorf("a boolean is ?0 or ?1")
	case c == '*' || c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z':
		return p.token(), nil
	}
	return sfItem{}, p.errorf("unexpected %q", p.s[p.i])
}

func (p *sfParser) integer() (sfItem, error) {
	start := p.i
	if p.s[p.i] == '-' {
		p.i++
	}
	digits := p.i
	for p.i < len(p.s) && p.s[p.i] >= '0' && p.s[p.i] <= '9' {
		p.i++
	}
	if p.i == digits || p.i-digits > 15 {
		return sfItem{}, p.errorf("an integer has 1 to 15 digits")
	}
	if p.i < len(p.s) && p.s[p.i] == '.' {
		return sfItem{}, p.errorf("decimals are not supported here")
	}
	n, err := strconv.ParseInt(p.s[start:p.i], 10, 64)
	if err != nil {
		return sfItem{}, p.errorf("%v", err)
	}
	return sfItem{kind: sfInteger, num: n}, nil
}

func (p *sfParser) str() (sfItem, error) {
	p.i++ // '"'
	var b strings.Builder
	for p.i < len(p.s) {
		c := p.s[p.i]
		p.i++
		switch {
		case c == '\\':
			if p.i >= len(p.s) || p.s[p.i] != '"' && p.s[p.i] != '\\' {
				return sfItem{}, p.errorf("bad escape in a string")
			}
			b.WriteByte(p.s[p.i])
			p.i++
		case c == '"':
			return sfItem{kind: sfString, str: b.String()}, nil
		case c < 0x20 || c > 0x7e:
			return sfItem{}, p.errorf("a string holds printable ASCII only")
		default:
			b.WriteByte(c)
		}
	}
	return sfItem{}, p.errorf("unterminated string")
}

func (p *sfParser) token() sfItem {
	start := p.i
	p.i++
	for p.i < len(p.s) {
		c := p.s[p.i]
		// tchar, ':' and '/' (RFC 8941 §3.3.4)
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || strings.IndexByte("!#$%&'*+-.^_`|~:/", c) >= 0) {
			break
		}
		p.i++
	}
	return sfItem{kind: sfToken, str: p.s[start:p.i]}
}

func (p *sfParser) byteSeq() (sfItem, error) {
	p.i++ // ':'
	end := strings.IndexByte(p.s[p.i:], ':')
	if end < 0 {
		return sfItem{}, p.errorf("unterminated byte sequence")
	}
	b, err := base64.StdEncoding.DecodeString(p.s[p.i : p.i+end])
	if err != nil {
		return sfItem{}, p.errorf("byte sequence: %v", err)
	}
	p.i += end + 1
	return sfItem{kind: sfBytes, bytes: b}, nil
}

// serialize writes a bare item in its canonical form (RFC 8941 §4.1).
func (it sfItem) serialize(b *strings.Builder) {
	switch it.kind {
	case sfInteger:
		b.WriteString(strconv.FormatInt(it.num, 10))
	case sfString:
		b.WriteByte('"')
		for i := 0; i < len(it.str); i++ {
			if c := it.str[i]; c == '"' || c == '\\' {
				b.WriteByte('\\')
			}
			b.WriteByte(it.str[i])
		}
		b.WriteByte('"')
	case sfToken:
		b.WriteString(it.str)
	case sfBytes:
		b.WriteByte(':')
		b.WriteString(base64.StdEncoding.EncodeToString(it.bytes))
		b.WriteByte(':')
	case sfBool:
		if it.bool {
			b.WriteString("?1")
		} else {
			b.WriteString("?0")
		}
	}
}

// serializeInnerList writes an inner list with its parameters, the form
// RFC 9421's @signature-params line uses.
func serializeInnerList(b *strings.Builder, items []sfItem, params []sfParam) {
	b.WriteByte('(')
	for i, it := range items {
		if i > 0 {
			b.WriteByte(' ')
		}
		it.serialize(b)
	}
	b.WriteByte(')')
	for _, p := range params {
		b.WriteByte(';')
		b.WriteString(p.key)
		if p.val.kind == sfBool && p.val.bool {
			continue
		}
		b.WriteByte('=')
		p.val.serialize(b)
	}
}
