package helm

import (
	"cmp"
	"context"
	"encoding/json"
	"fmt"
	"slices"
	"sort"
	"time"

	"helm.sh/helm/v4/pkg/action"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	"sigs.k8s.io/yaml"

	"github.com/revkit/revkit"
	"github.com/revkit/revkit/internal/kubeutil"
	"github.com/revkit/revkit/revision"
)

// liveCRD is the part of a CustomResourceDefinition a base upgrade checks.
type liveCRD struct {
	Metadata struct {
		Name string `json:"name"`
	} `json:"metadata"`
	Spec struct {
		Versions []struct {
			Name    string `json:"name"`
			Served  bool   `json:"served"`
			Storage bool   `json:"storage"`
		} `json:"versions"`
	} `json:"spec"`
	Status struct {
		StoredVersions []string `json:"storedVersions"`
	} `json:"status"`
}

func (c *liveCRD) versions() (names []string, storage string) {
	for _, v := range c.Spec.Versions {
		names = append(names, v.Name)
		if v.Storage {
			storage = v.Name
		}
	}
	return names, storage
}

// crdReader reads a CRD from the cluster; nil and no error when there is
// none.
type crdReader func(ctx context.Context, name string) (*liveCRD, error)

// readCRDs reads CRDs through the apiserver's REST client, without a typed
// apiextensions client.
func readCRDs(kube kubernetes.Interface) crdReader {
	return func(ctx context.Context, name string) (*liveCRD, error) {
		rc, ok := kube.Discovery().RESTClient().(*rest.RESTClient)
		if !ok || rc == nil {
			return nil, fmt.Errorf("the client cannot read CustomResourceDefinitions")
		}
		raw, err := rc.Get().AbsPath("/apis/apiextensions.k8s.io/v1/customresourcedefinitions", name).DoRaw(ctx)
		if apierrors.IsNotFound(err) {
			return nil, nil
		}
		if err != nil {
			return nil, err
		}
		var c liveCRD
		if err := json.Unmarshal(raw, &c); err != nil {
			return nil, err
		}
		return &c, nil
	}
}

// UpgradeBase upgrades (or installs) Istio's base chart, release
// revision.BaseRelease, as revision.UpgradeBase documents: every CRD the new
// chart renders is compared with the cluster's before any write, and
// removing a version objects may still be stored in is refused with a
// *revision.StoredVersionError. opts.Helm is not used: c upgrades.
func (c *Client) UpgradeBase(ctx context.Context, kube kubernetes.Interface, opts revision.BaseOptions) (*revision.BaseResult, error) {
	return c.upgradeBase(ctx, opts, readCRDs(kube))
}

func (c *Client) upgradeBase(ctx context.Context, opts revision.BaseOptions, read crdReader) (*revision.BaseResult, error) {
	const op = "revision.UpgradeBase"
	res := &revision.BaseResult{Release: revision.BaseRelease, DryRun: opts.DryRun}
	opts.Helm = c
	if err := cmp.Or(c.usable(), opts.Validate()); err != nil {
		return res, err
	}
	ns := revkit.ControlPlaneNamespace(opts.ControlPlaneNamespace)
	timeout := cmp.Or(opts.Timeout, 5*time.Minute)
	chrt, err := loadChart(opts.Chart, c.cfg)
	if err != nil {
		return res, fmt.Errorf("%s: load base chart: %w", op, err)
	}
	exists, err := releaseExists(c.cfg, revision.BaseRelease)
	if err != nil {
		return res, &revkit.OpError{Op: op, Verb: "get", Object: revkit.ObjectRef{Kind: "HelmRelease", Namespace: ns, Name: revision.BaseRelease}, Err: err}
	}
	values := deepCopy(opts.Values)
	if values == nil {
		values = map[string]any{}
	}
	manifest, err := runHelm(ctx, c.cfg, chrt, values, revision.BaseRelease, ns, exists, action.DryRunClient, false, timeout)
	if err != nil {
		return res, fmt.Errorf("%s: render %s: %w", op, revision.BaseRelease, err)
	}
	crds, err := renderedCRDs(manifest)
	if err != nil {
		return res, fmt.Errorf("%s: read rendered manifest: %w", op, err)
	}
	rec := kubeutil.NewRecorder(op, opts.Common)
	for _, want := range crds {
		live, err := read(ctx, want.Metadata.Name)
		if err != nil {
			return res, &revkit.OpError{Op: op, Verb: "get", Object: revkit.ObjectRef{Kind: "CustomResourceDefinition", Name: want.Metadata.Name}, Err: err}
		}
		res.CRDs = append(res.CRDs, compareCRD(want, live))
	}
	// Refuse before any write.
	for _, c := range res.CRDs {
		for _, v := range c.Removed {
			if slices.Contains(c.StoredVersions, v) {
				return res, &revision.StoredVersionError{CRD: c.Name, Version: v}
			}
		}
	}
	for _, c := range res.CRDs {
		rec.Record(ctx, revkit.ObjectRef{Kind: "CustomResourceDefinition", Name: c.Name}, c.Action, c.String())
	}
	err = c.installBase(ctx, opts.Chart, values, opts.DryRun, opts.Wait, rec, ns, timeout)
	res.Changes = rec.Changes
	return res, err
}

// renderedCRDs reads the CustomResourceDefinitions of a rendered manifest.
func renderedCRDs(manifest string) ([]*liveCRD, error) {
	var out []*liveCRD
	for _, doc := range splitManifest(manifest) {
		var head struct {
			Kind string `json:"kind"`
		}
		if err := yaml.Unmarshal([]byte(doc), &head); err != nil {
			return nil, err
		}
		if head.Kind != "CustomResourceDefinition" {
			continue
		}
		var c liveCRD
		if err := yaml.Unmarshal([]byte(doc), &c); err != nil {
			return nil, err
		}
		out = append(out, &c)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Metadata.Name < out[j].Metadata.Name })
	return out, nil
}

// compareCRD says what replacing live (nil: absent) with want changes.
func compareCRD(want, live *liveCRD) revision.CRDChange {
	wantVersions, wantStorage := want.versions()
	c := revision.CRDChange{Name: want.Metadata.Name, StorageTo: wantStorage}
	if live == nil {
		c.Action, c.Added, c.StorageFrom = revkit.ActionCreate, wantVersions, wantStorage
		return c
	}
	liveVersions, liveStorage := live.versions()
	c.StorageFrom, c.StoredVersions = liveStorage, live.Status.StoredVersions
	for _, v := range wantVersions {
		if !slices.Contains(liveVersions, v) {
			c.Added = append(c.Added, v)
		}
	}
	for _, v := range liveVersions {
		if !slices.Contains(wantVersions, v) {
			c.Removed = append(c.Removed, v)
		}
	}
	c.Action = revkit.ActionUnchanged
	if len(c.Added)+len(c.Removed) > 0 || c.StorageFrom != c.StorageTo {
		c.Action = revkit.ActionUpdate
	}
	return c
}
