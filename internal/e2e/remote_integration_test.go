//go:build integration

package e2e_test

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/revkit/revkit/fleet"
	"github.com/revkit/revkit/helm"
	"github.com/revkit/revkit/internal/testenv"
	"github.com/revkit/revkit/namespace"
	"github.com/revkit/revkit/revision"
	"github.com/revkit/revkit/tag"
	"github.com/revkit/revkit/upgrade"
	"github.com/revkit/revkit/verify"
)

// TestPrimaryRemoteFleet upgrades a primary-remote pair from the old Istio
// version to the new one as a fleet: the primary runs both istiods; the
// remote has no istiod, only each revision's remote-side objects, installed
// with Istio's istio-discovery chart in its remote profile through Helm
// (injector webhooks that call the primary's istiod of that revision). The
// primary's canary goes first and keeps the old revision, which the remote
// still uses; the remote's canary then installs the new revision's
// remote-side objects, moves its namespace and uninstalls the old
// revision's release. After every step of the remote's plan a pod created
// in the remote is injected by the revision that step leaves in charge,
// and the remotes gate checks that the primary serves what the remote
// uses.
func TestPrimaryRemoteFleet(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	defer cancel()
	from, to := testenv.OldIstio, testenv.NewIstio
	envs, err := testenv.StartFleet(t, 2, testenv.Options{Nodes: 1})
	require.NoError(t, err)
	primary, remote := envs["cluster-1"], envs["cluster-2"]

	istiods := map[string]*testenv.Istiod{}
	for _, v := range []testenv.IstioVersion{from, to} {
		is, err := primary.StartIstiod(ctx, v.Revision)
		require.NoError(t, err)
		istiods[v.Revision] = is
	}
	_, err = tag.Set(ctx, primary.Client, tag.SetOptions{Tag: "prod-stable", Revision: from.Revision})
	require.NoError(t, err)
	createNamespace(ctx, t, primary, "shop", map[string]string{"istio.io/rev": "prod-stable"})
	createDeployment(ctx, t, primary.Client, "shop", "web", 1)

	remoteHelm, err := helm.New(remote.Config, "istio-system", nil)
	require.NoError(t, err)
	// The remote-side objects of a revision: Istio's remote profile, its
	// injector calling the primary's istiod of that revision.
	remoteInstall := func(v testenv.IstioVersion) *revision.InstallOptions {
		is := istiods[v.Revision]
		mwc, err := primary.Client.AdmissionregistrationV1().MutatingWebhookConfigurations().Get(ctx, is.InjectorWebhook, metav1.GetOptions{})
		require.NoError(t, err)
		values, err := revision.RemoteValues(revision.RemoteOptions{CABundle: mwc.Webhooks[0].ClientConfig.CABundle,
			InjectionURL: "https://" + is.WebhookAddr + "/inject", ValidationURL: "https://" + is.WebhookAddr + "/validate"})
		require.NoError(t, err)
		values["global"] = map[string]any{"tag": v.Name}
		return &revision.InstallOptions{Revision: v.Revision, Chart: revision.ChartSource{Path: remote.VersionChartDir(v, "istio-discovery")},
			Values: values,
			Helm:   remoteHelm, Timeout: 2 * time.Minute}
	}
	res, err := revision.Install(ctx, remote.Client, *remoteInstall(from))
	require.NoError(t, err)
	t.Logf("remote-side release %s: %d objects", res.Release, len(res.Objects))
	_, err = tag.Set(ctx, remote.Client, tag.SetOptions{Tag: "prod-stable", Revision: from.Revision})
	require.NoError(t, err)
	createNamespace(ctx, t, remote, "cart", map[string]string{"istio.io/rev": "prod-stable"})
	createDeployment(ctx, t, remote.Client, "cart", "api", 2)
	waitRolledOut(ctx, t, primary.Client, "shop", "web")
	waitRolledOut(ctx, t, remote.Client, "cart", "api")
	assertProxyVersions(ctx, t, remote.Client, "cart", from)
	require.Equal(t, from.Revision, probeRemote(ctx, t, remote), "the primary's old istiod injects the remote's pods")

	canary := func(ns string) upgrade.CanaryOptions {
		return upgrade.CanaryOptions{From: from.Revision, To: to.Revision, CanaryTag: "prod-canary", StableTag: "prod-stable",
			Namespaces: namespace.Selection{Namespaces: []string{ns}}, RestartTimeout: 3 * time.Minute}
	}
	var probes []string
	opts := fleet.Options{
		Clusters: []fleet.Cluster{{Name: "primary", Kube: primary.Client}, {Name: "remote", Kube: remote.Client, Primary: "primary"}},
		Waves:    []fleet.Wave{{Name: "primaries", Clusters: []string{"primary"}}, {Name: "remotes", Clusters: []string{"remote"}}},
		Plan: func(ctx context.Context, c fleet.Cluster) (upgrade.Plan, error) {
			if c.Primary == "" {
				o := canary("shop")
				o.KeepOld = true // its remote still uses From
				return upgrade.Canary(ctx, c.Kube, o)
			}
			o := canary("cart")
			o.Install = remoteInstall(to)
			p, err := upgrade.Canary(ctx, c.Kube, o)
			if err != nil {
				return p, err
			}
			// After every step, a new pod in the remote is injected by the
			// revision the step left in charge of its namespace.
			var steps []upgrade.Step
			want := from.Revision
			for _, s := range p.Steps {
				steps = append(steps, s)
				if upgrade.KindOf(s) == upgrade.KindMigrateNamespaces {
					want = to.Revision
				}
				expect, after := want, s.Name()
				steps = append(steps, upgrade.Func("probe after "+after, "a new pod in cart is injected by "+expect,
					func(ctx context.Context, _ upgrade.Env) (upgrade.Result, error) {
						got := probeRemote(ctx, t, remote)
						probes = append(probes, after+": "+got)
						// The apiserver's admission reads namespaces and webhook
						// configurations from its own caches, a moment behind
						// the writes: allow it that moment.
						began := time.Now()
						for got != expect && time.Since(began) < 10*time.Second {
							time.Sleep(100 * time.Millisecond)
							got = probeRemote(ctx, t, remote)
						}
						if lag := time.Since(began); got == expect && lag > 50*time.Millisecond {
							probes[len(probes)-1] += fmt.Sprintf(" (then %s after %s)", got, lag.Round(time.Millisecond))
						}
						if got != expect {
							return upgrade.Result{}, fmt.Errorf("after %s a new pod in cart was injected by %q, want %q", after, got, expect)
						}
						return upgrade.Result{Detail: "injected by " + got}, nil
					}))
			}
			p.Steps = steps
			return p, nil
		},
	}
	rep, err := fleet.Run(ctx, opts)
	t.Logf("fleet (%s):\n%s", rep.Duration.Round(time.Millisecond), rep)
	for _, p := range probes {
		t.Logf("probe %s", p)
	}
	require.NoError(t, err)
	assert.Equal(t, []string{"webhooks", "remotes"}, gateNamesOf(rep.Waves[0]))
	assert.Contains(t, probes, "set-tag prod-canary→"+to.Revision+": "+from.Revision, "the canary tag alone moves nothing")
	assert.Contains(t, probes, "uninstall-revision "+from.Revision+": "+to.Revision)

	assertProxyVersions(ctx, t, remote.Client, "cart", to)
	pods, err := verify.Pods(ctx, remote.Client, verify.PodsOptions{Namespaces: []string{"cart"}, Target: to.Revision})
	require.NoError(t, err)
	assert.NoError(t, pods.Err())
	revs, err := revision.List(ctx, remote.Client, revision.ListOptions{})
	require.NoError(t, err)
	require.Len(t, revs, 1, "the remote keeps only the new revision's objects")
	assert.Equal(t, to.Revision, revs[0].Name)
	_, err = remoteHelm.Configuration().Releases.Last(revision.ReleaseName(from.Revision))
	assert.Error(t, err, "the old remote-side release is gone")
	wh, err := verify.Webhooks(ctx, remote.Client, verify.WebhooksOptions{})
	require.NoError(t, err)
	assert.NoError(t, wh.Err(), "nothing dangling on the remote")

	// Now nothing uses the old revision anywhere: the primary can go.
	_, err = revision.Uninstall(ctx, primary.Client, revision.UninstallOptions{Revision: from.Revision})
	require.NoError(t, err)
	require.NoError(t, primary.StopIstiod(from.Revision))
	require.Equal(t, to.Revision, probeRemote(ctx, t, remote))
}

// probeRemote dry-run creates a pod in the remote's cart namespace and
// returns the revision that injected it ("" for none).
func probeRemote(ctx context.Context, t *testing.T, remote *testenv.Env) string {
	t.Helper()
	got, err := remote.Client.CoreV1().Pods("cart").Create(ctx, &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{GenerateName: "probe-"},
		Spec:       corev1.PodSpec{Containers: []corev1.Container{{Name: "app", Image: "registry.invalid/app:1"}}},
	}, metav1.CreateOptions{DryRun: []string{metav1.DryRunAll}})
	if err != nil {
		t.Logf("probe pod: %v", err)
		return "error: " + err.Error()
	}
	rev, _ := testenv.InjectedRevision(got)
	return rev
}
