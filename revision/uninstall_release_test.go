package revision_test

import (
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	v2loader "helm.sh/helm/v4/pkg/chart/v2/loader"
	"helm.sh/helm/v4/pkg/release/common"
	rv1 "helm.sh/helm/v4/pkg/release/v1"
	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"

	"github.com/revkit/revkit"
	"github.com/revkit/revkit/helm"
	"github.com/revkit/revkit/revision"
	"github.com/revkit/revkit/revkittest"
)

// releaseManifest is what Istio's istiod chart renders for revision
// 1-24-0 with revisionTags [default] (the parts that matter here).
const releaseManifest = `---
# Source: istiod/templates/mutatingwebhook.yaml
apiVersion: admissionregistration.k8s.io/v1
kind: MutatingWebhookConfiguration
metadata:
  name: istio-sidecar-injector-1-24-0
---
# Source: istiod/templates/revision-tags-mwc.yaml
apiVersion: admissionregistration.k8s.io/v1
kind: MutatingWebhookConfiguration
metadata:
  name: istio-revision-tag-default
---
# Source: istiod/templates/revision-tags-svc.yaml
apiVersion: v1
kind: Service
metadata:
  name: istiod-revision-tag-default
  namespace: "istio-system"
---
# Source: istiod/templates/deployment.yaml
apiVersion: apps/v1
kind: Deployment
metadata:
  name: istiod-1-24-0
  namespace: istio-system
---
# Source: istiod/templates/clusterrole.yaml
apiVersion: rbac.authorization.k8s.io/v1
kind: ClusterRole
metadata:
  name: istiod-clusterrole-1-24-0-istio-system
---
# Source: istiod/templates/serviceaccount.yaml
apiVersion: v1
kind: ServiceAccount
metadata:
  name: istiod-1-24-0
---
# Source: istiod/templates/configmap-values.yaml (deleted since)
apiVersion: v1
kind: ConfigMap
metadata:
  name: values-1-24-0
  namespace: istio-system
`

// helmOwned marks objects as Helm's release istiod-1-24-0 does.
func helmOwned(objs ...runtime.Object) []runtime.Object {
	for _, o := range objs {
		m := o.(metav1.Object)
		ann := m.GetAnnotations()
		if ann == nil {
			ann = map[string]string{}
		}
		ann["meta.helm.sh/release-name"] = "istiod-1-24-0"
		ann["meta.helm.sh/release-namespace"] = "istio-system"
		m.SetAnnotations(ann)
		labels := m.GetLabels()
		if labels == nil {
			labels = map[string]string{}
		}
		labels["app.kubernetes.io/managed-by"] = "Helm"
		m.SetLabels(labels)
	}
	return objs
}

func istiodRBAC(rev string) []runtime.Object {
	labels := func() map[string]string { return map[string]string{"app": "istiod", "release": "istiod-" + rev} }
	name := "istiod-" + rev
	return []runtime.Object{
		&rbacv1.ClusterRole{ObjectMeta: metav1.ObjectMeta{Name: "istiod-clusterrole-" + rev + "-istio-system", Labels: labels()}},
		&rbacv1.ClusterRoleBinding{ObjectMeta: metav1.ObjectMeta{Name: "istiod-clusterrole-" + rev + "-istio-system", Labels: labels()}},
		&rbacv1.ClusterRole{ObjectMeta: metav1.ObjectMeta{Name: "istiod-gateway-controller-" + rev + "-istio-system", Labels: labels()}},
		&rbacv1.ClusterRole{ObjectMeta: metav1.ObjectMeta{Name: "istio-reader-clusterrole-" + rev + "-istio-system",
			Labels: map[string]string{"app": "istio-reader", "release": "istiod-" + rev}}},
		&corev1.ServiceAccount{ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: "istio-system", Labels: labels()}},
		&rbacv1.Role{ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: "istio-system", Labels: labels()}},
		&rbacv1.RoleBinding{ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: "istio-system", Labels: labels()}},
	}
}

