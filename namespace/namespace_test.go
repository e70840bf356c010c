package namespace_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	appsv1 "k8s.io/api/apps/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/utils/ptr"

	"github.com/revkit/revkit"
	"github.com/revkit/revkit/namespace"
	"github.com/revkit/revkit/revkittest"
)

var ctx = context.Background()

func cluster() *revkittest.Cluster {
	return revkittest.NewCluster().WithRevision("1-24-0").WithRevision("1-25-0").
		WithTag("prod-canary", "1-25-0").
		WithNamespace("shop", revkittest.Rev("1-24-0"), revkittest.Label("team", "shop")).
		WithNamespace("cart", revkittest.InjectionEnabled(), revkittest.Label("team", "shop")).
		WithNamespace("done", revkittest.Rev("prod-canary"))
}

func TestMigrate(t *testing.T) {
	tests := []struct {
		name    string
		opts    namespace.MigrateOptions
		wantErr error
		writes  []string
		actions map[string]revkit.Action
		patches []string
	}{
		{
			name: "by list, to a tag",
			opts: namespace.MigrateOptions{Selection: namespace.Selection{Namespaces: []string{"shop", "cart", "done"}}, Target: "prod-canary"},
			writes: []string{
				"patch namespaces cart",
				"patch namespaces shop",
			},
			actions: map[string]revkit.Action{"cart": revkit.ActionUpdate, "done": revkit.ActionUnchanged, "shop": revkit.ActionUpdate},
			patches: []string{
				`{"metadata":{"labels":{"istio-injection":null,"istio.io/rev":"prod-canary"}}}`,
				`{"metadata":{"labels":{"istio-injection":null,"istio.io/rev":"prod-canary"}}}`,
			},
		},
		{
			name:    "by selector, to a revision",
			opts:    namespace.MigrateOptions{Selection: namespace.Selection{Selector: "team=shop"}, Target: "1-25-0"},
			writes:  []string{"patch namespaces cart", "patch namespaces shop"},
			actions: map[string]revkit.Action{"cart": revkit.ActionUpdate, "shop": revkit.ActionUpdate},
		},
		{
			name:    "client dry run writes nothing",
			opts:    namespace.MigrateOptions{Selection: namespace.Selection{Namespaces: []string{"shop"}}, Target: "1-25-0", Common: revkit.Common{DryRun: revkit.DryRunClient}},
			actions: map[string]revkit.Action{"shop": revkit.ActionUpdate},
		},
		{
			name:    "server dry run",
			opts:    namespace.MigrateOptions{Selection: namespace.Selection{Namespaces: []string{"shop"}}, Target: "1-25-0", Common: revkit.Common{DryRun: revkit.DryRunServer}},
			writes:  []string{"patch namespaces shop (dry-run)"},
			actions: map[string]revkit.Action{"shop": revkit.ActionUpdate},
		},
		{
			name:    "unknown target",
			opts:    namespace.MigrateOptions{Selection: namespace.Selection{Namespaces: []string{"shop"}}, Target: "1-26-0"},
			wantErr: revkit.ErrNotFound,
		},
		{
			name:    "missing namespace",
			opts:    namespace.MigrateOptions{Selection: namespace.Selection{Namespaces: []string{"shop", "nope"}}, Target: "1-25-0"},
			wantErr: revkit.ErrNotFound,
		},
		{
			name:    "control-plane namespace refused",
			opts:    namespace.MigrateOptions{Selection: namespace.Selection{Namespaces: []string{"istio-system"}}, Target: "1-25-0"},
			wantErr: revkit.ErrInvalidInput,
		},
		{name: "empty options", opts: namespace.MigrateOptions{}, wantErr: revkit.ErrInvalidInput},
		{name: "no namespaces", opts: namespace.MigrateOptions{Target: "1-25-0"}, wantErr: revkit.ErrInvalidInput},
		{name: "dotted target", opts: namespace.MigrateOptions{Selection: namespace.Selection{Namespaces: []string{"shop"}}, Target: "1.25.0"}, wantErr: revkit.ErrInvalidInput},
		{name: "bad selector", opts: namespace.MigrateOptions{Selection: namespace.Selection{Selector: "team in (("}, Target: "1-25-0"}, wantErr: revkit.ErrInvalidInput},
		{name: "empty namespace name", opts: namespace.MigrateOptions{Selection: namespace.Selection{Namespaces: []string{""}}, Target: "1-25-0"}, wantErr: revkit.ErrInvalidInput},
		{name: "bad dry-run mode", opts: namespace.MigrateOptions{Selection: namespace.Selection{Namespaces: []string{"shop"}}, Target: "1-25-0", Common: revkit.Common{DryRun: 9}}, wantErr: revkit.ErrInvalidInput},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			kube := cluster().Kube()
			kube.ClearActions()
			res, err := namespace.Migrate(ctx, kube, tt.opts)
			if tt.wantErr != nil {
				require.ErrorIs(t, err, tt.wantErr)
				assert.Empty(t, revkittest.Writes(kube))
				return
			}
			require.NoError(t, err)
			assert.Equal(t, tt.writes, revkittest.Writes(kube))
			got := map[string]revkit.Action{}
			for _, n := range res.Namespaces {
				got[n.Name] = n.Action
			}
			assert.Equal(t, tt.actions, got)
			if tt.patches != nil {
				assert.Equal(t, tt.patches, revkittest.Patches(kube))
			}
		})
	}
}

