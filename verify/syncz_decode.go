package verify

import (
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"unicode/utf8"
)

// The syncz document of a large mesh holds tens of thousands of proxies, and
// upgrade plans read it repeatedly while they wait for proxies to sync.
// encoding/json spends most of its time on reflection and on one string
// allocation per field; this decoder knows the schema, slices every field
// out of a single copy of the input, and falls back to encoding/json only
// for strings with escapes or non-ASCII bytes. It accepts exactly what
// encoding/json accepts into rawStatus (the tests fuzz one against the
// other), including case-insensitive keys and null for any field.

// Indexes of the flat string fields of a syncz entry.
const (
	fClusterID = iota
	fProxy
	fProxyType
	fProxyVersion
	fIstioVersion
	fClusterSent
	fClusterAcked
	fListenerSent
	fListenerAcked
	fRouteSent
	fRouteAcked
	fEndpointSent
	fEndpointAcked
	fExtensionConfigSent
	fExtensionConfigAcked
	nFields
)

var fieldNames = [nFields]string{
	"cluster_id", "proxy", "proxy_type", "proxy_version", "istio_version",
	"cluster_sent", "cluster_acked", "listener_sent", "listener_acked",
	"route_sent", "route_acked", "endpoint_sent", "endpoint_acked",
	"extensionconfig_sent", "extensionconfig_acked",
}

// fieldResources is the index lookupField returns for "resources".
const fieldResources = nFields

// rawStatus is one entry of the syncz array.
type rawStatus struct {
	fields [nFields]string
	// resources keeps the map's entries in document order, one per type
	// URL.
	resources []rawResourceEntry
}

type rawResourceEntry struct {
	typeURL string
	res     rawResource
}

// rawResource is one value of the resources map.
type rawResource struct {
	Sent  string
	Acked string
	// SentTime is kept as text: a timestamp istiod formats oddly should
	// not make the whole document unreadable.
	SentTime  string
	LastError string
}

func (r *rawStatus) resource(typeURL string) (*rawResource, bool) {
	for i := range r.resources {
		if r.resources[i].typeURL == typeURL {
			return &r.resources[i].res, true
		}
	}
	return nil, false
}

// maxDepth is encoding/json's nesting limit.
const maxDepth = 10000

type synczDecoder struct {
	s   string
	pos int
}

// decodeSyncz parses a syncz document into raw entries.
func decodeSyncz(data []byte) ([]rawStatus, error) {
	// One copy of the input: every field is a substring of it, so the
	// result never aliases the caller's buffer, which it may reuse.
	d := &synczDecoder{s: string(data)}
	out, err := d.document()
	if err != nil {
		return nil, &SynczError{Offset: int64(d.pos), Err: err}
	}
	return out, nil
}

func (d *synczDecoder) document() ([]rawStatus, error) {
	d.ws()
	var out []rawStatus
	switch {
	case d.literal("null"):
	case d.peek() == '[':
		d.pos++
		// Guess from the size: an entry takes roughly 500 bytes or more.
		out = make([]rawStatus, 0, len(d.s)/512+1)
		d.ws()
		if d.peek() == ']' {
			d.pos++
			break
		}
		for {
			d.ws()
			out = append(out, rawStatus{})
			if err := d.status(&out[len(out)-1]); err != nil {
				return nil, err
			}
			d.ws()
			if c := d.peek(); c == ',' {
				d.pos++
				continue
			} else if c == ']' {
				d.pos++
				break
			}
			return nil, d.unexpected("after array element")
		}
	default:
		start := d.pos
		if err := d.skipValue(1); err != nil {
			return nil, err
		}
		d.pos = start
		return nil, errors.New("want an array of proxy statuses")
	}
	d.ws()
	if d.pos != len(d.s) {
		return nil, d.unexpected("after top-level value")
	}
	return out, nil
}

