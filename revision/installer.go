package revision

import (
	"context"
	"time"

	"k8s.io/client-go/kubernetes"

	"github.com/revkit/revkit"
)

// Installer installs, upgrades and uninstalls Helm releases for Install,
// UpgradeBase and Uninstall. Package helm implements it with the Helm SDK
// (helm.New); revision itself never links Helm, so that listing, describing
// and uninstalling revisions — and the plans of package upgrade — do not
// carry Helm into a program that installs nothing.
type Installer interface {
	// Install installs or upgrades the release of opts.Revision, as
	// Install documents.
	Install(ctx context.Context, kube kubernetes.Interface, opts InstallOptions) (*InstallResult, error)
	// UpgradeBase installs or upgrades the base chart's release, as
	// UpgradeBase documents.
	UpgradeBase(ctx context.Context, kube kubernetes.Interface, opts BaseOptions) (*BaseResult, error)
	// ReleaseObjects lists the objects of the last record of a release, as
	// its manifest names them: a namespaced object without a namespace is
	// given the release's. found is false, with no error, when there is no
	// such release.
	ReleaseObjects(ctx context.Context, release string) (objs []revkit.ObjectRef, found bool, err error)
	// UninstallRelease uninstalls a release, deleting the objects that still
	// carry its ownership metadata and its records, within timeout.
	UninstallRelease(ctx context.Context, release string, timeout time.Duration) error
}