func TestMigrateEndStateAndIdempotence(t *testing.T) {
	kube := cluster().Kube()
	opts := namespace.MigrateOptions{Selection: namespace.Selection{Selector: "team=shop"}, Target: "prod-canary"}
	res, err := namespace.Migrate(ctx, kube, opts)
	require.NoError(t, err)
	assert.True(t, res.Changed())
	assert.Equal(t, "1-25-0", res.Revision)
	assert.Equal(t, "istio-injection=enabled", res.Namespaces[0].Previous)

	cart, err := kube.CoreV1().Namespaces().Get(ctx, "cart", metav1.GetOptions{})
	require.NoError(t, err)
	assert.Equal(t, "prod-canary", cart.Labels["istio.io/rev"])
	assert.NotContains(t, cart.Labels, "istio-injection")

	kube.ClearActions()
	res, err = namespace.Migrate(ctx, kube, opts)
	require.NoError(t, err)
	assert.False(t, res.Changed())
	assert.Empty(t, revkittest.Writes(kube))
}

func TestMigrateErrors(t *testing.T) {
	kube := cluster().Kube()
	revkittest.FailAlways(kube, "patch", "namespaces", apierrors.NewForbidden(
		schemaGR("namespaces"), "shop", errors.New("no")))
	_, err := namespace.Migrate(ctx, kube, namespace.MigrateOptions{Selection: namespace.Selection{Namespaces: []string{"shop"}}, Target: "1-25-0"})
	require.Error(t, err)
	assert.True(t, apierrors.IsForbidden(err))
	assert.Contains(t, err.Error(), "namespace.Migrate: patch Namespace/shop")

	for _, verb := range []string{"get", "list"} {
		kube := cluster().Kube()
		res := "namespaces"
		if verb == "list" {
			res = "mutatingwebhookconfigurations"
		}
		revkittest.FailAlways(kube, verb, res, apierrors.NewInternalError(errors.New("boom")))
		_, err := namespace.Migrate(ctx, kube, namespace.MigrateOptions{Selection: namespace.Selection{Namespaces: []string{"shop"}}, Target: "1-25-0"})
		require.Error(t, err)
		assert.True(t, apierrors.IsInternalError(err))
	}
}

func fleet() *revkittest.Cluster {
	return cluster().
		WithDeployment("shop", "web", revkittest.Replicas(2), revkittest.OnRevision("1-24-0")).
		WithDeployment("shop", "new", revkittest.OnRevision("1-25-0")).
		WithDeployment("shop", "frozen", revkittest.Paused(), revkittest.OnRevision("1-24-0")).
		WithDeployment("shop", "optout", revkittest.InjectionDisabled()).
		WithStatefulSet("shop", "db", revkittest.OnRevision("1-24-0")).
		WithDaemonSet("shop", "agent", revkittest.OnRevision("1-24-0"))
}

