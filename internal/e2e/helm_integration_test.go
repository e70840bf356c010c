//go:build integration

package e2e_test

import (
	"context"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	rv1 "helm.sh/helm/v4/pkg/release/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/revkit/revkit"
	"github.com/revkit/revkit/helm"
	"github.com/revkit/revkit/internal/testenv"
	"github.com/revkit/revkit/namespace"
	"github.com/revkit/revkit/revision"
	"github.com/revkit/revkit/tag"
	"github.com/revkit/revkit/verify"
)

// TestHelmCanaryWalkthrough installs two revisions from Istio's own
// istio-discovery chart with Helm, side by side, and runs the guide's
// walkthrough with revision tags, checking pods and the proxies istiod
// reports, then uninstalls the old revision's release.
func TestHelmCanaryWalkthrough(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
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
		start := time.Now()
		res, err := revision.Install(ctx, kube, revision.InstallOptions{
			Revision: rev, Chart: revision.ChartSource{Path: env.ChartDir("istio-discovery")},
			Values: is.ChartValues(), Helm: hc, Wait: true, Timeout: 3 * time.Minute,
		})
		require.NoError(t, err, "install %s", rev)
		t.Logf("installed %s as %s v%d with %d objects in %s", rev, res.Release, res.Version, len(res.Objects), time.Since(start).Round(time.Millisecond))
		assert.Equal(t, "istio-sidecar-injector-"+rev, res.Injector)
		assert.Equal(t, "Current", res.IstiodStatus, "kstatus of istiod's Deployment after the wait")
		_, err = env.StartInstalledIstiod(ctx, is)
		require.NoError(t, err, "istiod %s", rev)
		istiods[rev] = is
	}

	t.Run("install refuses what exists, and dry runs persist nothing", func(t *testing.T) {
		_, err := revision.Install(ctx, kube, revision.InstallOptions{Revision: old,
			Chart: revision.ChartSource{Path: env.ChartDir("istio-discovery")}, Helm: hc})
		assert.ErrorIs(t, err, revkit.ErrExists)

		for _, mode := range []revkit.DryRun{revkit.DryRunClient, revkit.DryRunServer} {
			res, err := revision.Install(ctx, kube, revision.InstallOptions{Revision: "1-31-9",
				Chart: revision.ChartSource{Path: env.ChartDir("istio-discovery")}, Values: istiods[canary].ChartValues(),
				Helm: hc, Common: revkit.Common{DryRun: mode}})
			require.NoError(t, err, "dry run %s", mode)
			assert.NotEmpty(t, res.Objects)
			_, err = kube.AppsV1().Deployments("istio-system").Get(ctx, "istiod-1-31-9", metav1.GetOptions{})
			assert.True(t, apierrors.IsNotFound(err), "dry run %s persisted the Deployment: %v", mode, err)
		}
		_, err = hc.Configuration().Releases.Last("istiod-1-31-9")
		assert.Error(t, err, "no release recorded by a dry run")
	})

	t.Run("walkthrough", func(t *testing.T) {
		for tg, rev := range map[string]string{"prod-stable": old, "prod-canary": canary} {
			_, err := tag.Set(ctx, kube, tag.SetOptions{Tag: tg, Revision: rev})
			require.NoError(t, err)
		}
		createNamespace(ctx, t, env, "app", map[string]string{"istio.io/rev": "prod-stable"})
		createDeployment(ctx, t, kube, "app", "web", 2)
		waitRolledOut(ctx, t, kube, "app", "web")

		_, err := namespace.Migrate(ctx, kube, namespace.MigrateOptions{Selection: namespace.Selection{Namespaces: []string{"app"}}, Target: "prod-canary"})
		require.NoError(t, err)
		_, err = namespace.RolloutRestart(ctx, kube, namespace.RestartOptions{Selection: namespace.Selection{Namespaces: []string{"app"}},
			Target: "prod-canary", OnlyStale: true, Wait: true, Timeout: 2 * time.Minute, PollInterval: 500 * time.Millisecond})
		require.NoError(t, err)
		waitNoTerminating(ctx, t, kube, "app")

		pods, err := verify.Pods(ctx, kube, verify.PodsOptions{Namespaces: []string{"app"}, Target: "prod-canary"})
		require.NoError(t, err)
		require.NoError(t, pods.Err())

		// Sidecars connect to the istiod that injected them; istiod's
		// /debug/syncz shows them SYNCED under the canary.
		sidecars, err := env.ConnectPodSidecars(ctx, "app", "app=web")
		require.NoError(t, err)
		require.Len(t, sidecars, 2)
		for _, s := range sidecars {
			require.NoError(t, s.WaitSynced(ctx))
		}
		sources := []verify.SyncSource{
			verify.HTTPSource{Rev: old, URL: "http://" + istiods[old].MonitoringAddr},
			verify.HTTPSource{Rev: canary, URL: "http://" + istiods[canary].MonitoringAddr},
		}
		var rep *verify.ProxiesReport
		require.Eventually(t, func() bool {
			rep, err = verify.Proxies(ctx, verify.ProxiesOptions{Sources: sources, Target: canary, Namespaces: []string{"app"}})
			return err == nil && rep.OK() && len(rep.Proxies) == 2
		}, time.Minute, 500*time.Millisecond, "proxies: %+v %v", rep, err)

		// A proxy still connected to the old revision is a straggler.
		straggler, err := istiods[old].ConnectSidecar(ctx, testenv.SidecarOptions{Pod: "legacy-0", Namespace: "app", IP: "10.244.9.9"})
		require.NoError(t, err)
		require.NoError(t, straggler.WaitSynced(ctx))
		require.Eventually(t, func() bool {
			rep, err = verify.Proxies(ctx, verify.ProxiesOptions{Sources: sources, Target: canary, Namespaces: []string{"app"}})
			return err == nil && len(rep.Stragglers) == 1
		}, time.Minute, 500*time.Millisecond)
		assert.Equal(t, old, rep.Stragglers[0].Revision)
		assert.ErrorIs(t, rep.Err(), revkit.ErrVerificationFailed)
		require.NoError(t, straggler.Close())

		// Promote, then the old revision and its release go.
		_, err = tag.Set(ctx, kube, tag.SetOptions{Tag: "prod-stable", Revision: canary, Overwrite: true})
		require.NoError(t, err)
		res, err := revision.Uninstall(ctx, kube, revision.UninstallOptions{Revision: old, Helm: hc})
		require.NoError(t, err)
		assert.Equal(t, "istiod-"+old, res.Release)
		require.NoError(t, env.StopIstiod(old))

		_, err = hc.Configuration().Releases.Last("istiod-" + old)
		assert.Error(t, err, "the old release is gone")
		last, err := hc.Configuration().Releases.Last("istiod-" + canary)
		require.NoError(t, err)
		assert.Equal(t, "deployed", string(last.(*rv1.Release).Info.Status), "the canary release is intact")
		for _, name := range []string{"istio-sidecar-injector-" + old} {
			_, err := kube.AdmissionregistrationV1().MutatingWebhookConfigurations().Get(ctx, name, metav1.GetOptions{})
			assert.True(t, apierrors.IsNotFound(err), "%s must be gone: %v", name, err)
		}
		_, err = kube.AppsV1().Deployments("istio-system").Get(ctx, "istiod-"+old, metav1.GetOptions{})
		assert.True(t, apierrors.IsNotFound(err))
		_, err = kube.AppsV1().Deployments("istio-system").Get(ctx, "istiod-"+canary, metav1.GetOptions{})
		assert.NoError(t, err)

		wh, err := verify.Webhooks(ctx, kube, verify.WebhooksOptions{})
		require.NoError(t, err)
		assert.NoError(t, wh.Err(), "nothing dangling, no overlap")
		revs, err := revision.List(ctx, kube, revision.ListOptions{})
		require.NoError(t, err)
		require.Len(t, revs, 1)
		assert.Equal(t, canary, revs[0].Name)
	})
}
