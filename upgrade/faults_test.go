package upgrade_test

import (
	"errors"
	"fmt"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	appsv1 "k8s.io/api/apps/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/watch"
	k8stesting "k8s.io/client-go/testing"
	"k8s.io/utils/ptr"

	"github.com/revkit/revkit"
	"github.com/revkit/revkit/namespace"
	"github.com/revkit/revkit/revkittest"
	"github.com/revkit/revkit/tag"
	"github.com/revkit/revkit/upgrade"
	"github.com/revkit/revkit/verify"
)

// faultPlan touches every kind of write: webhook and Service creates and
// updates (tags), namespace patches, workload patches and a rollout wait.
func faultPlan() upgrade.Plan {
	sel := namespace.Selection{Selector: "team=shop"}
	return upgrade.Plan{Name: "fault matrix", Steps: []upgrade.Step{
		upgrade.SetTag(tag.SetOptions{Tag: "prod-canary", Revision: "1-25-0"}),
		upgrade.MigrateNamespace(namespace.MigrateOptions{Selection: sel, Target: "prod-canary"}),
		upgrade.RolloutRestart(namespace.RestartOptions{Selection: sel, Target: "prod-canary",
			Wait: true, Timeout: 2 * time.Second, PollInterval: 5 * time.Millisecond}),
		upgrade.SetTag(tag.SetOptions{Tag: "prod-stable", Revision: "1-25-0", Overwrite: true}),
		upgrade.VerifyWebhooks(verify.WebhooksOptions{}),
	}}
}

// TestFaultMatrix injects each kind of API fault into each kind of write
// (the first such request fails) and checks that the journaled plan either
// completes or stops with a typed step error, and that a rerun then
// completes it with the same end state and without restarting any workload
// twice.
func TestFaultMatrix(t *testing.T) {
	faults := map[string]func(resource string) error{
		"409 conflict": func(r string) error {
			return apierrors.NewConflict(schema.GroupResource{Resource: r}, "x", errors.New("stale"))
		},
		"429 throttled": func(string) error { return apierrors.NewTooManyRequests("slow down", 1) },
		"500 internal":  func(string) error { return apierrors.NewInternalError(errors.New("etcd")) },
		"504 timeout":   func(string) error { return apierrors.NewTimeoutError("request timed out", 1) },
		"conn refused":  func(string) error { return revkittest.ConnectionRefused() },
	}
	writes := []struct{ verb, resource string }{
		{"create", "mutatingwebhookconfigurations"},
		{"update", "mutatingwebhookconfigurations"},
		{"create", "services"},
		{"update", "services"},
		{"patch", "namespaces"},
		{"patch", "deployments"},
		{"list", "deployments"},
		{"update", "configmaps"},
		{"get", "leases"},
	}
	cases := 0
	for fname, fault := range faults {
		for _, w := range writes {
			t.Run(fmt.Sprintf("%s on %s %s", fname, w.verb, w.resource), func(t *testing.T) {
				cases++
				kube := revkittest.NewCluster().WithRevision("1-24-0").WithRevision("1-25-0").
					WithTag("prod-stable", "1-24-0").
					WithNamespace("a", revkittest.Rev("prod-stable"), revkittest.Label("team", "shop")).
					WithNamespace("b", revkittest.Rev("prod-stable"), revkittest.Label("team", "shop")).
					WithDeployment("a", "web", revkittest.OnRevision("1-24-0")).
					WithDeployment("b", "api", revkittest.OnRevision("1-24-0")).
					Kube()
				// Count the restart patches that go through: this reactor
				// sits behind the fault, which swallows the failing call.
				patched := map[string]int{}
				kube.PrependReactor("patch", "deployments", func(a k8stesting.Action) (bool, runtime.Object, error) {
					patched[a.GetNamespace()+"/"+a.(k8stesting.PatchAction).GetName()]++
					return false, nil, nil
				})
				revkittest.FailNth(kube, w.verb, w.resource, 1, fault(w.resource))
				env := upgrade.Env{Kube: kube, Journal: &upgrade.Journal{Holder: "t"}}
				rep, err := upgrade.Execute(ctx, env, faultPlan())
				if err != nil {
					// A failed step, or (journal reads before any step)
					// a failed API call, both typed.
					var stepErr *upgrade.StepError
					var opErr *revkit.OpError
					require.True(t, errors.As(err, &stepErr) || errors.As(err, &opErr), "a typed error, got %T %v", err, err)
					rep, err = upgrade.Execute(ctx, env, faultPlan())
				}
				require.NoError(t, err, "the rerun completes: %s", rep)

				inj, err := revkittest.NamespaceInjection(ctx, kube)
				require.NoError(t, err)
				assert.Equal(t, "istio.io/rev=prod-canary", inj["a"])
				assert.Equal(t, "istio.io/rev=prod-canary", inj["b"])
				tags, err := tag.List(ctx, kube, tag.ListOptions{})
				require.NoError(t, err)
				require.Len(t, tags, 2)
				for _, tg := range tags {
					assert.Equal(t, "1-25-0", tg.Revision, tg.Name)
				}
				assert.Equal(t, map[string]int{"a/web": 1, "b/api": 1}, patched, "each workload restarted exactly once")
				restarted, err := revkittest.Restarted(ctx, kube)
				require.NoError(t, err)
				assert.Equal(t, []string{"Deployment/a/web", "Deployment/b/api"}, restarted)
			})
		}
	}
}

// A watch that drops at once does not break the rollout wait: the
// Deployment completes while every watch on it is cut.
func TestRolloutWaitSurvivesDroppedWatches(t *testing.T) {
	stuck := &appsv1.Deployment{
		ObjectMeta: metav1.ObjectMeta{Name: "web", Namespace: "a", Generation: 2},
		Spec: appsv1.DeploymentSpec{Replicas: ptr.To[int32](1),
			Selector: &metav1.LabelSelector{MatchLabels: map[string]string{"app": "web"}}},
		Status: appsv1.DeploymentStatus{ObservedGeneration: 1},
	}
	kube := revkittest.NewCluster().WithRevision("1-24-0").
		WithNamespace("a", revkittest.Label("team", "shop")).WithObjects(stuck).Kube()
	var dropped atomic.Int32
	kube.PrependWatchReactor("*", func(k8stesting.Action) (bool, watch.Interface, error) {
		dropped.Add(1)
		w := watch.NewFake()
		w.Stop()
		return true, w, nil
	})
	go func() {
		time.Sleep(100 * time.Millisecond)
		done := stuck.DeepCopy()
		done.Status = appsv1.DeploymentStatus{ObservedGeneration: 2, Replicas: 1, UpdatedReplicas: 1, ReadyReplicas: 1, AvailableReplicas: 1}
		_, _ = kube.AppsV1().Deployments("a").UpdateStatus(ctx, done, metav1.UpdateOptions{})
	}()
	res, err := namespace.RolloutRestart(ctx, kube, namespace.RestartOptions{
		Selection: namespace.Selection{Namespaces: []string{"a"}}, Wait: true,
		Timeout: 5 * time.Second, PollInterval: 10 * time.Millisecond})
	require.NoError(t, err)
	assert.True(t, res.Workloads[0].RolledOut)
	assert.Positive(t, dropped.Load(), "the wait watched, and its watches were dropped")
}
