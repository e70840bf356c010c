package namespace_test

import (
	"context"
	"errors"
	"fmt"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/watch"
	k8stesting "k8s.io/client-go/testing"
	"k8s.io/utils/ptr"

	"github.com/revkit/revkit"
	"github.com/revkit/revkit/namespace"
	"github.com/revkit/revkit/revkittest"
)

// The rollout wait rides out an apiserver that cannot answer for a while —
// on the watch path and on the polling one — and still stops at once on an
// error that retrying cannot fix.
func TestRolloutWaitRidesOutOutage(t *testing.T) {
	refused := revkittest.ConnectionRefused()
	unavailable := apierrors.NewServiceUnavailable("apiserver is shutting down")
	for _, tc := range []struct {
		name string
		// poll: watching is forbidden, so the wait polls; the outage
		// starts when the watch is refused. Otherwise it starts with the
		// restart patch.
		poll  bool
		fault error
		// recover: the apiserver answers again after two failed reads and
		// the rollout completes.
		recover bool
		check   func(t *testing.T, err error, failures int32)
	}{
		{name: "watch, connection refused, back", fault: refused, recover: true,
			check: func(t *testing.T, err error, failures int32) {
				require.NoError(t, err)
				assert.GreaterOrEqual(t, failures, int32(2))
			}},
		{name: "poll, 503, back", poll: true, fault: unavailable, recover: true,
			check: func(t *testing.T, err error, failures int32) {
				require.NoError(t, err)
				assert.GreaterOrEqual(t, failures, int32(2))
			}},
		{name: "watch, 503 until the timeout", fault: unavailable,
			check: func(t *testing.T, err error, failures int32) {
				var wErr *namespace.WaitError
				require.ErrorAs(t, err, &wErr)
				assert.ErrorIs(t, err, context.DeadlineExceeded)
				assert.True(t, apierrors.IsServiceUnavailable(wErr.LastError), "LastError: %v", wErr.LastError)
				assert.Contains(t, err.Error(), "latest read failed")
				assert.Equal(t, []string{"Deployment/shop/web: not seen yet"}, wErr.Pending)
			}},
		{name: "poll, connection refused until the timeout", poll: true, fault: refused,
			check: func(t *testing.T, err error, failures int32) {
				var wErr *namespace.WaitError
				require.ErrorAs(t, err, &wErr)
				assert.ErrorIs(t, err, context.DeadlineExceeded)
				assert.ErrorIs(t, wErr.LastError, refused)
				assert.Greater(t, failures, int32(2), "polled again after each failure")
			}},
		{name: "watch, 400 is not retried", fault: apierrors.NewBadRequest("bad selector"),
			check: func(t *testing.T, err error, failures int32) {
				var opErr *revkit.OpError
				require.ErrorAs(t, err, &opErr)
				assert.Equal(t, "list", opErr.Verb)
				assert.True(t, apierrors.IsBadRequest(err))
				assert.Equal(t, int32(1), failures)
			}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			web := &appsv1.Deployment{
				ObjectMeta: metav1.ObjectMeta{Name: "web", Namespace: "shop", Generation: 2},
				Spec: appsv1.DeploymentSpec{Replicas: ptr.To[int32](1),
					Selector: &metav1.LabelSelector{MatchLabels: map[string]string{"app": "web"}}},
				Status: appsv1.DeploymentStatus{ObservedGeneration: 1},
			}
			kube := cluster().WithObjects(web).Kube()
			var down atomic.Bool
			var failures atomic.Int32
			kube.PrependReactor("list", "deployments", func(k8stesting.Action) (bool, runtime.Object, error) {
				if down.Load() {
					failures.Add(1)
					return true, nil, tc.fault
				}
				return false, nil, nil
			})
			kube.PrependWatchReactor("deployments", func(k8stesting.Action) (bool, watch.Interface, error) {
				if tc.poll {
					down.Store(true)
					return true, nil, apierrors.NewForbidden(schemaGR("deployments"), "", errors.New("no watch"))
				}
				if down.Load() {
					failures.Add(1)
					return true, nil, tc.fault
				}
				return false, nil, nil
			})
			if !tc.poll {
				kube.PrependReactor("patch", "deployments", func(k8stesting.Action) (bool, runtime.Object, error) {
					down.Store(true)
					return false, nil, nil
				})
			}
			if tc.recover {
				go func() {
					for failures.Load() < 2 {
						time.Sleep(5 * time.Millisecond)
					}
					done := web.DeepCopy()
					done.Status = appsv1.DeploymentStatus{ObservedGeneration: 2, Replicas: 1, UpdatedReplicas: 1, ReadyReplicas: 1, AvailableReplicas: 1}
					_, _ = kube.AppsV1().Deployments("shop").UpdateStatus(ctx, done, metav1.UpdateOptions{})
					down.Store(false)
				}()
			}
			timeout := 10 * time.Second
			if !tc.recover {
				timeout = 600 * time.Millisecond
			}
			res, err := namespace.RolloutRestart(ctx, kube, namespace.RestartOptions{
				Selection: namespace.Selection{Namespaces: []string{"shop"}}, Wait: true,
				Timeout: timeout, PollInterval: 10 * time.Millisecond})
			tc.check(t, err, failures.Load())
			if tc.recover {
				assert.True(t, res.Workloads[0].RolledOut)
			}
		})
	}
}

