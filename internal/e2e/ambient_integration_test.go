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
	rv1 "helm.sh/helm/v4/pkg/release/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"

	"github.com/revkit/revkit"
	"github.com/revkit/revkit/ambient"
	"github.com/revkit/revkit/gateway"
	"github.com/revkit/revkit/helm"
	"github.com/revkit/revkit/internal/testenv"
	"github.com/revkit/revkit/revision"
	"github.com/revkit/revkit/tag"
	"github.com/revkit/revkit/upgrade"
	"github.com/revkit/revkit/verify"
)

// TestAmbientUpgradeInOrder upgrades an ambient mesh installed with the old
// Istio version's Helm charts — base, istiod (in ambient mode), istio-cni and
// ztunnel, whose DaemonSet pods are KWOK pods on three nodes — to the new
// version in the order Istio's ambient upgrade guide gives: base, the new
// istiod revision, istio-cni, then ztunnel node by node with cordon and
// drain. Upgrading a node agent before its control plane is refused with
// nothing written; the rollback goes back the other way.
func TestAmbientUpgradeInOrder(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	defer cancel()
	from, to := testenv.OldIstio, testenv.NewIstio
	env, err := testenv.Start(t, testenv.Options{SkipIstioCRDs: true, Nodes: 3,
		IstiodEnv: []string{"PILOT_ENABLE_AMBIENT=true"}})
	require.NoError(t, err)
	kube := env.Client
	hc, err := helm.New(env.Config, "istio-system", nil)
	require.NoError(t, err)
	baseValues := map[string]any{"defaultRevision": ""}

	// The old mesh: base, istiod, istio-cni and ztunnel from the old charts.
	_, err = revision.UpgradeBase(ctx, kube, revision.BaseOptions{Chart: revision.ChartSource{Path: env.VersionChartDir(from, "base")},
		Values: baseValues, Helm: hc, Wait: true, Timeout: 2 * time.Minute})
	require.NoError(t, err)
	installIstiod(ctx, t, env, hc, from)
	helmInstall(ctx, t, hc, env.VersionChartDir(from, "istio-cni"), "istio-cni", cniValues(from))
	helmInstall(ctx, t, hc, env.VersionChartDir(from, "ztunnel"), "ztunnel", ztunnelValues(from))
	waitAgents(ctx, t, kube, from.Name, 3)

	createNamespace(ctx, t, env, "shop", map[string]string{"istio.io/dataplane-mode": "ambient"})
	createDeployment(ctx, t, kube, "shop", "web", 3)
	waitRolledOut(ctx, t, kube, "shop", "web")
	pods, err := verify.Pods(ctx, kube, verify.PodsOptions{Namespaces: []string{"shop"}})
	require.NoError(t, err)
	require.Len(t, pods.Namespaces, 1)
	assert.Equal(t, 3, pods.Namespaces[0].Ambient, "ambient pods are served by ztunnel, not stragglers")
	assert.True(t, pods.Namespaces[0].AmbientNamespace)

	upgradeAgent := func(c ambient.Component, v testenv.IstioVersion, rev string, nodeByNode bool, roll ambient.RollOptions) (*ambient.UpgradeResult, error) {
		chart := map[ambient.Component]string{ambient.CNI: "istio-cni", ambient.Ztunnel: "ztunnel"}[c]
		values := map[ambient.Component]map[string]any{ambient.CNI: cniValues(v), ambient.Ztunnel: ztunnelValues(v)}[c]
		delete(values, "revision")
		roll.Interval, roll.NodeTimeout = 200*time.Millisecond, 2*time.Minute
		return ambient.Upgrade(ctx, kube, ambient.UpgradeOptions{Component: c,
			Chart: revkit.ChartSource{Path: env.VersionChartDir(v, chart)}, Values: values, Revision: rev,
			Releaser: hc, NodeByNode: nodeByNode, Roll: roll, Timeout: 2 * time.Minute})
	}

	t.Run("a node agent is not upgraded before its control plane", func(t *testing.T) {
		for _, c := range []ambient.Component{ambient.Ztunnel, ambient.CNI} {
			// The new agent against the old istiod, the only control plane yet.
			_, err := upgradeAgent(c, to, from.Revision, c == ambient.Ztunnel, ambient.RollOptions{})
			var se *ambient.SkewError
			require.ErrorAs(t, err, &se, c)
			assert.Equal(t, to.Name, se.Version)
			assert.Equal(t, from.Name, se.ControlPlane)
			assert.Equal(t, 1, releaseVersion(t, hc, string(c)), "%s's release was not upgraded", c)
		}
		waitAgents(ctx, t, kube, from.Name, 3)
	})

	// The control plane first: the new base and the new istiod revision.
	_, err = revision.UpgradeBase(ctx, kube, revision.BaseOptions{Chart: revision.ChartSource{Path: env.VersionChartDir(to, "base")},
		Values: baseValues, Helm: hc, Wait: true, Timeout: 2 * time.Minute})
	require.NoError(t, err)
	installIstiod(ctx, t, env, hc, to)

	t.Run("istio-cni, then ztunnel node by node", func(t *testing.T) {
		res, err := upgradeAgent(ambient.CNI, to, to.Revision, false, ambient.RollOptions{})
		require.NoError(t, err)
		assert.Equal(t, to.Name, res.Version)
		assert.Nil(t, res.Roll, "istio-cni rolls itself")
		assert.Equal(t, 2, releaseVersion(t, hc, "istio-cni"))

		checked := map[string]bool{}
		res, err = upgradeAgent(ambient.Ztunnel, to, to.Revision, true, ambient.RollOptions{Drain: true,
			Check: func(ctx context.Context, node string) error {
				// The node is still cordoned while its new ztunnel is checked,
				// and its ambient pods have left it.
				n, err := kube.CoreV1().Nodes().Get(ctx, node, metav1.GetOptions{})
				require.NoError(t, err)
				assert.True(t, n.Spec.Unschedulable, "node %s cordoned during its check", node)
				for _, p := range listPods(ctx, t, kube, "shop") {
					assert.NotEqual(t, node, p.Spec.NodeName, "pod %s drained from %s", p.Name, node)
				}
				checked[node] = true
				return nil
			}})
		require.NoError(t, err)
		assert.Equal(t, to.Name, res.Version)
		assert.Equal(t, to.Name, res.ControlPlaneVersion)
		require.NotNil(t, res.Roll)
		require.Len(t, res.Roll.Nodes, 3, "one node at a time")
		for _, n := range res.Roll.Nodes {
			assert.Equal(t, revkit.ActionUpdate, n.Action, n.Node)
			assert.NotEqual(t, n.OldPod, n.NewPod, n.Node)
			assert.True(t, n.Cordoned, n.Node)
			assert.True(t, checked[n.Node], n.Node)
		}
		evicted := 0
		for _, n := range res.Roll.Nodes {
			evicted += len(n.Evicted)
		}
		assert.GreaterOrEqual(t, evicted, 1, "ambient pods were drained")
		waitAgents(ctx, t, kube, to.Name, 3)
		st, err := ambient.Read(ctx, kube, ambient.ReadOptions{})
		require.NoError(t, err)
		assert.Equal(t, to.Revision, st.Agent(ambient.Ztunnel)[0].Revision)
		assertSchedulable(ctx, t, kube)
		waitRolledOut(ctx, t, kube, "shop", "web")

		// Run again: every node is current, nothing is written.
		again, err := ambient.Roll(ctx, kube, ambient.RollOptions{Drain: true})
		require.NoError(t, err)
		assert.Empty(t, again.Changes)
	})

	t.Run("rollback: ztunnel, then istio-cni, back to the old version", func(t *testing.T) {
		res, err := upgradeAgent(ambient.Ztunnel, from, from.Revision, true, ambient.RollOptions{Cordon: true})
		require.NoError(t, err)
		assert.Len(t, res.Roll.Nodes, 3)
		_, err = upgradeAgent(ambient.CNI, from, from.Revision, false, ambient.RollOptions{})
		require.NoError(t, err)
		waitAgents(ctx, t, kube, from.Name, 3)
		st, err := ambient.Read(ctx, kube, ambient.ReadOptions{})
		require.NoError(t, err)
		assert.Equal(t, from.Revision, st.Agent(ambient.Ztunnel)[0].Revision)
		assertSchedulable(ctx, t, kube)
		assert.Equal(t, 3, releaseVersion(t, hc, "ztunnel"))
	})
}

