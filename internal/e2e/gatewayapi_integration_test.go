//go:build integration

package e2e_test

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	appsv1 "k8s.io/api/apps/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"

	"github.com/revkit/revkit"
	"github.com/revkit/revkit/gateway"
	"github.com/revkit/revkit/internal/testenv"
	"github.com/revkit/revkit/tag"
)

// TestGatewayAPIMovedByRevision runs the real istiods of two Istio versions
// with the Gateway API CRDs installed and ambient mode on: a Gateway API
// gateway and a waypoint labelled with the tag prod-stable (pointing at the
// old revision) are deployed by the old revision's istiod. gateway.MoveAPI
// moves them by tag to the new revision, whose istiod re-renders their
// Deployments (pod template istio.io/rev, its proxy image, its discovery
// address); a rollback moves them back; a move by revision name and the
// tag itself moving take them forward again. Their Deployments are never
// written by revkit.
func TestGatewayAPIMovedByRevision(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	defer cancel()
	from, to := testenv.OldIstio, testenv.NewIstio
	env, err := testenv.Start(t, testenv.Options{GatewayAPI: true, IstiodEnv: []string{"PILOT_ENABLE_AMBIENT=true"}})
	require.NoError(t, err)
	kube, dyn := env.Client, env.Dynamic
	for _, v := range []testenv.IstioVersion{from, to} {
		_, err := env.StartIstiodVersion(ctx, v.Revision, v)
		require.NoError(t, err)
	}
	for tg, rev := range map[string]string{"prod-stable": from.Revision, "prod-canary": to.Revision} {
		_, err := tag.Set(ctx, kube, tag.SetOptions{Tag: tg, Revision: rev})
		require.NoError(t, err)
	}
	createNamespace(ctx, t, env, "istio-ingress", nil)
	createNamespace(ctx, t, env, "shop", map[string]string{"istio.io/dataplane-mode": "ambient"})
	createGateway(ctx, t, env, "istio-ingress", "web", gateway.ClassIstio, map[string]string{"istio.io/rev": "prod-stable"},
		map[string]any{"name": "http", "port": int64(80), "protocol": "HTTP"})
	createGateway(ctx, t, env, "shop", "waypoint", gateway.ClassWaypoint, map[string]string{"istio.io/rev": "prod-stable", gateway.LabelWaypointFor: "service"},
		map[string]any{"name": "mesh", "port": int64(15008), "protocol": "HBONE"})

	// The Deployments (web-istio, waypoint) rendered by a revision's own
	// istiod: its revision on the pod template, its version's proxy image
	// in the running pods, and its istiod's address.
	deps := map[string]string{"istio-ingress": "web-istio", "shop": "waypoint"}
	managedBy := map[string]string{"istio-ingress": "istio.io-gateway-controller", "shop": "istio.io-mesh-controller"}
	renderedBy := func(t *testing.T, v testenv.IstioVersion) {
		t.Helper()
		gws, err := gateway.ListAPI(ctx, kube, dyn, gateway.ListOptions{})
		require.NoError(t, err)
		require.Len(t, gws, 2)
		for _, g := range gws {
			assert.Equal(t, v.Revision, g.Revision, "%s/%s served by", g.Namespace, g.Name)
			assert.Equal(t, deps[g.Namespace], g.Deployment)
			assert.Equal(t, v.Revision, g.DeploymentRevision, "%s/%s rendered by", g.Namespace, g.Name)
			assert.Equal(t, v.ProxyImage(), g.ProxyImage)
			assert.True(t, g.Current(), "%+v", g)
		}
		for ns, name := range deps {
			d, err := kube.AppsV1().Deployments(ns).Get(ctx, name, metav1.GetOptions{})
			require.NoError(t, err)
			assert.Equal(t, managedBy[ns], d.Labels[gateway.LabelManaged])
			assert.Equal(t, v.Revision, d.Spec.Template.Annotations["istio.io/rev"])
			assert.Empty(t, managersOtherThanIstiod(d), "%s/%s: written only by istiod", ns, name)
			assert.Contains(t, envValues(d), "istiod-"+v.Revision+".istio-system.svc:15012", "%s/%s: its discovery address", ns, name)
			pods, err := kube.CoreV1().Pods(ns).List(ctx, metav1.ListOptions{LabelSelector: "gateway.networking.k8s.io/gateway-name=" + strings.TrimSuffix(name, "-istio")})
			require.NoError(t, err)
			running := 0
			for _, p := range pods.Items {
				if p.DeletionTimestamp == nil {
					running++
					pv, _ := testenv.ProxyVersion(&p)
					assert.Equal(t, v.Name, pv, "pod %s/%s", ns, p.Name)
				}
			}
			assert.Positive(t, running, "%s/%s has pods", ns, name)
		}
	}

	wait := func(target string, dryRun revkit.DryRun) *gateway.MoveAPIResult {
		t.Helper()
		start := time.Now()
		res, err := gateway.MoveAPI(ctx, kube, dyn, gateway.MoveAPIOptions{Target: target, Wait: true, Timeout: 3 * time.Minute,
			PollInterval: 200 * time.Millisecond, Common: revkit.Common{DryRun: dryRun}})
		require.NoError(t, err, "move to %s", target)
		t.Logf("MoveAPI %s: %v in %s", target, res.Gateways, time.Since(start).Round(time.Millisecond))
		return res
	}

	// Already on prod-stable: nothing written, the wait ends once the old
	// revision's istiod has deployed them.
	res := wait("prod-stable", revkit.DryRunNone)
	assert.False(t, res.Changed())
	renderedBy(t, from)

	// A server-side dry run writes nothing.
	res = wait("prod-canary", revkit.DryRunServer)
	assert.True(t, res.Changed())
	for ns, name := range map[string]string{"istio-ingress": "web", "shop": "waypoint"} {
		u, err := dyn.Resource(gateway.GatewayResource).Namespace(ns).Get(ctx, name, metav1.GetOptions{})
		require.NoError(t, err)
		assert.Equal(t, "prod-stable", u.GetLabels()["istio.io/rev"])
	}

	// By tag to the new revision.
	res = wait("prod-canary", revkit.DryRunNone)
	assert.Equal(t, to.Revision, res.Revision)
	require.Len(t, res.Gateways, 2)
	for _, c := range res.Gateways {
		assert.Equal(t, revkit.ActionUpdate, c.Action)
	}
	renderedBy(t, to)
	assert.False(t, wait("prod-canary", revkit.DryRunNone).Changed(), "a rerun changes nothing")

	// Rollback.
	wait("prod-stable", revkit.DryRunNone)
	renderedBy(t, from)

	// By revision name.
	res = wait(to.Revision, revkit.DryRunNone)
	assert.True(t, res.Changed())
	renderedBy(t, to)

	// Back to the stable tag, then the tag itself moves: istiod's tag
	// watchers hand the Gateways over without a label changing.
	wait("prod-stable", revkit.DryRunNone)
	renderedBy(t, from)
	_, err = tag.Set(ctx, kube, tag.SetOptions{Tag: "prod-stable", Revision: to.Revision, Overwrite: true})
	require.NoError(t, err)
	res = wait("prod-stable", revkit.DryRunNone)
	assert.False(t, res.Changed())
	renderedBy(t, to)

	// Refusals on the real cluster write nothing.
	_, err = gateway.MoveAPI(ctx, kube, dyn, gateway.MoveAPIOptions{Target: "1-99-0"})
	assert.ErrorIs(t, err, revkit.ErrNotFound)
	_, err = gateway.MoveAPI(ctx, kube, dyn, gateway.MoveAPIOptions{Target: from.Revision, Names: []string{"nope"}})
	assert.ErrorIs(t, err, revkit.ErrNotFound)
	renderedBy(t, to)
}

