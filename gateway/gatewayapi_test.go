package gateway_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/client-go/kubernetes/fake"
	k8stesting "k8s.io/client-go/testing"

	"github.com/revkit/revkit"
	"github.com/revkit/revkit/gateway"
	"github.com/revkit/revkit/revkittest"
)

// apiCluster: two revisions, a stable and a canary tag; a Gateway API
// gateway and a waypoint on the stable tag, deployed by 1-24-0; a Gateway
// of another implementation's class; a gateway installed with the gateway
// chart.
func apiCluster() *revkittest.Cluster {
	return revkittest.NewCluster().WithRevision("1-24-0").WithRevision("1-25-0").
		WithTag("prod-stable", "1-24-0").WithTag("prod-canary", "1-25-0").
		WithNamespace("istio-ingress").
		WithAPIGateway("istio-ingress", "web", "prod-stable").
		WithAPIGateway("istio-ingress", "other", "", revkittest.GatewayClass("envoy-gateway")).
		WithGateway("istio-ingress", "ingressgateway", "1-24-0").
		WithAmbientNamespace("shop").
		WithWaypoint("shop", "waypoint", "prod-stable")
}

func TestListAPI(t *testing.T) {
	c := apiCluster().
		WithNamespace("labelled", revkittest.Rev("1-25-0")).
		WithAPIGateway("labelled", "edge", "", revkittest.DeployedBy("1-24-0")).
		WithNamespace("fresh").
		WithWaypoint("fresh", "wp", "prod-canary", revkittest.DeployedBy(""), revkittest.WaypointFor("workload")).
		WithAPIGateway("fresh", "manual", "1-25-0", revkittest.ManualDeployment("lb.example.com")).
		WithAPIGateway("fresh", "lost", "1-23-0")
	gws, err := gateway.ListAPI(ctx, c.Kube(), c.Dynamic(), gateway.ListOptions{})
	require.NoError(t, err)
	assert.Equal(t, []gateway.APIGateway{
		{Namespace: "fresh", Name: "lost", Class: "istio", Label: "1-23-0", Selector: "1-23-0"},
		{Namespace: "fresh", Name: "manual", Class: "istio", Label: "1-25-0", Selector: "1-25-0", Revision: "1-25-0", Manual: true},
		{Namespace: "fresh", Name: "wp", Class: "istio-waypoint", Waypoint: true, WaypointFor: "workload",
			Label: "prod-canary", Selector: "prod-canary", Revision: "1-25-0", Tag: "prod-canary"},
		{Namespace: "istio-ingress", Name: "web", Class: "istio", Label: "prod-stable", Selector: "prod-stable", Revision: "1-24-0", Tag: "prod-stable",
			Deployment: "web-istio", DeploymentRevision: "1-24-0", ProxyImage: "istio/proxyv2:1-24-0", RolledOut: true},
		{Namespace: "labelled", Name: "edge", Class: "istio", Selector: "1-25-0", Revision: "1-25-0",
			Deployment: "edge-istio", DeploymentRevision: "1-24-0", ProxyImage: "istio/proxyv2:1-24-0", RolledOut: true},
		{Namespace: "shop", Name: "waypoint", Class: "istio-waypoint", Waypoint: true, WaypointFor: "service",
			Label: "prod-stable", Selector: "prod-stable", Revision: "1-24-0", Tag: "prod-stable",
			Deployment: "waypoint", DeploymentRevision: "1-24-0", ProxyImage: "istio/proxyv2:1-24-0", RolledOut: true},
	}, gws)
	assert.True(t, gws[3].Current())
	assert.False(t, gws[4].Current(), "served by 1-25-0, rendered by 1-24-0")

	// The Deployments istiod made are not chart gateways: List leaves them
	// out, so Move never patches them.
	deps, err := gateway.List(ctx, c.Kube(), gateway.ListOptions{})
	require.NoError(t, err)
	require.Len(t, deps, 1)
	assert.Equal(t, "ingressgateway", deps[0].Name)

	// Without the Gateway API CRDs there are none.
	kube := c.Kube()
	dyn := c.Dynamic()
	dyn.PrependReactor("list", "gateways", func(k8stesting.Action) (bool, runtime.Object, error) {
		return true, nil, apierrors.NewNotFound(gateway.GatewayResource.GroupResource(), "")
	})
	gws, err = gateway.ListAPI(ctx, kube, dyn, gateway.ListOptions{})
	require.NoError(t, err)
	assert.Empty(t, gws)
}

