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

var (
	available = appsv1.DeploymentCondition{Type: appsv1.DeploymentAvailable, Status: corev1.ConditionTrue, Reason: "MinimumReplicasAvailable"}
	// complete is what the Deployment controller sets once a rollout is
	// done.
	complete = progressing(corev1.ConditionTrue, "NewReplicaSetAvailable", `ReplicaSet "web-7d9c" has successfully progressed.`)
	timedOut = progressing(corev1.ConditionFalse, "ProgressDeadlineExceeded", timedOutMessage)
)

// rolloutCase is one workload, what RolloutStatus says of it, and what
// kstatus.Compute says of the same object with its kind set, as a caller
// converting it by hand would get it.
type rolloutCase struct {
	name string
	obj  runtime.Object
	// pending is RolloutStatus's reason; "" with failed nil: rolled out.
	pending string
	failed  *revkit.RolloutFailedError
	// kstatus is kstatus.Compute's status. It differs from RolloutStatus's
	// verdict only where a case says why.
	kstatus kstatus.Status
}

func checkRollout(t *testing.T, tc rolloutCase) {
	t.Helper()
	pending, err := kubeutil.RolloutStatus(tc.obj)
	assert.Equal(t, tc.pending, pending)
	if tc.failed == nil {
		require.NoError(t, err)
	} else {
		var failed *revkit.RolloutFailedError
		require.ErrorAs(t, err, &failed)
		assert.Equal(t, tc.failed, failed)
		assert.ErrorIs(t, err, revkit.ErrRolloutFailed)
	}

	obj, err := runtime.DefaultUnstructuredConverter.ToUnstructured(tc.obj)
	require.NoError(t, err)
	u := &unstructured.Unstructured{Object: obj}
	kind := "Deployment"
	switch tc.obj.(type) {
	case *appsv1.StatefulSet:
		kind = "StatefulSet"
	case *appsv1.DaemonSet:
		kind = "DaemonSet"
	}
	u.SetGroupVersionKind(appsv1.SchemeGroupVersion.WithKind(kind))
	res, err := kstatus.Compute(u)
	require.NoError(t, err)
	assert.Equal(t, tc.kstatus, res.Status, "kstatus: %s", res.Message)
}

// deployment is web in shop: 2 replicas wanted, a progress deadline (the
// apiserver defaults one), generation 2 observed unless changed.
func deployment(change func(*appsv1.Deployment)) *appsv1.Deployment {
	d := &appsv1.Deployment{
		ObjectMeta: metav1.ObjectMeta{Name: "web", Namespace: "shop", Generation: 2},
		Spec:       appsv1.DeploymentSpec{Replicas: ptr.To[int32](2), ProgressDeadlineSeconds: ptr.To[int32](600)},
		Status: appsv1.DeploymentStatus{ObservedGeneration: 2, Replicas: 2, UpdatedReplicas: 2, ReadyReplicas: 2, AvailableReplicas: 2,
			Conditions: []appsv1.DeploymentCondition{available, complete}},
	}
	change(d)
	return d
}

