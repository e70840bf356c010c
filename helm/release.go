package helm

import (
	"context"
	"errors"
	"fmt"
	"time"

	"helm.sh/helm/v4/pkg/action"
	helmkube "helm.sh/helm/v4/pkg/kube"
	rv1 "helm.sh/helm/v4/pkg/release/v1"
	"helm.sh/helm/v4/pkg/storage/driver"

	"github.com/revkit/revkit"
)

// ReleaseObjects lists the objects of the release's last record, from its
// manifest; a namespaced object without a namespace is in the release's
// namespace. found is false, with no error, when there is no such release.
func (c *Client) ReleaseObjects(_ context.Context, release string) ([]revkit.ObjectRef, bool, error) {
	if err := c.usable(); err != nil {
		return nil, false, err
	}
	rel, err := lastRelease(c.cfg, release)
	if err != nil || rel == nil {
		return nil, false, err
	}
	var out []revkit.ObjectRef
	for _, doc := range splitManifest(rel.Manifest) {
		ref, err := objectRef(doc, rel.Namespace)
		if err != nil {
			return nil, true, fmt.Errorf("release %s: read manifest: %w", rel.Name, err)
		}
		if ref.Kind != "" && ref.Name != "" {
			out = append(out, ref)
		}
	}
	return out, true, nil
}

// UninstallRelease uninstalls a release as helm uninstall does: Helm
// deletes the objects that still carry the release's ownership metadata,
// in the background, then the release's records. It does not wait for
// the objects to be gone; timeout bounds the uninstall's hooks.
func (c *Client) UninstallRelease(_ context.Context, release string, timeout time.Duration) error {
	if err := c.usable(); err != nil {
		return err
	}
	u := action.NewUninstall(c.cfg)
	u.WaitStrategy, u.Timeout, u.DeletionPropagation = helmkube.HookOnlyStrategy, timeout, "background"
	_, err := u.Run(release)
	return err
}

// lastRelease returns the release's last record, nil when there is none.
func lastRelease(cfg *action.Configuration, name string) (*rv1.Release, error) {
	r, err := cfg.Releases.Last(name)
	if errors.Is(err, driver.ErrReleaseNotFound) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	rel, ok := r.(*rv1.Release)
	if !ok {
		return nil, fmt.Errorf("release %s: unsupported release record %T", name, r)
	}
	return rel, nil
}