// The serving revision of a Gateway without any istio.io/rev label follows
// istiod's tag watcher: the default tag, else the default validator's
// revision.
func TestListAPIDefault(t *testing.T) {
	c := revkittest.NewCluster().WithRevision("1-24-0").WithRevision("1-25-0").WithTag("default", "1-25-0").
		WithAPIGateway("istio-ingress", "web", "", revkittest.DeployedBy("1-25-0"))
	gws, err := gateway.ListAPI(ctx, c.Kube(), c.Dynamic(), gateway.ListOptions{})
	require.NoError(t, err)
	require.Len(t, gws, 1)
	assert.Equal(t, "1-25-0", gws[0].Revision)
	assert.Equal(t, "default", gws[0].Tag)
	assert.True(t, gws[0].Current())
}

func TestMoveAPI(t *testing.T) {
	for _, tc := range []struct {
		name    string
		opts    gateway.MoveAPIOptions
		rev     string
		writes  []string
		patches []string
		actions []revkit.Action
	}{
		{
			name: "by tag", opts: gateway.MoveAPIOptions{Target: "prod-canary"}, rev: "1-25-0",
			writes: []string{"patch gateways istio-ingress/web", "patch gateways shop/waypoint"},
			patches: []string{`{"metadata":{"labels":{"istio.io/rev":"prod-canary"}}}`,
				`{"metadata":{"labels":{"istio.io/rev":"prod-canary"}}}`},
			actions: []revkit.Action{revkit.ActionUpdate, revkit.ActionUpdate},
		},
		{
			name: "waypoints only, to a revision", opts: gateway.MoveAPIOptions{Target: "1-25-0", Classes: []string{gateway.ClassWaypoint}}, rev: "1-25-0",
			writes:  []string{"patch gateways shop/waypoint"},
			patches: []string{`{"metadata":{"labels":{"istio.io/rev":"1-25-0"}}}`},
			actions: []revkit.Action{revkit.ActionUpdate},
		},
		{
			name: "by name", opts: gateway.MoveAPIOptions{Target: "prod-canary", Names: []string{"web"}}, rev: "1-25-0",
			writes:  []string{"patch gateways istio-ingress/web"},
			patches: []string{`{"metadata":{"labels":{"istio.io/rev":"prod-canary"}}}`},
			actions: []revkit.Action{revkit.ActionUpdate},
		},
		{
			name: "one namespace", opts: gateway.MoveAPIOptions{Target: "prod-canary", Namespaces: []string{"shop"}}, rev: "1-25-0",
			writes:  []string{"patch gateways shop/waypoint"},
			patches: []string{`{"metadata":{"labels":{"istio.io/rev":"prod-canary"}}}`},
			actions: []revkit.Action{revkit.ActionUpdate},
		},
		{
			name: "client dry run", opts: gateway.MoveAPIOptions{Target: "prod-canary", Common: revkit.Common{DryRun: revkit.DryRunClient}}, rev: "1-25-0",
			actions: []revkit.Action{revkit.ActionUpdate, revkit.ActionUpdate},
		},
		{
			name: "server dry run", opts: gateway.MoveAPIOptions{Target: "prod-canary", Common: revkit.Common{DryRun: revkit.DryRunServer}}, rev: "1-25-0",
			writes: []string{"patch gateways istio-ingress/web (dry-run)", "patch gateways shop/waypoint (dry-run)"},
			patches: []string{`{"metadata":{"labels":{"istio.io/rev":"prod-canary"}}}`,
				`{"metadata":{"labels":{"istio.io/rev":"prod-canary"}}}`},
			actions: []revkit.Action{revkit.ActionUpdate, revkit.ActionUpdate},
		},
		{
			name: "already there", opts: gateway.MoveAPIOptions{Target: "prod-stable"}, rev: "1-24-0",
			actions: []revkit.Action{revkit.ActionUnchanged, revkit.ActionUnchanged},
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := apiCluster()
			kube, dyn := c.Kube(), c.Dynamic()
			kube.ClearActions()
			dyn.ClearActions()
			res, err := gateway.MoveAPI(ctx, kube, dyn, tc.opts)
			require.NoError(t, err)
			assert.Equal(t, tc.rev, res.Revision)
			var actions []revkit.Action
			for _, ch := range res.Gateways {
				assert.Equal(t, "Gateway", ch.Object.Kind)
				actions = append(actions, ch.Action)
			}
			assert.Equal(t, tc.actions, actions)
			assert.Equal(t, tc.writes, revkittest.Writes(dyn))
			assert.Equal(t, tc.patches, revkittest.Patches(dyn))
			revkittest.NoWrites(t, kube) // the istiod-owned Deployments are never touched

			// Rerunning changes nothing.
			if tc.opts.DryRun == revkit.DryRunNone && len(tc.writes) > 0 {
				dyn.ClearActions()
				res, err := gateway.MoveAPI(ctx, kube, dyn, tc.opts)
				require.NoError(t, err)
				assert.False(t, res.Changed())
				revkittest.NoWrites(t, dyn)
			}
		})
	}
}