// movedDefaultTagCluster is the issue #14 cluster: 1-24-0's Helm release
// rendered the default tag, which tag.Set then moved to 1-25-0. The
// istio-injection=enabled namespace depends on it.
func movedDefaultTagCluster(t *testing.T) (*revkittest.Cluster, *helm.Client) {
	t.Helper()
	c := revkittest.NewCluster().WithRevision("1-24-0").WithRevision("1-25-0").WithTag("default", "1-25-0").
		WithNamespace("legacy", revkittest.InjectionEnabled())
	objs := c.Objects()
	for _, o := range objs {
		if m, ok := o.(metav1.Object); ok {
			switch m.GetName() {
			case "istio-revision-tag-default", "istiod-revision-tag-default", "istio-sidecar-injector-1-24-0", "istiod-1-24-0":
				helmOwned(o)
			}
		}
	}
	c = revkittest.NewCluster().WithObjects(objs...).WithObjects(helmOwned(istiodRBAC("1-24-0")...)...)
	helm := memHelm(t)
	ch, err := v2loader.Load(chartDir)
	require.NoError(t, err)
	require.NoError(t, helm.Configuration().Releases.Create(&rv1.Release{Name: "istiod-1-24-0", Namespace: "istio-system", Version: 1,
		Chart: ch, Manifest: releaseManifest, Info: &rv1.Info{Status: common.StatusDeployed}}))
	return c, helm
}

func TestUninstallKeepsTagsOfItsHelmRelease(t *testing.T) {
	wantKept := []string{
		"update mutatingwebhookconfigurations istio-revision-tag-default",
		"update services istio-system/istiod-revision-tag-default",
	}
	t.Run("dry run lists the release's objects and what it keeps, writes nothing", func(t *testing.T) {
		c, h := movedDefaultTagCluster(t)
		kube := c.Kube()
		kube.ClearActions()
		res, err := revision.Uninstall(ctx, kube, revision.UninstallOptions{Revision: "1-24-0", Helm: h,
			Common: revkit.Common{DryRun: revkit.DryRunClient}})
		require.NoError(t, err)
		assert.Empty(t, revkittest.Writes(kube))
		got := changeStrings(res.Changes)
		for _, want := range []string{
			"update MutatingWebhookConfiguration/istio-revision-tag-default",
			"update Service/istio-system/istiod-revision-tag-default",
			"delete HelmRelease/istio-system/istiod-1-24-0",
			"delete MutatingWebhookConfiguration/istio-sidecar-injector-1-24-0",
			"delete ClusterRole/istiod-clusterrole-1-24-0-istio-system",
			"delete ServiceAccount/istio-system/istiod-1-24-0",
			"delete Deployment/istio-system/istiod-1-24-0",
			"delete ClusterRole/istio-reader-clusterrole-1-24-0-istio-system",
			"delete RoleBinding/istio-system/istiod-1-24-0",
		} {
			assert.Contains(t, got, want)
		}
		assert.NotContains(t, got, "delete MutatingWebhookConfiguration/istio-revision-tag-default")
		assert.NotContains(t, got, "delete ConfigMap/istio-system/values-1-24-0", "gone already: not listed")
		assert.Len(t, got, len(dedupe(got)), "each object once: %v", got)
	})
	t.Run("the moved tag leaves the release before Helm deletes it", func(t *testing.T) {
		c, h := movedDefaultTagCluster(t)
		kube := c.Kube()
		kube.ClearActions()
		res, err := revision.Uninstall(ctx, kube, revision.UninstallOptions{Revision: "1-24-0", Helm: h})
		require.NoError(t, err)
		writes := revkittest.Writes(kube)
		require.GreaterOrEqual(t, len(writes), 2)
		assert.Equal(t, wantKept, writes[:2], "taken out of the release first")
		assert.NotContains(t, writes, "delete mutatingwebhookconfigurations istio-revision-tag-default")
		assert.NotContains(t, writes, "delete services istio-system/istiod-revision-tag-default")
		mwc, err := kube.AdmissionregistrationV1().MutatingWebhookConfigurations().Get(ctx, "istio-revision-tag-default", metav1.GetOptions{})
		require.NoError(t, err)
		assert.NotContains(t, mwc.Annotations, "meta.helm.sh/release-name")
		assert.NotContains(t, mwc.Annotations, "meta.helm.sh/release-namespace")
		assert.NotContains(t, mwc.Labels, "app.kubernetes.io/managed-by")
		assert.Equal(t, "1-25-0", mwc.Labels["istio.io/rev"])
		svc, err := kube.CoreV1().Services("istio-system").Get(ctx, "istiod-revision-tag-default", metav1.GetOptions{})
		require.NoError(t, err)
		assert.NotContains(t, svc.Annotations, "meta.helm.sh/release-name")
		assert.Contains(t, changeStrings(res.Changes), "delete ClusterRole/istiod-clusterrole-1-24-0-istio-system")
		assert.Equal(t, "istiod-1-24-0", res.Release)
	})
}

