package helm

import (
	"context"
	"fmt"

	"helm.sh/helm/v4/pkg/action"

	"github.com/revkit/revkit"
)

var _ revkit.Releaser = (*Client)(nil)

// UpgradeRelease upgrades an existing release in place to opts.Chart, with
// opts.Values laid over the values it was last installed with (helm upgrade
// --reset-then-reuse-values): ambient.Upgrade upgrades the istio-cni and
// ztunnel releases through it. A release that does not exist is a
// *revkit.NotFoundError; this never installs one.
//
// A client dry run renders without sending anything; a server dry run also
// sends every rendered object as a server-side apply with dryRun=All. The
// upgrade itself does not wait for the release's workloads: the caller
// decides how a DaemonSet is rolled.
func (c *Client) UpgradeRelease(ctx context.Context, opts revkit.ReleaseOptions) (*revkit.ReleaseResult, error) {
	if err := c.usable(); err != nil {
		return nil, err
	}
	if err := opts.Chart.Validate("Chart"); err != nil {
		return nil, err
	}
	if err := opts.DryRun.Validate(); err != nil {
		return nil, err
	}
	if opts.Release == "" {
		return nil, &revkit.InvalidInputError{Field: "Release", Reason: "required"}
	}
	ns := revkit.ControlPlaneNamespace(opts.Namespace)
	last, err := lastRelease(c.cfg, opts.Release)
	if err != nil {
		return nil, err
	}
	if last == nil {
		return nil, &revkit.NotFoundError{Kind: "Helm release", Name: ns + "/" + opts.Release}
	}
	if last.Namespace != "" && last.Namespace != ns {
		return nil, &revkit.InvalidInputError{Field: "Namespace", Value: ns,
			Reason: "release " + opts.Release + " is in namespace " + last.Namespace}
	}
	chrt, err := loadChart(opts.Chart, c.cfg)
	if err != nil {
		return nil, fmt.Errorf("load chart: %w", err)
	}
	values := mergeValues(last.Config, opts.Values)
	dry := action.DryRunNone
	if opts.DryRun != revkit.DryRunNone {
		dry = action.DryRunClient
	}
	manifest, err := runHelm(ctx, c.cfg, chrt, values, opts.Release, ns, true, dry, false, opts.Timeout)
	if err != nil {
		return nil, err
	}
	res := &revkit.ReleaseResult{Version: last.Version, Manifest: manifest}
	switch opts.DryRun {
	case revkit.DryRunServer:
		if err := serverDryRun(c.cfg, manifest, ns); err != nil {
			return res, fmt.Errorf("apply (dry run): %w", err)
		}
	case revkit.DryRunNone:
		res.Version++
	}
	return res, nil
}
