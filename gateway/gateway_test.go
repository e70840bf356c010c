package gateway_test

import (
	"context"
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	k8stesting "k8s.io/client-go/testing"

	"github.com/revkit/revkit"
	"github.com/revkit/revkit/gateway"
	"github.com/revkit/revkit/revkittest"
)

var ctx = context.Background()

func cluster() *revkittest.Cluster {
	return revkittest.NewCluster().WithRevision("1-24-0").WithRevision("1-25-0").
		WithTag("prod-canary", "1-25-0").
		WithNamespace("istio-ingress").
		WithGateway("istio-ingress", "ingressgateway", "1-24-0", revkittest.Replicas(2)).
		WithNamespace("shop", revkittest.Rev("1-24-0")).
		WithDeployment("shop", "web", revkittest.OnRevision("1-24-0"))
}

func TestList(t *testing.T) {
	gws, err := gateway.List(ctx, cluster().Kube(), gateway.ListOptions{})
	require.NoError(t, err)
	assert.Equal(t, []gateway.Gateway{{
		Namespace: "istio-ingress", Name: "ingressgateway", Revision: "1-24-0", Pods: map[string]int{"1-24-0": 2},
	}}, gws, "plain workloads are not gateways")
}

func TestMoveInPlace(t *testing.T) {
	kube := cluster().Kube()
	kube.ClearActions()
	res, err := gateway.Move(ctx, kube, gateway.MoveOptions{Target: "prod-canary"})
	require.NoError(t, err)
	assert.Equal(t, "1-25-0", res.Revision)
	assert.Equal(t, []string{"patch deployments istio-ingress/ingressgateway"}, revkittest.Writes(kube))
	assert.Equal(t, []string{`{"spec":{"template":{"metadata":{"labels":{"istio.io/rev":"prod-canary"}}}}}`}, revkittest.Patches(kube))

	kube.ClearActions()
	res, err = gateway.Move(ctx, kube, gateway.MoveOptions{Target: "prod-canary"})
	require.NoError(t, err)
	assert.False(t, res.Changed(), "second move changes nothing")
	revkittest.NoWrites(t, kube)
}

func TestMoveCanaryAndRemove(t *testing.T) {
	kube := cluster().Kube()
	res, err := gateway.Move(ctx, kube, gateway.MoveOptions{Target: "1-25-0", Mode: gateway.Canary})
	require.NoError(t, err)
	require.Len(t, res.Gateways, 1)
	assert.Equal(t, revkit.ActionCreate, res.Gateways[0].Action)

	c, err := kube.AppsV1().Deployments("istio-ingress").Get(ctx, "ingressgateway-1-25-0", metav1.GetOptions{})
	require.NoError(t, err)
	assert.Equal(t, "1-25-0", c.Spec.Template.Labels["istio.io/rev"])
	assert.Equal(t, "ingressgateway", c.Spec.Template.Labels["istio"], "the gateway Service selects the canary too")
	assert.Equal(t, "ingressgateway", c.Labels[gateway.LabelCanaryOf])
	assert.NotContains(t, c.Labels, "istio.io/rev", "a canary is not part of the revision's control plane")
	assert.Equal(t, "1-25-0", c.Spec.Selector.MatchLabels[gateway.LabelCanaryRevision], "selectors stay apart")
	orig, err := kube.AppsV1().Deployments("istio-ingress").Get(ctx, "ingressgateway", metav1.GetOptions{})
	require.NoError(t, err)
	assert.Equal(t, "1-24-0", orig.Spec.Template.Labels["istio.io/rev"], "the original is untouched")

	// Idempotent; canaries are not canaried again.
	kube.ClearActions()
	res, err = gateway.Move(ctx, kube, gateway.MoveOptions{Target: "1-25-0", Mode: gateway.Canary})
	require.NoError(t, err)
	assert.False(t, res.Changed())
	revkittest.NoWrites(t, kube)

	gws, err := gateway.List(ctx, kube, gateway.ListOptions{Namespaces: []string{"istio-ingress"}})
	require.NoError(t, err)
	require.Len(t, gws, 2)
	assert.Equal(t, "ingressgateway", gws[1].CanaryOf)

	// Dry run, then for real.
	kube.ClearActions()
	changes, err := gateway.RemoveCanaries(ctx, kube, gateway.RemoveCanariesOptions{Revision: "1-25-0", Common: revkit.Common{DryRun: revkit.DryRunClient}})
	require.NoError(t, err)
	assert.Len(t, changes, 1)
	revkittest.NoWrites(t, kube)
	changes, err = gateway.RemoveCanaries(ctx, kube, gateway.RemoveCanariesOptions{Revision: "1-25-0"})
	require.NoError(t, err)
	assert.Len(t, changes, 1)
	assert.Equal(t, []string{"delete deployments istio-ingress/ingressgateway-1-25-0"}, revkittest.Writes(kube))
	changes, err = gateway.RemoveCanaries(ctx, kube, gateway.RemoveCanariesOptions{})
	require.NoError(t, err)
	assert.Empty(t, changes)
}

