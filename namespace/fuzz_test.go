package namespace_test

import (
	"errors"
	"testing"

	"k8s.io/apimachinery/pkg/labels"

	"github.com/revkit/revkit"
	"github.com/revkit/revkit/namespace"
)

// FuzzMigrateOptions checks that validation of a selection never panics,
// answers bad input with a typed error, and accepts only selectors the
// apiserver would parse.
func FuzzMigrateOptions(f *testing.F) {
	f.Add("team=shop", "shop", "1-24-0")
	f.Add("istio.io/rev in (a,b),!istio-injection", "", "prod-canary")
	f.Add("a in ((", "kube-system", "1.24.0")
	f.Add("", "", "")
	f.Add("x!=", "Shop", "UPPER")
	f.Fuzz(func(t *testing.T, selector, ns, target string) {
		opts := namespace.MigrateOptions{Selection: namespace.Selection{Selector: selector}, Target: target}
		if ns != "" {
			opts.Namespaces = []string{ns}
		}
		err := opts.Validate()
		if err == nil {
			if selector != "" {
				if _, perr := labels.Parse(selector); perr != nil {
					t.Fatalf("accepted selector %q that does not parse: %v", selector, perr)
				}
			}
			if revkit.ValidateRevision(target) != nil {
				t.Fatalf("accepted target %q", target)
			}
			return
		}
		if !errors.Is(err, revkit.ErrInvalidInput) {
			t.Fatalf("untyped error for %q %q %q: %v", selector, ns, target, err)
		}
	})
}
