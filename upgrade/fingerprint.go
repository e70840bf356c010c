package upgrade

import (
	"crypto/sha256"
	"encoding"
	"encoding/hex"
	"fmt"
	"hash"
	"reflect"
	"slices"
	"strings"

	"github.com/revkit/revkit"
)

// InputReporter is implemented by steps whose behaviour depends on inputs
// beyond their name and description. Every step this package builds
// implements it with its operation's options; a custom step implements it so
// that a change of its inputs is noticed by Fingerprint, and so by a
// journal, which then refuses to resume the changed plan.
type InputReporter interface {
	// Inputs returns the step's inputs: plain data (structs, maps, slices,
	// strings, numbers, durations, times). Functions and channels are left
	// out of the fingerprint, and so are values of types from other modules
	// behind pointers or interfaces (the Helm SDK configuration inside a
	// helm.Client, a verify.SyncSource): only their type counts.
	Inputs() any
}

// Fingerprint digests everything that decides what a plan does: its name,
// and for each step and each on-failure step its name, description, type
// and inputs (InputReporter) — a chart, values, a timeout, a selection, a
// target. A journal records it and refuses to resume a plan whose
// fingerprint differs.
func Fingerprint(p Plan) string {
	h := sha256.New()
	fmt.Fprintf(h, "plan %q\n", p.Name)
	for _, sec := range []struct {
		part  string
		steps []Step
	}{{"step", p.Steps}, {"on-failure", p.OnFailure}} {
		for _, s := range sec.steps {
			if s == nil {
				fmt.Fprintf(h, "%s <nil>\n", sec.part)
				continue
			}
			fmt.Fprintf(h, "%s %q %q %T\n", sec.part, s.Name(), s.Description(), s)
			if in, ok := s.(InputReporter); ok {
				hashValue(h, reflect.ValueOf(in.Inputs()), 0)
			}
			fmt.Fprintln(h)
		}
	}
	return hex.EncodeToString(h.Sum(nil))
}

var (
	commonType     = reflect.TypeFor[revkit.Common]()
	textMarshaller = reflect.TypeFor[encoding.TextMarshaler]()
)

// ownModule reports whether a type is revkit's own or a predeclared one,
// whose values the fingerprint walks into.
func ownModule(t reflect.Type) bool {
	p := t.PkgPath()
	return p == "" || p == "time" || p == "github.com/revkit/revkit" || strings.HasPrefix(p, "github.com/revkit/revkit/")
}

// hashValue writes a canonical form of v to h: map keys sorted, pointers
// followed, functions and channels skipped, revkit.Common (the plan's own
// dry-run mode and callbacks) skipped.
func hashValue(h hash.Hash, v reflect.Value, depth int) {
	if depth > 16 {
		fmt.Fprint(h, "…")
		return
	}
	if !v.IsValid() {
		fmt.Fprint(h, "nil")
		return
	}
	t := v.Type()
	if t.Implements(textMarshaller) && (t.Kind() != reflect.Pointer || !v.IsNil()) {
		if b, err := v.Interface().(encoding.TextMarshaler).MarshalText(); err == nil {
			fmt.Fprintf(h, "%s(%q)", t, b)
			return
		}
	}
	switch t.Kind() {
	case reflect.Func, reflect.Chan, reflect.UnsafePointer:
		fmt.Fprint(h, "-")
	case reflect.Pointer, reflect.Interface:
		if v.IsNil() {
			fmt.Fprint(h, "nil")
			return
		}
		e := v.Elem()
		if !ownModule(e.Type()) && e.Kind() == reflect.Struct {
			fmt.Fprintf(h, "&%s", e.Type())
			return
		}
		hashValue(h, e, depth+1)
	case reflect.Struct:
		if t == commonType {
			fmt.Fprint(h, "common")
			return
		}
		fmt.Fprintf(h, "%s{", t)
		for i := range t.NumField() {
			f := t.Field(i)
			if !f.IsExported() {
				continue
			}
			fmt.Fprintf(h, "%s:", f.Name)
			hashValue(h, v.Field(i), depth+1)
			fmt.Fprint(h, ",")
		}
		fmt.Fprint(h, "}")
	case reflect.Map:
		if v.IsNil() {
			fmt.Fprint(h, "nil")
			return
		}
		type entry struct{ k, v string }
		var entries []entry
		for it := v.MapRange(); it.Next(); {
			kh, vh := sha256.New(), sha256.New()
			hashValue(kh, it.Key(), depth+1)
			hashValue(vh, it.Value(), depth+1)
			entries = append(entries, entry{string(kh.Sum(nil)), string(vh.Sum(nil))})
		}
		slices.SortFunc(entries, func(a, b entry) int { return strings.Compare(a.k, b.k) })
		fmt.Fprint(h, "map[")
		for _, e := range entries {
			fmt.Fprintf(h, "%x:%x,", e.k, e.v)
		}
		fmt.Fprint(h, "]")
	case reflect.Slice, reflect.Array:
		if t.Kind() == reflect.Slice && v.IsNil() {
			fmt.Fprint(h, "nil")
			return
		}
		fmt.Fprint(h, "[")
		for i := range v.Len() {
			hashValue(h, v.Index(i), depth+1)
			fmt.Fprint(h, ",")
		}
		fmt.Fprint(h, "]")
	default:
		fmt.Fprintf(h, "%#v", v.Interface())
	}
}