// A Deployment past its progress deadline is failed for the generation the
// controller has observed only, with an error naming it and the
// Progressing condition; otherwise RolloutStatus follows kstatus, except
// for statuses no controller writes.
func TestRolloutStatusDeployment(t *testing.T) {
	failed := &revkit.RolloutFailedError{Kind: "Deployment", Namespace: "shop", Name: "web",
		Condition: "Progressing", Reason: "ProgressDeadlineExceeded", Message: timedOutMessage}
	for _, tc := range []rolloutCase{
		{name: "rolled out", obj: deployment(func(*appsv1.Deployment) {}), kstatus: kstatus.CurrentStatus},
		{name: "progress deadline exceeded",
			obj: deployment(func(d *appsv1.Deployment) {
				d.Status.UpdatedReplicas, d.Status.Replicas = 1, 3
				d.Status.Conditions = []appsv1.DeploymentCondition{available, timedOut}
			}),
			failed: failed, kstatus: kstatus.FailedStatus},
		{name: "progress deadline exceeded, all replicas available",
			obj: deployment(func(d *appsv1.Deployment) {
				d.Status.Conditions = []appsv1.DeploymentCondition{available, timedOut}
			}),
			failed: failed, kstatus: kstatus.FailedStatus},
		{name: "deadline exceeded before the change was observed",
			obj: deployment(func(d *appsv1.Deployment) {
				d.Generation = 3
				d.Status.Conditions = []appsv1.DeploymentCondition{available, timedOut}
			}),
			pending: "Deployment generation is 3, but latest observed generation is 2", kstatus: kstatus.InProgressStatus},
		// The typed object omits an observedGeneration of 0, and kstatus
		// skips the generation check without one: it would take the
		// condition for this generation's.
		{name: "deadline exceeded, no generation observed yet",
			obj: deployment(func(d *appsv1.Deployment) {
				d.Generation, d.Status.ObservedGeneration = 1, 0
				d.Status.Conditions = []appsv1.DeploymentCondition{timedOut}
			}),
			pending: "Deployment generation is 1, but latest observed generation is 0", kstatus: kstatus.FailedStatus},
		{name: "updating",
			obj: deployment(func(d *appsv1.Deployment) {
				d.Status.Replicas, d.Status.UpdatedReplicas, d.Status.AvailableReplicas = 3, 1, 2
				d.Status.Conditions = []appsv1.DeploymentCondition{available, progressing(corev1.ConditionTrue, "ReplicaSetUpdated", "")}
			}),
			pending: "Updated: 1/2", kstatus: kstatus.InProgressStatus},
		{name: "old replicas terminating",
			obj: deployment(func(d *appsv1.Deployment) {
				d.Status.Replicas = 3
				d.Status.Conditions = []appsv1.DeploymentCondition{available, progressing(corev1.ConditionTrue, "ReplicaSetUpdated", "")}
			}),
			pending: "Pending termination: 1", kstatus: kstatus.InProgressStatus},
		{name: "updated replicas not available",
			obj: deployment(func(d *appsv1.Deployment) {
				d.Status.AvailableReplicas, d.Status.ReadyReplicas = 1, 1
				d.Status.Conditions = []appsv1.DeploymentCondition{available, progressing(corev1.ConditionTrue, "ReplicaSetUpdated", "")}
			}),
			pending: "Available: 1/2", kstatus: kstatus.InProgressStatus},
		// kubectl rollout status would be done here; the controller marks
		// the rollout complete in the same status update as the counts, so
		// on a cluster this is a status between two rollouts' updates.
		{name: "counts complete, rollout not marked complete",
			obj: deployment(func(d *appsv1.Deployment) {
				d.Status.Conditions = []appsv1.DeploymentCondition{available, progressing(corev1.ConditionTrue, "ReplicaSetUpdated", "")}
			}),
			pending: "ReplicaSet not Available", kstatus: kstatus.InProgressStatus},
		// Paused, the controller sets Progressing Unknown/DeploymentPaused:
		// kstatus never calls a paused Deployment rolled out.
		{name: "paused",
			obj: deployment(func(d *appsv1.Deployment) {
				d.Spec.Paused = true
				d.Status.Conditions = []appsv1.DeploymentCondition{available, progressing(corev1.ConditionUnknown, "DeploymentPaused", "")}
			}),
			pending: "ReplicaSet not Available", kstatus: kstatus.InProgressStatus},
		{name: "not available",
			obj: deployment(func(d *appsv1.Deployment) {
				d.Status.Conditions = []appsv1.DeploymentCondition{complete,
					{Type: appsv1.DeploymentAvailable, Status: corev1.ConditionFalse, Reason: "MinimumReplicasUnavailable"}}
			}),
			pending: "Deployment not Available", kstatus: kstatus.InProgressStatus},
		{name: "being deleted",
			obj: deployment(func(d *appsv1.Deployment) {
				d.DeletionTimestamp = ptr.To(metav1.Now())
			}),
			pending: "Resource scheduled for deletion", kstatus: kstatus.TerminatingStatus},
		// A status written by hand, as revkittest and tests write them:
		// counts without the conditions the controller sets with them.
		{name: "hand-written status, complete",
			obj: deployment(func(d *appsv1.Deployment) {
				d.Spec.ProgressDeadlineSeconds = nil
				d.Status.Conditions = nil
			}),
			kstatus: kstatus.InProgressStatus},
		{name: "hand-written status with a progress deadline, complete",
			obj: deployment(func(d *appsv1.Deployment) {
				d.Status.Conditions = nil
			}),
			kstatus: kstatus.InProgressStatus},
		{name: "hand-written status, not ready",
			obj: deployment(func(d *appsv1.Deployment) {
				d.Status.Conditions, d.Status.ReadyReplicas = nil, 0
			}),
			pending: "Ready: 0/2", kstatus: kstatus.InProgressStatus},
	} {
		t.Run(tc.name, func(t *testing.T) { checkRollout(t, tc) })
	}
}