func TestMoveRefusals(t *testing.T) {
	for name, opts := range map[string]gateway.MoveOptions{
		"no target":     {},
		"dotted target": {Target: "1.25.0"},
		"bad mode":      {Target: "1-25-0", Mode: "sideways"},
		"bad dry run":   {Target: "1-25-0", Common: revkit.Common{DryRun: 3}},
	} {
		t.Run(name, func(t *testing.T) {
			kube := cluster().Kube()
			kube.ClearActions()
			_, err := gateway.Move(ctx, kube, opts)
			require.ErrorIs(t, err, revkit.ErrInvalidInput)
			assert.Empty(t, kube.Actions())
		})
	}
	_, err := gateway.Move(ctx, cluster().Kube(), gateway.MoveOptions{Target: "1-26-0"})
	assert.ErrorIs(t, err, revkit.ErrNotFound)
	_, err = gateway.RemoveCanaries(ctx, cluster().Kube(), gateway.RemoveCanariesOptions{Revision: "A"})
	assert.ErrorIs(t, err, revkit.ErrInvalidInput)

	kube := cluster().Kube()
	revkittest.FailAlways(kube, "patch", "deployments", apierrors.NewInternalError(errors.New("boom")))
	_, err = gateway.Move(ctx, kube, gateway.MoveOptions{Target: "1-25-0"})
	require.Error(t, err)
	assert.True(t, apierrors.IsInternalError(err))
	assert.Contains(t, err.Error(), "gateway.Move: patch Deployment/istio-ingress/ingressgateway")
}

func ExampleMove() {
	kube := revkittest.NewCluster().WithRevision("1-24-0").WithRevision("1-25-0").
		WithNamespace("istio-ingress").
		WithGateway("istio-ingress", "ingressgateway", "1-24-0").Kube()
	res, _ := gateway.Move(context.Background(), kube, gateway.MoveOptions{Target: "1-25-0", Mode: gateway.Canary})
	for _, c := range res.Gateways {
		fmt.Println(c)
	}
	// Output:
	// create Deployment/istio-ingress/ingressgateway-1-25-0 (canary of ingressgateway on 1-25-0)
}

func TestMoveWaits(t *testing.T) {
	// The fake's gateway keeps its rolled-out status: the wait ends at once.
	kube := cluster().Kube()
	res, err := gateway.Move(ctx, kube, gateway.MoveOptions{Target: "1-25-0", Wait: true, PollInterval: time.Millisecond})
	require.NoError(t, err)
	assert.True(t, res.Changed())

	// A gateway that never rolls out ends the wait with the reason.
	kube = cluster().Kube()
	kube.PrependReactor("get", "deployments", func(a k8stesting.Action) (bool, runtime.Object, error) {
		d := &appsv1.Deployment{ObjectMeta: metav1.ObjectMeta{Name: "ingressgateway", Namespace: "istio-ingress", Generation: 2},
			Status: appsv1.DeploymentStatus{ObservedGeneration: 1}}
		return true, d, nil
	})
	_, err = gateway.Move(ctx, kube, gateway.MoveOptions{Target: "1-25-0", Wait: true,
		Timeout: 30 * time.Millisecond, PollInterval: 5 * time.Millisecond})
	require.ErrorIs(t, err, context.DeadlineExceeded)
	assert.Contains(t, err.Error(), "Deployment/istio-ingress/ingressgateway: Deployment generation is 2, but latest observed generation is 1")

	_, err = gateway.Move(ctx, kube, gateway.MoveOptions{Target: "1-25-0", Timeout: -1})
	assert.ErrorIs(t, err, revkit.ErrInvalidInput)
}

