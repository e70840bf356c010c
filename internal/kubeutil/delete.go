package kubeutil

import (
	"context"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"

	"github.com/revkit/revkit"
)

// Deletion is one object to delete, with the call that deletes it.
type Deletion struct {
	Ref revkit.ObjectRef
	// Order sorts deletions: injectors first (so nothing new is sent to a
	// dying istiod), then workloads, then what they use.
	Order  int
	Delete func(ctx context.Context, opts metav1.DeleteOptions) error
}

// DeleteMutatingWebhook deletes a MutatingWebhookConfiguration.
func DeleteMutatingWebhook(k kubernetes.Interface, name string) Deletion {
	return Deletion{Ref: revkit.ObjectRef{Kind: "MutatingWebhookConfiguration", Name: name}, Order: 0,
		Delete: func(ctx context.Context, o metav1.DeleteOptions) error {
			return k.AdmissionregistrationV1().MutatingWebhookConfigurations().Delete(ctx, name, o)
		}}
}

// DeleteValidatingWebhook deletes a ValidatingWebhookConfiguration.
func DeleteValidatingWebhook(k kubernetes.Interface, name string) Deletion {
	return Deletion{Ref: revkit.ObjectRef{Kind: "ValidatingWebhookConfiguration", Name: name}, Order: 2,
		Delete: func(ctx context.Context, o metav1.DeleteOptions) error {
			return k.AdmissionregistrationV1().ValidatingWebhookConfigurations().Delete(ctx, name, o)
		}}
}

// DeleteService deletes a Service.
func DeleteService(k kubernetes.Interface, ns, name string) Deletion {
	return Deletion{Ref: revkit.ObjectRef{Kind: "Service", Namespace: ns, Name: name}, Order: 1,
		Delete: func(ctx context.Context, o metav1.DeleteOptions) error {
			return k.CoreV1().Services(ns).Delete(ctx, name, o)
		}}
}

// Named builds a deletion from a typed client's Delete method.
func Named(kind, ns, name string, order int, del func(context.Context, string, metav1.DeleteOptions) error) Deletion {
	return Deletion{Ref: revkit.ObjectRef{Kind: kind, Namespace: ns, Name: name}, Order: order,
		Delete: func(ctx context.Context, o metav1.DeleteOptions) error { return del(ctx, name, o) }}
}

// DeleteAll deletes in order, recording each deletion; an object already
// gone counts as deleted. It stops at the first failure.
func DeleteAll(ctx context.Context, rec *Recorder, victims []Deletion) error {
	for _, v := range victims {
		if rec.Sends() {
			if err := v.Delete(ctx, rec.DeleteOptions()); err != nil && !apierrors.IsNotFound(err) {
				return rec.Fail("delete", v.Ref, err)
			}
		}
		rec.Record(ctx, v.Ref, revkit.ActionDelete, "")
	}
	return nil
}
