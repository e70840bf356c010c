package helm_test

import (
	"context"
	"os"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	rv1 "helm.sh/helm/v4/pkg/release/v1"

	"github.com/revkit/revkit"
	"github.com/revkit/revkit/revision"
	"github.com/revkit/revkit/revkittest"
)

// chartWithDefaults copies the test chart with other default values.
func chartWithDefaults(t *testing.T, values string) string {
	t.Helper()
	dir := t.TempDir()
	require.NoError(t, os.CopyFS(dir, os.DirFS(chartDir)))
	require.NoError(t, os.WriteFile(filepath.Join(dir, "values.yaml"), []byte(values), 0o644))
	return dir
}

// The new revision starts from the old release's values, without the old
// revision's own keys, with the install's values laid over them; the chart
// defaults that changed between the two charts are listed for review,
// except those the values set.
func TestInstallCarriesValuesFromTheOldRelease(t *testing.T) {
	ctx := context.Background()
	kube := revkittest.NewCluster().Kube()
	hc := memHelm(t)
	oldChart := chartWithDefaults(t, "revision: \"\"\ninjectorSelectorValue: \"\"\npilot:\n  replicas: 1\n  image: pilot:1.29\n  cpu: 100m\nglobal:\n  legacy: true\n")
	newChart := chartWithDefaults(t, "revision: \"\"\ninjectorSelectorValue: \"\"\npilot:\n  replicas: 2\n  image: pilot:1.30\n  cpu: 200m\nglobal:\n  ambient: false\n")

	_, err := revision.Install(ctx, kube, revision.InstallOptions{Revision: "1-29-0", Chart: revision.ChartSource{Path: oldChart}, Helm: hc,
		Values: map[string]any{"pilot": map[string]any{"cpu": "500m", "env": map[string]any{"A": "1"}}, "revisionTags": []any{"default"}}})
	require.NoError(t, err)

	res, err := revision.Install(ctx, kube, revision.InstallOptions{Revision: "1-30-0", Chart: revision.ChartSource{Path: newChart}, Helm: hc,
		ValuesFrom: "1-29-0", Values: map[string]any{"pilot": map[string]any{"env": map[string]any{"B": "2"}}}})
	require.NoError(t, err)
	assert.Equal(t, map[string]any{"pilot": map[string]any{"cpu": "500m", "env": map[string]any{"A": "1"}}}, res.CarriedValues,
		"the old revision's own keys (revision, revisionTags) are not carried")

	last, err := hc.Configuration().Releases.Last(revision.ReleaseName("1-30-0"))
	require.NoError(t, err)
	assert.Equal(t, map[string]any{
		"revision": "1-30-0",
		"pilot":    map[string]any{"cpu": "500m", "env": map[string]any{"A": "1", "B": "2"}},
	}, last.(*rv1.Release).Config, "carried values with the install's laid over them")

	assert.Equal(t, []revision.ValueChange{
		{Key: "global.ambient", Action: revkit.ActionCreate, New: "false"},
		{Key: "global.legacy", Action: revkit.ActionDelete, Old: "true"},
		{Key: "pilot.image", Action: revkit.ActionUpdate, Old: `"pilot:1.29"`, New: `"pilot:1.30"`},
		{Key: "pilot.replicas", Action: revkit.ActionUpdate, Old: "1", New: "2"},
	}, res.DefaultChanges, "pilot.cpu changed too, but the carried values set it")

	_, err = revision.Install(ctx, kube, revision.InstallOptions{Revision: "1-31-0", Chart: revision.ChartSource{Path: newChart}, Helm: hc,
		ValuesFrom: "1-28-0"})
	assert.ErrorIs(t, err, revkit.ErrNotFound, "no release to carry values from")
	_, err = revision.Install(ctx, kube, revision.InstallOptions{Revision: "1-31-0", Chart: revision.ChartSource{Path: newChart}, Helm: hc,
		ValuesFrom: "Not_A_Revision"})
	assert.ErrorIs(t, err, revkit.ErrInvalidInput)
}