// A failed rollout's error names the workload and the condition.
func TestRolloutFailedErrorMessage(t *testing.T) {
	_, err := kubeutil.RolloutStatus(deployment(func(d *appsv1.Deployment) {
		d.Status.Conditions = []appsv1.DeploymentCondition{available, timedOut}
	}))
	require.Error(t, err)
	assert.Equal(t, "rollout of Deployment/shop/web failed: Progressing condition: ProgressDeadlineExceeded: "+timedOutMessage, err.Error())
}

// statefulSet is db in shop: 2 replicas, rolled out at revision db-2.
func statefulSet(change func(*appsv1.StatefulSet)) *appsv1.StatefulSet {
	s := &appsv1.StatefulSet{
		ObjectMeta: metav1.ObjectMeta{Name: "db", Namespace: "shop", Generation: 2},
		Spec: appsv1.StatefulSetSpec{Replicas: ptr.To[int32](2),
			UpdateStrategy: appsv1.StatefulSetUpdateStrategy{Type: appsv1.RollingUpdateStatefulSetStrategyType}},
		Status: appsv1.StatefulSetStatus{ObservedGeneration: 2, Replicas: 2, ReadyReplicas: 2, AvailableReplicas: 2,
			CurrentReplicas: 2, UpdatedReplicas: 2, CurrentRevision: "db-2", UpdateRevision: "db-2"},
	}
	change(s)
	return s
}

// daemonSet is agent in shop, on 3 nodes, rolled out.
func daemonSet(change func(*appsv1.DaemonSet)) *appsv1.DaemonSet {
	d := &appsv1.DaemonSet{
		ObjectMeta: metav1.ObjectMeta{Name: "agent", Namespace: "shop", Generation: 2},
		Status: appsv1.DaemonSetStatus{ObservedGeneration: 2, DesiredNumberScheduled: 3, CurrentNumberScheduled: 3,
			UpdatedNumberScheduled: 3, NumberReady: 3, NumberAvailable: 3},
	}
	change(d)
	return d
}

