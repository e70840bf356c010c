//go:build integration

package e2e_test

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	admv1 "k8s.io/api/admissionregistration/v1"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/client-go/kubernetes"
	"k8s.io/utils/ptr"

	"github.com/revkit/revkit"
	"github.com/revkit/revkit/internal/testenv"
	"github.com/revkit/revkit/namespace"
	"github.com/revkit/revkit/revision"
	"github.com/revkit/revkit/tag"
	"github.com/revkit/revkit/verify"
)

// The two revisions every test upgrades between run the two Istio versions
// the tools build: oldRev the older istiod with its own charts, newRev the
// pinned one (testenv.IstioFor).
var (
	oldRev = testenv.OldIstio.Revision
	newRev = testenv.NewIstio.Revision
)

// TestCanaryOperations walks the guide's canary upgrade with the library's
// operations against a real apiserver and two real istiod revisions: tags,
// namespace migration, rollout restart, verification, the default tag,
// overlap detection and uninstall guards.
func TestCanaryOperations(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	defer cancel()
	env := startTwoRevisions(ctx, t)
	kube := env.Client

	t.Run("revision.List finds both revisions", func(t *testing.T) {
		revs, err := revision.List(ctx, kube, revision.ListOptions{})
		require.NoError(t, err)
		var names []string
		for _, r := range revs {
			names = append(names, r.Name)
			assert.Equal(t, "istio-sidecar-injector-"+r.Name, r.Injector)
		}
		assert.Equal(t, []string{oldRev, newRev}, names)
	})

	t.Run("tag.Set creates real tag webhooks", func(t *testing.T) {
		_, err := tag.Set(ctx, kube, tag.SetOptions{Tag: "prod-stable", Revision: oldRev})
		require.NoError(t, err)
		_, err = tag.Set(ctx, kube, tag.SetOptions{Tag: "prod-canary", Revision: newRev})
		require.NoError(t, err)

		// The apiserver defaults fields we did not set; a second Set must
		// still see nothing to change.
		res, err := tag.Set(ctx, kube, tag.SetOptions{Tag: "prod-canary", Revision: newRev})
		require.NoError(t, err)
		assert.False(t, res.Changed(), "second Set against a real apiserver: %v", res.Changes)

		tags, err := tag.List(ctx, kube, tag.ListOptions{})
		require.NoError(t, err)
		require.Len(t, tags, 2)
		assert.Equal(t, "prod-canary", tags[0].Name)
		assert.Equal(t, newRev, tags[0].Revision)
		assert.Equal(t, "prod-stable", tags[1].Name)
		assert.Equal(t, oldRev, tags[1].Revision)

		// A server-side dry run goes through admission and persists nothing.
		_, err = tag.Set(ctx, kube, tag.SetOptions{Tag: "dry", Revision: newRev, Common: revkit.Common{DryRun: revkit.DryRunServer}})
		require.NoError(t, err)
		_, err = kube.AdmissionregistrationV1().MutatingWebhookConfigurations().Get(ctx, "istio-revision-tag-dry", metav1.GetOptions{})
		assert.True(t, apierrors.IsNotFound(err), "server dry run must not persist: %v", err)
	})

	t.Run("pods in a tagged namespace are injected by the tag's revision", func(t *testing.T) {
		createNamespace(ctx, t, env, "shop", map[string]string{"istio.io/rev": "prod-stable"})
		createDeployment(ctx, t, kube, "shop", "web", 2)
		waitRolledOut(ctx, t, kube, "shop", "web")
		rep, err := verify.Pods(ctx, kube, verify.PodsOptions{Namespaces: []string{"shop"}, Target: "prod-stable"})
		require.NoError(t, err)
		require.NoError(t, rep.Err())
		assert.Equal(t, 2, rep.Namespaces[0].Revisions[oldRev])
		assertProxyVersions(ctx, t, kube, "shop", testenv.OldIstio)
	})

	t.Run("revision.Uninstall refuses a revision in use", func(t *testing.T) {
		_, err := revision.Uninstall(ctx, kube, revision.UninstallOptions{Revision: oldRev})
		var inUse *revkit.InUseError
		require.ErrorAs(t, err, &inUse)
		assert.Equal(t, []string{"shop"}, inUse.Usage.Namespaces)
		assert.Equal(t, []string{"prod-stable"}, inUse.Usage.Tags)
		assert.Len(t, inUse.Usage.Pods, 2)
		_, err = kube.AdmissionregistrationV1().MutatingWebhookConfigurations().Get(ctx, "istio-sidecar-injector-"+oldRev, metav1.GetOptions{})
		require.NoError(t, err, "nothing deleted")
	})

	t.Run("Migrate and RolloutRestart move pods to the canary", func(t *testing.T) {
		mig, err := namespace.Migrate(ctx, kube, namespace.MigrateOptions{
			Selection: namespace.Selection{Namespaces: []string{"shop"}}, Target: "prod-canary"})
		require.NoError(t, err)
		assert.Equal(t, newRev, mig.Revision)

		res, err := namespace.RolloutRestart(ctx, kube, namespace.RestartOptions{
			Selection: namespace.Selection{Namespaces: []string{"shop"}}, Target: "prod-canary", OnlyStale: true,
			Wait: true, Timeout: 3 * time.Minute, PollInterval: 500 * time.Millisecond,
		})
		require.NoError(t, err)
		assert.Equal(t, []string{"Deployment/shop/web"}, res.Restarted())
		waitNoTerminating(ctx, t, kube, "shop")

		rep, err := verify.Pods(ctx, kube, verify.PodsOptions{Namespaces: []string{"shop"}, Target: "prod-canary"})
		require.NoError(t, err)
		require.NoError(t, rep.Err())
		assert.Equal(t, map[string]int{newRev: 2}, rep.Namespaces[0].Revisions)
		assertProxyVersions(ctx, t, kube, "shop", testenv.NewIstio)

		// Rerun: nothing stale, nothing restarted.
		res, err = namespace.RolloutRestart(ctx, kube, namespace.RestartOptions{
			Selection: namespace.Selection{Namespaces: []string{"shop"}}, Target: "prod-canary", OnlyStale: true})
		require.NoError(t, err)
		assert.False(t, res.Changed())
	})

	t.Run("verify.Webhooks finds a real overlap", func(t *testing.T) {
		rep, err := verify.Webhooks(ctx, kube, verify.WebhooksOptions{})
		require.NoError(t, err)
		require.NoError(t, rep.Err(), "clean cluster")

		orig, err := kube.AdmissionregistrationV1().MutatingWebhookConfigurations().Get(ctx, "istio-sidecar-injector-"+newRev, metav1.GetOptions{})
		require.NoError(t, err)
		rogue := &admv1.MutatingWebhookConfiguration{
			ObjectMeta: metav1.ObjectMeta{Name: "rogue-injector"},
			Webhooks:   orig.Webhooks,
		}
		_, err = kube.AdmissionregistrationV1().MutatingWebhookConfigurations().Create(ctx, rogue, metav1.CreateOptions{})
		require.NoError(t, err)
		rep, err = verify.Webhooks(ctx, kube, verify.WebhooksOptions{})
		require.NoError(t, err)
		assert.ErrorIs(t, rep.Err(), revkit.ErrOverlap)

		// An overlap that exists already does not block a tag whose own
		// webhooks overlap nothing.
		_, err = tag.Set(ctx, kube, tag.SetOptions{Tag: newRev + "-x", Revision: newRev})
		require.NoError(t, err, "a tag with its own selector does not overlap the rogue copy")
		_, err = tag.Remove(ctx, kube, tag.RemoveOptions{Tag: newRev + "-x"})
		require.NoError(t, err)

		require.NoError(t, kube.AdmissionregistrationV1().MutatingWebhookConfigurations().Delete(ctx, "rogue-injector", metav1.DeleteOptions{}))
		rep, err = verify.Webhooks(ctx, kube, verify.WebhooksOptions{})
		require.NoError(t, err)
		require.NoError(t, rep.Err())
	})

	t.Run("the default tag takes over injection and validation", func(t *testing.T) {
		vs := &unstructured.Unstructured{Object: map[string]any{
			"apiVersion": "networking.istio.io/v1", "kind": "VirtualService",
			"metadata": map[string]any{"name": "bad", "namespace": "default"},
			"spec":     map[string]any{"hosts": []any{"*"}, "http": []any{map[string]any{"route": []any{}}}},
		}}
		gvr := schema.GroupVersionResource{Group: "networking.istio.io", Version: "v1", Resource: "virtualservices"}
		// Revision validators only look at objects labelled with their
		// revision: without a default validator an invalid resource passes.
		_, err := env.Dynamic.Resource(gvr).Namespace("default").Create(ctx, vs, metav1.CreateOptions{DryRun: []string{metav1.DryRunAll}})
		require.NoError(t, err, "before the default tag nothing validates unlabelled resources")

		_, err = tag.Set(ctx, kube, tag.SetOptions{Tag: "default", Revision: newRev})
		require.NoError(t, err)
		vwc, err := kube.AdmissionregistrationV1().ValidatingWebhookConfigurations().Get(ctx, "istiod-default-validator", metav1.GetOptions{})
		require.NoError(t, err)
		assert.Equal(t, newRev, vwc.Labels["istio.io/rev"])

		// istio-injection=enabled namespaces are injected by the default
		// tag's revision.
		createNamespace(ctx, t, env, "legacy", map[string]string{"istio-injection": "enabled"})
		pod := &corev1.Pod{
			ObjectMeta: metav1.ObjectMeta{Name: "probe", Labels: map[string]string{"app": "probe"}},
			Spec:       corev1.PodSpec{Containers: []corev1.Container{{Name: "app", Image: "registry.invalid/app:1"}}},
		}
		got, err := kube.CoreV1().Pods("legacy").Create(ctx, pod, metav1.CreateOptions{DryRun: []string{metav1.DryRunAll}})
		require.NoError(t, err)
		rev, ok := testenv.InjectedRevision(got)
		require.True(t, ok, "pod in istio-injection=enabled namespace must be injected")
		assert.Equal(t, newRev, rev)

		// The default validator answers: the same VirtualService is denied.
		require.Eventually(t, func() bool {
			_, err := env.Dynamic.Resource(gvr).Namespace("default").Create(ctx, vs, metav1.CreateOptions{DryRun: []string{metav1.DryRunAll}})
			if err != nil {
				t.Logf("create invalid VirtualService: %v", err)
			}
			return err != nil && strings.Contains(err.Error(), "denied the request")
		}, time.Minute, time.Second, "the default validator must reject an invalid VirtualService")

		// And tag.Remove refuses while istio-injection=enabled uses it.
		_, err = tag.Remove(ctx, kube, tag.RemoveOptions{Tag: "default"})
		assert.ErrorIs(t, err, revkit.ErrInUse)
	})

	t.Run("promote and uninstall the old revision", func(t *testing.T) {
		_, err := tag.Set(ctx, kube, tag.SetOptions{Tag: "prod-stable", Revision: newRev, Overwrite: true})
		require.NoError(t, err)
		revs, err := revision.List(ctx, kube, revision.ListOptions{})
		require.NoError(t, err)
		require.Len(t, revs, 2)
		require.False(t, revs[0].InUse(), "old revision users: %v", revs[0].Usage())

		res, err := revision.Uninstall(ctx, kube, revision.UninstallOptions{Revision: oldRev})
		require.NoError(t, err)
		assert.True(t, res.Changed())
		require.NoError(t, env.StopIstiod(oldRev))

		revs, err = revision.List(ctx, kube, revision.ListOptions{})
		require.NoError(t, err)
		require.Len(t, revs, 1)
		assert.Equal(t, newRev, revs[0].Name)
		assert.ElementsMatch(t, []string{"default", "prod-canary", "prod-stable"}, revs[0].Tags)

		rep, err := verify.Webhooks(ctx, kube, verify.WebhooksOptions{})
		require.NoError(t, err)
		assert.NoError(t, rep.Err(), "nothing dangling after uninstall")

		// New pods in the shop namespace still get the new sidecar.
		got, err := kube.CoreV1().Pods("shop").Create(ctx, &corev1.Pod{
			ObjectMeta: metav1.ObjectMeta{Name: "after"},
			Spec:       corev1.PodSpec{Containers: []corev1.Container{{Name: "app", Image: "registry.invalid/app:1"}}},
		}, metav1.CreateOptions{DryRun: []string{metav1.DryRunAll}})
		require.NoError(t, err)
		rev, _ := testenv.InjectedRevision(got)
		assert.Equal(t, newRev, rev)
	})
}

