package revision

import (
	"context"
	"time"

	"k8s.io/client-go/kubernetes"

	"github.com/revkit/revkit"
)

// ChartSource names a chart: Istio's istiod chart (istio-discovery,
// published as "istiod") for Install, its base chart for UpgradeBase.
type ChartSource = revkit.ChartSource

// InstallOptions configures Install.
type InstallOptions struct {
	revkit.Common
	// Revision to install. Required.
	Revision string
	// Chart is the istiod chart. Required.
	Chart ChartSource
	// Values override the chart's values; revision is always set to
	// Revision.
	Values map[string]any
	// ValuesFrom, when set, names the revision whose Helm release's
	// user-supplied values the install starts from (the revision being
	// upgraded from), without the keys that belong to that revision
	// (RevisionValueKeys); Values are laid over them and win. The result
	// lists what was carried (CarriedValues) and the chart defaults that
	// differ between that release's chart and Chart (DefaultChanges), for
	// review: what the old release did not set follows the new defaults.
	ValuesFrom string
	// Upgrade allows Install to upgrade a revision that already has a Helm
	// release; without it an existing revision is refused.
	Upgrade bool
	// Base, when set, is Istio's base chart (CRDs and cluster roles): it is
	// installed or upgraded as release BaseRelease first, as the Helm
	// upgrade guide does.
	Base *ChartSource
	// BaseValues override the base chart's values.
	BaseValues map[string]any
	// Wait blocks until the release's objects are ready (kstatus), istiod's
	// Deployment Available among them.
	Wait bool
	// Timeout bounds the Helm operations and the wait; default 5 minutes.
	Timeout time.Duration
	// ControlPlaneNamespace; default istio-system. It must exist.
	ControlPlaneNamespace string
	// Helm installs the release: the Helm client of package helm
	// (helm.New) or another Installer. Required.
	Helm Installer `json:"-"`
}

// InstallResult reports what Install did.
type InstallResult struct {
	Revision string
	// Release is the Helm release ("istiod-<revision>") and Version its
	// release version after the install (1 for a new release).
	Release string
	Version int
	// Upgraded is set when an existing release was upgraded.
	Upgraded bool
	// Injector is the revision's MutatingWebhookConfiguration.
	Injector string
	// Objects are the objects of the release, as rendered.
	Objects []revkit.ObjectRef
	// Manifest is the release's rendered manifest (YAML documents), for
	// review; set in dry runs too.
	Manifest string
	// BaseRelease is the base chart's release when Base was set.
	BaseRelease string
	// CarriedValues are the values taken from ValuesFrom's release, and
	// DefaultChanges the chart defaults that changed between its chart and
	// this one, leaving out keys the install's values set.
	CarriedValues  map[string]any
	DefaultChanges []ValueChange
	// IstiodStatus is the kstatus of istiod's Deployment after the install
	// ("Current" once it is available); empty in dry runs or when the chart
	// made no Deployment istiod-<revision>.
	IstiodStatus string
	DryRun       revkit.DryRun
}

// ReleaseName is the Helm release of a revision's control plane, as in
// Istio's Helm upgrade guide.
func ReleaseName(rev string) string { return "istiod-" + rev }

// BaseRelease is the Helm release of Istio's base chart.
const BaseRelease = "istio-base"

// Validate checks the options as Install does before any request.
func (o *InstallOptions) Validate() error {
	if err := revkit.ValidateRevision(o.Revision); err != nil {
		return err
	}
	if err := revkit.ValidateNamespace("ControlPlaneNamespace", o.ControlPlaneNamespace); err != nil {
		return err
	}
	if err := o.Chart.Validate("Chart"); err != nil {
		return err
	}
	if o.ValuesFrom != "" {
		if err := revkit.ValidateRevision(o.ValuesFrom); err != nil {
			return &revkit.InvalidInputError{Field: "ValuesFrom", Value: o.ValuesFrom, Reason: err.Error()}
		}
	}
	if o.Base != nil {
		if err := o.Base.Validate("Base"); err != nil {
			return err
		}
	}
	if o.Helm == nil {
		return &revkit.InvalidInputError{Field: "Helm", Reason: "an Installer is required (see helm.New)"}
	}
	if o.Timeout < 0 {
		return &revkit.InvalidInputError{Field: "Timeout", Reason: "must not be negative"}
	}
	return o.DryRun.Validate()
}

// Install installs a revision's control plane from the istiod chart with
// Helm, as release "istiod-<revision>" in the control-plane namespace, beside
// the revisions already there. It checks the options (revkit.ErrInvalidInput)
// before any request and hands the install to opts.Helm: the Helm client of
// package helm, whose Install says what it refuses and how it dry-runs.
func Install(ctx context.Context, kube kubernetes.Interface, opts InstallOptions) (*InstallResult, error) {
	if err := opts.Validate(); err != nil {
		return &InstallResult{Revision: opts.Revision, DryRun: opts.DryRun}, err
	}
	return opts.Helm.Install(ctx, kube, opts)
}
