package kubeutil_test

import (
	"context"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	appsv1 "k8s.io/api/apps/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/client-go/kubernetes/fake"
	k8stesting "k8s.io/client-go/testing"
	"k8s.io/utils/ptr"

	"github.com/revkit/revkit"
	"github.com/revkit/revkit/internal/kubeutil"
	"github.com/revkit/revkit/revkittest"
)

func namedDeployment(name string, conds ...appsv1.DeploymentCondition) *appsv1.Deployment {
	return &appsv1.Deployment{
		ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: "shop", Generation: 2},
		Spec:       appsv1.DeploymentSpec{Replicas: ptr.To[int32](1)},
		Status: appsv1.DeploymentStatus{ObservedGeneration: 2, Replicas: 1, UpdatedReplicas: 1, ReadyReplicas: 1,
			AvailableReplicas: 1, Conditions: conds},
	}
}

func TestWaitDeployments(t *testing.T) {
	ctx := context.Background()
	ref := func(name string) revkit.ObjectRef {
		return revkit.ObjectRef{Kind: "Deployment", Namespace: "shop", Name: name}
	}

	// Rolled out, after a transient read error that is retried.
	kube := fake.NewClientset(namedDeployment("web", available, complete))
	calls := 0
	kube.PrependReactor("get", "deployments", func(k8stesting.Action) (bool, runtime.Object, error) {
		calls++
		if calls == 1 {
			return true, nil, revkittest.ConnectionRefused()
		}
		return false, nil, nil
	})
	require.NoError(t, kubeutil.WaitDeployments(ctx, kube, "test", []revkit.ObjectRef{ref("web")}, 5*time.Second, time.Millisecond))
	assert.Equal(t, 2, calls, "the transient failure was read again")

	// A failed rollout ends the wait at once, long before its timeout.
	kube = fake.NewClientset(namedDeployment("stuck", available, timedOut))
	start := time.Now()
	err := kubeutil.WaitDeployments(ctx, kube, "test", []revkit.ObjectRef{ref("stuck")}, time.Minute, time.Millisecond)
	var failed *revkit.RolloutFailedError
	require.ErrorAs(t, err, &failed)
	assert.Less(t, time.Since(start), 10*time.Second)

	// Still pending at the timeout: the error names it and why.
	pending := namedDeployment("slow", available)
	pending.Status.UpdatedReplicas = 0
	kube = fake.NewClientset(pending)
	err = kubeutil.WaitDeployments(ctx, kube, "test", []revkit.ObjectRef{ref("slow")}, 50*time.Millisecond, 10*time.Millisecond)
	require.ErrorIs(t, err, context.DeadlineExceeded)
	assert.Contains(t, err.Error(), "Deployment/shop/slow")

	// A Deployment that is gone is an error of its own.
	err = kubeutil.WaitDeployments(ctx, fake.NewClientset(), "test", []revkit.ObjectRef{ref("gone")}, time.Second, time.Millisecond)
	var opErr *revkit.OpError
	require.ErrorAs(t, err, &opErr)
}