// startTwoRevisions starts a control plane with istiod revisions oldRev and
// newRev running, each from its own Istio version's binary and charts.
func startTwoRevisions(ctx context.Context, t *testing.T) *testenv.Env {
	t.Helper()
	env, err := testenv.Start(t, testenv.Options{})
	require.NoError(t, err)
	for _, v := range []testenv.IstioVersion{testenv.OldIstio, testenv.NewIstio} {
		_, err := env.StartIstiodVersion(ctx, v.Revision, v)
		require.NoError(t, err, "istiod %s (Istio %s)", v.Revision, v)
	}
	return env
}

// assertProxyVersions checks that every pod of ns runs the sidecar of Istio
// version v: the proxy image its revision's injection template put in, and
// the revision in its sidecar status.
func assertProxyVersions(ctx context.Context, t *testing.T, kube kubernetes.Interface, ns string, v testenv.IstioVersion) {
	t.Helper()
	pods, err := kube.CoreV1().Pods(ns).List(ctx, metav1.ListOptions{})
	require.NoError(t, err)
	require.NotEmpty(t, pods.Items, "pods in %s", ns)
	for i := range pods.Items {
		p := &pods.Items[i]
		got, ok := testenv.ProxyVersion(p)
		assert.True(t, ok, "pod %s/%s has an istio-proxy container", ns, p.Name)
		assert.Equal(t, v.Name, got, "proxy version of pod %s/%s", ns, p.Name)
		rev, _ := testenv.InjectedRevision(p)
		assert.Equal(t, v.Revision, rev, "sidecar status revision of pod %s/%s", ns, p.Name)
	}
}

