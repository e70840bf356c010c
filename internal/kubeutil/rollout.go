package kubeutil

import (
	"fmt"

	appsv1 "k8s.io/api/apps/v1"
)

// DeploymentPending says why a Deployment has not rolled out, or "" when
// it has, following kubectl rollout status.
func DeploymentPending(d *appsv1.Deployment) string {
	if d.Generation > d.Status.ObservedGeneration {
		return "waiting for the controller to observe the change"
	}
	for _, c := range d.Status.Conditions {
		if c.Type == appsv1.DeploymentProgressing && c.Reason == "ProgressDeadlineExceeded" {
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

// StatefulSetPending is DeploymentPending for a StatefulSet.
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

// DaemonSetPending is DeploymentPending for a DaemonSet.
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
