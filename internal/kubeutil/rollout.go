package kubeutil

import (
	"fmt"

	appsv1 "k8s.io/api/apps/v1"

	"github.com/revkit/revkit"
)

// progressDeadlineExceeded is the reason the Deployment controller gives
// the Progressing condition (with status False) once a rollout has made no
// progress for spec.progressDeadlineSeconds; the controller's
// deploymentutil.TimedOutReason.
const progressDeadlineExceeded = "ProgressDeadlineExceeded"

// DeploymentFailed returns a *revkit.RolloutFailedError when the
// Deployment's controller has given up on its rollout, else nil. It follows
// kubectl rollout status: the Progressing condition has reason
// ProgressDeadlineExceeded and the controller has observed the current
// generation. Until it has, the condition may be left from the rollout
// before, which a restart replaces. Waits check it before
// DeploymentPending, which counts a failed rollout as pending.
//
// The check is the one kstatus makes (status.Compute gives FailedStatus for
// the same objects; see the test), done on the typed object: kstatus would
// need each object converted to unstructured with its kind set by hand, and
// reports the failure as a Stalled condition rather than the Deployment's
// own.
func DeploymentFailed(d *appsv1.Deployment) error {
	if d.Generation > d.Status.ObservedGeneration {
		return nil
	}
	for _, c := range d.Status.Conditions {
		if c.Type == appsv1.DeploymentProgressing && c.Reason == progressDeadlineExceeded {
			return &revkit.RolloutFailedError{Kind: "Deployment", Namespace: d.Namespace, Name: d.Name,
				Condition: string(c.Type), Reason: c.Reason, Message: c.Message}
		}
	}
	return nil
}

// DeploymentPending says why a Deployment has not rolled out, or "" when
// it has, following kubectl rollout status. A rollout past its progress
// deadline is pending with that reason; DeploymentFailed tells it apart.
func DeploymentPending(d *appsv1.Deployment) string {
	if d.Generation > d.Status.ObservedGeneration {
		return "waiting for the controller to observe the change"
	}
	for _, c := range d.Status.Conditions {
		if c.Type == appsv1.DeploymentProgressing && c.Reason == progressDeadlineExceeded {
			return "progress deadline exceeded"
		}
	}
	want := int32(1)
	if d.Spec.Replicas != nil {
		want = *d.Spec.Replicas
	}
	switch {
	case d.Status.UpdatedReplicas < want:
		return fmt.Sprintf("%d of %d replicas updated", d.Status.UpdatedReplicas, want)
	case d.Status.Replicas > d.Status.UpdatedReplicas:
		return fmt.Sprintf("%d old replicas pending termination", d.Status.Replicas-d.Status.UpdatedReplicas)
	case d.Status.AvailableReplicas < d.Status.UpdatedReplicas:
		return fmt.Sprintf("%d of %d updated replicas available", d.Status.AvailableReplicas, d.Status.UpdatedReplicas)
	}
	return ""
}

// StatefulSetPending is DeploymentPending for a StatefulSet. A StatefulSet
// has no condition that says its rollout failed (kubectl rollout status
// waits on it for ever), so it is only ever pending.
func StatefulSetPending(s *appsv1.StatefulSet) string {
	if s.Generation > s.Status.ObservedGeneration {
		return "waiting for the controller to observe the change"
	}
	want := int32(1)
	if s.Spec.Replicas != nil {
		want = *s.Spec.Replicas
	}
	if s.Status.ReadyReplicas < want {
		return fmt.Sprintf("%d of %d pods ready", s.Status.ReadyReplicas, want)
	}
	if ru := s.Spec.UpdateStrategy.RollingUpdate; ru != nil && ru.Partition != nil && *ru.Partition > 0 {
		if s.Status.UpdatedReplicas < want-*ru.Partition {
			return fmt.Sprintf("%d of %d partitioned pods updated", s.Status.UpdatedReplicas, want-*ru.Partition)
		}
		return ""
	}
	if s.Status.UpdateRevision != s.Status.CurrentRevision {
		return fmt.Sprintf("%d of %d pods updated", s.Status.UpdatedReplicas, want)
	}
	return ""
}

// DaemonSetPending is DeploymentPending for a DaemonSet; like a
// StatefulSet, a DaemonSet has no failed state.
func DaemonSetPending(d *appsv1.DaemonSet) string {
	if d.Generation > d.Status.ObservedGeneration {
		return "waiting for the controller to observe the change"
	}
	if d.Status.UpdatedNumberScheduled < d.Status.DesiredNumberScheduled {
		return fmt.Sprintf("%d of %d pods updated", d.Status.UpdatedNumberScheduled, d.Status.DesiredNumberScheduled)
	}
	if d.Status.NumberAvailable < d.Status.DesiredNumberScheduled {
		return fmt.Sprintf("%d of %d pods available", d.Status.NumberAvailable, d.Status.DesiredNumberScheduled)
	}
	return ""
}
