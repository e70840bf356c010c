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
	"k8s.io/client-go/kubernetes/fake"

	"github.com/revkit/revkit"
	"github.com/revkit/revkit/internal/kubeutil"
	"github.com/revkit/revkit/revkittest"
)

func cm(data string) *corev1.ConfigMap {
	return &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Name: "c", Namespace: "ns"}, Data: map[string]string{"k": data}}
}

func setTo(v string) func(*corev1.ConfigMap) *corev1.ConfigMap {
	return func(cur *corev1.ConfigMap) *corev1.ConfigMap {
		n := cur.DeepCopy()
		n.Data = map[string]string{"k": v}
		return n
	}
}

func TestApply(t *testing.T) {
	ctx := context.Background()
	ref := revkit.ObjectRef{Kind: "ConfigMap", Namespace: "ns", Name: "c"}
	kube := fake.NewClientset()
	rec := kubeutil.NewRecorder("test", revkit.Common{})
	client := kube.CoreV1().ConfigMaps("ns")

	require.NoError(t, kubeutil.Apply(ctx, rec, client, ref, cm("a"), setTo("a"), "why"))
	require.NoError(t, kubeutil.Apply(ctx, rec, client, ref, cm("a"), setTo("a"), "why"))
	revkittest.FailNth(kube, "update", "configmaps", 1, apierrors.NewConflict(corev1.Resource("configmaps"), "c", errors.New("stale")))
	require.NoError(t, kubeutil.Apply(ctx, rec, client, ref, cm("b"), setTo("b"), "why"))
	var actions []revkit.Action
	for _, c := range rec.Changes {
		actions = append(actions, c.Action)
	}
	assert.Equal(t, []revkit.Action{revkit.ActionCreate, revkit.ActionUnchanged, revkit.ActionUpdate}, actions)
	got, err := client.Get(ctx, "c", metav1.GetOptions{})
	require.NoError(t, err)
	assert.Equal(t, "b", got.Data["k"], "the update was retried after the conflict")

	// A client dry run reads but does not write.
	kube.ClearActions()
	dry := kubeutil.NewRecorder("test", revkit.Common{DryRun: revkit.DryRunClient})
	require.NoError(t, kubeutil.Apply(ctx, dry, client, ref, cm("c"), setTo("c"), ""))
	assert.Equal(t, revkit.ActionUpdate, dry.Changes[0].Action)
	revkittest.NoWrites(t, kube)

	// Modify never creates.
	missing := revkit.ObjectRef{Kind: "ConfigMap", Namespace: "ns", Name: "gone"}
	err = kubeutil.Modify(ctx, rec, kube.CoreV1().ConfigMaps("ns"), missing, setTo("x"), "")
	assert.True(t, apierrors.IsNotFound(err))
	var opErr *revkit.OpError
	require.ErrorAs(t, err, &opErr)
	assert.Equal(t, "get", opErr.Verb)

	// Other errors carry the verb.
	revkittest.FailAlways(kube, "update", "configmaps", apierrors.NewInternalError(errors.New("boom")))
	err = kubeutil.Apply(ctx, rec, client, ref, cm("d"), setTo("d"), "")
	require.ErrorAs(t, err, &opErr)
	assert.Equal(t, "update", opErr.Verb)
}