func TestRolloutRestart(t *testing.T) {
	fixed := func() time.Time { return time.Date(2026, 11, 25, 12, 0, 0, 0, time.UTC) }
	shop := namespace.Selection{Namespaces: []string{"shop"}}
	tests := []struct {
		name    string
		opts    namespace.RestartOptions
		wantErr error
		writes  []string
		actions map[string]revkit.Action
	}{
		{
			name: "restarts everything but paused",
			opts: namespace.RestartOptions{Selection: shop, Now: fixed},
			writes: []string{
				"patch daemonsets shop/agent",
				"patch deployments shop/new",
				"patch deployments shop/optout",
				"patch deployments shop/web",
				"patch statefulsets shop/db",
			},
			actions: map[string]revkit.Action{
				"agent": revkit.ActionUpdate, "frozen": revkit.ActionSkip, "new": revkit.ActionUpdate,
				"optout": revkit.ActionUpdate, "web": revkit.ActionUpdate, "db": revkit.ActionUpdate,
			},
		},
		{
			name: "only stale workloads",
			opts: namespace.RestartOptions{Selection: shop, Target: "prod-canary", OnlyStale: true, Now: fixed},
			writes: []string{
				"patch daemonsets shop/agent",
				"patch deployments shop/web",
				"patch statefulsets shop/db",
			},
			actions: map[string]revkit.Action{
				"agent": revkit.ActionUpdate, "frozen": revkit.ActionSkip, "new": revkit.ActionUnchanged,
				"optout": revkit.ActionSkip, "web": revkit.ActionUpdate, "db": revkit.ActionUpdate,
			},
		},
		{
			name:   "kinds and workload selector",
			opts:   namespace.RestartOptions{Selection: shop, Kinds: []namespace.Kind{namespace.StatefulSet}, Now: fixed},
			writes: []string{"patch statefulsets shop/db"},
			actions: map[string]revkit.Action{
				"db": revkit.ActionUpdate,
			},
		},
		{
			name: "client dry run",
			opts: namespace.RestartOptions{Selection: shop, Kinds: []namespace.Kind{namespace.DaemonSet}, Common: revkit.Common{DryRun: revkit.DryRunClient}, Wait: true},
			actions: map[string]revkit.Action{
				"agent": revkit.ActionUpdate,
			},
		},
		{name: "OnlyStale needs a target", opts: namespace.RestartOptions{Selection: shop, OnlyStale: true}, wantErr: revkit.ErrInvalidInput},
		{name: "bad kind", opts: namespace.RestartOptions{Selection: shop, Kinds: []namespace.Kind{"Job"}}, wantErr: revkit.ErrInvalidInput},
		{name: "bad workload selector", opts: namespace.RestartOptions{Selection: shop, WorkloadSelector: "a in (("}, wantErr: revkit.ErrInvalidInput},
		{name: "negative timeout", opts: namespace.RestartOptions{Selection: shop, Timeout: -1}, wantErr: revkit.ErrInvalidInput},
		{name: "no selection", opts: namespace.RestartOptions{}, wantErr: revkit.ErrInvalidInput},
		{name: "unknown target", opts: namespace.RestartOptions{Selection: shop, Target: "nope", OnlyStale: true}, wantErr: revkit.ErrNotFound},
		{name: "kube-system refused", opts: namespace.RestartOptions{Selection: namespace.Selection{Namespaces: []string{"kube-system"}}}, wantErr: revkit.ErrInvalidInput},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := fleet()
			if tt.name == "kube-system refused" {
				c = c.WithNamespace("kube-system")
			}
			kube := c.Kube()
			kube.ClearActions()
			res, err := namespace.RolloutRestart(ctx, kube, tt.opts)
			if tt.wantErr != nil {
				require.ErrorIs(t, err, tt.wantErr)
				assert.Empty(t, revkittest.Writes(kube))
				return
			}
			require.NoError(t, err)
			assert.Equal(t, tt.writes, revkittest.Writes(kube))
			got := map[string]revkit.Action{}
			for _, w := range res.Workloads {
				got[w.Name] = w.Action
			}
			assert.Equal(t, tt.actions, got)
		})
	}
}

func TestRolloutRestartPatchAndReasons(t *testing.T) {
	kube := fleet().Kube()
	at := time.Date(2026, 11, 25, 12, 0, 0, 0, time.UTC)
	res, err := namespace.RolloutRestart(ctx, kube, namespace.RestartOptions{
		Selection: namespace.Selection{Namespaces: []string{"shop"}}, Target: "1-25-0", OnlyStale: true,
		Now: func() time.Time { return at }, Wait: true, PollInterval: time.Millisecond,
	})
	require.NoError(t, err)
	d, err := kube.AppsV1().Deployments("shop").Get(ctx, "web", metav1.GetOptions{})
	require.NoError(t, err)
	assert.Equal(t, "2026-11-25T12:00:00Z", d.Spec.Template.Annotations["kubectl.kubernetes.io/restartedAt"])
	reasons := map[string]string{}
	for _, w := range res.Workloads {
		reasons[w.Name] = w.Reason
		if w.Action == revkit.ActionUpdate {
			assert.True(t, w.RolledOut, "%s should be seen rolled out", w.Name)
		}
	}
	assert.Contains(t, reasons["frozen"], "paused")
	assert.Contains(t, reasons["optout"], "injection disabled")
	assert.Equal(t, "pod web-0 is on revision 1-24-0", reasons["web"])
	assert.Equal(t, "all pods on revision 1-25-0", reasons["new"])
	assert.ElementsMatch(t, []string{"DaemonSet/shop/agent", "Deployment/shop/web", "StatefulSet/shop/db"}, res.Restarted())
}

