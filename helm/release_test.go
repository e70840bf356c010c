package helm_test

import (
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"helm.sh/helm/v4/pkg/release/common"
	rv1 "helm.sh/helm/v4/pkg/release/v1"

	"github.com/revkit/revkit"
	"github.com/revkit/revkit/helm"
	"github.com/revkit/revkit/revision"
	"github.com/revkit/revkit/revkittest"
)

// A manifest as Helm stores it: source comments, a document of comments
// only, separators with trailing blanks, a cluster-scoped object that names
// a namespace anyway.
const storedManifest = `
---
# Source: istiod/templates/mutatingwebhook.yaml
apiVersion: admissionregistration.k8s.io/v1
kind: MutatingWebhookConfiguration
metadata:
  name: istio-sidecar-injector-1-24-0
  namespace: istio-system
---  
# Source: istiod/templates/empty.yaml
# nothing rendered
---
# Source: istiod/templates/deployment.yaml
apiVersion: apps/v1
kind: Deployment
metadata:
  name: istiod-1-24-0
---
apiVersion: v1
kind: Service
metadata:
  name: istiod-1-24-0
  namespace: elsewhere
`

func TestReleaseObjectsAndUninstallRelease(t *testing.T) {
	hc := memHelm(t)
	objs, found, err := hc.ReleaseObjects(ctx, "istiod-1-24-0")
	require.NoError(t, err)
	assert.False(t, found, "no release yet")
	assert.Empty(t, objs)

	require.NoError(t, hc.Configuration().Releases.Create(&rv1.Release{Name: "istiod-1-24-0", Namespace: "istio-system", Version: 1,
		Manifest: storedManifest, Info: &rv1.Info{Status: common.StatusDeployed}}))
	objs, found, err = hc.ReleaseObjects(ctx, "istiod-1-24-0")
	require.NoError(t, err)
	assert.True(t, found)
	assert.Equal(t, []revkit.ObjectRef{
		{Kind: "MutatingWebhookConfiguration", Name: "istio-sidecar-injector-1-24-0"},
		{Kind: "Deployment", Namespace: "istio-system", Name: "istiod-1-24-0"},
		{Kind: "Service", Namespace: "elsewhere", Name: "istiod-1-24-0"},
	}, objs, "in manifest order; the release's namespace where none is given, none at cluster scope")

	require.NoError(t, hc.UninstallRelease(ctx, "istiod-1-24-0", 0))
	assert.Empty(t, releases(t, hc), "the release's records are gone")
	_, found, err = hc.ReleaseObjects(ctx, "istiod-1-24-0")
	require.NoError(t, err)
	assert.False(t, found)
	assert.Error(t, hc.UninstallRelease(ctx, "istiod-1-24-0", 0), "no such release")
}

// A release record that does not parse as a manifest is an error, not an
// empty release.
func TestReleaseObjectsBadManifest(t *testing.T) {
	hc := memHelm(t)
	require.NoError(t, hc.Configuration().Releases.Create(&rv1.Release{Name: "istiod-1-24-0", Namespace: "istio-system", Version: 1,
		Manifest: "kind: [unclosed", Info: &rv1.Info{Status: common.StatusDeployed}}))
	_, found, err := hc.ReleaseObjects(ctx, "istiod-1-24-0")
	assert.True(t, found)
	assert.ErrorContains(t, err, "read manifest")
}

// UpgradeBase reads the cluster's CRDs through the apiserver; a client
// that cannot is an error naming the CRD, before any release is written.
func TestUpgradeBaseNeedsToReadCRDs(t *testing.T) {
	hc := memHelm(t)
	_, err := hc.UpgradeBase(ctx, revkittest.NewCluster().Kube(), revision.BaseOptions{Chart: revision.ChartSource{Path: baseChart(t, "v1", "v1")}})
	var op *revkit.OpError
	require.ErrorAs(t, err, &op)
	assert.Equal(t, "widgets.example.io", op.Object.Name)
	assert.Empty(t, releases(t, hc))
}

// A nil Client (a helm.New error dropped) is refused like a missing
// installer, before any request, rather than panicking.
func TestNilClient(t *testing.T) {
	var hc *helm.Client
	kube := revkittest.NewCluster().Kube()
	_, err := revision.Install(ctx, kube, revision.InstallOptions{Revision: "1-26-0", Chart: revision.ChartSource{Path: chartDir}, Helm: hc})
	assert.ErrorIs(t, err, revkit.ErrInvalidInput)
	_, err = revision.UpgradeBase(ctx, kube, revision.BaseOptions{Chart: revision.ChartSource{Path: "testdata/base"}, Helm: hc})
	assert.ErrorIs(t, err, revkit.ErrInvalidInput)
	_, _, err = hc.ReleaseObjects(ctx, "istiod-1-24-0")
	assert.ErrorIs(t, err, revkit.ErrInvalidInput)
	assert.ErrorIs(t, hc.UninstallRelease(ctx, "istiod-1-24-0", 0), revkit.ErrInvalidInput)
	assert.Empty(t, kube.Actions())
}
