package namespace_test

import (
	"context"
	"errors"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	appsv1 "k8s.io/api/apps/v1"
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
