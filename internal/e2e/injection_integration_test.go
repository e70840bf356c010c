//go:build integration

package e2e_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/kubernetes"

	"github.com/revkit/revkit"
	"github.com/revkit/revkit/helm"
	"github.com/revkit/revkit/internal/mesh"
	"github.com/revkit/revkit/internal/testenv"
	"github.com/revkit/revkit/revision"
	"github.com/revkit/revkit/tag"
	"github.com/revkit/revkit/verify"
)

// TestInjectionTruth is issue #14 on the real control plane: the old
// revision is installed with Helm and revisionTags [default, prod-stable],
// as many Helm users do, so its release owns those tags' webhooks and
// Services; the tags then move to the canary. A namespace labelled both
// istio-injection=enabled and istio.io/rev=<old> is injected by the default
// tag's webhook, and revkit must say so, flag it (IST0123) and keep the tag
// while it depends on it. Uninstalling the old release must keep the moved
// tag, so new pods of istio-injection=enabled namespaces are still
// injected afterwards.
func TestInjectionTruth(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 12*time.Minute)
	defer cancel()
	const old, canary = "1-29-0", "1-30-1"
	env, err := testenv.Start(t, testenv.Options{})
	require.NoError(t, err)
	kube := env.Client
	hc, err := helm.New(env.Config, "istio-system", nil)
	require.NoError(t, err)

	istiods := map[string]*testenv.Istiod{}
	for _, rev := range []string{old, canary} {
		is, err := env.ReserveIstiod(rev)
		require.NoError(t, err)
		values := is.ChartValues()
		if rev == old {
			values["revisionTags"] = []any{"default", "prod-stable"}
		}
		_, err = revision.Install(ctx, kube, revision.InstallOptions{
			Revision: rev, Chart: revision.ChartSource{Path: env.ChartDir("istio-discovery")},
			Values: values, Helm: hc, Wait: true, Timeout: 3 * time.Minute,
		})
		require.NoError(t, err, "install %s", rev)
		_, err = env.StartInstalledIstiod(ctx, is)
		require.NoError(t, err, "istiod %s", rev)
		istiods[rev] = is
	}
	tagWebhook, tagService := mesh.TagWebhookName("default"), mesh.TagServiceName("default")
	mwc, err := kube.AdmissionregistrationV1().MutatingWebhookConfigurations().Get(ctx, tagWebhook, metav1.GetOptions{})
	require.NoError(t, err, "the chart rendered the default tag")
	require.Equal(t, "istiod-"+old, mwc.Annotations["meta.helm.sh/release-name"], "the old release owns the default tag")

	for _, tg := range []string{"default", "prod-stable"} {
		_, err = tag.Set(ctx, kube, tag.SetOptions{Tag: tg, Revision: canary, Overwrite: true})
		require.NoError(t, err)
	}

	// Both labels: the apiserver calls the default tag's namespace. webhook
	// (the canary), not the old revision's.
	createNamespace(ctx, t, env, "both", map[string]string{"istio-injection": "enabled", "istio.io/rev": old})
	createDeployment(ctx, t, kube, "both", "web", 1)
	waitRolledOut(ctx, t, kube, "both", "web")
	assert.Equal(t, []string{canary}, podRevisions(ctx, t, kube, "both"), "the apiserver injected the canary")

	t.Run("a both-labels namespace is reported with the webhook the apiserver calls, and flagged", func(t *testing.T) {
		want := verify.Injection{Configuration: tagWebhook, Webhook: "namespace.sidecar-injector.istio.io", Revision: canary, Tag: "default"}
		wh, err := verify.Webhooks(ctx, kube, verify.WebhooksOptions{})
		require.NoError(t, err)
		require.Len(t, wh.Conflicts, 1, "IST0123")
		c := wh.Conflicts[0]
		assert.Equal(t, "both", c.Namespace)
		assert.Equal(t, old, c.Rev)
		assert.Equal(t, []verify.Injection{want}, c.Injections)
		assert.Contains(t, c.String(), "IST0123")

		pods, err := verify.Pods(ctx, kube, verify.PodsOptions{Namespaces: []string{"both"}})
		require.NoError(t, err)
		require.Len(t, pods.Namespaces, 1)
		assert.Equal(t, []string{canary}, pods.Namespaces[0].Injects)
		assert.Equal(t, []verify.Injection{want}, pods.Namespaces[0].Injections)
		assert.NotNil(t, pods.Namespaces[0].Conflict)
		assert.NoError(t, pods.Err(), "the pod runs what the apiserver injects")

		oldUsage, err := revision.InUse(ctx, kube, old, revision.ListOptions{})
		require.NoError(t, err)
		assert.NotContains(t, oldUsage.Namespaces, "both", "the old revision does not inject it")
		canaryUsage, err := revision.InUse(ctx, kube, canary, revision.ListOptions{})
		require.NoError(t, err)
		assert.Contains(t, canaryUsage.Namespaces, "both")

		tags, err := tag.List(ctx, kube, tag.ListOptions{})
		require.NoError(t, err)
		require.Len(t, tags, 2)
		assert.Equal(t, "default", tags[0].Name)
		assert.Equal(t, []string{"both"}, tags[0].Namespaces)
		assert.Empty(t, tags[1].Namespaces, "prod-stable injects nothing here")
	})

	t.Run("tag.Remove(default) is refused while the namespace depends on it", func(t *testing.T) {
		res, err := tag.Remove(ctx, kube, tag.RemoveOptions{Tag: "default"})
		require.ErrorIs(t, err, revkit.ErrInUse)
		var inUse *revkit.InUseError
		require.True(t, errors.As(err, &inUse))
		assert.Equal(t, []string{"both"}, inUse.Usage.Namespaces)
		assert.Empty(t, res.Changes, "nothing written on refusal")
		_, err = kube.AdmissionregistrationV1().MutatingWebhookConfigurations().Get(ctx, tagWebhook, metav1.GetOptions{})
		assert.NoError(t, err, "the tag is still there")
	})

	t.Run("the Helm-owned default tag survives the old release's uninstall", func(t *testing.T) {
		// Drop the conflicting label: "both" is now a plain
		// istio-injection=enabled namespace that depends on the tag.
		patch := []byte(`{"metadata":{"labels":{"istio.io/rev":null}}}`)
		_, err := kube.CoreV1().Namespaces().Patch(ctx, "both", types.MergePatchType, patch, metav1.PatchOptions{})
		require.NoError(t, err)

		opts := revision.UninstallOptions{Revision: old, Helm: hc}
		opts.DryRun = revkit.DryRunClient
		dry, err := revision.Uninstall(ctx, kube, opts)
		require.NoError(t, err)
		dryActions := actions(dry.Changes)
		assert.Equal(t, revkit.ActionUpdate, dryActions["MutatingWebhookConfiguration/"+tagWebhook], "taken out of the release: %v", dryActions)
		assert.Equal(t, revkit.ActionUpdate, dryActions["Service/istio-system/"+tagService])
		for _, gone := range []string{
			"MutatingWebhookConfiguration/istio-sidecar-injector-" + old,
			"Deployment/istio-system/istiod-" + old,
			"ClusterRole/istiod-clusterrole-" + old + "-istio-system",
			"ServiceAccount/istio-system/istiod-" + old,
		} {
			assert.Equal(t, revkit.ActionDelete, dryActions[gone], "dry run lists %s: %v", gone, dryActions)
		}

		res, err := revision.Uninstall(ctx, kube, revision.UninstallOptions{Revision: old, Helm: hc})
		require.NoError(t, err)
		assert.Equal(t, "istiod-"+old, res.Release)
		got := actions(res.Changes)
		for ref, a := range dryActions {
			assert.Equal(t, a, got[ref], "the uninstall did what its dry run listed for %s", ref)
		}
		require.NoError(t, env.StopIstiod(old))

		_, err = hc.Configuration().Releases.Last("istiod-" + old)
		assert.Error(t, err, "the old release is gone")
		mwc, err := kube.AdmissionregistrationV1().MutatingWebhookConfigurations().Get(ctx, tagWebhook, metav1.GetOptions{})
		require.NoError(t, err, "the moved default tag is kept")
		assert.Equal(t, canary, mwc.Labels["istio.io/rev"])
		assert.NotContains(t, mwc.Annotations, "meta.helm.sh/release-name")
		_, err = kube.CoreV1().Services("istio-system").Get(ctx, tagService, metav1.GetOptions{})
		assert.NoError(t, err, "the default tag's Service is kept")
		_, err = kube.AdmissionregistrationV1().MutatingWebhookConfigurations().Get(ctx, mesh.TagWebhookName("prod-stable"), metav1.GetOptions{})
		assert.NoError(t, err, "so is the other moved tag's webhook")
		_, err = kube.CoreV1().Services("istio-system").Get(ctx, mesh.TagServiceName("prod-stable"), metav1.GetOptions{})
		assert.NoError(t, err, "and its Service")
		for _, name := range []string{"istiod-clusterrole-" + old + "-istio-system", "istio-reader-clusterrole-" + old + "-istio-system"} {
			_, err := kube.RbacV1().ClusterRoles().Get(ctx, name, metav1.GetOptions{})
			assert.True(t, apierrors.IsNotFound(err), "%s must be gone: %v", name, err)
		}

		// New pods of the istio-injection=enabled namespace still get the
		// canary's sidecar.
		_, err = kube.AppsV1().Deployments("both").Patch(ctx, "web", types.MergePatchType, []byte(`{"spec":{"replicas":2}}`), metav1.PatchOptions{})
		require.NoError(t, err)
		waitRolledOut(ctx, t, kube, "both", "web")
		assert.Equal(t, []string{canary, canary}, podRevisions(ctx, t, kube, "both"))

		wh, err := verify.Webhooks(ctx, kube, verify.WebhooksOptions{})
		require.NoError(t, err)
		assert.NoError(t, wh.Err())
		assert.Empty(t, wh.Conflicts)
		assert.Empty(t, wh.Uninjected, "every namespace labelled for injection is served")
	})
}

// podRevisions lists the sidecar revision of each active pod of ns ("" for
// a pod without a sidecar), sorted by pod name.
func podRevisions(ctx context.Context, t *testing.T, kube kubernetes.Interface, ns string) []string {
	t.Helper()
	pods, err := kube.CoreV1().Pods(ns).List(ctx, metav1.ListOptions{})
	require.NoError(t, err)
	var out []string
	for i := range pods.Items {
		p := &pods.Items[i]
		if p.DeletionTimestamp != nil || p.Status.Phase == corev1.PodSucceeded || p.Status.Phase == corev1.PodFailed {
			continue
		}
		rev, _ := mesh.PodRevision(p)
		out = append(out, rev)
	}
	return out
}

// actions maps "Kind/namespace/name" to the last action recorded for it.
func actions(changes []revkit.Change) map[string]revkit.Action {
	out := map[string]revkit.Action{}
	for _, c := range changes {
		key := c.Object.Kind + "/" + c.Object.Name
		if c.Object.Namespace != "" {
			key = c.Object.Kind + "/" + c.Object.Namespace + "/" + c.Object.Name
		}
		out[key] = c.Action
	}
	return out
}
