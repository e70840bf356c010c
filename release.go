package revkit

import (
	"context"
	"time"
)

// Releaser upgrades a Helm release of one of Istio's charts in place — a
// node agent (istio-cni, ztunnel) or a gateway. Package helm implements it
// (helm.New); the packages that take a Releaser do not link Helm.
type Releaser interface {
	UpgradeRelease(ctx context.Context, opts ReleaseOptions) (*ReleaseResult, error)
}

// ReleaseOptions asks a Releaser for one helm upgrade (or install).
type ReleaseOptions struct {
	// DryRun: DryRunClient renders without writing anything; DryRunServer
	// also sends the release's objects with dryRun=All.
	DryRun    DryRun
	Namespace string
	Release   string
	// Chart to install or upgrade to. For an upgrade, a zero Chart asks for
	// the chart the release was last deployed with (helm.Client supports
	// it); an install needs one.
	Chart ChartSource
	// Values are laid over the values the release was last installed with
	// (helm upgrade --reset-then-reuse-values).
	Values  map[string]any
	Timeout time.Duration
}

// ReleaseResult is what a Releaser did.
type ReleaseResult struct {
	// Version is the release's record number after the call (unchanged in
	// a dry run).
	Version int
	// Manifest is the rendered manifest.
	Manifest string
}
