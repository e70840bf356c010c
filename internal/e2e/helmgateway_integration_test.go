//go:build integration

package e2e_test

import (
	"context"
	"fmt"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"helm.sh/helm/v4/pkg/action"
	"helm.sh/helm/v4/pkg/chart/loader"
	helmkube "helm.sh/helm/v4/pkg/kube"
	rv1 "helm.sh/helm/v4/pkg/release/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/client-go/kubernetes"

	"github.com/revkit/revkit"
	"github.com/revkit/revkit/gateway"
	"github.com/revkit/revkit/helm"
	"github.com/revkit/revkit/internal/testenv"
	"github.com/revkit/revkit/revision"
	"github.com/revkit/revkit/tag"
)

// TestHelmGatewayThroughItsRelease moves an ingress gateway installed with
// Istio's gateway chart as Helm release "istio-ingressgateway" (two KWOK
// pods, injected by the real istiod of the old revision) to the new
// revision without ever patching what the release owns: in place through
// its release to a tag of the new revision — and a later plain `helm
// upgrade --reuse-values` keeps it there —, back, then as a canary release beside it that the gateway's
// Service selects too, rolled back, and again, promoted.
func TestHelmGatewayThroughItsRelease(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	defer cancel()
	from, to := testenv.OldIstio, testenv.NewIstio
	env, err := testenv.Start(t, testenv.Options{SkipIstioCRDs: true})
	require.NoError(t, err)
	kube := env.Client
	hc, err := helm.New(env.Config, "istio-system", nil)
	require.NoError(t, err)
	_, err = revision.UpgradeBase(ctx, kube, revision.BaseOptions{Chart: revision.ChartSource{Path: env.VersionChartDir(from, "base")},
		Values: map[string]any{"defaultRevision": ""}, Helm: hc, Wait: true, Timeout: 2 * time.Minute})
	require.NoError(t, err)
	installSidecarIstiod(ctx, t, env, hc, from)

	// The gateway, as `helm install istio-ingressgateway istio/gateway -n
	// istio-ingress --set revision=<old>` installs it, with two replicas.
	const ns, rel = "istio-ingress", "istio-ingressgateway"
	createNamespace(ctx, t, env, ns, nil)
	hg, err := helm.New(env.Config, ns, nil) // the gateway's release is recorded in its namespace
	require.NoError(t, err)
	oldChart, newChart := env.VersionChartDir(from, "gateway"), env.VersionChartDir(to, "gateway")
	_, err = hg.InstallRelease(ctx, revkit.ReleaseOptions{Namespace: ns, Release: rel, Chart: revkit.ChartSource{Path: oldChart},
		Values:  map[string]any{"revision": from.Revision, "replicaCount": 2, "autoscaling": map[string]any{"enabled": false}},
		Timeout: 2 * time.Minute})
	require.NoError(t, err)
	waitRolledOut(ctx, t, kube, ns, rel)
	svc, err := kube.CoreV1().Services(ns).Get(ctx, rel, metav1.GetOptions{})
	require.NoError(t, err)
	selected := labels.SelectorFromSet(svc.Spec.Selector)
	waitGatewayPods(ctx, t, kube, ns, selected, map[string]int{from.Name + "/" + from.Revision: 2})

	gws, err := gateway.List(ctx, kube, gateway.ListOptions{Namespaces: []string{ns}})
	require.NoError(t, err)
	require.Len(t, gws, 1)
	assert.Equal(t, rel, gws[0].Release)
	assert.Equal(t, "gateway-1.0.0", gws[0].Chart)
	_, err = gateway.Move(ctx, kube, gateway.MoveOptions{Target: from.Revision, Namespaces: []string{ns}})
	var owned *gateway.HelmOwnedError
	require.ErrorAs(t, err, &owned, "Move does not patch it")

	opts := gateway.ReleaseOptions{Namespace: ns, Release: rel, Target: to.Revision, Chart: revkit.ChartSource{Path: newChart},
		Releaser: hg, Wait: true, Timeout: 2 * time.Minute, PollInterval: 200 * time.Millisecond}

	t.Run("a revision that is not installed is refused with nothing written", func(t *testing.T) {
		for _, op := range []func(context.Context, kubernetes.Interface, gateway.ReleaseOptions) (*gateway.ReleaseResult, error){
			gateway.UpgradeRelease, gateway.CanaryRelease} {
			_, err := op(ctx, kube, opts)
			var nf *revkit.NotFoundError
			require.ErrorAs(t, err, &nf)
			assert.Equal(t, to.Revision, nf.Name)
		}
		assert.Equal(t, 1, releaseVersion(t, hg, rel))
		assertReleases(t, hg, rel)
	})

	installSidecarIstiod(ctx, t, env, hc, to)
	_, err = tag.Set(ctx, kube, tag.SetOptions{Tag: "prod-canary", Revision: to.Revision})
	require.NoError(t, err)

	t.Run("a dry run writes nothing", func(t *testing.T) {
		for _, dr := range []revkit.DryRun{revkit.DryRunClient, revkit.DryRunServer} {
			o := opts
			o.DryRun = dr
			res, err := gateway.UpgradeRelease(ctx, kube, o)
			require.NoError(t, err, dr)
			assert.Contains(t, res.Manifest, `istio.io/rev: "`+to.Revision+`"`)
			res, err = gateway.CanaryRelease(ctx, kube, o)
			require.NoError(t, err, dr)
			assert.Contains(t, res.Manifest, "name: "+gateway.CanaryReleaseName(rel, to.Revision))
		}
		assert.Equal(t, 1, releaseVersion(t, hg, rel))
		assertReleases(t, hg, rel)
		d, err := kube.AppsV1().Deployments(ns).Get(ctx, rel, metav1.GetOptions{})
		require.NoError(t, err)
		assert.Equal(t, from.Revision, d.Spec.Template.Labels["istio.io/rev"])
	})

	t.Run("in place through its release, kept by a later helm upgrade", func(t *testing.T) {
		byTag := opts
		byTag.Target = "prod-canary"
		res, err := gateway.UpgradeRelease(ctx, kube, byTag)
		require.NoError(t, err)
		t.Logf("changes: %v", res.Changes)
		assert.Equal(t, to.Revision, res.Revision)
		assert.Equal(t, 2, res.Version)
		waitGatewayPods(ctx, t, kube, ns, selected, map[string]int{to.Name + "/" + to.Revision: 2})
		assert.Equal(t, 2, releaseVersion(t, hg, rel))
		assert.Equal(t, "prod-canary", releaseConfig(t, hg, rel)["revision"], "the tag is the release's revision value")
		d, err := kube.AppsV1().Deployments(ns).Get(ctx, rel, metav1.GetOptions{})
		require.NoError(t, err)
		assertManagedByHelmOnly(t, d.ManagedFields)

		// The user's next `helm upgrade istio-ingressgateway istio/gateway
		// --reuse-values` does not undo the move.
		next, err := loader.Load(newChart)
		require.NoError(t, err)
		up := action.NewUpgrade(hg.Configuration())
		up.Namespace, up.ReuseValues, up.WaitStrategy, up.Timeout = ns, true, helmkube.HookOnlyStrategy, time.Minute
		_, err = up.RunWithContext(ctx, rel, next, map[string]any{})
		require.NoError(t, err)
		assert.Equal(t, 3, releaseVersion(t, hg, rel))
		after, err := kube.AppsV1().Deployments(ns).Get(ctx, rel, metav1.GetOptions{})
		require.NoError(t, err)
		assert.Equal(t, "prod-canary", after.Spec.Template.Labels["istio.io/rev"])
		assert.Equal(t, d.Generation, after.Generation, "the helm upgrade left the pod template as it was")
		waitGatewayPods(ctx, t, kube, ns, selected, map[string]int{to.Name + "/" + to.Revision: 2})
	})

	t.Run("back in place to the old revision", func(t *testing.T) {
		back := opts
		back.Target, back.Chart = from.Revision, revkit.ChartSource{Path: oldChart}
		_, err := gateway.UpgradeRelease(ctx, kube, back)
		require.NoError(t, err)
		waitGatewayPods(ctx, t, kube, ns, selected, map[string]int{from.Name + "/" + from.Revision: 2})
		assert.Equal(t, 4, releaseVersion(t, hg, rel))
		assertReleases(t, hg, rel)
	})

	canary := gateway.CanaryReleaseName(rel, to.Revision)
	copts := opts
	copts.Values = map[string]any{"replicaCount": 1, "autoscaling": map[string]any{"enabled": false}}
	startCanary := func(t *testing.T) {
		t.Helper()
		res, err := gateway.CanaryRelease(ctx, kube, copts)
		require.NoError(t, err)
		t.Logf("changes: %v", res.Changes)
		assertReleases(t, hg, rel, canary)
		// The gateway's Service selects its own pods and the canary's.
		waitGatewayPods(ctx, t, kube, ns, selected, map[string]int{from.Name + "/" + from.Revision: 2, to.Name + "/" + to.Revision: 1})
		waitEndpoints(ctx, t, kube, ns, rel, map[string]int{rel: 2, canary: 1})
		gws, err := gateway.List(ctx, kube, gateway.ListOptions{Namespaces: []string{ns}})
		require.NoError(t, err)
		require.Len(t, gws, 2)
		assert.Equal(t, gateway.Gateway{Namespace: ns, Name: canary, Revision: to.Revision, Pods: map[string]int{to.Revision: 1},
			CanaryOf: rel, Release: canary, Chart: "gateway-1.0.0"}, gws[1])
		assert.Equal(t, map[string]int{from.Revision: 2}, gws[0].Pods)
		_, err = kube.CoreV1().Services(ns).Get(ctx, canary, metav1.GetOptions{})
		assert.True(t, apierrors.IsNotFound(err), "the canary has no Service of its own")
	}

	t.Run("canary release beside it, rolled back", func(t *testing.T) {
		startCanary(t)
		res, err := gateway.RollbackCanaryRelease(ctx, kube, copts)
		require.NoError(t, err)
		t.Logf("changes: %v", res.Changes)
		assertReleases(t, hg, rel)
		waitGatewayPods(ctx, t, kube, ns, selected, map[string]int{from.Name + "/" + from.Revision: 2})
		waitEndpoints(ctx, t, kube, ns, rel, map[string]int{rel: 2})
		waitNoObjectsOf(ctx, t, kube, ns, canary)
		assert.Equal(t, 4, releaseVersion(t, hg, rel), "the gateway's release untouched")
	})

	t.Run("canary release beside it, promoted", func(t *testing.T) {
		startCanary(t)
		promote := opts
		promote.Chart = revkit.ChartSource{} // the release's own chart
		res, err := gateway.PromoteCanaryRelease(ctx, kube, promote)
		require.NoError(t, err)
		t.Logf("changes: %v", res.Changes)
		assertReleases(t, hg, rel)
		waitGatewayPods(ctx, t, kube, ns, selected, map[string]int{to.Name + "/" + to.Revision: 2})
		waitEndpoints(ctx, t, kube, ns, rel, map[string]int{rel: 2})
		waitNoObjectsOf(ctx, t, kube, ns, canary)
		assert.Equal(t, 5, releaseVersion(t, hg, rel))
		assert.Equal(t, to.Revision, releaseConfig(t, hg, rel)["revision"])
	})
}