func TestRolloutRestartWaitTimesOut(t *testing.T) {
	stuck := &appsv1.Deployment{
		ObjectMeta: metav1.ObjectMeta{Name: "stuck", Namespace: "shop", Generation: 2},
		Spec: appsv1.DeploymentSpec{Replicas: ptr.To[int32](2),
			Selector: &metav1.LabelSelector{MatchLabels: map[string]string{"app": "stuck"}}},
		Status: appsv1.DeploymentStatus{ObservedGeneration: 2, Replicas: 3, UpdatedReplicas: 1, AvailableReplicas: 1},
	}
	kube := cluster().WithObjects(stuck).Kube()
	start := time.Now()
	_, err := namespace.RolloutRestart(ctx, kube, namespace.RestartOptions{
		Selection: namespace.Selection{Namespaces: []string{"shop"}},
		Wait:      true, Timeout: 50 * time.Millisecond, PollInterval: 10 * time.Millisecond,
	})
	var wErr *namespace.WaitError
	require.ErrorAs(t, err, &wErr)
	assert.ErrorIs(t, err, context.DeadlineExceeded)
	assert.Equal(t, []string{"Deployment/shop/stuck: Updated: 1/2"}, wErr.Pending)
	assert.Less(t, time.Since(start), 5*time.Second)

	// Cancelling the caller's context ends the wait too.
	cctx, cancel := context.WithCancel(ctx)
	cancel()
	_, err = namespace.RolloutRestart(cctx, kube, namespace.RestartOptions{
		Selection: namespace.Selection{Namespaces: []string{"shop"}}, Wait: true, PollInterval: time.Millisecond,
	})
	require.Error(t, err)
}

func TestRolloutRestartErrors(t *testing.T) {
	kube := fleet().Kube()
	revkittest.FailAlways(kube, "patch", "deployments", apierrors.NewInternalError(errors.New("boom")))
	res, err := namespace.RolloutRestart(ctx, kube, namespace.RestartOptions{Selection: namespace.Selection{Namespaces: []string{"shop"}}})
	require.Error(t, err)
	assert.True(t, apierrors.IsInternalError(err))
	assert.Contains(t, err.Error(), "namespace.RolloutRestart: patch Deployment/shop/")
	require.NotEmpty(t, res.Workloads)

	for _, r := range []string{"deployments", "statefulsets", "daemonsets", "pods"} {
		kube := fleet().Kube()
		revkittest.FailAlways(kube, "list", r, apierrors.NewInternalError(errors.New("boom")))
		_, err := namespace.RolloutRestart(ctx, kube, namespace.RestartOptions{
			Selection: namespace.Selection{Namespaces: []string{"shop"}}, Target: "1-25-0", OnlyStale: true})
		require.Error(t, err, r)
		assert.Empty(t, revkittest.Writes(kube), r)
	}
}

