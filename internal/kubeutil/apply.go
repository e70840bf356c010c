package kubeutil

import (
	"context"

	"k8s.io/apimachinery/pkg/api/equality"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/util/retry"

	"github.com/revkit/revkit"
)

// Client is the part of a typed client-go client that Apply needs.
type Client[T any] interface {
	Get(ctx context.Context, name string, opts metav1.GetOptions) (T, error)
	Create(ctx context.Context, obj T, opts metav1.CreateOptions) (T, error)
	Update(ctx context.Context, obj T, opts metav1.UpdateOptions) (T, error)
}

// Apply creates desired when it does not exist, or else updates the
// current object to next(current) when that differs from it, retrying on
// conflicts. It records the outcome (create, update or unchanged, with
// reason) and honours the recorder's dry-run mode.
func Apply[T any](ctx context.Context, rec *Recorder, c Client[T], ref revkit.ObjectRef, desired T, next func(cur T) T, reason string) error {
	return apply(ctx, rec, c, ref, &desired, next, reason)
}

// Modify is Apply for an object that must exist: a missing object is an
// error (wrapped NotFound) rather than created.
func Modify[T any](ctx context.Context, rec *Recorder, c Client[T], ref revkit.ObjectRef, next func(cur T) T, reason string) error {
	return apply(ctx, rec, c, ref, nil, next, reason)
}

func apply[T any](ctx context.Context, rec *Recorder, c Client[T], ref revkit.ObjectRef, desired *T, next func(cur T) T, reason string) error {
	return retry.RetryOnConflict(retry.DefaultRetry, func() error {
		cur, err := c.Get(ctx, ref.Name, metav1.GetOptions{})
		if apierrors.IsNotFound(err) && desired != nil {
			if rec.Sends() {
				if _, err := c.Create(ctx, *desired, rec.CreateOptions()); err != nil {
					return rec.Fail("create", ref, err)
				}
			}
			rec.Record(ctx, ref, revkit.ActionCreate, reason)
			return nil
		}
		if err != nil {
			return rec.Fail("get", ref, err)
		}
		upd := next(cur)
		if equality.Semantic.DeepEqual(cur, upd) {
			rec.Record(ctx, ref, revkit.ActionUnchanged, "")
			return nil
		}
		if rec.Sends() {
			if _, err := c.Update(ctx, upd, rec.UpdateOptions()); err != nil {
				if apierrors.IsConflict(err) {
					return err
				}
				return rec.Fail("update", ref, err)
			}
		}
		rec.Record(ctx, ref, revkit.ActionUpdate, reason)
		return nil
	})
}