// StatefulSets and DaemonSets are never failed by their controllers' word:
// those report no failed rollout, so kstatus (like kubectl rollout status)
// only calls them in progress. Only kstatus's own Stalled condition fails
// one.
func TestRolloutStatusStatefulSetAndDaemonSet(t *testing.T) {
	for _, tc := range []rolloutCase{
		{name: "StatefulSet with a condition like a Deployment's failure",
			obj: statefulSet(func(s *appsv1.StatefulSet) {
				s.Status.ReadyReplicas = 1
				s.Status.Conditions = []appsv1.StatefulSetCondition{{Type: "Progressing", Status: corev1.ConditionFalse,
					Reason: "ProgressDeadlineExceeded", Message: "timed out"}}
			}),
			pending: "Ready: 1/2", kstatus: kstatus.InProgressStatus},
		{name: "StatefulSet marked Stalled by something else",
			obj: statefulSet(func(s *appsv1.StatefulSet) {
				s.Status.Conditions = []appsv1.StatefulSetCondition{{Type: "Stalled", Status: corev1.ConditionTrue,
					Reason: "HeldBack", Message: "held back by example.com/guard"}}
			}),
			failed: &revkit.RolloutFailedError{Kind: "StatefulSet", Namespace: "shop", Name: "db",
				Condition: "Stalled", Reason: "HeldBack", Message: "held back by example.com/guard"},
			kstatus: kstatus.FailedStatus},
		{name: "StatefulSet rolled out", obj: statefulSet(func(*appsv1.StatefulSet) {}), kstatus: kstatus.CurrentStatus},
		{name: "StatefulSet not observed",
			obj:     statefulSet(func(s *appsv1.StatefulSet) { s.Generation = 3 }),
			pending: "StatefulSet generation is 3, but latest observed generation is 2", kstatus: kstatus.InProgressStatus},
		{name: "StatefulSet not ready",
			obj:     statefulSet(func(s *appsv1.StatefulSet) { s.Status.ReadyReplicas = 1 }),
			pending: "Ready: 1/2", kstatus: kstatus.InProgressStatus},
		{name: "StatefulSet updating",
			obj: statefulSet(func(s *appsv1.StatefulSet) {
				s.Status.UpdateRevision, s.Status.UpdatedReplicas, s.Status.CurrentReplicas = "db-3", 1, 1
			}),
			pending: "current: 1/2", kstatus: kstatus.InProgressStatus},
		{name: "StatefulSet updated, revision not yet current",
			obj:     statefulSet(func(s *appsv1.StatefulSet) { s.Status.UpdateRevision = "db-3" }),
			pending: "Waiting for updated revision to match current", kstatus: kstatus.InProgressStatus},
		{name: "StatefulSet partitioned, partition updated",
			obj: statefulSet(func(s *appsv1.StatefulSet) {
				s.Spec.UpdateStrategy.RollingUpdate = &appsv1.RollingUpdateStatefulSetStrategy{Partition: ptr.To[int32](1)}
				s.Status.UpdateRevision, s.Status.UpdatedReplicas, s.Status.CurrentReplicas = "db-3", 1, 1
			}),
			kstatus: kstatus.CurrentStatus},
		{name: "StatefulSet OnDelete",
			obj: statefulSet(func(s *appsv1.StatefulSet) {
				s.Spec.UpdateStrategy.Type = appsv1.OnDeleteStatefulSetStrategyType
				s.Status.UpdateRevision, s.Status.UpdatedReplicas = "db-3", 0
			}),
			kstatus: kstatus.CurrentStatus},
		// revkittest's StatefulSets have no currentReplicas; with one
		// revision every pod is at the current one.
		{name: "StatefulSet hand-written status, complete",
			obj:     statefulSet(func(s *appsv1.StatefulSet) { s.Status.CurrentReplicas = 0 }),
			kstatus: kstatus.InProgressStatus},
		{name: "StatefulSet hand-written status, updating",
			obj: statefulSet(func(s *appsv1.StatefulSet) {
				s.Status.CurrentReplicas, s.Status.UpdateRevision = 0, "db-3"
			}),
			pending: "current: 0/2", kstatus: kstatus.InProgressStatus},
		{name: "DaemonSet rolled out", obj: daemonSet(func(*appsv1.DaemonSet) {}), kstatus: kstatus.CurrentStatus},
		{name: "DaemonSet never observed",
			obj: daemonSet(func(d *appsv1.DaemonSet) {
				d.Generation = 1
				d.Status = appsv1.DaemonSetStatus{}
			}),
			pending: "DaemonSet generation is 1, but latest observed generation is 0", kstatus: kstatus.InProgressStatus},
		{name: "DaemonSet updating",
			obj:     daemonSet(func(d *appsv1.DaemonSet) { d.Status.UpdatedNumberScheduled = 1 }),
			pending: "Updated: 1/3", kstatus: kstatus.InProgressStatus},
		{name: "DaemonSet not available",
			obj:     daemonSet(func(d *appsv1.DaemonSet) { d.Status.NumberAvailable = 2 }),
			pending: "Available: 2/3", kstatus: kstatus.InProgressStatus},
		{name: "DaemonSet not ready",
			obj:     daemonSet(func(d *appsv1.DaemonSet) { d.Status.NumberReady = 2 }),
			pending: "Ready: 2/3", kstatus: kstatus.InProgressStatus},
	} {
		t.Run(tc.name, func(t *testing.T) { checkRollout(t, tc) })
	}
}

// RolloutStatus reads the three kinds that roll out, and refuses anything
// else, nil included, with an error rather than a panic.
func TestRolloutStatusRefuses(t *testing.T) {
	for _, obj := range []runtime.Object{
		nil, (*appsv1.Deployment)(nil), (*appsv1.StatefulSet)(nil), (*appsv1.DaemonSet)(nil), &corev1.Pod{},
	} {
		pending, err := kubeutil.RolloutStatus(obj)
		assert.Error(t, err, "%T", obj)
		assert.NotErrorIs(t, err, revkit.ErrRolloutFailed)
		assert.Empty(t, pending)
	}
}
