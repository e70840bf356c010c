package revkit_test

import (
	"strings"
	"testing"

	"k8s.io/apimachinery/pkg/util/validation"

	"github.com/revkit/revkit"
)

// FuzzValidateNames checks that name validation never panics and that
// whatever it accepts makes valid object names: the Service
// istiod-<revision> and istiod-revision-tag-<tag> are DNS-1035 labels.
func FuzzValidateNames(f *testing.F) {
	for _, s := range []string{"", "1-24-0", "1.24.0", "Canary", "default", "-x", "x-", "a_b", "ä", "\x00",
		strings.Repeat("a", 56), strings.Repeat("a", 57), strings.Repeat("t", 44), "prod-stable"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, name string) {
		if err := revkit.ValidateRevision(name); err == nil {
			if strings.Contains(name, ".") || len(validation.IsDNS1035Label("istiod-"+name)) > 0 {
				t.Fatalf("accepted revision %q makes an invalid Service name", name)
			}
		} else if !isInvalid(err) {
			t.Fatalf("revision %q: untyped error %v", name, err)
		}
		if err := revkit.ValidateTag(name); err == nil {
			if len(validation.IsDNS1035Label("istiod-revision-tag-"+name)) > 0 {
				t.Fatalf("accepted tag %q makes an invalid Service name", name)
			}
		} else if !isInvalid(err) {
			t.Fatalf("tag %q: untyped error %v", name, err)
		}
		if err := revkit.ValidateNamespace("ns", name); err == nil && name != "" {
			if len(validation.IsDNS1123Label(name)) > 0 {
				t.Fatalf("accepted namespace %q", name)
			}
		}
	})
}

func isInvalid(err error) bool {
	_, ok := err.(*revkit.InvalidInputError)
	return ok
}