// Without Helm, a revision whose objects belong to its release is refused
// before any write: deleting them would leave a "deployed" release of
// nothing. The error names the release and the option to set.
func TestUninstallWithoutHelmRefusesAHelmRelease(t *testing.T) {
	for _, mode := range []revkit.DryRun{revkit.DryRunNone, revkit.DryRunClient} {
		t.Run(mode.String(), func(t *testing.T) {
			c, _ := movedDefaultTagCluster(t)
			kube := c.Kube()
			kube.ClearActions()
			_, err := revision.Uninstall(ctx, kube, revision.UninstallOptions{Revision: "1-24-0", Common: revkit.Common{DryRun: mode}})
			var invalid *revkit.InvalidInputError
			require.ErrorAs(t, err, &invalid)
			assert.Equal(t, "Helm", invalid.Field)
			assert.Equal(t, "istiod-1-24-0", invalid.Value)
			assert.ErrorIs(t, err, revkit.ErrInvalidInput)
			assert.Empty(t, revkittest.Writes(kube))
		})
	}
	// A revision installed without Helm is not affected (the other tests),
	// nor one whose objects name another release.
	kube := revkittest.NewCluster().WithRevision("1-24-0").WithObjects(helmOwned(istiodRBAC("1-25-0")...)...).Kube()
	_, err := revision.Uninstall(ctx, kube, revision.UninstallOptions{Revision: "1-24-0"})
	require.NoError(t, err)
}

func TestUninstallDeletesChartRBACByName(t *testing.T) {
	foreign := &rbacv1.ClusterRole{ObjectMeta: metav1.ObjectMeta{Name: "istiod-gateway-controller-1-24-0-istio-system",
		Labels: map[string]string{"app": "something-else"}}}
	objs := istiodRBAC("1-24-0")
	objs[2] = foreign // a foreign object with a colliding name stays
	kube := revkittest.NewCluster().WithRevision("1-24-0").WithRevision("1-25-0").WithObjects(objs...).
		WithObjects(istiodRBAC("1-25-0")...).Kube()
	kube.ClearActions()
	_, err := revision.Uninstall(ctx, kube, revision.UninstallOptions{Revision: "1-24-0"})
	require.NoError(t, err)
	writes := revkittest.Writes(kube)
	for _, want := range []string{
		"delete clusterrolebindings istiod-clusterrole-1-24-0-istio-system",
		"delete clusterroles istiod-clusterrole-1-24-0-istio-system",
		"delete clusterroles istio-reader-clusterrole-1-24-0-istio-system",
		"delete rolebindings istio-system/istiod-1-24-0",
		"delete roles istio-system/istiod-1-24-0",
		"delete serviceaccounts istio-system/istiod-1-24-0",
	} {
		assert.Contains(t, writes, want)
	}
	assert.NotContains(t, writes, "delete clusterroles istiod-gateway-controller-1-24-0-istio-system")
	for _, w := range writes {
		assert.NotContains(t, w, "1-25-0", "the other revision is untouched")
	}
	_, err = kube.RbacV1().ClusterRoles().Get(ctx, foreign.Name, metav1.GetOptions{})
	assert.NoError(t, err)
	_, err = kube.RbacV1().ClusterRoles().Get(ctx, "istiod-clusterrole-1-24-0-istio-system", metav1.GetOptions{})
	assert.True(t, apierrors.IsNotFound(err))

	// Idempotent: nothing left to delete.
	kube.ClearActions()
	res, err := revision.Uninstall(ctx, kube, revision.UninstallOptions{Revision: "1-24-0"})
	require.NoError(t, err)
	assert.Empty(t, revkittest.Writes(kube))
	assert.False(t, res.Changed())
}

func changeStrings(changes []revkit.Change) []string {
	var out []string
	for _, c := range changes {
		out = append(out, string(c.Action)+" "+c.Object.String())
	}
	return out
}

