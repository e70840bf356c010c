package revision_test

import (
	"fmt"

	rv1 "helm.sh/helm/v4/pkg/release/v1"
)

func releaseAccessor(r any) (string, error) {
	rel, ok := r.(*rv1.Release)
	if !ok {
		return "", fmt.Errorf("unexpected release type %T", r)
	}
	return fmt.Sprintf("%s#%d", rel.Name, rel.Version), nil
}
