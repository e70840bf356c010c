package verify_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/rest"

	"github.com/revkit/revkit"
	"github.com/revkit/revkit/revkittest"
	"github.com/revkit/revkit/verify"
)

func istiodPod(name, rev string, phase corev1.PodPhase, ready bool, age time.Duration) *corev1.Pod {
	status := corev1.ConditionFalse
	if ready {
		status = corev1.ConditionTrue
	}
	return &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: "istio-system",
			Labels:            map[string]string{"app": "istiod", "istio.io/rev": rev},
			CreationTimestamp: metav1.NewTime(time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC).Add(-age))},
		Status: corev1.PodStatus{Phase: phase, Conditions: []corev1.PodCondition{{Type: corev1.PodReady, Status: status}}},
	}
}

func TestIstiodPod(t *testing.T) {
	ctx := context.Background()
	kube := revkittest.NewCluster().WithObjects(
		istiodPod("istiod-a-young", "1-25-0", corev1.PodRunning, true, time.Minute),
		istiodPod("istiod-a-old", "1-25-0", corev1.PodRunning, true, time.Hour),
		istiodPod("istiod-a-unready", "1-25-0", corev1.PodRunning, false, 2*time.Hour),
		istiodPod("istiod-a-pending", "1-25-0", corev1.PodPending, false, 3*time.Hour),
		istiodPod("istiod-b", "1-24-0", corev1.PodRunning, true, 4*time.Hour),
	).Kube()
	name, err := verify.IstiodPod(ctx, kube, "istio-system", "1-25-0")
	require.NoError(t, err)
	assert.Equal(t, "istiod-a-old", name, "the oldest running, ready pod of the revision")

	_, err = verify.IstiodPod(ctx, kube, "istio-system", "1-26-0")
	assert.ErrorIs(t, err, revkit.ErrNotFound)

	revkittest.FailAlways(kube, "list", "pods", apierrors.NewForbidden(corev1.Resource("pods"), "", errors.New("no")))
	_, err = verify.IstiodPod(ctx, kube, "istio-system", "1-25-0")
	assert.True(t, apierrors.IsForbidden(err))
}

func TestPortForwardSourceValidate(t *testing.T) {
	kube := revkittest.NewCluster().Kube()
	cfg := &rest.Config{Host: "https://127.0.0.1:1"}
	ok := verify.PortForwardSource{Rev: "1-25-0", Config: cfg, Kube: kube}
	require.NoError(t, ok.Validate())
	assert.Equal(t, "1-25-0", ok.Revision())
	for name, s := range map[string]verify.PortForwardSource{
		"no revision": {Config: cfg, Kube: kube},
		"no config":   {Rev: "1-25-0", Kube: kube},
		"bad port":    {Rev: "1-25-0", Config: cfg, Kube: kube, Port: 70000},
		"bad cp ns":   {Rev: "1-25-0", Config: cfg, Kube: kube, ControlPlaneNamespace: "Istio"},
		"dotted rev":  {Rev: "1.25.0", Config: cfg, Kube: kube},
	} {
		assert.ErrorIs(t, s.Validate(), revkit.ErrInvalidInput, name)
		_, err := s.Syncz(context.Background())
		assert.ErrorIs(t, err, revkit.ErrInvalidInput, name)
	}
	// No istiod pod: a typed error before any forwarding.
	_, err := ok.Syncz(context.Background())
	assert.ErrorIs(t, err, revkit.ErrNotFound)
}

// Every ready replica of the revision is a source, by pod name; none is a
// typed not-found, and RevisionSource validates like a port-forward.
func TestReplicaSources(t *testing.T) {
	ctx := context.Background()
	kube := revkittest.NewCluster().WithObjects(
		istiodPod("istiod-a-2", "1-25-0", corev1.PodRunning, true, time.Minute),
		istiodPod("istiod-a-1", "1-25-0", corev1.PodRunning, true, time.Hour),
		istiodPod("istiod-a-unready", "1-25-0", corev1.PodRunning, false, 2*time.Hour),
		istiodPod("istiod-b", "1-24-0", corev1.PodRunning, true, 4*time.Hour),
	).Kube()
	cfg := &rest.Config{Host: "https://127.0.0.1:1"}
	srcs, err := verify.ReplicaSources(ctx, kube, cfg, "", "1-25-0")
	require.NoError(t, err)
	var pods []string
	for _, s := range srcs {
		pf := s.(verify.PortForwardSource)
		assert.Equal(t, "1-25-0", pf.Revision())
		pods = append(pods, pf.Pod)
	}
	assert.Equal(t, []string{"istiod-a-1", "istiod-a-2"}, pods)
	_, err = verify.ReplicaSources(ctx, kube, cfg, "", "1-26-0")
	assert.ErrorIs(t, err, revkit.ErrNotFound)

	rs := verify.RevisionSource{Rev: "1-25-0", Config: cfg, Kube: kube}
	require.NoError(t, rs.Validate())
	_, err = verify.RevisionSource{Rev: "1-25-0", Kube: kube}.Syncz(ctx)
	assert.ErrorIs(t, err, revkit.ErrInvalidInput, "no config: refused before any request")
}
