package helm_test

import (
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"helm.sh/helm/v4/pkg/action"
	"helm.sh/helm/v4/pkg/chart/loader"
	rv1 "helm.sh/helm/v4/pkg/release/v1"

	"github.com/revkit/revkit"
	"github.com/revkit/revkit/helm"
)

func TestUpgradeRelease(t *testing.T) {
	hc := memHelm(t)
	chrt, err := loader.Load("testdata/ztunnel")
	require.NoError(t, err)
	in := action.NewInstall(hc.Configuration())
	in.ReleaseName, in.Namespace = "ztunnel", "istio-system"
	_, err = in.RunWithContext(ctx, chrt, map[string]any{"logLevel": "debug", "revision": "1-30-2"})
	require.NoError(t, err)

	opts := revkit.ReleaseOptions{Namespace: "istio-system", Release: "ztunnel", Chart: revkit.ChartSource{Path: "testdata/ztunnel"},
		Values: map[string]any{"tag": "1.31.0", "revision": "1-31-0", "updateStrategy": map[string]any{"type": "OnDelete"}}}

	for _, dr := range []revkit.DryRun{revkit.DryRunClient, revkit.DryRunNone} {
		opts.DryRun = dr
		res, err := hc.UpgradeRelease(ctx, opts)
		require.NoError(t, err, dr)
		assert.Contains(t, res.Manifest, "image: \"docker.io/istio/ztunnel:1.31.0\"")
		assert.Contains(t, res.Manifest, `istio.io/rev: "1-31-0"`)
		assert.Contains(t, res.Manifest, "type: OnDelete")
		assert.Contains(t, res.Manifest, `"--log", "debug"`, "the release's own values are kept")
		if dr == revkit.DryRunClient {
			assert.Equal(t, 1, res.Version)
			assert.Equal(t, []string{"ztunnel#1"}, releases(t, hc), "a dry run records nothing")
		} else {
			assert.Equal(t, 2, res.Version)
			assert.ElementsMatch(t, []string{"ztunnel#1", "ztunnel#2"}, releases(t, hc))
		}
	}

	// Back to the old chart's tag and revision: a rollback is an upgrade.
	res, err := hc.UpgradeRelease(ctx, revkit.ReleaseOptions{Namespace: "istio-system", Release: "ztunnel",
		Chart: revkit.ChartSource{Path: "testdata/ztunnel"}, Values: map[string]any{"tag": "1.30.2", "revision": "1-30-2"}})
	require.NoError(t, err)
	assert.Equal(t, 3, res.Version)
	assert.Contains(t, res.Manifest, "ztunnel:1.30.2")
	assert.Contains(t, res.Manifest, "type: OnDelete", "kept from the last upgrade's values")
}

func TestUpgradeReleaseRefusals(t *testing.T) {
	hc := memHelm(t)
	for _, tc := range []struct {
		name string
		opts revkit.ReleaseOptions
		want error
	}{
		{"no release", revkit.ReleaseOptions{Release: "ztunnel", Chart: revkit.ChartSource{Path: "testdata/ztunnel"}}, revkit.ErrNotFound},
		{"no release name", revkit.ReleaseOptions{Chart: revkit.ChartSource{Path: "testdata/ztunnel"}}, revkit.ErrInvalidInput},
		{"no chart and no release to take it from", revkit.ReleaseOptions{Release: "ztunnel"}, revkit.ErrNotFound},
		{"half a chart", revkit.ReleaseOptions{Release: "ztunnel", Chart: revkit.ChartSource{Version: "1.0.0"}}, revkit.ErrInvalidInput},
		{"bad dry run", revkit.ReleaseOptions{Release: "ztunnel", Chart: revkit.ChartSource{Path: "x"}, DryRun: 9}, revkit.ErrInvalidInput},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := hc.UpgradeRelease(ctx, tc.opts)
			assert.ErrorIs(t, err, tc.want)
			assert.Empty(t, releases(t, hc))
		})
	}
}

func TestUpgradeReleaseReusesItsChart(t *testing.T) {
	hc := memHelm(t)
	_, err := hc.InstallRelease(ctx, revkit.ReleaseOptions{Namespace: "istio-system", Release: "istio-ingressgateway",
		Chart: revkit.ChartSource{Path: gatewayChart}, Values: map[string]any{"revision": "1-30-2"}})
	require.NoError(t, err)
	// No chart: the release's own, with its values and the new revision.
	res, err := hc.UpgradeRelease(ctx, revkit.ReleaseOptions{Namespace: "istio-system", Release: "istio-ingressgateway",
		Values: map[string]any{"revision": "1-31-0"}})
	require.NoError(t, err)
	assert.Equal(t, 2, res.Version)
	assert.Contains(t, res.Manifest, `istio.io/rev: "1-31-0"`)
	assert.Contains(t, res.Manifest, "kind: Service")
	assert.ElementsMatch(t, []string{"istio-ingressgateway#1", "istio-ingressgateway#2"}, releases(t, hc))
}

