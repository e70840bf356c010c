//go:build integration

package e2e_test

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	rv1 "helm.sh/helm/v4/pkg/release/v1"

	"github.com/revkit/revkit"
	"github.com/revkit/revkit/helm"
	"github.com/revkit/revkit/internal/testenv"
	"github.com/revkit/revkit/revision"
)

// widgetChart writes a base-like chart whose one CRD, widgets.example.io,
// serves versions, storage among them.
func widgetChart(t *testing.T, storage string, versions ...string) string {
	t.Helper()
	dir := t.TempDir()
	require.NoError(t, os.MkdirAll(filepath.Join(dir, "templates"), 0o755))
	require.NoError(t, os.WriteFile(filepath.Join(dir, "Chart.yaml"), []byte("apiVersion: v2\nname: base\nversion: 1.0.0\n"), 0o644))
	crd := "apiVersion: apiextensions.k8s.io/v1\nkind: CustomResourceDefinition\nmetadata:\n  name: widgets.example.io\n" +
		"spec:\n  group: example.io\n  names: {kind: Widget, plural: widgets, singular: widget, listKind: WidgetList}\n  scope: Namespaced\n  versions:\n"
	for _, v := range versions {
		crd += fmt.Sprintf("  - name: %s\n    served: true\n    storage: %t\n    schema:\n      openAPIV3Schema: {type: object, x-kubernetes-preserve-unknown-fields: true}\n", v, v == storage)
	}
	require.NoError(t, os.WriteFile(filepath.Join(dir, "templates", "crd.yaml"), []byte(crd), 0o644))
	return dir
}

// TestUpgradeBaseOnTheRealControlPlane: the base chart's CRD changes are
// read from the apiserver (status.storedVersions included), listed by the
// dry run, applied by the real run, and an upgrade that would drop a
// version an object is stored in is refused before any write.
func TestUpgradeBaseOnTheRealControlPlane(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 4*time.Minute)
	defer cancel()
	env, err := testenv.Start(t, testenv.Options{})
	require.NoError(t, err)
	hc, err := helm.New(env.Config, "istio-system", nil)
	require.NoError(t, err)
	upgradeTo := func(dry revkit.DryRun, chart string) (*revision.BaseResult, error) {
		return revision.UpgradeBase(ctx, env.Client, revision.BaseOptions{Common: revkit.Common{DryRun: dry},
			Chart: revision.ChartSource{Path: chart}, Helm: hc, Timeout: time.Minute})
	}

	res, err := upgradeTo(revkit.DryRunNone, widgetChart(t, "v1alpha1", "v1alpha1"))
	require.NoError(t, err)
	require.Len(t, res.CRDs, 1)
	assert.Equal(t, revkit.ActionCreate, res.CRDs[0].Action)
	// A Widget stored in v1alpha1.
	require.Eventually(t, func() bool {
		_, err = env.Apply(ctx, []byte("apiVersion: example.io/v1alpha1\nkind: Widget\nmetadata: {name: w, namespace: default}\n"), "default")
		return err == nil
	}, 30*time.Second, 500*time.Millisecond, "the CRD is established: %v", err)

	withV1 := widgetChart(t, "v1", "v1alpha1", "v1")
	res, err = upgradeTo(revkit.DryRunClient, withV1)
	require.NoError(t, err)
	assert.Equal(t, "adds v1, storage v1alpha1 → v1", res.CRDs[0].String(), "the dry run lists the CRD change")
	assert.Equal(t, []string{"v1alpha1"}, res.CRDs[0].StoredVersions, "read from the apiserver")
	res, err = upgradeTo(revkit.DryRunNone, withV1)
	require.NoError(t, err)
	assert.Equal(t, revkit.ActionUpdate, res.CRDs[0].Action)

	// v1alpha1 is still in status.storedVersions (the Widget was written
	// in it): dropping it is refused, and the release is left as it was.
	_, err = upgradeTo(revkit.DryRunNone, widgetChart(t, "v1", "v1"))
	var stored *revision.StoredVersionError
	require.ErrorAs(t, err, &stored)
	assert.Equal(t, "v1alpha1", stored.Version)
	assert.ErrorIs(t, err, revkit.ErrInUse)
	last, err := hc.Configuration().Releases.Last(revision.BaseRelease)
	require.NoError(t, err)
	rel, ok := last.(*rv1.Release)
	require.True(t, ok)
	assert.Equal(t, 2, rel.Version, "no third release: refused before any write")
}
