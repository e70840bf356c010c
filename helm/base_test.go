package helm_test

import (
	"context"
	"os"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/revkit/revkit"
	"github.com/revkit/revkit/revision"
	"github.com/revkit/revkit/revkittest"
)

// baseChart is a base chart whose CRD "widgets.example.io" has the given
// versions; storage is the storage version.
func baseChart(t *testing.T, storage string, versions ...string) string {
	t.Helper()
	dir := t.TempDir()
	require.NoError(t, os.CopyFS(dir, os.DirFS("testdata/base")))
	crd := "apiVersion: apiextensions.k8s.io/v1\nkind: CustomResourceDefinition\nmetadata:\n  name: widgets.example.io\nspec:\n  group: example.io\n  names: {kind: Widget, plural: widgets}\n  scope: Namespaced\n  versions:\n"
	for _, v := range versions {
		crd += "  - name: " + v + "\n    served: true\n    storage: " + map[bool]string{true: "true", false: "false"}[v == storage] + "\n    schema: {openAPIV3Schema: {type: object}}\n"
	}
	require.NoError(t, os.WriteFile(filepath.Join(dir, "templates", "crd.yaml"), []byte(crd), 0o644))
	return dir
}

const liveWidgets = `{"metadata":{"name":"widgets.example.io"},"spec":{"versions":[
	{"name":"v1alpha1","served":true,"storage":false},{"name":"v1beta1","served":true,"storage":true}]},
	"status":{"storedVersions":["v1alpha1","v1beta1"]}}`

// The dry run lists each CRD's change (new versions, removed versions,
// storage version) and writes nothing; removing a version objects may be
// stored in is refused before any write, with a typed error.
func TestUpgradeBaseCRDChanges(t *testing.T) {
	ctx := context.Background()
	live := map[string]string{"widgets.example.io": liveWidgets}

	hc := memHelm(t)
	res, err := hc.UpgradeBaseAgainst(ctx, revision.BaseOptions{Common: revkit.Common{DryRun: revkit.DryRunClient},
		Chart: revision.ChartSource{Path: baseChart(t, "v1", "v1alpha1", "v1beta1", "v1")}, Helm: hc}, live)
	require.NoError(t, err)
	require.Len(t, res.CRDs, 1)
	c := res.CRDs[0]
	assert.Equal(t, revkit.ActionUpdate, c.Action)
	assert.Equal(t, []string{"v1"}, c.Added)
	assert.Empty(t, c.Removed)
	assert.Equal(t, "adds v1, storage v1beta1 → v1", c.String())
	assert.Contains(t, res.Changes, revkit.Change{Object: revkit.ObjectRef{Kind: "CustomResourceDefinition", Name: "widgets.example.io"},
		Action: revkit.ActionUpdate, Reason: "adds v1, storage v1beta1 → v1"})
	assert.Empty(t, releases(t, hc), "a dry run installs nothing")

	// Dropping v1alpha1, still in status.storedVersions: refused.
	_, err = hc.UpgradeBaseAgainst(ctx, revision.BaseOptions{Chart: revision.ChartSource{Path: baseChart(t, "v1", "v1beta1", "v1")}, Helm: hc}, live)
	var stored *revision.StoredVersionError
	require.ErrorAs(t, err, &stored)
	assert.Equal(t, "v1alpha1", stored.Version)
	assert.ErrorIs(t, err, revkit.ErrInUse)
	assert.Empty(t, releases(t, hc), "refused before any write")

	// A version no object is stored in may go; a CRD new to the cluster is
	// a create; the real run upgrades the release.
	liveMigrated := `{"metadata":{"name":"widgets.example.io"},"spec":{"versions":[
		{"name":"v1alpha1","served":true,"storage":false},{"name":"v1beta1","served":true,"storage":true}]},
		"status":{"storedVersions":["v1beta1"]}}`
	res, err = hc.UpgradeBaseAgainst(ctx, revision.BaseOptions{Chart: revision.ChartSource{Path: baseChart(t, "v1beta1", "v1beta1", "v1")}, Helm: hc},
		map[string]string{"widgets.example.io": liveMigrated})
	require.NoError(t, err)
	assert.Equal(t, []string{"v1alpha1"}, res.CRDs[0].Removed)
	assert.Equal(t, []string{"istio-base#1"}, releases(t, hc))

	res, err = memHelm(t).UpgradeBaseAgainst(ctx, revision.BaseOptions{Chart: revision.ChartSource{Path: baseChart(t, "v1", "v1")}}, nil)
	require.NoError(t, err)
	assert.Equal(t, revkit.ActionCreate, res.CRDs[0].Action)
	assert.Equal(t, "new CRD, versions v1", res.CRDs[0].String())

	kube := revkittest.NewCluster().Kube()
	_, err = revision.UpgradeBase(ctx, kube, revision.BaseOptions{Chart: revision.ChartSource{Path: "testdata/base"}})
	assert.ErrorIs(t, err, revkit.ErrInvalidInput, "no installer")
	assert.Empty(t, kube.Actions(), "refused before any request")
}