// A Deployment past its progress deadline ends the wait at once with a
// *revkit.RolloutFailedError naming it and the condition — whether the wait
// watches each namespace, watches across the cluster or polls, and whether
// the failure is there when the wait starts or comes in while it watches —
// and the result still lists every workload restarted. A condition left
// from before the change, not yet observed, does not count. The failed
// Deployment is in the second namespace, which a wait over few namespaces
// watches after the first has rolled out.
func TestRolloutWaitFailsOnFailedRollout(t *testing.T) {
	const message = `ReplicaSet "stuck-5d4f8" has timed out progressing.`
	failed := appsv1.DeploymentStatus{ObservedGeneration: 2, Replicas: 2, UpdatedReplicas: 1, AvailableReplicas: 1,
		Conditions: []appsv1.DeploymentCondition{
			{Type: appsv1.DeploymentAvailable, Status: corev1.ConditionTrue, Reason: "MinimumReplicasAvailable"},
			{Type: appsv1.DeploymentProgressing, Status: corev1.ConditionFalse, Reason: "ProgressDeadlineExceeded", Message: message},
		}}
	for _, tc := range []struct {
		name string
		// namespaces of bigFleet, all rolled out; from ten on the wait
		// watches across the cluster.
		namespaces int
		// poll: watching is forbidden, so the wait polls.
		poll bool
		// late: the Deployment is pending when the wait starts and fails
		// while it is watched.
		late bool
		// stale: the controller has not observed the restart yet, so the
		// failure is the previous rollout's and the wait goes on.
		stale bool
	}{
		{name: "watch per namespace", namespaces: 2},
		{name: "watch per namespace, fails while watched", namespaces: 2, late: true},
		{name: "watch across the cluster", namespaces: 10},
		{name: "watch across the cluster, fails while watched", namespaces: 10, late: true},
		{name: "poll", namespaces: 2, poll: true},
		{name: "poll, many namespaces", namespaces: 10, poll: true},
		{name: "not observed yet", namespaces: 2, stale: true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			stuck := &appsv1.Deployment{
				ObjectMeta: metav1.ObjectMeta{Name: "stuck", Namespace: "ns-01", Generation: 2},
				Spec: appsv1.DeploymentSpec{Replicas: ptr.To[int32](2), ProgressDeadlineSeconds: ptr.To[int32](600),
					Selector: &metav1.LabelSelector{MatchLabels: map[string]string{"app": "stuck"}}},
				Status: *failed.DeepCopy(),
			}
			switch {
			case tc.late:
				stuck.Status = appsv1.DeploymentStatus{ObservedGeneration: 1}
			case tc.stale:
				stuck.Generation = 3
			}
			kube := bigFleet(tc.namespaces, true).WithObjects(stuck).Kube()
			if tc.poll {
				kube.PrependWatchReactor("*", func(k8stesting.Action) (bool, watch.Interface, error) {
					return true, nil, apierrors.NewForbidden(schemaGR("deployments"), "", errors.New("no watch"))
				})
			}
			if tc.late {
				// The fake drops events sent before a watch starts: fail
				// the rollout again and again once it is watched.
				stop := make(chan struct{})
				defer close(stop)
				go func() {
					for !hasWatch(kube) {
						time.Sleep(5 * time.Millisecond)
					}
					for {
						d := stuck.DeepCopy()
						d.Status = *failed.DeepCopy()
						_, _ = kube.AppsV1().Deployments("ns-01").UpdateStatus(ctx, d, metav1.UpdateOptions{})
						select {
						case <-stop:
							return
						case <-time.After(20 * time.Millisecond):
						}
					}
				}()
			}
			kube.ClearActions()
			timeout := 5 * time.Minute
			if tc.stale {
				timeout = 300 * time.Millisecond
			}
			// Bounds the test should the wait run to its timeout after all.
			cctx, cancel := context.WithTimeout(ctx, 30*time.Second)
			defer cancel()
			start := time.Now()
			res, err := namespace.RolloutRestart(cctx, kube, namespace.RestartOptions{
				Selection: namespace.Selection{Selector: "fleet=yes"}, Kinds: []namespace.Kind{namespace.Deployment},
				Wait: true, Timeout: timeout, PollInterval: 10 * time.Millisecond,
			})
			elapsed := time.Since(start)

			require.NotNil(t, res)
			require.Len(t, res.Workloads, tc.namespaces+1, "every workload restarted is listed")
			assert.Len(t, revkittest.Patches(kube), tc.namespaces+1)
			for _, w := range res.Workloads {
				assert.Equal(t, revkit.ActionUpdate, w.Action, w.Name)
				if w.Name == "stuck" {
					assert.False(t, w.RolledOut)
				}
			}
			if tc.stale {
				var wErr *namespace.WaitError
				require.ErrorAs(t, err, &wErr)
				assert.ErrorIs(t, err, context.DeadlineExceeded)
				assert.Contains(t, wErr.Pending, "Deployment/ns-01/stuck: Deployment generation is 3, but latest observed generation is 2")
				assert.NotErrorIs(t, err, revkit.ErrRolloutFailed)
				return
			}
			var fErr *revkit.RolloutFailedError
			require.ErrorAs(t, err, &fErr)
			assert.Equal(t, &revkit.RolloutFailedError{Kind: "Deployment", Namespace: "ns-01", Name: "stuck",
				Condition: "Progressing", Reason: "ProgressDeadlineExceeded", Message: message}, fErr)
			assert.ErrorIs(t, err, revkit.ErrRolloutFailed)
			var wErr *namespace.WaitError
			assert.False(t, errors.As(err, &wErr), "not a timeout")
			assert.Less(t, elapsed, 5*time.Second, "the wait ends at once, not at its %s timeout", timeout)
		})
	}
}

