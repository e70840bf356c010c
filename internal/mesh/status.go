package mesh

import "encoding/json"

// statusRevision returns the "revision" of a sidecar status annotation the
// way json.Unmarshal into struct{ Revision string } would, and "" when the
// annotation is not a JSON object or has no string revision.
//
// Every pod of a fleet carries this annotation and reading revisions is
// the inner loop of listing a mesh, so the usual shape — a flat object
// whose revision is a plain string — is read by one scan without
// allocating; anything else goes to encoding/json.
func statusRevision(raw string) string {
	if rev, ok := scanRevision(raw); ok {
		return rev
	}
	var st struct {
		Revision string `json:"revision"`
	}
	if err := json.Unmarshal([]byte(raw), &st); err != nil {
		return ""
	}
	return st.Revision
}

// scanRevision reads the value of the top-level key "revision" of a valid
// JSON object. It gives up (ok false) on anything it does not handle
// exactly as encoding/json does: a value that is not a plain ASCII string,
// or a top-level key with escapes or non-ASCII bytes or one that matches
// only case-insensitively (encoding/json folds case, including the Kelvin
// sign and the long s).
func scanRevision(raw string) (rev string, ok bool) {
	if !json.Valid([]byte(raw)) {
		return "", true
	}
	depth, found := 0, false
	for i := 0; i < len(raw); i++ {
		switch c := raw[i]; c {
		case '{', '[':
			depth++
		case '}', ']':
			depth--
		case '"':
			end, escaped := stringEnd(raw, i)
			if depth != 1 || !isKey(raw, end) {
				i = end
				continue
			}
			key := raw[i+1 : end]
			if key != "revision" {
				if escaped || !isASCII(key) || equalFoldASCII(key, "revision") {
					return "", false // encoding/json may match it case-insensitively
				}
				i = end
				continue
			}
			v := skipSpace(raw, skipSpace(raw, end+1)+1) // past ':'
			if v >= len(raw) || raw[v] != '"' {
				return "", false // null, number, object...: let encoding/json decide
			}
			vend, vescaped := stringEnd(raw, v)
			if vescaped || !isASCII(raw[v+1:vend]) {
				return "", false
			}
			rev, found = raw[v+1:vend], true // the last duplicate wins, as in encoding/json
			i = vend
		}
	}
	if !found {
		return "", true
	}
	return rev, true
}

// stringEnd returns the index of the quote closing the string that opens
// at raw[start], and whether the string holds an escape. raw is valid JSON.
func stringEnd(raw string, start int) (end int, escaped bool) {
	for i := start + 1; i < len(raw); i++ {
		switch raw[i] {
		case '\\':
			escaped = true
			i++
		case '"':
			return i, escaped
		}
	}
	return len(raw), escaped
}

// isKey reports whether the string ending at raw[end] is an object key.
func isKey(raw string, end int) bool {
	i := skipSpace(raw, end+1)
	return i < len(raw) && raw[i] == ':'
}

func skipSpace(raw string, i int) int {
	for i < len(raw) && (raw[i] == ' ' || raw[i] == '\t' || raw[i] == '\n' || raw[i] == '\r') {
		i++
	}
	return i
}

// equalFoldASCII reports whether a and b are equal ignoring ASCII case; b
// is lower case.
func equalFoldASCII(a, b string) bool {
	if len(a) != len(b) {
		return false
	}
	for i := 0; i < len(a); i++ {
		x := a[i]
		if 'A' <= x && x <= 'Z' {
			x += 'a' - 'A'
		}
		if x != b[i] {
			return false
		}
	}
	return true
}

func isASCII(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] >= 0x80 {
			return false
		}
	}
	return true
}