func dedupe(in []string) []string {
	seen := map[string]bool{}
	var out []string
	for _, s := range in {
		if !seen[s] {
			seen[s] = true
			out = append(out, s)
		}
	}
	return out
}

// A namespace labelled both istio-injection=enabled and istio.io/rev=<old>
// is injected by the default tag's webhook: it uses the tag's revision,
// not the one its istio.io/rev label names (issue #14).
func TestInUseFollowsWebhooks(t *testing.T) {
	kube := revkittest.NewCluster().WithRevision("1-24-0").WithRevision("1-25-0").WithTag("default", "1-25-0").
		WithNamespace("both", revkittest.InjectionEnabled(), revkittest.Rev("1-24-0")).Kube()
	old, err := revision.InUse(ctx, kube, "1-24-0", revision.ListOptions{})
	require.NoError(t, err)
	assert.False(t, old.InUse(), "1-24-0 injects nothing: %v", old)
	canary, err := revision.InUse(ctx, kube, "1-25-0", revision.ListOptions{})
	require.NoError(t, err)
	assert.Equal(t, []string{"both"}, canary.Namespaces)
	assert.Equal(t, []string{"default"}, canary.Tags)

	// So the old revision can go, and the tag it does not own stays.
	kube.ClearActions()
	_, err = revision.Uninstall(ctx, kube, revision.UninstallOptions{Revision: "1-24-0"})
	require.NoError(t, err)
	for _, w := range revkittest.Writes(kube) {
		assert.NotContains(t, w, "default", "the default tag and its validator stay")
	}
}

// While the release's tag still points at the revision, the uninstall is
// refused before any write, the release included.
func TestUninstallRefusesItsOwnTagBeforeAnyWrite(t *testing.T) {
	kube := revkittest.NewCluster().WithRevision("1-24-0").WithRevision("1-25-0").WithTag("default", "1-24-0").Kube()
	helm := memHelm(t)
	ch, err := v2loader.Load(chartDir)
	require.NoError(t, err)
	require.NoError(t, helm.Configuration().Releases.Create(&rv1.Release{Name: "istiod-1-24-0", Namespace: "istio-system", Version: 1,
		Chart: ch, Manifest: releaseManifest, Info: &rv1.Info{Status: common.StatusDeployed}}))
	kube.ClearActions()
	res, err := revision.Uninstall(ctx, kube, revision.UninstallOptions{Revision: "1-24-0", Helm: helm, Force: true})
	require.ErrorIs(t, err, revkit.ErrInUse)
	var inUse *revkit.InUseError
	require.ErrorAs(t, err, &inUse)
	assert.Equal(t, []string{"default"}, inUse.Usage.Tags)
	assert.Empty(t, revkittest.Writes(kube))
	assert.Empty(t, res.Changes)
	_, err = helm.Configuration().Releases.Last("istiod-1-24-0")
	assert.NoError(t, err, "the release is intact")
}

func TestUninstallHelmRelease(t *testing.T) {
	kube := base().Kube()
	helm := memHelm(t)
	_, err := revision.Install(ctx, kube, revision.InstallOptions{Revision: "1-26-0", Chart: revision.ChartSource{Path: chartDir}, Helm: helm})
	require.NoError(t, err)

	// A client dry run keeps the release.
	res, err := revision.Uninstall(ctx, kube, revision.UninstallOptions{Revision: "1-26-0", Helm: helm,
		Common: revkit.Common{DryRun: revkit.DryRunClient}})
	require.NoError(t, err)
	assert.True(t, res.Found)
	assert.Equal(t, "istiod-1-26-0", res.Release)
	assert.Equal(t, []string{"istiod-1-26-0#1"}, releases(t, helm))

	res, err = revision.Uninstall(ctx, kube, revision.UninstallOptions{Revision: "1-26-0", Helm: helm})
	require.NoError(t, err)
	assert.True(t, res.Changed())
	assert.Empty(t, releases(t, helm), "helm uninstall removed the release record")

	// A revision with a Helm release still obeys the guards.
	_, err = revision.Install(ctx, kube, revision.InstallOptions{Revision: "1-24-0", Chart: revision.ChartSource{Path: chartDir}, Helm: helm, Upgrade: true})
	require.ErrorIs(t, err, revkit.ErrExists, "1-24-0 exists without Helm")
}
