package kubeutil_test

import (
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/utils/ptr"
	kstatus "sigs.k8s.io/cli-utils/pkg/kstatus/status"

	"github.com/revkit/revkit"
	"github.com/revkit/revkit/internal/kubeutil"
)

const timedOutMessage = `ReplicaSet "web-7d9c" has timed out progressing.`

func progressing(status corev1.ConditionStatus, reason, message string) appsv1.DeploymentCondition {
	return appsv1.DeploymentCondition{Type: appsv1.DeploymentProgressing, Status: status, Reason: reason, Message: message}
}

// DeploymentFailed reports a rollout past its progress deadline, for the
// generation the controller has observed only, and agrees with kstatus.
func TestDeploymentFailed(t *testing.T) {
	for _, tc := range []struct {
		name       string
		generation int64
		observed   int64
		conditions []appsv1.DeploymentCondition
		want       *revkit.RolloutFailedError
		pending    string
	}{
		{name: "progress deadline exceeded", generation: 2, observed: 2,
			conditions: []appsv1.DeploymentCondition{
				{Type: appsv1.DeploymentAvailable, Status: corev1.ConditionTrue, Reason: "MinimumReplicasAvailable"},
				progressing(corev1.ConditionFalse, "ProgressDeadlineExceeded", timedOutMessage),
			},
			want: &revkit.RolloutFailedError{Kind: "Deployment", Namespace: "shop", Name: "web",
				Condition: "Progressing", Reason: "ProgressDeadlineExceeded", Message: timedOutMessage},
			pending: "progress deadline exceeded"},
		{name: "deadline exceeded before the change was observed", generation: 3, observed: 2,
			conditions: []appsv1.DeploymentCondition{progressing(corev1.ConditionFalse, "ProgressDeadlineExceeded", timedOutMessage)},
			pending:    "waiting for the controller to observe the change"},
		{name: "progressing", generation: 2, observed: 2,
			conditions: []appsv1.DeploymentCondition{progressing(corev1.ConditionTrue, "ReplicaSetUpdated", "")},
			pending:    "0 of 2 replicas updated"},
		{name: "no conditions", generation: 2, observed: 2, pending: "0 of 2 replicas updated"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			d := &appsv1.Deployment{
				ObjectMeta: metav1.ObjectMeta{Name: "web", Namespace: "shop", Generation: tc.generation},
				Spec:       appsv1.DeploymentSpec{Replicas: ptr.To[int32](2), ProgressDeadlineSeconds: ptr.To[int32](600)},
				Status:     appsv1.DeploymentStatus{ObservedGeneration: tc.observed, Replicas: 2, AvailableReplicas: 2, Conditions: tc.conditions},
			}
			err := kubeutil.DeploymentFailed(d)
			if tc.want == nil {
				assert.NoError(t, err)
			} else {
				var failed *revkit.RolloutFailedError
				require.ErrorAs(t, err, &failed)
				assert.Equal(t, tc.want, failed)
				assert.ErrorIs(t, err, revkit.ErrRolloutFailed)
				assert.Equal(t, "rollout of Deployment/shop/web failed: Progressing condition: ProgressDeadlineExceeded: "+timedOutMessage, err.Error())
			}
			assert.Equal(t, tc.pending, kubeutil.DeploymentPending(d), "a failed rollout is still pending")

			// kstatus, the library's reference for readiness elsewhere,
			// calls the same objects failed.
			obj, convErr := runtime.DefaultUnstructuredConverter.ToUnstructured(d)
			require.NoError(t, convErr)
			u := &unstructured.Unstructured{Object: obj}
			u.SetGroupVersionKind(appsv1.SchemeGroupVersion.WithKind("Deployment"))
			res, convErr := kstatus.Compute(u)
			require.NoError(t, convErr)
			assert.Equal(t, tc.want != nil, res.Status == kstatus.FailedStatus, "kstatus: %s", res.Status)
		})
	}
}