func TestMoveAPIRefusals(t *testing.T) {
	helm := apiCluster().WithAPIGateway("istio-ingress", "edge", "prod-stable", revkittest.GatewayHelmRelease("edge"))
	for _, tc := range []struct {
		name    string
		cluster *revkittest.Cluster
		opts    gateway.MoveAPIOptions
		check   func(t *testing.T, err error)
	}{
		{"no target", apiCluster(), gateway.MoveAPIOptions{}, isInvalid},
		{"dotted target", apiCluster(), gateway.MoveAPIOptions{Target: "1.25.0"}, isInvalid},
		{"bad class", apiCluster(), gateway.MoveAPIOptions{Target: "1-25-0", Classes: []string{"envoy-gateway"}}, isInvalid},
		{"bad dry run", apiCluster(), gateway.MoveAPIOptions{Target: "1-25-0", Common: revkit.Common{DryRun: 3}}, isInvalid},
		{"bad timeout", apiCluster(), gateway.MoveAPIOptions{Target: "1-25-0", Timeout: -1}, isInvalid},
		{"unknown target", apiCluster(), gateway.MoveAPIOptions{Target: "1-26-0"}, func(t *testing.T, err error) {
			var nf *revkit.NotFoundError
			require.ErrorAs(t, err, &nf)
			assert.Equal(t, &revkit.NotFoundError{Kind: "revision or tag", Name: "1-26-0"}, nf)
		}},
		{"missing gateway", apiCluster(), gateway.MoveAPIOptions{Target: "1-25-0", Names: []string{"web", "gone"}, Namespaces: []string{"istio-ingress"}},
			func(t *testing.T, err error) {
				var nf *revkit.NotFoundError
				require.ErrorAs(t, err, &nf)
				assert.Equal(t, &revkit.NotFoundError{Kind: "Gateway", Name: "gone in istio-ingress"}, nf)
			}},
		{"foreign class", apiCluster(), gateway.MoveAPIOptions{Target: "1-25-0", Names: []string{"web", "other"}}, func(t *testing.T, err error) {
			var uc *gateway.UnsupportedClassError
			require.ErrorAs(t, err, &uc)
			assert.Equal(t, &gateway.UnsupportedClassError{Namespace: "istio-ingress", Name: "other", Class: "envoy-gateway"}, uc)
			assert.ErrorIs(t, err, revkit.ErrInvalidInput)
		}},
		{"helm release", helm, gateway.MoveAPIOptions{Target: "1-25-0"}, func(t *testing.T, err error) {
			var owned *gateway.HelmOwnedError
			require.ErrorAs(t, err, &owned)
			assert.Equal(t, &gateway.HelmOwnedError{Kind: "Gateway", Namespace: "istio-ingress", Name: "edge", Release: "edge"}, owned)
			assert.ErrorContains(t, err, "Gateway istio-ingress/edge belongs to Helm release edge")
		}},
		{"helm release, dry run", helm, gateway.MoveAPIOptions{Target: "1-25-0", Common: revkit.Common{DryRun: revkit.DryRunClient}}, func(t *testing.T, err error) {
			var owned *gateway.HelmOwnedError
			require.ErrorAs(t, err, &owned)
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			kube, dyn := tc.cluster.Kube(), tc.cluster.Dynamic()
			kube.ClearActions()
			dyn.ClearActions()
			res, err := gateway.MoveAPI(ctx, kube, dyn, tc.opts)
			require.Error(t, err)
			require.NotNil(t, res, "a refusal still returns a result")
			assert.Empty(t, res.Gateways)
			tc.check(t, err)
			revkittest.NoWrites(t, kube)
			revkittest.NoWrites(t, dyn)
		})
	}

	// A failed patch names the Gateway; what was written before it is
	// listed.
	c := apiCluster()
	kube, dyn := c.Kube(), c.Dynamic()
	revkittest.FailNth(dyn, "patch", "gateways", 2, apierrors.NewInternalError(errors.New("boom")))
	res, err := gateway.MoveAPI(ctx, kube, dyn, gateway.MoveAPIOptions{Target: "prod-canary"})
	require.Error(t, err)
	assert.True(t, apierrors.IsInternalError(err))
	assert.ErrorContains(t, err, "gateway.MoveAPI: patch Gateway/shop/waypoint")
	require.Len(t, res.Gateways, 1)
	assert.Equal(t, "web", res.Gateways[0].Object.Name)
}

