package namespace

import (
	"context"
	"errors"
	"testing"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes/fake"
)

// The informer behind the rollout wait asks for a list or a watch again as
// the wait ends: with the context already done, listWatch must answer with
// an error, never with nothing at all (the informer would use a nil
// watcher), and must not end the wait with a failure of its own.
func TestListWatchAfterContextEnds(t *testing.T) {
	w := &waiter{kube: fake.NewClientset(), pending: map[string]string{}}
	var stopped error
	lw := w.listWatch("shop", Deployment, kindAPIs[Deployment], func(cause error) { stopped = cause })
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	wi, err := lw.WatchFuncWithContext(ctx, metav1.ListOptions{})
	if wi != nil || !errors.Is(err, context.Canceled) {
		t.Errorf("watch after the end = %v, %v; want no watcher and context.Canceled", wi, err)
	}
	l, err := lw.ListWithContextFunc(ctx, metav1.ListOptions{})
	if l != nil || !errors.Is(err, context.Canceled) {
		t.Errorf("list after the end = %v, %v; want no list and context.Canceled", l, err)
	}
	if stopped != nil {
		t.Errorf("the wait was stopped with %v", stopped)
	}
	// While ctx lives, both answer.
	if _, err := lw.WatchFuncWithContext(context.Background(), metav1.ListOptions{}); err != nil {
		t.Errorf("watch: %v", err)
	}
	if l, err := lw.ListWithContextFunc(context.Background(), metav1.ListOptions{}); err != nil || l == nil {
		t.Errorf("list = %v, %v", l, err)
	}
}
