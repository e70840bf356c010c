// Package kubeutil holds small helpers for talking to the apiserver that every
// operation package shares: dry-run options, change recording and paging.
package kubeutil

import (
	"context"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"

	"github.com/revkit/revkit"
)

// Recorder collects the changes of one operation and reports each as an
// event.
type Recorder struct {
	Op      string
	Common  revkit.Common
	Changes []revkit.Change
}

// NewRecorder starts recording for the operation op.
func NewRecorder(op string, c revkit.Common) *Recorder {
	return &Recorder{Op: op, Common: c}
}

// Record notes what happened to obj and emits an event.
func (r *Recorder) Record(ctx context.Context, obj revkit.ObjectRef, action revkit.Action, reason string) {
	ch := revkit.Change{Object: obj, Action: action, Reason: reason}
	r.Changes = append(r.Changes, ch)
	msg := ch.String()
	if r.Common.DryRun != revkit.DryRunNone && action.Changed() {
		msg += " (dry run: " + r.Common.DryRun.String() + ")"
	}
	r.Common.Emit(ctx, revkit.Event{Kind: revkit.EventObject, Operation: r.Op, Object: obj, Action: action, Message: msg})
}

// Fail wraps an API error with the operation, verb and object.
func (r *Recorder) Fail(verb string, obj revkit.ObjectRef, err error) error {
	return &revkit.OpError{Op: r.Op, Verb: verb, Object: obj, Err: err}
}

// Sends reports whether writes should be sent to the apiserver.
func (r *Recorder) Sends() bool { return r.Common.DryRun.SendsRequests() }

// CreateOptions returns create options for the recorder's dry-run mode.
func (r *Recorder) CreateOptions() metav1.CreateOptions {
	return metav1.CreateOptions{DryRun: r.Common.DryRun.APIValue(), FieldManager: FieldManager}
}

// UpdateOptions returns update options for the recorder's dry-run mode.
func (r *Recorder) UpdateOptions() metav1.UpdateOptions {
	return metav1.UpdateOptions{DryRun: r.Common.DryRun.APIValue(), FieldManager: FieldManager}
}

// PatchOptions returns patch options for the recorder's dry-run mode.
func (r *Recorder) PatchOptions() metav1.PatchOptions {
	return metav1.PatchOptions{DryRun: r.Common.DryRun.APIValue(), FieldManager: FieldManager}
}

// DeleteOptions returns delete options for the recorder's dry-run mode.
func (r *Recorder) DeleteOptions() metav1.DeleteOptions {
	bg := metav1.DeletePropagationBackground
	return metav1.DeleteOptions{DryRun: r.Common.DryRun.APIValue(), PropagationPolicy: &bg}
}

// FieldManager names revkit in managedFields.
const FieldManager = "revkit"

// ClusterWideFrom is the number of selected namespaces from which revkit
// reads a kind with one paged list across the cluster rather than one list
// per namespace: below it, per-namespace calls fetch less; from it on, they
// cost a round trip per namespace. Callers fall back to per-namespace calls
// when listing across the cluster is forbidden.
const ClusterWideFrom = 10

// pageSize bounds each list request so that large clusters are read in
// pages rather than one huge response.
const pageSize = 500

// ListPods lists the pods of one namespace (all namespaces when ns is
// empty) page by page.
func ListPods(ctx context.Context, kube kubernetes.Interface, ns string, opts metav1.ListOptions) ([]corev1.Pod, error) {
	var out []corev1.Pod
	err := eachPodPage(ctx, kube, ns, opts, func(page []corev1.Pod) { out = append(out, page...) })
	if err != nil {
		return nil, err
	}
	return out, nil
}

// EachPod lists the pods of one namespace (all namespaces when ns is empty)
// page by page and calls fn with each. fn must not keep the pod: only one
// page is held at a time, so reading a large cluster costs the memory of
// what fn keeps.
func EachPod(ctx context.Context, kube kubernetes.Interface, ns string, opts metav1.ListOptions, fn func(*corev1.Pod)) error {
	return eachPodPage(ctx, kube, ns, opts, func(page []corev1.Pod) {
		for i := range page {
			fn(&page[i])
		}
	})
}

func eachPodPage(ctx context.Context, kube kubernetes.Interface, ns string, opts metav1.ListOptions, fn func([]corev1.Pod)) error {
	opts.Limit = pageSize
	for {
		list, err := kube.CoreV1().Pods(ns).List(ctx, opts)
		if err != nil {
			return err
		}
		fn(list.Items)
		if list.Continue == "" {
			return nil
		}
		opts.Continue = list.Continue
	}
}

// PodReady reports whether the pod's Ready condition is True.
func PodReady(p *corev1.Pod) bool {
	for _, c := range p.Status.Conditions {
		if c.Type == corev1.PodReady {
			return c.Status == corev1.ConditionTrue
		}
	}
	return false
}
