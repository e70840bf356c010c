package namespace_test

import (
	"context"
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	appsv1 "k8s.io/api/apps/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/client-go/kubernetes/fake"
	k8stesting "k8s.io/client-go/testing"
	"k8s.io/utils/ptr"

	"github.com/revkit/revkit"
	"github.com/revkit/revkit/namespace"
	"github.com/revkit/revkit/revkittest"
)

// bigFleet has n namespaces labelled fleet=yes, each with one Deployment
// "app" whose rollout is not finished (generation 2, observed 1) unless
// done.
func bigFleet(n int, done bool) *revkittest.Cluster {
	c := revkittest.NewCluster().WithRevision("1-24-0").WithRevision("1-25-0")
	for i := range n {
		ns := fmt.Sprintf("ns-%02d", i)
		c = c.WithNamespace(ns, revkittest.Rev("1-24-0"), revkittest.Label("fleet", "yes"))
		d := &appsv1.Deployment{
			ObjectMeta: metav1.ObjectMeta{Name: "app", Namespace: ns, Generation: 2},
			Spec: appsv1.DeploymentSpec{Replicas: ptr.To[int32](2),
				Selector: &metav1.LabelSelector{MatchLabels: map[string]string{"app": "app"}}},
			Status: appsv1.DeploymentStatus{ObservedGeneration: 1, Replicas: 2, UpdatedReplicas: 0, AvailableReplicas: 2},
		}
		if done {
			d.Status = appsv1.DeploymentStatus{ObservedGeneration: 2, Replicas: 2, UpdatedReplicas: 2, ReadyReplicas: 2, AvailableReplicas: 2}
		}
		c = c.WithObjects(d)
	}
	return c
}

func listNamespaces(kube *fake.Clientset, resource string) []string {
	var out []string
	for _, a := range kube.Actions() {
		if a.GetVerb() == "list" && a.GetResource().Resource == resource {
			out = append(out, a.GetNamespace())
		}
	}
	return out
}

func hasWatch(kube *fake.Clientset) bool {
	for _, a := range kube.Actions() {
		if a.GetVerb() == "watch" {
			return true
		}
	}
	return false
}

// From ten namespaces on, RolloutRestart lists each kind once across the
// cluster, patches every workload and waits with a watch, which sees each
// rollout finish without polling.
func TestRolloutRestartFleetListsOnceAndWatches(t *testing.T) {
	kube := bigFleet(12, false).Kube()
	kube.ClearActions()
	stop := make(chan struct{})
	defer close(stop)
	go func() {
		// Once the wait watches, the controller "finishes" every rollout;
		// it says so again until the wait ends, since the fake may record
		// the watch a moment before it delivers events.
		for !hasWatch(kube) {
			time.Sleep(5 * time.Millisecond)
		}
		for {
			select {
			case <-stop:
				return
			case <-time.After(20 * time.Millisecond):
			}
			finish(kube, 12)
		}
	}()
	res, err := namespace.RolloutRestart(ctx, kube, namespace.RestartOptions{
		Selection: namespace.Selection{Selector: "fleet=yes"}, Wait: true, Timeout: 10 * time.Second,
		PollInterval: time.Hour, // a poll would time out: the watch must see the rollouts
	})
	require.NoError(t, err)
	require.Len(t, res.Workloads, 12)
	for i, w := range res.Workloads {
		assert.Equal(t, fmt.Sprintf("ns-%02d", i), w.Namespace, "sorted by namespace")
		assert.True(t, w.RolledOut, w.Namespace)
	}
	// One list of Deployments across the cluster to find them and one to
	// start the wait; none per namespace.
	assert.Equal(t, []string{"", ""}, listNamespaces(kube, "deployments"))
	assert.Equal(t, []string{""}, listNamespaces(kube, "statefulsets"))
	assert.Len(t, revkittest.Patches(kube), 12)
}

// finish marks the Deployments of bigFleet(n) rolled out.
func finish(kube *fake.Clientset, n int) {
	for i := range n {
		ns := fmt.Sprintf("ns-%02d", i)
		d, err := kube.AppsV1().Deployments(ns).Get(ctx, "app", metav1.GetOptions{})
		if err != nil {
			continue
		}
		d.Status = appsv1.DeploymentStatus{ObservedGeneration: 2, Replicas: 2, UpdatedReplicas: 2, ReadyReplicas: 2, AvailableReplicas: 2}
		_, _ = kube.AppsV1().Deployments(ns).UpdateStatus(ctx, d, metav1.UpdateOptions{})
	}
}