func installIstiod(ctx context.Context, t *testing.T, env *testenv.Env, hc *helm.Client, v testenv.IstioVersion) {
	t.Helper()
	is, err := env.ReserveIstiod(v.Revision)
	require.NoError(t, err)
	is.Version = v
	_, err = revision.Install(ctx, env.Client, revision.InstallOptions{Revision: v.Revision,
		Chart:  revision.ChartSource{Path: env.VersionChartDir(v, "istio-discovery")},
		Values: mergeMaps(is.ChartValues(), map[string]any{"profile": "ambient"}), Helm: hc, Wait: true, Timeout: 3 * time.Minute})
	require.NoError(t, err)
	_, err = env.StartInstalledIstiod(ctx, is)
	require.NoError(t, err)
}

func cniValues(v testenv.IstioVersion) map[string]any {
	return map[string]any{"profile": "ambient", "revision": v.Revision,
		"global": map[string]any{"hub": "registry.invalid/istio", "tag": v.Name}}
}

func ztunnelValues(v testenv.IstioVersion) map[string]any {
	return map[string]any{"hub": "registry.invalid/istio", "tag": v.Name, "revision": v.Revision}
}

// helmInstall installs a chart as a release in istio-system, as `helm
// install` would.
func helmInstall(ctx context.Context, t *testing.T, hc *helm.Client, chartDir, name string, values map[string]any) {
	t.Helper()
	_, err := hc.InstallRelease(ctx, revkit.ReleaseOptions{Release: name, Chart: revkit.ChartSource{Path: chartDir},
		Values: values, Timeout: 2 * time.Minute})
	require.NoError(t, err, "helm install %s", name)
}