// status decodes one array element: an object or null.
func (d *synczDecoder) status(r *rawStatus) error {
	if d.literal("null") {
		return nil
	}
	return d.object(2, func(key string) error {
		switch i := lookupField(key); {
		case i == fieldResources:
			return d.resources(r)
		case i >= 0:
			return d.stringOrNull(&r.fields[i])
		}
		return d.skipValue(3)
	})
}

func lookupField(key string) int {
	if key == "resources" {
		return fieldResources
	}
	for i, name := range fieldNames {
		if key == name {
			return i
		}
	}
	// encoding/json falls back to a case-insensitive match.
	if strings.EqualFold(key, "resources") {
		return fieldResources
	}
	for i, name := range fieldNames {
		if strings.EqualFold(key, name) {
			return i
		}
	}
	return -1
}

// resources decodes the resources map. Like encoding/json it merges into
// what an earlier "resources" key left, and null clears it.
func (d *synczDecoder) resources(r *rawStatus) error {
	if d.literal("null") {
		r.resources = nil
		return nil
	}
	return d.object(3, func(typeURL string) error {
		var res rawResource
		if !d.literal("null") {
			err := d.object(4, func(key string) error {
				// The four names differ even ignoring case, so a
				// case-insensitive match is what encoding/json does.
				switch {
				case strings.EqualFold(key, "sent"):
					return d.stringOrNull(&res.Sent)
				case strings.EqualFold(key, "acked"):
					return d.stringOrNull(&res.Acked)
				case strings.EqualFold(key, "sentTime"):
					return d.stringOrNull(&res.SentTime)
				case strings.EqualFold(key, "lastError"):
					return d.stringOrNull(&res.LastError)
				}
				return d.skipValue(5)
			})
			if err != nil {
				return err
			}
		}
		if old, ok := r.resource(typeURL); ok {
			*old = res
		} else {
			r.resources = append(r.resources, rawResourceEntry{typeURL: typeURL, res: res})
		}
		return nil
	})
}

// object decodes an object whose values field decodes, one per key.
func (d *synczDecoder) object(depth int, field func(key string) error) error {
	if depth > maxDepth {
		return errors.New("exceeded max depth")
	}
	if d.peek() != '{' {
		start := d.pos
		if err := d.skipValue(depth); err != nil {
			return err
		}
		d.pos = start
		return errors.New("want an object")
	}
	d.pos++
	d.ws()
	if d.peek() == '}' {
		d.pos++
		return nil
	}
	for {
		d.ws()
		if d.peek() != '"' {
			return d.unexpected("looking for beginning of object key string")
		}
		key, err := d.str()
		if err != nil {
			return err
		}
		d.ws()
		if d.peek() != ':' {
			return d.unexpected("after object key")
		}
		d.pos++
		d.ws()
		if err := field(key); err != nil {
			return err
		}
		d.ws()
		switch d.peek() {
		case ',':
			d.pos++
		case '}':
			d.pos++
			return nil
		default:
			return d.unexpected("after object key:value pair")
		}
	}
}

// stringOrNull stores a string; null leaves dst as it is, as in
// encoding/json. Any other value is a type error, after checking that it is
// at least valid JSON.
func (d *synczDecoder) stringOrNull(dst *string) error {
	if d.literal("null") {
		return nil
	}
	if d.peek() != '"' {
		start := d.pos
		if err := d.skipValue(1); err != nil {
			return err
		}
		d.pos = start
		return errors.New("want a string")
	}
	s, err := d.str()
	if err != nil {
		return err
	}
	*dst = s
	return nil
}