func createNamespace(ctx context.Context, t *testing.T, env *testenv.Env, name string, labels map[string]string) {
	t.Helper()
	_, err := env.Client.CoreV1().Namespaces().Create(ctx, &corev1.Namespace{
		ObjectMeta: metav1.ObjectMeta{Name: name, Labels: labels}}, metav1.CreateOptions{})
	require.NoError(t, err)
	require.NoError(t, env.WaitForServiceAccount(ctx, name, "default"))
}

func createDeployment(ctx context.Context, t *testing.T, kube kubernetes.Interface, ns, name string, replicas int32) {
	t.Helper()
	labels := map[string]string{"app": name}
	_, err := kube.AppsV1().Deployments(ns).Create(ctx, &appsv1.Deployment{
		ObjectMeta: metav1.ObjectMeta{Name: name},
		Spec: appsv1.DeploymentSpec{
			Replicas: ptr.To(replicas),
			Selector: &metav1.LabelSelector{MatchLabels: labels},
			Template: corev1.PodTemplateSpec{
				ObjectMeta: metav1.ObjectMeta{Labels: labels},
				Spec:       corev1.PodSpec{Containers: []corev1.Container{{Name: "app", Image: "registry.invalid/" + name + ":1"}}},
			},
		},
	}, metav1.CreateOptions{})
	require.NoError(t, err)
}