// A rerun of an interrupted plan does not restart a workload twice: one
// restarted since the plan began is only waited for.
func TestRolloutRestartResumes(t *testing.T) {
	kube := fleet().Kube()
	began := time.Date(2026, 11, 25, 12, 0, 0, 0, time.UTC)
	_, err := kube.AppsV1().Deployments("shop").Patch(ctx, "web", types.MergePatchType,
		[]byte(`{"spec":{"template":{"metadata":{"annotations":{"kubectl.kubernetes.io/restartedAt":"2026-11-25T12:01:00Z"}}}}}`), metav1.PatchOptions{})
	require.NoError(t, err)
	_, err = kube.AppsV1().Deployments("shop").Patch(ctx, "new", types.MergePatchType,
		[]byte(`{"spec":{"template":{"metadata":{"annotations":{"kubectl.kubernetes.io/restartedAt":"2026-11-25T11:00:00Z"}}}}}`), metav1.PatchOptions{})
	require.NoError(t, err)
	kube.ClearActions()
	res, err := namespace.RolloutRestart(ctx, kube, namespace.RestartOptions{
		Selection: namespace.Selection{Namespaces: []string{"shop"}}, Kinds: []namespace.Kind{namespace.Deployment},
		RestartedSince: began, Wait: true, PollInterval: time.Millisecond, Now: func() time.Time { return began.Add(time.Hour) },
	})
	require.NoError(t, err)
	got := map[string]namespace.WorkloadResult{}
	for _, w := range res.Workloads {
		got[w.Name] = w
	}
	assert.True(t, got["web"].Resumed)
	assert.Equal(t, revkit.ActionUnchanged, got["web"].Action)
	assert.True(t, got["web"].RolledOut, "a resumed workload is still waited for")
	assert.Equal(t, revkit.ActionUpdate, got["new"].Action, "restarted before the plan began: restarted again")
	assert.NotContains(t, revkittest.Writes(kube), "patch deployments shop/web")
}

// A restart since the plan began toward another revision — a rollback's,
// between an interrupted canary and its rerun — is not the plan's own: the
// rerun restarts the workload again, toward its own target, and stamps the
// target; its own restart (same target) is only waited for.
func TestRolloutRestartResumesOnlyItsOwnTarget(t *testing.T) {
	began := time.Date(2026, 11, 25, 12, 0, 0, 0, time.UTC)
	for _, tc := range []struct {
		name, target string // target stamped by the restart since the plan began
		want         revkit.Action
	}{
		{name: "restarted toward the plan's target: resumed", target: "1-25-0", want: revkit.ActionUnchanged},
		{name: "restarted toward another revision: restarted again", target: "1-24-0", want: revkit.ActionUpdate},
		{name: "restarted by something else (no target): restarted again", target: "", want: revkit.ActionUpdate},
	} {
		t.Run(tc.name, func(t *testing.T) {
			kube := fleet().Kube()
			ann := `"kubectl.kubernetes.io/restartedAt":"2026-11-25T12:01:00Z"`
			if tc.target != "" {
				ann += `,"revkit.io/restart-target":"` + tc.target + `"`
			}
			_, err := kube.AppsV1().Deployments("shop").Patch(ctx, "web", types.MergePatchType,
				[]byte(`{"spec":{"template":{"metadata":{"annotations":{`+ann+`}}}}}`), metav1.PatchOptions{})
			require.NoError(t, err)
			res, err := namespace.RolloutRestart(ctx, kube, namespace.RestartOptions{
				Selection: namespace.Selection{Namespaces: []string{"shop"}}, Kinds: []namespace.Kind{namespace.Deployment},
				Target: "1-25-0", OnlyStale: true, RestartedSince: began, Now: func() time.Time { return began.Add(time.Hour) },
			})
			require.NoError(t, err)
			for _, w := range res.Workloads {
				if w.Name == "web" {
					assert.Equal(t, tc.want, w.Action, w.Reason)
				}
			}
			d, err := kube.AppsV1().Deployments("shop").Get(ctx, "web", metav1.GetOptions{})
			require.NoError(t, err)
			assert.Equal(t, "1-25-0", d.Spec.Template.Annotations["revkit.io/restart-target"], "the target is stamped with the restart")
		})
	}
}

// Two restarts within one second (a plan's, then its rollback's) stamp
// different annotations, so the second one starts a rollout too.
func TestRestartTwiceInOneSecond(t *testing.T) {
	kube := revkittest.NewCluster().WithRevision("1-24-0").
		WithNamespace("shop", revkittest.Rev("1-24-0")).WithDeployment("shop", "web").Kube()
	base := time.Date(2026, 11, 25, 12, 0, 0, 100, time.UTC)
	var stamps []string
	for _, at := range []time.Time{base, base.Add(300 * time.Millisecond)} {
		_, err := namespace.RolloutRestart(ctx, kube, namespace.RestartOptions{
			Selection: namespace.Selection{Namespaces: []string{"shop"}}, Now: func() time.Time { return at }})
		require.NoError(t, err)
		d, err := kube.AppsV1().Deployments("shop").Get(ctx, "web", metav1.GetOptions{})
		require.NoError(t, err)
		stamps = append(stamps, d.Spec.Template.Annotations["kubectl.kubernetes.io/restartedAt"])
	}
	assert.NotEqual(t, stamps[0], stamps[1], "the second restart changes the pod template")
}