func installSidecarIstiod(ctx context.Context, t *testing.T, env *testenv.Env, hc *helm.Client, v testenv.IstioVersion) {
	t.Helper()
	is, err := env.ReserveIstiod(v.Revision)
	require.NoError(t, err)
	is.Version = v
	_, err = revision.Install(ctx, env.Client, revision.InstallOptions{Revision: v.Revision,
		Chart:  revision.ChartSource{Path: env.VersionChartDir(v, "istio-discovery")},
		Values: is.ChartValues(), Helm: hc, Wait: true, Timeout: 3 * time.Minute})
	require.NoError(t, err)
	_, err = env.StartInstalledIstiod(ctx, is)
	require.NoError(t, err)
}

// waitGatewayPods waits until the active pods sel selects are, by "proxy
// version/injected revision", exactly want, with none terminating.
func waitGatewayPods(ctx context.Context, t *testing.T, kube kubernetes.Interface, ns string, sel labels.Selector, want map[string]int) {
	t.Helper()
	var got map[string]int
	ok := assert.Eventually(t, func() bool {
		pods, err := kube.CoreV1().Pods(ns).List(ctx, metav1.ListOptions{LabelSelector: sel.String()})
		if err != nil {
			return false
		}
		got = map[string]int{}
		for i := range pods.Items {
			p := &pods.Items[i]
			if p.DeletionTimestamp != nil {
				got["terminating"]++
				continue
			}
			v, _ := testenv.ProxyVersion(p)
			rev, _ := testenv.InjectedRevision(p)
			got[v+"/"+rev]++
		}
		return assert.ObjectsAreEqual(want, got)
	}, 2*time.Minute, 250*time.Millisecond)
	require.True(t, ok, "gateway pods: want %v, got %v", want, got)
}

