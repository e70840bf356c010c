package helm_test

import (
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"helm.sh/helm/v4/pkg/action"
	"helm.sh/helm/v4/pkg/chart/loader"

	"github.com/revkit/revkit"
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
		{"no chart", revkit.ReleaseOptions{Release: "ztunnel"}, revkit.ErrInvalidInput},
		{"bad dry run", revkit.ReleaseOptions{Release: "ztunnel", Chart: revkit.ChartSource{Path: "x"}, DryRun: 9}, revkit.ErrInvalidInput},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := hc.UpgradeRelease(ctx, tc.opts)
			assert.ErrorIs(t, err, tc.want)
			assert.Empty(t, releases(t, hc))
		})
	}
}
