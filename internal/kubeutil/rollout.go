package kubeutil

import (
	"fmt"

	appsv1 "k8s.io/api/apps/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"
	kstatus "sigs.k8s.io/cli-utils/pkg/kstatus/status"

	"github.com/revkit/revkit"
)

// RolloutStatus says where the rollout of a Deployment, StatefulSet or
// DaemonSet stands, as kstatus (sigs.k8s.io/cli-utils/pkg/kstatus/status)
// computes it. pending is why it has not rolled out, in kstatus's words
// ("Updated: 1/2"), and "" once kstatus calls it Current. err is a
// *revkit.RolloutFailedError (matching revkit.ErrRolloutFailed) once
// kstatus calls it Failed, naming the workload and the condition that
// reports the failure: waiting longer would not help. Any other error means
// the object cannot be judged (nil, or not one of the three kinds).
//
// When kstatus calls a workload Failed:
//
//   - a Deployment: when its Progressing condition has reason
//     ProgressDeadlineExceeded and the controller has observed the current
//     generation (what kubectl rollout status fails on). Before that, the
//     condition may be the previous rollout's, and the rollout is pending.
//   - a StatefulSet or a DaemonSet: never on its controller's word. Neither
//     controller sets a condition saying a rollout failed, so kstatus (like
//     kubectl rollout status) can only call them in progress, and a wait
//     for one that cannot roll out runs to its timeout. Only kstatus's own
//     Stalled condition, set True by something else, would fail one, as it
//     would any object.
//
// Current asks more than kubectl rollout status: every replica ready, none
// left over terminating, no deletion under way and, for a Deployment, the
// Available condition True and (with a progress deadline, which the
// apiserver always sets) Progressing with reason NewReplicaSetAvailable. A
// StatefulSet with the OnDelete update strategy is always Current. A status
// written by hand without the fields the controller sets with the replica
// counts is judged by the counts; see countsSuffice.
//
// The typed object is converted to unstructured, as kstatus reads it, with
// status.observedGeneration present even when it is 0: the typed object
// omits it then, and kstatus skips the generation check without it, which
// would take a condition left from an earlier rollout for the current
// one's.
func RolloutStatus(obj runtime.Object) (pending string, err error) {
	u, ref, err := toUnstructured(obj)
	if err != nil {
		return "", err
	}
	res, err := kstatus.Compute(u)
	if err != nil {
		return "", fmt.Errorf("status of %s: %w", ref, err)
	}
	switch res.Status {
	case kstatus.CurrentStatus:
		return "", nil
	case kstatus.FailedStatus:
		return "", failure(ref, u, res)
	case kstatus.InProgressStatus:
		if countsSuffice(obj, res) {
			return "", nil
		}
	}
	if res.Message != "" {
		return res.Message, nil
	}
	return res.Status.String(), nil
}

// toUnstructured converts a Deployment, StatefulSet or DaemonSet for
// kstatus, with its kind set (typed objects read from a clientset have
// none) and status.observedGeneration present.
func toUnstructured(obj runtime.Object) (*unstructured.Unstructured, revkit.ObjectRef, error) {
	var (
		ref      revkit.ObjectRef
		observed int64
	)
	switch o := obj.(type) {
	case *appsv1.Deployment:
		if o != nil {
			ref, observed = revkit.ObjectRef{Kind: "Deployment", Namespace: o.Namespace, Name: o.Name}, o.Status.ObservedGeneration
		}
	case *appsv1.StatefulSet:
		if o != nil {
			ref, observed = revkit.ObjectRef{Kind: "StatefulSet", Namespace: o.Namespace, Name: o.Name}, o.Status.ObservedGeneration
		}
	case *appsv1.DaemonSet:
		if o != nil {
			ref, observed = revkit.ObjectRef{Kind: "DaemonSet", Namespace: o.Namespace, Name: o.Name}, o.Status.ObservedGeneration
		}
	default:
		return nil, ref, fmt.Errorf("rollout status of a %T: only Deployments, StatefulSets and DaemonSets roll out", obj)
	}
	if ref.Kind == "" {
		return nil, ref, fmt.Errorf("rollout status of a nil %T", obj)
	}
	m, err := runtime.DefaultUnstructuredConverter.ToUnstructured(obj)
	if err != nil {
		return nil, ref, fmt.Errorf("status of %s: %w", ref, err)
	}
	u := &unstructured.Unstructured{Object: m}
	u.SetGroupVersionKind(appsv1.SchemeGroupVersion.WithKind(ref.Kind))
	if err := unstructured.SetNestedField(m, observed, "status", "observedGeneration"); err != nil {
		return nil, ref, fmt.Errorf("status of %s: %w", ref, err)
	}
	return u, ref, nil
}

// kstatus's reasons (its Reconciling condition's) for a workload whose
// replica counts are complete but which lacks what its controller writes
// with them; see countsSuffice.
const (
	reasonReplicaSetNotAvailable = "ReplicaSetNotAvailable"
	reasonDeploymentNotAvailable = "DeploymentNotAvailable"
	reasonLessCurrent            = "LessCurrent"
)

// countsSuffice reports whether kstatus calls a workload in progress only
// because its status lacks fields its controller always writes in the same
// update as the replica counts, all of which kstatus found complete. Such a
// status was written by hand (revkittest's workloads, the statuses tests
// set on fake clientsets), never by a controller, so on a real cluster this
// changes nothing; for hand-written statuses it keeps the readiness
// kubectl rollout status gives them, from the counts:
//
//   - a Deployment with no conditions at all: kstatus wants the Available
//     condition True and, with a progress deadline, Progressing with reason
//     NewReplicaSetAvailable, which the controller sets together with
//     status.observedGeneration and the counts.
//   - a StatefulSet without status.currentReplicas whose current and
//     update revisions agree: with one revision, every pod is at the current
//     one, and the controller reports currentReplicas equal to the replicas
//     kstatus has counted ready.
func countsSuffice(obj runtime.Object, res *kstatus.Result) bool {
	var reason string
	for _, c := range res.Conditions {
		if c.Type == kstatus.ConditionReconciling {
			reason = c.Reason
		}
	}
	switch o := obj.(type) {
	case *appsv1.Deployment:
		return (reason == reasonReplicaSetNotAvailable || reason == reasonDeploymentNotAvailable) && len(o.Status.Conditions) == 0
	case *appsv1.StatefulSet:
		return reason == reasonLessCurrent && o.Status.CurrentReplicas == 0 && o.Status.CurrentRevision == o.Status.UpdateRevision
	}
	return false
}

// failure turns kstatus's Failed into a *revkit.RolloutFailedError naming
// the object's own condition. kstatus reports the failure as a Stalled
// condition carrying the reason and message of the condition it read (for
// a Deployment, Progressing); that one is looked up by reason and message
// among the object's conditions, so the error names the condition as the
// object's controller set it.
func failure(ref revkit.ObjectRef, u *unstructured.Unstructured, res *kstatus.Result) error {
	e := &revkit.RolloutFailedError{Kind: ref.Kind, Namespace: ref.Namespace, Name: ref.Name,
		Condition: string(kstatus.ConditionStalled), Message: res.Message}
	for _, c := range res.Conditions {
		if c.Type == kstatus.ConditionStalled {
			e.Reason, e.Message = c.Reason, c.Message
			break
		}
	}
	if e.Reason == "" && e.Message == "" {
		return e
	}
	if own, err := kstatus.GetObjectWithConditions(u.Object); err == nil {
		for _, c := range own.Status.Conditions {
			if c.Reason == e.Reason && c.Message == e.Message {
				e.Condition = c.Type
				break
			}
		}
	}
	return e
}
