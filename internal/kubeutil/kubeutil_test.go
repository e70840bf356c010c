package kubeutil_test

import (
	"context"
	"errors"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/client-go/kubernetes/fake"
	k8stesting "k8s.io/client-go/testing"

	"github.com/revkit/revkit"
	"github.com/revkit/revkit/internal/kubeutil"
)

func TestPodReady(t *testing.T) {
	for _, tc := range []struct {
		name  string
		conds []corev1.PodCondition
		want  bool
	}{
		{"no conditions", nil, false},
		{"ready", []corev1.PodCondition{{Type: corev1.PodScheduled, Status: corev1.ConditionTrue}, {Type: corev1.PodReady, Status: corev1.ConditionTrue}}, true},
		{"not ready", []corev1.PodCondition{{Type: corev1.ContainersReady, Status: corev1.ConditionTrue}, {Type: corev1.PodReady, Status: corev1.ConditionFalse}}, false},
		{"unknown", []corev1.PodCondition{{Type: corev1.PodReady, Status: corev1.ConditionUnknown}}, false},
	} {
		p := &corev1.Pod{Status: corev1.PodStatus{Conditions: tc.conds}}
		assert.Equal(t, tc.want, kubeutil.PodReady(p), tc.name)
	}
}

func TestSelectNamespaces(t *testing.T) {
	ns := func(name string, labels map[string]string) *corev1.Namespace {
		return &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: name, Labels: labels}}
	}
	objs := []runtime.Object{ns("shop", map[string]string{"team": "a"}), ns("cart", map[string]string{"team": "a"}), ns("web", nil)}
	names := func(list []corev1.Namespace) []string {
		var out []string
		for _, n := range list {
			out = append(out, n.Name)
		}
		return out
	}
	ctx := context.Background()

	kube := fake.NewClientset(objs...)
	got, err := kubeutil.SelectNamespaces(ctx, kube, "op", []string{"web", "shop", "web"}, "team=a")
	require.NoError(t, err)
	assert.Equal(t, []string{"cart", "shop", "web"}, names(got), "the union, sorted, once each")
	assert.Len(t, kube.Actions(), 3, "one get per distinct name, one list")

	got, err = kubeutil.SelectNamespaces(ctx, kube, "op", nil, "")
	require.NoError(t, err)
	assert.Empty(t, got, "nothing named, no selector")

	_, err = kubeutil.SelectNamespaces(ctx, kube, "op", []string{"gone"}, "")
	var nf *revkit.NotFoundError
	require.ErrorAs(t, err, &nf)
	assert.Equal(t, "gone", nf.Name)

	kube.PrependReactor("list", "namespaces", func(k8stesting.Action) (bool, runtime.Object, error) {
		return true, nil, apierrors.NewForbidden(corev1.Resource("namespaces"), "", errors.New("no"))
	})
	_, err = kubeutil.SelectNamespaces(ctx, kube, "op", nil, "team=a")
	var opErr *revkit.OpError
	require.ErrorAs(t, err, &opErr)
	assert.Equal(t, "list", opErr.Verb)
	assert.True(t, apierrors.IsForbidden(err))
}