func releaseVersion(t *testing.T, hc *helm.Client, name string) int {
	t.Helper()
	rel, err := hc.Configuration().Releases.Last(name)
	require.NoError(t, err)
	return rel.(*rv1.Release).Version
}

// waitAgents waits until ztunnel and istio-cni each run a Ready pod of the
// version on every one of n nodes, all on their DaemonSet's current
// template.
func waitAgents(ctx context.Context, t *testing.T, kube kubernetes.Interface, version string, n int) {
	t.Helper()
	var last string
	ok := assert.Eventually(t, func() bool {
		st, err := ambient.Read(ctx, kube, ambient.ReadOptions{})
		if err != nil {
			last = err.Error()
			return false
		}
		for _, c := range []ambient.Component{ambient.Ztunnel, ambient.CNI} {
			as := st.Agent(c)
			if len(as) != 1 {
				last = string(c) + ": not one DaemonSet"
				return false
			}
			a := as[0]
			if len(a.Nodes) != n || len(a.Pending()) > 0 {
				last = string(c) + ": pods not current and Ready on every node"
				return false
			}
			for _, na := range a.Nodes {
				if na.Version != version {
					last = string(c) + " on " + na.Node + " runs " + na.Version
					return false
				}
			}
		}
		return true
	}, 2*time.Minute, 250*time.Millisecond)
	require.True(t, ok, "node agents at %s on %d nodes: %s", version, n, last)
}

func listPods(ctx context.Context, t *testing.T, kube kubernetes.Interface, ns string) []corev1.Pod {
	t.Helper()
	pods, err := kube.CoreV1().Pods(ns).List(ctx, metav1.ListOptions{})
	require.NoError(t, err)
	sort.Slice(pods.Items, func(i, j int) bool { return pods.Items[i].Name < pods.Items[j].Name })
	return pods.Items
}