// str decodes the string at d.pos. Plain ASCII and valid UTF-8 without
// escapes is sliced out of the input; anything else goes through
// encoding/json so that escapes and invalid bytes come out the same.
func (d *synczDecoder) str() (string, error) {
	start := d.pos // the opening quote
	// Fast path: the common nonce or name, up to the next quote, with
	// nothing to unescape.
	if j := strings.IndexByte(d.s[start+1:], '"'); j >= 0 {
		if body := d.s[start+1 : start+1+j]; plainASCII(body) {
			d.pos = start + j + 2
			return body, nil
		}
	}
	escaped, nonASCII := false, false
	i := start + 1
	for ; i < len(d.s); i++ {
		c := d.s[i]
		if c == '"' {
			break
		}
		switch {
		case c == '\\':
			escaped = true
			i++
		case c < 0x20:
			escaped = true // invalid: let encoding/json say so
		case c >= utf8.RuneSelf:
			nonASCII = true
		}
	}
	if i >= len(d.s) {
		d.pos = len(d.s)
		return "", errors.New("unexpected end of JSON input")
	}
	d.pos = i + 1
	body := d.s[start+1 : i]
	if !escaped && (!nonASCII || utf8.ValidString(body)) {
		return body, nil
	}
	var out string
	if err := json.Unmarshal([]byte(d.s[start:d.pos]), &out); err != nil {
		d.pos = start
		return "", err
	}
	return out, nil
}

// plainASCII reports whether s holds only printable ASCII and no
// backslash, so that its JSON form is itself.
func plainASCII(s string) bool {
	for i := 0; i < len(s); i++ {
		if c := s[i]; c < 0x20 || c >= utf8.RuneSelf || c == '\\' {
			return false
		}
	}
	return true
}

// skipValue checks and passes over any JSON value.
func (d *synczDecoder) skipValue(depth int) error {
	if depth > maxDepth {
		return errors.New("exceeded max depth")
	}
	d.ws()
	switch c := d.peek(); {
	case c == '"':
		_, err := d.str()
		return err
	case c == '{':
		return d.object(depth, func(string) error { return d.skipValue(depth + 1) })
	case c == '[':
		d.pos++
		d.ws()
		if d.peek() == ']' {
			d.pos++
			return nil
		}
		for {
			if err := d.skipValue(depth + 1); err != nil {
				return err
			}
			d.ws()
			switch d.peek() {
			case ',':
				d.pos++
			case ']':
				d.pos++
				return nil
			default:
				return d.unexpected("after array element")
			}
		}
	case c == '-' || c >= '0' && c <= '9':
		return d.number()
	case d.literal("true"), d.literal("false"), d.literal("null"):
		return nil
	}
	return d.unexpected("looking for beginning of value")
}

// number passes over -?(0|[1-9][0-9]*)(\.[0-9]+)?([eE][+-]?[0-9]+)?
func (d *synczDecoder) number() error {
	if d.peek() == '-' {
		d.pos++
	}
	switch c := d.peek(); {
	case c == '0':
		d.pos++
	case c >= '1' && c <= '9':
		d.digits()
	default:
		return d.unexpected("in numeric literal")
	}
	if d.peek() == '.' {
		d.pos++
		if !isDigit(d.peek()) {
			return d.unexpected("after decimal point in numeric literal")
		}
		d.digits()
	}
	if c := d.peek(); c == 'e' || c == 'E' {
		d.pos++
		if c := d.peek(); c == '+' || c == '-' {
			d.pos++
		}
		if !isDigit(d.peek()) {
			return d.unexpected("in exponent of numeric literal")
		}
		d.digits()
	}
	return nil
}

func (d *synczDecoder) digits() {
	for isDigit(d.peek()) {
		d.pos++
	}
}

func isDigit(c byte) bool { return c >= '0' && c <= '9' }

// literal consumes word if it comes next.
func (d *synczDecoder) literal(word string) bool {
	if strings.HasPrefix(d.s[d.pos:], word) {
		d.pos += len(word)
		return true
	}
	return false
}

// peek returns the next byte, or 0 at the end.
func (d *synczDecoder) peek() byte {
	if d.pos < len(d.s) {
		return d.s[d.pos]
	}
	return 0
}

func (d *synczDecoder) ws() {
	for d.pos < len(d.s) {
		switch d.s[d.pos] {
		case ' ', '\t', '\n', '\r':
			d.pos++
		default:
			return
		}
	}
}

func (d *synczDecoder) unexpected(context string) error {
	if d.pos >= len(d.s) {
		return errors.New("unexpected end of JSON input")
	}
	return fmt.Errorf("invalid character %q %s", d.s[d.pos], context)
}
