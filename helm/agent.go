package helm

import (
	"context"
	"fmt"

	"helm.sh/helm/v4/pkg/action"
	chartcommon "helm.sh/helm/v4/pkg/chart"

	rv1 "helm.sh/helm/v4/pkg/release/v1"

	"github.com/revkit/revkit"
)

var _ revkit.Releaser = (*Client)(nil)

// UpgradeRelease upgrades an existing release in place to opts.Chart, with
// opts.Values laid over the values it was last installed with (helm upgrade
// --reset-then-reuse-values): ambient.Upgrade upgrades the istio-cni and
// ztunnel releases through it. A release that does not exist is a
// *revkit.NotFoundError; this never installs one.
//
// A zero opts.Chart reuses the chart the release was last installed or
// upgraded with (helm upgrade --reuse-values with the release's own chart):
// gateway.UpgradeRelease moves a gateway to another revision that way
// without a chart of the caller's.
//
// A client dry run renders without sending anything; a server dry run also
// sends every rendered object as a server-side apply with dryRun=All. The
// upgrade itself does not wait for the release's workloads: the caller
// decides how a DaemonSet is rolled.
func (c *Client) UpgradeRelease(ctx context.Context, opts revkit.ReleaseOptions) (*revkit.ReleaseResult, error) {
	reuseChart := opts.Chart == (revkit.ChartSource{})
	ns, last, err := c.releaseRequest(opts, reuseChart)
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
	var chrt chartcommon.Charter
	if reuseChart {
		if last.Chart == nil {
			return nil, &revkit.InvalidInputError{Field: "Chart", Reason: "release " + opts.Release + " records no chart to reuse"}
		}
		chrt = last.Chart
	} else if chrt, err = loadChart(opts.Chart, c.cfg); err != nil {
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

// InstallRelease installs a new release of opts.Chart with opts.Values, as
// helm install does: gateway.CanaryRelease installs a gateway's canary
// release through it. A release of that name that exists already (in any
// state) is a *revkit.ExistsError; this never upgrades one. The chart is
// rendered before anything is sent, so a chart that does not render writes
// nothing.
//
// A client dry run renders without sending anything; a server dry run also
// sends every rendered object as a server-side apply with dryRun=All. The
// install does not wait for the release's workloads.
func (c *Client) InstallRelease(ctx context.Context, opts revkit.ReleaseOptions) (*revkit.ReleaseResult, error) {
	ns, last, err := c.releaseRequest(opts, false)
	if err != nil {
		return nil, err
	}
	if last != nil {
		return nil, &revkit.ExistsError{Kind: "Helm release", Name: ns + "/" + opts.Release,
			Detail: fmt.Sprintf("at version %d (%s); upgrade or uninstall it", last.Version, releaseStatus(last))}
	}
	chrt, err := loadChart(opts.Chart, c.cfg)
	if err != nil {
		return nil, fmt.Errorf("load chart: %w", err)
	}
	values := deepCopy(opts.Values)
	if values == nil {
		values = map[string]any{}
	}
	// Render first, whatever the dry run: a chart that fails to render
	// leaves no failed release record behind.
	manifest, err := runHelm(ctx, c.cfg, chrt, values, opts.Release, ns, false, action.DryRunClient, false, opts.Timeout)
	if err != nil {
		return nil, err
	}
	res := &revkit.ReleaseResult{Manifest: manifest}
	switch opts.DryRun {
	case revkit.DryRunServer:
		if err := serverDryRun(c.cfg, manifest, ns); err != nil {
			return res, fmt.Errorf("apply (dry run): %w", err)
		}
		return res, nil
	case revkit.DryRunClient:
		return res, nil
	}
	if res.Manifest, err = runHelm(ctx, c.cfg, chrt, values, opts.Release, ns, false, action.DryRunNone, false, opts.Timeout); err != nil {
		return res, err
	}
	res.Version = 1
	return res, nil
}

func releaseStatus(r *rv1.Release) string {
	if r.Info == nil {
		return "unknown"
	}
	return r.Info.Status.String()
}

// releaseRequest checks a release request before anything is read and
// returns the release's namespace and its last record (nil when there is
// none). A zero chart passes only when chartOptional is set.
func (c *Client) releaseRequest(opts revkit.ReleaseOptions, chartOptional bool) (string, *rv1.Release, error) {
	if err := c.usable(); err != nil {
		return "", nil, err
	}
	if !chartOptional {
		if err := opts.Chart.Validate("Chart"); err != nil {
			return "", nil, err
		}
	}
	if err := opts.DryRun.Validate(); err != nil {
		return "", nil, err
	}
	if opts.Release == "" {
		return "", nil, &revkit.InvalidInputError{Field: "Release", Reason: "required"}
	}
	last, err := lastRelease(c.cfg, opts.Release)
	return revkit.ControlPlaneNamespace(opts.Namespace), last, err
}
