package revision

import (
	"cmp"
	"context"
	"encoding/json"
	"fmt"
	"slices"
	"sort"
	"strings"
	"time"

	"helm.sh/helm/v4/pkg/action"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	"sigs.k8s.io/yaml"

	"github.com/revkit/revkit"
	"github.com/revkit/revkit/internal/kubeutil"
)

// BaseOptions configures UpgradeBase.
type BaseOptions struct {
	revkit.Common
	// Chart is Istio's base chart (CRDs, cluster roles). Required.
	Chart ChartSource
	// Values override the chart's values.
	Values map[string]any
	// Wait blocks until the release's objects are ready; Timeout bounds the
	// Helm operations (default 5 minutes).
	Wait    bool
	Timeout time.Duration
	// ControlPlaneNamespace holds the release; default istio-system.
	ControlPlaneNamespace string
	// Helm is the Helm configuration for the cluster (see NewHelm). Required.
	Helm *action.Configuration `json:"-"`
}

// Validate checks the options before any request.
func (o *BaseOptions) Validate() error {
	if err := o.Chart.validate("Chart"); err != nil {
		return err
	}
	if err := revkit.ValidateNamespace("ControlPlaneNamespace", o.ControlPlaneNamespace); err != nil {
		return err
	}
	if o.Helm == nil {
		return &revkit.InvalidInputError{Field: "Helm", Reason: "a Helm configuration is required (see NewHelm)"}
	}
	return o.DryRun.Validate()
}

// CRDChange is what a base upgrade does to one CustomResourceDefinition.
type CRDChange struct {
	Name string
	// Action is create (a CRD new to the cluster), update (its versions
	// change) or unchanged.
	Action revkit.Action
	// Added and Removed are the versions the new chart adds and drops.
	Added, Removed []string
	// StorageFrom and StorageTo are the storage version before and after;
	// equal when unchanged.
	StorageFrom, StorageTo string
	// StoredVersions are the versions objects of the CRD may still be
	// stored in (its status.storedVersions).
	StoredVersions []string
}

// String describes the change in one line, e.g. "adds v1, storage
// v1beta1 → v1".
func (c CRDChange) String() string {
	var parts []string
	if c.Action == revkit.ActionCreate {
		return "new CRD, versions " + strings.Join(c.Added, ", ")
	}
	if len(c.Added) > 0 {
		parts = append(parts, "adds "+strings.Join(c.Added, ", "))
	}
	if len(c.Removed) > 0 {
		parts = append(parts, "removes "+strings.Join(c.Removed, ", "))
	}
	if c.StorageFrom != c.StorageTo {
		parts = append(parts, "storage "+c.StorageFrom+" → "+c.StorageTo)
	}
	if len(parts) == 0 {
		return "versions unchanged"
	}
	return strings.Join(parts, ", ")
}

// BaseResult reports what UpgradeBase did, or in a dry run would do.
type BaseResult struct {
	Release string
	// CRDs lists every CRD of the new chart, by name.
	CRDs    []CRDChange
	Changes []revkit.Change
	DryRun  revkit.DryRun
}

// ObjectChanges lists the release and the CRDs; see revkit.Result.
func (r *BaseResult) ObjectChanges() []revkit.Change { return r.Changes }

// StoredVersionError refuses a base upgrade that would drop a CRD version
// in which objects may still be stored in etcd (status.storedVersions):
// the apiserver could no longer read them. It matches revkit.ErrInUse.
type StoredVersionError struct {
	CRD, Version string
}

func (e *StoredVersionError) Error() string {
	return fmt.Sprintf("the new base chart removes version %s of CRD %s, which objects may still be stored in "+
		"(status.storedVersions): migrate them to a version the chart keeps (rewrite every object, then drop %s "+
		"from status.storedVersions) before upgrading", e.Version, e.CRD, e.Version)
}

// Is matches revkit.ErrInUse.
func (e *StoredVersionError) Is(target error) bool { return target == revkit.ErrInUse }

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
// BaseRelease, as Istio's Helm upgrade guide does before a new control
// plane is installed. Before any write it compares every CRD the new chart
// renders with the cluster's: new CRDs, versions added and removed, a
// changed storage version — the result lists them, in a dry run too — and
// it refuses with a *StoredVersionError (revkit.ErrInUse) to remove a
// version that objects may still be stored in.
//
// A base upgrade is not undone by a rollback: CRDs keep the versions it
// added (an older control plane ignores versions it does not know), and
// objects written since are stored in the new storage version, which the
// old chart's CRDs may not serve. Rolling the base chart back is a
// separate, deliberate step (UpgradeBase with the old chart), refused the
// same way when it would drop a stored version.
func UpgradeBase(ctx context.Context, kube kubernetes.Interface, opts BaseOptions) (*BaseResult, error) {
	return upgradeBase(ctx, opts, readCRDs(kube))
}

func upgradeBase(ctx context.Context, opts BaseOptions, read crdReader) (*BaseResult, error) {
	const op = "revision.UpgradeBase"
	res := &BaseResult{Release: BaseRelease, DryRun: opts.DryRun}
	if err := opts.Validate(); err != nil {
		return res, err
	}
	ns := revkit.ControlPlaneNamespace(opts.ControlPlaneNamespace)
	timeout := cmp.Or(opts.Timeout, 5*time.Minute)
	chrt, err := loadChart(opts.Chart, opts.Helm)
	if err != nil {
		return res, fmt.Errorf("%s: load base chart: %w", op, err)
	}
	exists, err := releaseExists(opts.Helm, BaseRelease)
	if err != nil {
		return res, &revkit.OpError{Op: op, Verb: "get", Object: revkit.ObjectRef{Kind: "HelmRelease", Namespace: ns, Name: BaseRelease}, Err: err}
	}
	values := deepCopy(opts.Values)
	if values == nil {
		values = map[string]any{}
	}
	manifest, err := runHelm(ctx, opts.Helm, chrt, values, BaseRelease, ns, exists, action.DryRunClient, false, timeout)
	if err != nil {
		return res, fmt.Errorf("%s: render %s: %w", op, BaseRelease, err)
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
				return res, &StoredVersionError{CRD: c.Name, Version: v}
			}
		}
	}
	for _, c := range res.CRDs {
		rec.Record(ctx, revkit.ObjectRef{Kind: "CustomResourceDefinition", Name: c.Name}, c.Action, c.String())
	}
	in := InstallOptions{Common: opts.Common, Base: &opts.Chart, BaseValues: values, Helm: opts.Helm, Wait: opts.Wait}
	err = installBase(ctx, in, rec, ns, timeout)
	res.Changes = rec.Changes
	return res, err
}

// renderedCRDs reads the CustomResourceDefinitions of a rendered manifest.
func renderedCRDs(manifest string) ([]*liveCRD, error) {
	var out []*liveCRD
	for _, doc := range strings.Split(manifest, "\n---") {
		doc = strings.TrimSpace(strings.TrimPrefix(doc, "---"))
		if !strings.Contains(doc, "CustomResourceDefinition") {
			continue
		}
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
func compareCRD(want, live *liveCRD) CRDChange {
	wantVersions, wantStorage := want.versions()
	c := CRDChange{Name: want.Metadata.Name, StorageTo: wantStorage}
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