func isInvalid(t *testing.T, err error) { require.ErrorIs(t, err, revkit.ErrInvalidInput) }

// istiod plays the revisions' gateway deployment controllers: when a
// Gateway is relabelled, the Deployment is re-rendered by the revision the
// label resolves to, its rollout in the state rollout sets.
func istiod(t *testing.T, kube *fake.Clientset, dyn k8stesting.FakeClient, revOf map[string]string, rollout func(*appsv1.Deployment)) {
	dyn.PrependReactor("patch", "gateways", func(a k8stesting.Action) (bool, runtime.Object, error) {
		p := a.(k8stesting.PatchAction)
		if len(a.(k8stesting.PatchActionImpl).PatchOptions.DryRun) > 0 {
			return false, nil, nil
		}
		var label string
		for target, rev := range revOf {
			if string(p.GetPatch()) == `{"metadata":{"labels":{"istio.io/rev":"`+target+`"}}}` {
				label = rev
			}
		}
		// Through the tracker: istiod's writes are not the call's, and
		// faults injected into the call's reads do not hit them.
		gvr := appsv1.SchemeGroupVersion.WithResource("deployments")
		obj, err := kube.Tracker().List(gvr, appsv1.SchemeGroupVersion.WithKind("Deployment"), p.GetNamespace())
		require.NoError(t, err)
		for _, d := range obj.(*appsv1.DeploymentList).Items {
			if d.Labels["gateway.networking.k8s.io/gateway-name"] != p.GetName() {
				continue
			}
			d.Spec.Template.Annotations["istio.io/rev"] = label
			d.Spec.Template.Spec.Containers[0].Image = revkittest.ProxyImage(label)
			d.Generation++
			d.Status.ObservedGeneration = d.Generation
			if rollout != nil {
				rollout(&d)
			}
			require.NoError(t, kube.Tracker().Update(gvr, &d, d.Namespace))
		}
		return false, nil, nil
	})
}