func createGateway(ctx context.Context, t *testing.T, env *testenv.Env, ns, name, class string, labels map[string]string, listener map[string]any) {
	t.Helper()
	u := &unstructured.Unstructured{Object: map[string]any{
		"apiVersion": "gateway.networking.k8s.io/v1",
		"kind":       "Gateway",
		"metadata":   map[string]any{"name": name, "namespace": ns},
		"spec":       map[string]any{"gatewayClassName": class, "listeners": []any{listener}},
	}}
	u.SetLabels(labels)
	_, err := env.Dynamic.Resource(gateway.GatewayResource).Namespace(ns).Create(ctx, u, metav1.CreateOptions{})
	require.NoError(t, err)
}

// managersOtherThanIstiod lists the field managers of a Deployment's spec
// other than istiod's gateway controller and the cluster's own controllers.
func managersOtherThanIstiod(d *appsv1.Deployment) []string {
	var out []string
	for _, m := range d.ManagedFields {
		if m.Subresource != "" || m.Manager == "istio.io/gateway-controller" || m.Manager == "kube-controller-manager" {
			continue
		}
		out = append(out, m.Manager)
	}
	return out
}

func envValues(d *appsv1.Deployment) []string {
	var out []string
	for _, c := range d.Spec.Template.Spec.Containers {
		for _, e := range c.Env {
			out = append(out, e.Value)
		}
	}
	return out
}