// The wait judges each kind by kstatus, on the watch path and the polling
// one alike, and names what it waits for. Among the workloads not rolled
// out: a StatefulSet whose extra pods, left from before a scale-down, still
// run (they may still carry the old sidecar), and a Deployment being
// deleted, both of which the replica counts alone would call rolled out. A
// StatefulSet or DaemonSet never fails the wait, whatever its conditions
// say: only the timeout ends it.
func TestRolloutWaitFollowsKstatus(t *testing.T) {
	sel := &metav1.LabelSelector{MatchLabels: map[string]string{"app": "w"}}
	meta := func(generation int64) metav1.ObjectMeta {
		return metav1.ObjectMeta{Name: "w", Namespace: "shop", Generation: generation}
	}
	sts := func(status appsv1.StatefulSetStatus) *appsv1.StatefulSet {
		if status.ObservedGeneration == 0 {
			status.ObservedGeneration = 2
		}
		return &appsv1.StatefulSet{ObjectMeta: meta(2),
			Spec: appsv1.StatefulSetSpec{Replicas: ptr.To[int32](2), Selector: sel}, Status: status}
	}
	for _, tc := range []struct {
		name string
		obj  runtime.Object
		kind namespace.Kind
		// pending is the reason the wait gives at its timeout.
		pending string
	}{
		{name: "StatefulSet not observed", kind: namespace.StatefulSet,
			obj: func() runtime.Object {
				s := sts(appsv1.StatefulSetStatus{Replicas: 2, ReadyReplicas: 2, CurrentReplicas: 2, UpdatedReplicas: 2})
				s.Generation = 3
				return s
			}(),
			pending: "StatefulSet generation is 3, but latest observed generation is 2"},
		{name: "StatefulSet not ready", kind: namespace.StatefulSet,
			obj:     sts(appsv1.StatefulSetStatus{Replicas: 2, ReadyReplicas: 1, CurrentReplicas: 2, UpdatedReplicas: 2}),
			pending: "Ready: 1/2"},
		{name: "StatefulSet updating", kind: namespace.StatefulSet,
			obj: sts(appsv1.StatefulSetStatus{Replicas: 2, ReadyReplicas: 2, CurrentReplicas: 1, UpdatedReplicas: 1,
				CurrentRevision: "w-1", UpdateRevision: "w-2"}),
			pending: "current: 1/2"},
		{name: "StatefulSet updated, revision not yet current", kind: namespace.StatefulSet,
			obj: sts(appsv1.StatefulSetStatus{Replicas: 2, ReadyReplicas: 2, CurrentReplicas: 2, UpdatedReplicas: 2,
				CurrentRevision: "w-1", UpdateRevision: "w-2"}),
			pending: "Waiting for updated revision to match current"},
		{name: "StatefulSet with a pod left from before a scale-down", kind: namespace.StatefulSet,
			obj: sts(appsv1.StatefulSetStatus{Replicas: 3, ReadyReplicas: 3, CurrentReplicas: 3, UpdatedReplicas: 3,
				CurrentRevision: "w-2", UpdateRevision: "w-2"}),
			pending: "Pending termination: 1"},
		{name: "StatefulSet reporting itself stalled: only the timeout ends the wait", kind: namespace.StatefulSet,
			obj: sts(appsv1.StatefulSetStatus{Replicas: 2, ReadyReplicas: 1, CurrentReplicas: 2, UpdatedReplicas: 2,
				Conditions: []appsv1.StatefulSetCondition{{Type: "Progressing", Status: corev1.ConditionFalse, Reason: "ProgressDeadlineExceeded"}}}),
			pending: "Ready: 1/2"},
		{name: "DaemonSet updating", kind: namespace.DaemonSet,
			obj: &appsv1.DaemonSet{ObjectMeta: meta(2), Spec: appsv1.DaemonSetSpec{Selector: sel},
				Status: appsv1.DaemonSetStatus{ObservedGeneration: 2, DesiredNumberScheduled: 3, CurrentNumberScheduled: 3,
					UpdatedNumberScheduled: 2, NumberReady: 3, NumberAvailable: 3}},
			pending: "Updated: 2/3"},
		{name: "Deployment being deleted", kind: namespace.Deployment,
			obj: &appsv1.Deployment{
				ObjectMeta: metav1.ObjectMeta{Name: "w", Namespace: "shop", Generation: 2,
					DeletionTimestamp: ptr.To(metav1.Now()), Finalizers: []string{"example.com/hold"}},
				Spec: appsv1.DeploymentSpec{Replicas: ptr.To[int32](1), Selector: sel},
				Status: appsv1.DeploymentStatus{ObservedGeneration: 2, Replicas: 1, UpdatedReplicas: 1, ReadyReplicas: 1, AvailableReplicas: 1,
					Conditions: []appsv1.DeploymentCondition{{Type: appsv1.DeploymentAvailable, Status: corev1.ConditionTrue}}}},
			pending: "Resource scheduled for deletion"},
	} {
		for _, poll := range []bool{false, true} {
			t.Run(fmt.Sprintf("%s, poll %v", tc.name, poll), func(t *testing.T) {
				kube := cluster().WithObjects(tc.obj).Kube()
				if poll {
					kube.PrependWatchReactor("*", func(k8stesting.Action) (bool, watch.Interface, error) {
						return true, nil, apierrors.NewForbidden(schemaGR("workloads"), "", errors.New("no watch"))
					})
				}
				res, err := namespace.RolloutRestart(ctx, kube, namespace.RestartOptions{
					Selection: namespace.Selection{Namespaces: []string{"shop"}}, Kinds: []namespace.Kind{tc.kind},
					Wait: true, Timeout: 100 * time.Millisecond, PollInterval: 5 * time.Millisecond,
				})
				var wErr *namespace.WaitError
				require.ErrorAs(t, err, &wErr)
				assert.ErrorIs(t, err, context.DeadlineExceeded)
				assert.NotErrorIs(t, err, revkit.ErrRolloutFailed)
				assert.Equal(t, []string{string(tc.kind) + "/shop/w: " + tc.pending}, wErr.Pending)
				require.Len(t, res.Workloads, 1)
				assert.False(t, res.Workloads[0].RolledOut)
			})
		}
	}
}