func TestMoveWaitRidesOutOutage(t *testing.T) {
	unavailable := apierrors.NewServiceUnavailable("apiserver is shutting down")
	for _, tc := range []struct {
		name     string
		failures int // reads of the gateway that fail before it answers
		fault    error
		reads    int // reads of the gateway in all; 0: not checked
		check    func(t *testing.T, err error)
	}{
		{"503 twice, then rolled out", 2, unavailable, 3, func(t *testing.T, err error) {
			require.NoError(t, err)
		}},
		{"503 until the timeout", 1 << 30, unavailable, 0, func(t *testing.T, err error) {
			require.ErrorIs(t, err, context.DeadlineExceeded)
			assert.Contains(t, err.Error(), "Deployment/istio-ingress/ingressgateway: cannot read it: apiserver is shutting down")
		}},
		{"403 is not retried", 1, apierrors.NewForbidden(schema.GroupResource{Group: "apps", Resource: "deployments"}, "ingressgateway", errors.New("no")), 1, func(t *testing.T, err error) {
			var opErr *revkit.OpError
			require.ErrorAs(t, err, &opErr)
			assert.Equal(t, "get", opErr.Verb)
			assert.True(t, apierrors.IsForbidden(err))
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			kube := cluster().Kube()
			reads := 0
			kube.PrependReactor("get", "deployments", func(k8stesting.Action) (bool, runtime.Object, error) {
				reads++
				if reads <= tc.failures {
					return true, nil, tc.fault
				}
				return false, nil, nil
			})
			_, err := gateway.Move(ctx, kube, gateway.MoveOptions{Target: "1-25-0", Wait: true,
				Timeout: 200 * time.Millisecond, PollInterval: 5 * time.Millisecond})
			tc.check(t, err)
			if tc.reads > 0 {
				assert.Equal(t, tc.reads, reads)
			}
		})
	}
}

// A gateway whose rollout is past its progress deadline ends the wait at
// once with a *revkit.RolloutFailedError naming it and the condition, in
// place and as a canary; the result still lists the change. A condition
// the controller has not caught up with yet does not count.
func TestMoveWaitFailsOnFailedRollout(t *testing.T) {
	const message = `ReplicaSet "ingressgateway-6c5d" has timed out progressing.`
	failedStatus := func(observed int64) appsv1.DeploymentStatus {
		return appsv1.DeploymentStatus{ObservedGeneration: observed, Replicas: 3, UpdatedReplicas: 1, AvailableReplicas: 2,
			Conditions: []appsv1.DeploymentCondition{{Type: appsv1.DeploymentProgressing, Status: corev1.ConditionFalse,
				Reason: "ProgressDeadlineExceeded", Message: message}}}
	}
	for _, tc := range []struct {
		name   string
		mode   gateway.Mode
		object string // the Deployment waited for
		action revkit.Action
		stale  bool // the controller has not observed the change yet
	}{
		{name: "in place", mode: gateway.InPlace, object: "ingressgateway", action: revkit.ActionUpdate},
		{name: "canary", mode: gateway.Canary, object: "ingressgateway-1-25-0", action: revkit.ActionCreate},
		{name: "in place, not observed yet", mode: gateway.InPlace, object: "ingressgateway", action: revkit.ActionUpdate, stale: true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			kube := cluster().Kube()
			observed := int64(1)
			if tc.stale {
				observed = 0
			}
			if tc.mode == gateway.InPlace {
				d, err := kube.AppsV1().Deployments("istio-ingress").Get(ctx, "ingressgateway", metav1.GetOptions{})
				require.NoError(t, err)
				d.Status = failedStatus(observed)
				_, err = kube.AppsV1().Deployments("istio-ingress").UpdateStatus(ctx, d, metav1.UpdateOptions{})
				require.NoError(t, err)
			} else {
				// The canary is created, then its controller gives up.
				kube.PrependReactor("create", "deployments", func(a k8stesting.Action) (bool, runtime.Object, error) {
					d := a.(k8stesting.CreateAction).GetObject().(*appsv1.Deployment)
					d.Generation = 1
					d.Status = failedStatus(observed)
					return false, nil, nil
				})
			}
			timeout := 5 * time.Minute
			if tc.stale {
				timeout = 50 * time.Millisecond
			}
			// Bounds the test should the wait run to its timeout after all.
			cctx, cancel := context.WithTimeout(ctx, 30*time.Second)
			defer cancel()
			start := time.Now()
			res, err := gateway.Move(cctx, kube, gateway.MoveOptions{Target: "1-25-0", Mode: tc.mode, Wait: true,
				Timeout: timeout, PollInterval: 5 * time.Millisecond})
			elapsed := time.Since(start)

			require.NotNil(t, res)
			require.Len(t, res.Gateways, 1, "the change is listed")
			assert.Equal(t, tc.action, res.Gateways[0].Action)
			assert.Equal(t, revkit.ObjectRef{Kind: "Deployment", Namespace: "istio-ingress", Name: tc.object}, res.Gateways[0].Object)
			if tc.stale {
				require.ErrorIs(t, err, context.DeadlineExceeded)
				assert.NotErrorIs(t, err, revkit.ErrRolloutFailed)
				assert.Contains(t, err.Error(), "Deployment/istio-ingress/ingressgateway: Deployment generation is 1, but latest observed generation is 0")
				return
			}
			var fErr *revkit.RolloutFailedError
			require.ErrorAs(t, err, &fErr)
			assert.Equal(t, &revkit.RolloutFailedError{Kind: "Deployment", Namespace: "istio-ingress", Name: tc.object,
				Condition: "Progressing", Reason: "ProgressDeadlineExceeded", Message: message}, fErr)
			assert.ErrorIs(t, err, revkit.ErrRolloutFailed)
			assert.NotErrorIs(t, err, context.DeadlineExceeded)
			assert.Less(t, elapsed, 5*time.Second, "the wait ends at once, not at its %s timeout", timeout)
		})
	}
}