func waitRolledOut(ctx context.Context, t *testing.T, kube kubernetes.Interface, ns, name string) {
	t.Helper()
	require.Eventually(t, func() bool {
		d, err := kube.AppsV1().Deployments(ns).Get(ctx, name, metav1.GetOptions{})
		if err != nil || d.Spec.Replicas == nil {
			return false
		}
		return d.Status.ObservedGeneration >= d.Generation && d.Status.AvailableReplicas == *d.Spec.Replicas &&
			d.Status.UpdatedReplicas == *d.Spec.Replicas && d.Status.Replicas == *d.Spec.Replicas
	}, 2*time.Minute, 500*time.Millisecond, "deployment %s/%s not available", ns, name)
}

// waitNoTerminating waits until old pods are gone, so that counts see only
// the new ones.
func waitNoTerminating(ctx context.Context, t *testing.T, kube kubernetes.Interface, ns string) {
	t.Helper()
	require.Eventually(t, func() bool {
		pods, err := kube.CoreV1().Pods(ns).List(ctx, metav1.ListOptions{})
		if err != nil {
			return false
		}
		for _, p := range pods.Items {
			if p.DeletionTimestamp != nil {
				return false
			}
		}
		return true
	}, 2*time.Minute, 500*time.Millisecond, fmt.Sprintf("terminating pods in %s", ns))
}