// waitEndpoints waits until the Service's EndpointSlices list ready
// endpoints of exactly these pods, counted by the Deployment that owns them
// (the pod name up to its ReplicaSet's hash).
func waitEndpoints(ctx context.Context, t *testing.T, kube kubernetes.Interface, ns, svc string, want map[string]int) {
	t.Helper()
	var got map[string]int
	ok := assert.Eventually(t, func() bool {
		slices, err := kube.DiscoveryV1().EndpointSlices(ns).List(ctx, metav1.ListOptions{LabelSelector: discoveryv1.LabelServiceName + "=" + svc})
		if err != nil {
			return false
		}
		got = map[string]int{}
		for _, s := range slices.Items {
			for _, e := range s.Endpoints {
				if e.TargetRef == nil || (e.Conditions.Ready != nil && !*e.Conditions.Ready) {
					continue
				}
				parts := strings.Split(e.TargetRef.Name, "-")
				got[strings.Join(parts[:len(parts)-2], "-")]++
			}
		}
		return assert.ObjectsAreEqual(want, got)
	}, 2*time.Minute, 250*time.Millisecond)
	require.True(t, ok, "endpoints of Service %s/%s: want %v, got %v", ns, svc, want, got)
}

// waitNoObjectsOf waits until nothing the canary release made is left in
// the namespace: Deployment, ReplicaSets, pods, ServiceAccount, Role,
// RoleBinding.
func waitNoObjectsOf(ctx context.Context, t *testing.T, kube kubernetes.Interface, ns, canary string) {
	t.Helper()
	var left []string
	ok := assert.Eventually(t, func() bool {
		left = nil
		add := func(kind, name string) {
			if name == canary || strings.HasPrefix(name, canary+"-") {
				left = append(left, kind+"/"+name)
			}
		}
		if l, err := kube.AppsV1().Deployments(ns).List(ctx, metav1.ListOptions{}); err == nil {
			for _, o := range l.Items {
				add("Deployment", o.Name)
			}
		}
		if l, err := kube.AppsV1().ReplicaSets(ns).List(ctx, metav1.ListOptions{}); err == nil {
			for _, o := range l.Items {
				add("ReplicaSet", o.Name)
			}
		}
		if l, err := kube.CoreV1().Pods(ns).List(ctx, metav1.ListOptions{}); err == nil {
			for _, o := range l.Items {
				add("Pod", o.Name)
			}
		}
		if l, err := kube.CoreV1().ServiceAccounts(ns).List(ctx, metav1.ListOptions{}); err == nil {
			for _, o := range l.Items {
				add("ServiceAccount", o.Name)
			}
		}
		if l, err := kube.RbacV1().Roles(ns).List(ctx, metav1.ListOptions{}); err == nil {
			for _, o := range l.Items {
				add("Role", o.Name)
			}
		}
		if l, err := kube.RbacV1().RoleBindings(ns).List(ctx, metav1.ListOptions{}); err == nil {
			for _, o := range l.Items {
				add("RoleBinding", o.Name)
			}
		}
		return len(left) == 0
	}, 2*time.Minute, 250*time.Millisecond)
	require.True(t, ok, "left behind by release %s: %v", canary, left)
}