func TestMoveAPIWaits(t *testing.T) {
	revOf := map[string]string{"prod-canary": "1-25-0", "1-25-0": "1-25-0", "prod-stable": "1-24-0", "1-24-0": "1-24-0"}
	fast := func(o gateway.MoveAPIOptions) gateway.MoveAPIOptions {
		o.Wait, o.PollInterval = true, time.Millisecond
		if o.Timeout == 0 {
			o.Timeout = 5 * time.Second
		}
		return o
	}

	t.Run("re-rolled by the target, and back", func(t *testing.T) {
		c := apiCluster()
		kube, dyn := c.Kube(), c.Dynamic()
		istiod(t, kube, dyn, revOf, nil)
		_, err := gateway.MoveAPI(ctx, kube, dyn, fast(gateway.MoveAPIOptions{Target: "prod-canary"}))
		require.NoError(t, err)
		gws, err := gateway.ListAPI(ctx, kube, dyn, gateway.ListOptions{})
		require.NoError(t, err)
		for _, g := range gws {
			assert.Equal(t, "1-25-0", g.DeploymentRevision, g.Name)
			assert.Equal(t, "istio/proxyv2:1-25-0", g.ProxyImage, g.Name)
			assert.True(t, g.Current(), g.Name)
		}
		_, err = gateway.MoveAPI(ctx, kube, dyn, fast(gateway.MoveAPIOptions{Target: "prod-stable"}))
		require.NoError(t, err)
		gws, err = gateway.ListAPI(ctx, kube, dyn, gateway.ListOptions{})
		require.NoError(t, err)
		for _, g := range gws {
			assert.Equal(t, "1-24-0", g.DeploymentRevision, g.Name)
		}
	})

	t.Run("never re-rolled", func(t *testing.T) {
		c := apiCluster()
		kube, dyn := c.Kube(), c.Dynamic()
		res, err := gateway.MoveAPI(ctx, kube, dyn, fast(gateway.MoveAPIOptions{Target: "prod-canary", Timeout: 30 * time.Millisecond}))
		require.ErrorIs(t, err, context.DeadlineExceeded)
		assert.ErrorContains(t, err, `Gateway/istio-ingress/web: Deployment web-istio still rendered by revision "1-24-0", not "1-25-0"`)
		assert.ErrorContains(t, err, `Gateway/shop/waypoint: Deployment waypoint still rendered by revision "1-24-0"`)
		assert.Len(t, res.Gateways, 2, "the changes are listed")

		// An unchanged Gateway is still waited for: a rerun after a timeout
		// waits again.
		_, err = gateway.MoveAPI(ctx, kube, dyn, fast(gateway.MoveAPIOptions{Target: "prod-canary", Timeout: 30 * time.Millisecond}))
		require.ErrorIs(t, err, context.DeadlineExceeded)
	})

	t.Run("no Deployment yet", func(t *testing.T) {
		c := revkittest.NewCluster().WithRevision("1-25-0").WithAPIGateway("istio-ingress", "web", "", revkittest.DeployedBy(""))
		_, err := gateway.MoveAPI(ctx, c.Kube(), c.Dynamic(), fast(gateway.MoveAPIOptions{Target: "1-25-0", Timeout: 30 * time.Millisecond}))
		require.ErrorIs(t, err, context.DeadlineExceeded)
		assert.ErrorContains(t, err, "Gateway/istio-ingress/web: istiod has not created its Deployment yet")
	})

	t.Run("manual gateways are not waited for", func(t *testing.T) {
		c := revkittest.NewCluster().WithRevision("1-25-0").WithAPIGateway("istio-ingress", "web", "", revkittest.ManualDeployment("lb.example.com"))
		_, err := gateway.MoveAPI(ctx, c.Kube(), c.Dynamic(), fast(gateway.MoveAPIOptions{Target: "1-25-0", Timeout: 30 * time.Millisecond}))
		require.NoError(t, err)
	})

	t.Run("re-rendered, rollout in progress", func(t *testing.T) {
		c := apiCluster()
		kube, dyn := c.Kube(), c.Dynamic()
		istiod(t, kube, dyn, revOf, func(d *appsv1.Deployment) { d.Status.ObservedGeneration = d.Generation - 1 })
		_, err := gateway.MoveAPI(ctx, kube, dyn, fast(gateway.MoveAPIOptions{Target: "prod-canary", Names: []string{"web"}, Timeout: 30 * time.Millisecond}))
		require.ErrorIs(t, err, context.DeadlineExceeded)
		assert.ErrorContains(t, err, "Gateway/istio-ingress/web: Deployment web-istio: Deployment generation is 2, but latest observed generation is 1")
	})

	t.Run("rollout failed", func(t *testing.T) {
		c := apiCluster()
		kube, dyn := c.Kube(), c.Dynamic()
		istiod(t, kube, dyn, revOf, func(d *appsv1.Deployment) {
			d.Status.Conditions = []appsv1.DeploymentCondition{{Type: appsv1.DeploymentProgressing, Status: corev1.ConditionFalse,
				Reason: "ProgressDeadlineExceeded", Message: "timed out"}}
		})
		start := time.Now()
		_, err := gateway.MoveAPI(ctx, kube, dyn, fast(gateway.MoveAPIOptions{Target: "prod-canary", Names: []string{"web"}, Timeout: time.Minute}))
		var failed *revkit.RolloutFailedError
		require.ErrorAs(t, err, &failed)
		assert.Equal(t, "web-istio", failed.Name)
		assert.Less(t, time.Since(start), 10*time.Second)
	})

	t.Run("context cancelled", func(t *testing.T) {
		c := apiCluster()
		cctx, cancel := context.WithTimeout(ctx, 30*time.Millisecond)
		defer cancel()
		_, err := gateway.MoveAPI(cctx, c.Kube(), c.Dynamic(), fast(gateway.MoveAPIOptions{Target: "prod-canary", Timeout: time.Minute}))
		require.ErrorIs(t, err, context.DeadlineExceeded)
		cctx, cancel = context.WithCancel(ctx)
		cancel()
		_, err = gateway.MoveAPI(cctx, c.Kube(), c.Dynamic(), fast(gateway.MoveAPIOptions{Target: "prod-canary", Timeout: time.Minute}))
		require.ErrorIs(t, err, context.Canceled)
	})

	t.Run("transient reads are retried", func(t *testing.T) {
		c := apiCluster()
		kube, dyn := c.Kube(), c.Dynamic()
		istiod(t, kube, dyn, revOf, nil)
		// The first list is the control plane's; the second the wait's.
		calls := revkittest.FailNth(kube, "list", "deployments", 2, revkittest.ConnectionRefused())
		_, err := gateway.MoveAPI(ctx, kube, dyn, fast(gateway.MoveAPIOptions{Target: "prod-canary"}))
		require.NoError(t, err)
		assert.Greater(t, calls(), 2)
	})
}
