package revision

import (
	"context"
	"fmt"
	"strings"
	"time"

	"k8s.io/client-go/kubernetes"

	"github.com/revkit/revkit"
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
	// Helm upgrades the release: the Helm client of package helm
	// (helm.New) or another Installer. Required.
	Helm Installer `json:"-"`
}

// Validate checks the options before any request.
func (o *BaseOptions) Validate() error {
	if err := o.Chart.Validate("Chart"); err != nil {
		return err
	}
	if err := revkit.ValidateNamespace("ControlPlaneNamespace", o.ControlPlaneNamespace); err != nil {
		return err
	}
	if o.Helm == nil {
		return &revkit.InvalidInputError{Field: "Helm", Reason: "an Installer is required (see helm.New)"}
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

// UpgradeBase upgrades (or installs) Istio's base chart, release
// BaseRelease, as Istio's Helm upgrade guide does before a new control
// plane is installed, through opts.Helm after checking the
// options (revkit.ErrInvalidInput). Before any write the installer
// compares every CRD the new chart renders with the cluster's: new CRDs, versions added and removed, a
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
	if err := opts.Validate(); err != nil {
		return &BaseResult{Release: BaseRelease, DryRun: opts.DryRun}, err
	}
	return opts.Helm.UpgradeBase(ctx, kube, opts)
}