const gatewayChart = "testdata/gateway"

func TestInstallRelease(t *testing.T) {
	hc := memHelm(t)
	canary := map[string]any{"name": "istio-ingressgateway-1-31-0", "revision": "1-31-0",
		"labels":  map[string]any{"app": "istio-ingressgateway", "istio": "ingressgateway", "revkit.io/canary-revision": "1-31-0"},
		"service": map[string]any{"type": "None"}}
	opts := revkit.ReleaseOptions{Namespace: "istio-system", Release: "istio-ingressgateway-1-31-0",
		Chart: revkit.ChartSource{Path: gatewayChart}, Values: canary}

	for _, dr := range []revkit.DryRun{revkit.DryRunClient, revkit.DryRunServer, revkit.DryRunNone} {
		opts.DryRun = dr
		res, err := hc.InstallRelease(ctx, opts)
		require.NoError(t, err, dr)
		assert.Contains(t, res.Manifest, "name: istio-ingressgateway-1-31-0")
		assert.Contains(t, res.Manifest, `istio.io/rev: "1-31-0"`)
		assert.Contains(t, res.Manifest, "app: \"istio-ingressgateway\"", "the original's selector labels")
		assert.Contains(t, res.Manifest, `"revkit.io/canary-revision": "1-31-0"`)
		assert.NotContains(t, res.Manifest, "kind: Service", "service.type None renders none")
		if dr != revkit.DryRunNone {
			assert.Equal(t, 0, res.Version)
			assert.Empty(t, releases(t, hc), "a dry run records nothing")
		} else {
			assert.Equal(t, 1, res.Version)
			assert.Equal(t, []string{"istio-ingressgateway-1-31-0#1"}, releases(t, hc))
		}
	}
	rel, err := hc.Configuration().Releases.Last("istio-ingressgateway-1-31-0")
	require.NoError(t, err)
	assert.Equal(t, "deployed", rel.(*rv1.Release).Info.Status.String())

	// A second install of the same release is refused, in any dry run.
	for _, dr := range []revkit.DryRun{revkit.DryRunClient, revkit.DryRunNone} {
		opts.DryRun = dr
		_, err = hc.InstallRelease(ctx, opts)
		var exists *revkit.ExistsError
		require.ErrorAs(t, err, &exists)
		assert.Contains(t, exists.Detail, "version 1 (deployed)")
	}
	assert.Equal(t, []string{"istio-ingressgateway-1-31-0#1"}, releases(t, hc))

	require.NoError(t, hc.UninstallRelease(ctx, "istio-ingressgateway-1-31-0", 0))
	assert.Empty(t, releases(t, hc))
}

func TestInstallReleaseRefusals(t *testing.T) {
	hc := memHelm(t)
	for _, tc := range []struct {
		name string
		opts revkit.ReleaseOptions
		want error
	}{
		{"no release name", revkit.ReleaseOptions{Chart: revkit.ChartSource{Path: gatewayChart}}, revkit.ErrInvalidInput},
		{"no chart", revkit.ReleaseOptions{Release: "gw"}, revkit.ErrInvalidInput},
		{"bad dry run", revkit.ReleaseOptions{Release: "gw", Chart: revkit.ChartSource{Path: gatewayChart}, DryRun: 9}, revkit.ErrInvalidInput},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := hc.InstallRelease(ctx, tc.opts)
			assert.ErrorIs(t, err, tc.want)
			assert.Empty(t, releases(t, hc))
		})
	}
	t.Run("a chart that does not render", func(t *testing.T) {
		_, err := hc.InstallRelease(ctx, revkit.ReleaseOptions{Release: "gw", Chart: revkit.ChartSource{Path: "testdata/nope"}})
		assert.Error(t, err)
		// A value of the wrong type breaks the template.
		_, err = hc.InstallRelease(ctx, revkit.ReleaseOptions{Release: "gw", Chart: revkit.ChartSource{Path: gatewayChart},
			Values: map[string]any{"service": "LoadBalancer"}})
		assert.Error(t, err)
		assert.Empty(t, releases(t, hc), "no failed release left behind")
	})
	t.Run("a nil client", func(t *testing.T) {
		var nilc *helm.Client
		_, err := nilc.InstallRelease(ctx, revkit.ReleaseOptions{Release: "gw", Chart: revkit.ChartSource{Path: gatewayChart}})
		assert.ErrorIs(t, err, revkit.ErrInvalidInput)
	})
}