// assertReleases checks that hg records exactly these releases, each
// deployed.
func assertReleases(t *testing.T, hg *helm.Client, names ...string) {
	t.Helper()
	rels, err := hg.Configuration().Releases.ListDeployed()
	require.NoError(t, err)
	var got []string
	for _, r := range rels {
		got = append(got, r.(*rv1.Release).Name)
	}
	all, err := hg.Configuration().Releases.ListReleases()
	require.NoError(t, err)
	latest := map[string]*rv1.Release{}
	for _, r := range all {
		rr := r.(*rv1.Release)
		if cur, ok := latest[rr.Name]; !ok || rr.Version > cur.Version {
			latest[rr.Name] = rr
		}
	}
	var states []string
	for name, r := range latest {
		states = append(states, fmt.Sprintf("%s#%d %s", name, r.Version, r.Info.Status))
	}
	sort.Strings(got)
	sort.Strings(names)
	sort.Strings(states)
	assert.Equal(t, names, got, "deployed releases (all: %v)", states)
	assert.Len(t, latest, len(names), "no other release record: %v", states)
}

func releaseConfig(t *testing.T, hc *helm.Client, name string) map[string]any {
	t.Helper()
	rel, err := hc.Configuration().Releases.Last(name)
	require.NoError(t, err)
	return rel.(*rv1.Release).Config
}

// assertManagedByHelmOnly checks that revkit's field manager never wrote
// the Deployment: only Helm (named after the program that runs it) and the
// cluster's controllers did.
func assertManagedByHelmOnly(t *testing.T, mf []metav1.ManagedFieldsEntry) {
	t.Helper()
	require.NotEmpty(t, mf)
	for _, m := range mf {
		assert.NotEqual(t, "revkit", m.Manager, "revkit patched the gateway Deployment (%s)", m.Operation)
	}
}