// A gateway a Helm release owns is listed with its release, and Move
// refuses it — in place or as a canary, for real or in a dry run — before
// writing anything, also to the plain gateways it was asked to move with it.
func TestMoveRefusesHelmOwnedGateways(t *testing.T) {
	c := cluster().WithNamespace("istio-edge").WithHelmGateway("istio-edge", "edge", "1-24-0", revkittest.HelmRelease{Name: "istio-edge"})
	gws, err := gateway.List(ctx, c.Kube(), gateway.ListOptions{Namespaces: []string{"istio-edge"}})
	require.NoError(t, err)
	require.Len(t, gws, 1)
	assert.Equal(t, "istio-edge", gws[0].Release)
	assert.Equal(t, "gateway-1.31.0", gws[0].Chart)

	for _, opts := range []gateway.MoveOptions{
		{Target: "1-25-0"},
		{Target: "1-25-0", Mode: gateway.Canary},
		{Target: "1-25-0", Common: revkit.Common{DryRun: revkit.DryRunClient}},
		{Target: "1-25-0", Namespaces: []string{"istio-ingress", "istio-edge"}},
	} {
		kube := c.Kube()
		kube.ClearActions()
		_, err := gateway.Move(ctx, kube, opts)
		var owned *gateway.HelmOwnedError
		require.ErrorAs(t, err, &owned, "%+v", opts)
		assert.Equal(t, "istio-edge", owned.Release)
		assert.ErrorIs(t, err, revkit.ErrInvalidInput)
		assert.ErrorContains(t, err, "helm upgrade istio-edge --set revision=<revision>")
		revkittest.NoWrites(t, kube)
	}
	// The plain gateway alone still moves.
	kube := c.Kube()
	_, err = gateway.Move(ctx, kube, gateway.MoveOptions{Target: "1-25-0", Namespaces: []string{"istio-ingress"}})
	require.NoError(t, err)
}

// A gateway is what mesh.IsGateway says of its pod template, unless istiod
// manages it (it deploys Gateway API gateways and waypoints itself and
// would undo a move).
func TestIsGateway(t *testing.T) {
	deployment := func(labels, annotations map[string]string) *appsv1.Deployment {
		d := &appsv1.Deployment{}
		d.Spec.Template.Labels, d.Spec.Template.Annotations = labels, annotations
		return d
	}
	cases := []struct {
		name string
		d    *appsv1.Deployment
		want bool
	}{
		{"gateway chart", deployment(map[string]string{"istio": "ingress"}, map[string]string{"inject.istio.io/templates": "gateway"}), true},
		{"istioctl gateway, not injected", deployment(map[string]string{"istio": "ingressgateway"}, nil), true},
		{"gateway named without \"gateway\"", deployment(map[string]string{"istio": "edge"}, nil), true},
		{"Gateway API, deployed by hand", deployment(map[string]string{"gateway.networking.k8s.io/gateway-name": "web"}, nil), true},
		{"Gateway API, deployed by istiod", deployment(map[string]string{"gateway.networking.k8s.io/gateway-name": "web",
			"gateway.istio.io/managed": "istio.io-gateway-controller"}, nil), false},
		{"waypoint", deployment(map[string]string{"gateway.networking.k8s.io/gateway-name": "waypoint",
			"gateway.istio.io/managed": "istio.io-mesh-controller"}, nil), false},
		{"istiod", deployment(map[string]string{"app": "istiod", "istio": "pilot"}, nil), false},
		{"application", deployment(map[string]string{"app": "web"}, map[string]string{"inject.istio.io/templates": "sidecar"}), false},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			assert.Equal(t, tc.want, gateway.IsGateway(tc.d))
		})
	}
}