// Without the right to list across the cluster it falls back to
// per-namespace lists and polling.
func TestRolloutRestartFleetForbiddenClusterWide(t *testing.T) {
	kube := bigFleet(12, true).Kube()
	kube.PrependReactor("list", "*", func(a k8stesting.Action) (bool, runtime.Object, error) {
		if a.GetNamespace() == "" && a.GetResource().Resource != "namespaces" && a.GetResource().Resource != "mutatingwebhookconfigurations" {
			return true, nil, apierrors.NewForbidden(a.GetResource().GroupResource(), "", errors.New("namespaced role"))
		}
		return false, nil, nil
	})
	kube.ClearActions()
	res, err := namespace.RolloutRestart(ctx, kube, namespace.RestartOptions{
		Selection: namespace.Selection{Selector: "fleet=yes"}, Kinds: []namespace.Kind{namespace.Deployment},
		Wait: true, Timeout: 10 * time.Second, PollInterval: time.Millisecond,
	})
	require.NoError(t, err)
	require.Len(t, res.Workloads, 12)
	for _, w := range res.Workloads {
		assert.True(t, w.RolledOut)
	}
	lists := listNamespaces(kube, "deployments")
	// The refused cluster-wide list, one list per namespace to find the
	// workloads and one per namespace for the wait.
	assert.Len(t, lists, 1+12+12)
	assert.False(t, hasWatch(kube))
}

// A wait over the watch that never completes ends with a WaitError naming
// what is pending.
func TestRolloutRestartFleetWatchTimesOut(t *testing.T) {
	kube := bigFleet(10, false).Kube()
	_, err := namespace.RolloutRestart(ctx, kube, namespace.RestartOptions{
		Selection: namespace.Selection{Selector: "fleet=yes"}, Wait: true, Timeout: 500 * time.Millisecond,
	})
	var wErr *namespace.WaitError
	require.ErrorAs(t, err, &wErr)
	assert.ErrorIs(t, err, context.DeadlineExceeded)
	require.Len(t, wErr.Pending, 10)
	assert.Equal(t, "Deployment/ns-00/app: Deployment generation is 2, but latest observed generation is 1", wErr.Pending[0])
}

// A failed patch stops the restarts, and the result holds what ran.
func TestRolloutRestartFleetPatchFails(t *testing.T) {
	kube := bigFleet(12, true).Kube()
	calls := revkittest.FailNth(kube, "patch", "deployments", 3, apierrors.NewInternalError(errors.New("boom")))
	res, err := namespace.RolloutRestart(ctx, kube, namespace.RestartOptions{
		Selection: namespace.Selection{Selector: "fleet=yes"}, Concurrency: 1,
	})
	require.Error(t, err)
	assert.True(t, apierrors.IsInternalError(err))
	assert.Contains(t, err.Error(), "namespace.RolloutRestart: patch Deployment/ns-02/app")
	assert.Len(t, res.Workloads, 3, "with one request in flight nothing starts after the failure")
	assert.Equal(t, 3, calls())
}

func TestConcurrencyValidated(t *testing.T) {
	sel := namespace.Selection{Namespaces: []string{"shop"}}
	ro := namespace.RestartOptions{Selection: sel, Concurrency: -1}
	require.ErrorIs(t, ro.Validate(), revkit.ErrInvalidInput)
	mo := namespace.MigrateOptions{Selection: sel, Target: "1-25-0", Concurrency: -1}
	require.ErrorIs(t, mo.Validate(), revkit.ErrInvalidInput)
}

// Migrate patches many namespaces concurrently and reports them in order.
func TestMigrateFleet(t *testing.T) {
	kube := bigFleet(30, true).Kube()
	kube.ClearActions()
	res, err := namespace.Migrate(ctx, kube, namespace.MigrateOptions{Selection: namespace.Selection{Selector: "fleet=yes"}, Target: "1-25-0"})
	require.NoError(t, err)
	require.Len(t, res.Namespaces, 30)
	for i, n := range res.Namespaces {
		assert.Equal(t, fmt.Sprintf("ns-%02d", i), n.Name)
		assert.Equal(t, revkit.ActionUpdate, n.Action)
	}
	assert.Len(t, revkittest.Patches(kube), 30)
	got, err := revkittest.NamespaceInjection(ctx, kube)
	require.NoError(t, err)
	for i := range 30 {
		assert.Equal(t, "istio.io/rev=1-25-0", got[fmt.Sprintf("ns-%02d", i)])
	}
}

// A small selection waits with a watch per namespace too, so it sees a
// rollout finish without waiting for the next poll.
func TestRolloutRestartSmallSelectionWatches(t *testing.T) {
	kube := bigFleet(2, false).Kube()
	kube.ClearActions()
	stop := make(chan struct{})
	defer close(stop)
	go func() {
		for !hasWatch(kube) {
			time.Sleep(5 * time.Millisecond)
		}
		for {
			select {
			case <-stop:
				return
			case <-time.After(20 * time.Millisecond):
			}
			finish(kube, 2)
		}
	}()
	res, err := namespace.RolloutRestart(ctx, kube, namespace.RestartOptions{
		Selection: namespace.Selection{Namespaces: []string{"ns-00", "ns-01"}}, Kinds: []namespace.Kind{namespace.Deployment},
		Wait: true, Timeout: 10 * time.Second, PollInterval: time.Hour,
	})
	require.NoError(t, err)
	for _, w := range res.Workloads {
		assert.True(t, w.RolledOut)
	}
	assert.Equal(t, []string{"ns-00", "ns-01", "ns-00", "ns-01"}, listNamespaces(kube, "deployments"))
}