func assertSchedulable(ctx context.Context, t *testing.T, kube kubernetes.Interface) {
	t.Helper()
	nodes, err := kube.CoreV1().Nodes().List(ctx, metav1.ListOptions{})
	require.NoError(t, err)
	for _, n := range nodes.Items {
		assert.False(t, n.Spec.Unschedulable, "node %s uncordoned", n.Name)
	}
}

// TestAmbientCanaryPlan runs the standard canary plan on an ambient mesh:
// the new istiod revision installed beside the old one with Helm, the
// canary tag pointed at it, istio-cni and then ztunnel (node by node, with
// drain) upgraded through their releases against it, the stable tag moved
// — which hands a waypoint labelled with that tag to the new istiod — and
// then the plan's rollback, which takes the agents back first and
// uninstalls the new revision.
func TestAmbientCanaryPlan(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	defer cancel()
	from, to := testenv.OldIstio, testenv.NewIstio
	env, err := testenv.Start(t, testenv.Options{SkipIstioCRDs: true, Nodes: 3, GatewayAPI: true,
		IstiodEnv: []string{"PILOT_ENABLE_AMBIENT=true"}})
	require.NoError(t, err)
	kube, dyn := env.Client, env.Dynamic
	hc, err := helm.New(env.Config, "istio-system", nil)
	require.NoError(t, err)
	baseValues := map[string]any{"defaultRevision": ""}
	_, err = revision.UpgradeBase(ctx, kube, revision.BaseOptions{Chart: revision.ChartSource{Path: env.VersionChartDir(from, "base")},
		Values: baseValues, Helm: hc, Wait: true, Timeout: 2 * time.Minute})
	require.NoError(t, err)
	installIstiod(ctx, t, env, hc, from)
	_, err = tag.Set(ctx, kube, tag.SetOptions{Tag: "prod-stable", Revision: from.Revision})
	require.NoError(t, err)
	helmInstall(ctx, t, hc, env.VersionChartDir(from, "istio-cni"), "istio-cni", cniValues(from))
	helmInstall(ctx, t, hc, env.VersionChartDir(from, "ztunnel"), "ztunnel", ztunnelValues(from))
	waitAgents(ctx, t, kube, from.Name, 3)
	createNamespace(ctx, t, env, "shop", map[string]string{"istio.io/dataplane-mode": "ambient"})
	createDeployment(ctx, t, kube, "shop", "web", 3)
	createGateway(ctx, t, env, "shop", "waypoint", gateway.ClassWaypoint,
		map[string]string{"istio.io/rev": "prod-stable", gateway.LabelWaypointFor: "service"},
		map[string]any{"name": "mesh", "port": int64(15008), "protocol": "HBONE"})
	waitRolledOut(ctx, t, kube, "shop", "web")
	waypointRenderedBy := func(v testenv.IstioVersion) {
		t.Helper()
		var last string
		ok := assert.Eventually(t, func() bool {
			gws, err := gateway.ListAPI(ctx, kube, dyn, gateway.ListOptions{})
			if err != nil || len(gws) != 1 {
				last = fmt.Sprintf("%v %v", gws, err)
				return false
			}
			g := gws[0]
			last = fmt.Sprintf("served by %s, rendered by %s, image %s, current %v", g.Revision, g.DeploymentRevision, g.ProxyImage, g.Current())
			return g.Revision == v.Revision && g.DeploymentRevision == v.Revision && strings.Contains(g.ProxyImage, ":"+v.Name) && g.Current()
		}, 2*time.Minute, 250*time.Millisecond)
		require.True(t, ok, "waypoint rendered by %s: %s", v.Revision, last)
	}
	waypointRenderedBy(from)

	charts := func(v testenv.IstioVersion) upgrade.AgentCharts {
		cni, zt := cniValues(v), ztunnelValues(v)
		delete(cni, "revision")
		delete(zt, "revision")
		return upgrade.AgentCharts{
			CNI: &revkit.ChartSource{Path: env.VersionChartDir(v, "istio-cni")}, CNIValues: cni,
			Ztunnel: &revkit.ChartSource{Path: env.VersionChartDir(v, "ztunnel")}, ZtunnelValues: zt,
		}
	}
	canary, err := env.ReserveIstiod(to.Revision)
	require.NoError(t, err)
	canary.Version = to
	opts := upgrade.CanaryOptions{
		From: from.Revision, To: to.Revision, CanaryTag: "prod-canary", StableTag: "prod-stable",
		Install: &revision.InstallOptions{Chart: revision.ChartSource{Path: env.VersionChartDir(to, "istio-discovery")},
			Values: mergeMaps(canary.ChartValues(), map[string]any{"profile": "ambient"}),
			Base:   &revision.ChartSource{Path: env.VersionChartDir(to, "base")}, BaseValues: baseValues,
			Helm: hc, Wait: true, Timeout: 3 * time.Minute},
		Ambient: &upgrade.AmbientOptions{Releaser: hc, To: charts(to), From: charts(from),
			NodeByNode: true, Drain: true, NodeTimeout: 2 * time.Minute, Timeout: 2 * time.Minute},
		KeepOld: true, RestartTimeout: 3 * time.Minute,
	}
	plan, err := upgrade.Canary(ctx, kube, opts)
	require.NoError(t, err)
	var names []string
	for _, s := range plan.Steps {
		names = append(names, s.Name())
	}
	assert.Equal(t, []string{"precheck", "upgrade-base", "install-revision " + to.Revision, "set-tag prod-canary→" + to.Revision,
		"upgrade-istio-cni " + to.Revision, "upgrade-ztunnel " + to.Revision, "set-tag prod-stable→" + to.Revision,
		"verify-webhooks"}, names, "Istio's order: base, istiod, istio-cni, ztunnel; waypoints follow the tag")

	// The new istiod's process starts once its release is installed.
	var steps []upgrade.Step
	for _, s := range plan.Steps {
		steps = append(steps, s)
		if upgrade.KindOf(s) == upgrade.KindInstallRevision {
			steps = append(steps, upgrade.Func("start-local-istiod", "start the installed revision's istiod",
				func(ctx context.Context, _ upgrade.Env) (upgrade.Result, error) {
					_, err := env.StartInstalledIstiod(ctx, canary)
					return upgrade.Result{}, err
				}))
		}
	}
	plan.Steps = steps
	rep, err := upgrade.Execute(ctx, upgrade.Env{Kube: kube}, plan)
	require.NoError(t, err, "%s", rep)
	detail := map[string]string{}
	for _, s := range rep.Steps {
		t.Logf("%-40s %-9s %s", s.Name, s.Outcome, s.Detail)
		detail[s.Name] = s.Detail
	}
	waitAgents(ctx, t, kube, to.Name, 3)
	st, err := ambient.Read(ctx, kube, ambient.ReadOptions{})
	require.NoError(t, err)
	assert.Equal(t, to.Revision, st.Agent(ambient.Ztunnel)[0].Revision)
	assert.Contains(t, detail["upgrade-ztunnel "+to.Revision], "3 of 3 nodes replaced")
	waypointRenderedBy(to)
	assertSchedulable(ctx, t, kube)

	rb := opts
	rb.KeepOld = false // a rollback then uninstalls the new revision
	back, err := upgrade.Rollback(ctx, kube, rb)
	require.NoError(t, err)
	rep, err = upgrade.Execute(ctx, upgrade.Env{Kube: kube}, back)
	require.NoError(t, err, "%s", rep)
	for _, s := range rep.Steps {
		t.Logf("%-40s %-9s %s", s.Name, s.Outcome, s.Detail)
	}
	assert.Equal(t, "upgrade-ztunnel "+from.Revision, rep.Steps[1].Name, "the agents go back first, ztunnel before istio-cni")
	waitAgents(ctx, t, kube, from.Name, 3)
	waypointRenderedBy(from)
	revs, err := revision.List(ctx, kube, revision.ListOptions{})
	require.NoError(t, err)
	require.Len(t, revs, 1)
	assert.Equal(t, from.Revision, revs[0].Name, "the new revision is uninstalled")
	assertSchedulable(ctx, t, kube)
}
