package revkittest_test

import (
	"context"
	"errors"
	"syscall"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	utilnet "k8s.io/apimachinery/pkg/util/net"

	"github.com/revkit/revkit/revkittest"
)

var ctx = context.Background()

func TestClusterObjects(t *testing.T) {
	c := revkittest.NewCluster().WithRevision("1-24-0").WithTag("prod", "1-24-0").
		WithNamespace("shop", revkittest.Rev("prod")).
		WithDeployment("shop", "web", revkittest.Replicas(2), revkittest.OnRevision("1-24-0"))
	require.NoError(t, c.Err())
	kube := c.Kube()

	mwcs, err := kube.AdmissionregistrationV1().MutatingWebhookConfigurations().List(ctx, metav1.ListOptions{})
	require.NoError(t, err)
	var names []string
	for _, m := range mwcs.Items {
		names = append(names, m.Name)
	}
	assert.ElementsMatch(t, []string{"istio-sidecar-injector-1-24-0", "istio-revision-tag-prod"}, names)

	pods, err := kube.CoreV1().Pods("shop").List(ctx, metav1.ListOptions{})
	require.NoError(t, err)
	require.Len(t, pods.Items, 2)
	assert.Contains(t, pods.Items[0].Annotations["sidecar.istio.io/status"], `"revision":"1-24-0"`)
	assert.Equal(t, corev1.PodRunning, pods.Items[0].Status.Phase)

	inj, err := revkittest.NamespaceInjection(ctx, kube)
	require.NoError(t, err)
	assert.Equal(t, map[string]string{"shop": "istio.io/rev=prod"}, inj)

	// Objects come out namespaces first, so a fake tracker never sees an
	// object before its namespace.
	objs := c.Objects()
	_, first := objs[0].(*corev1.Namespace)
	assert.True(t, first)
}

func TestBuilderMisuse(t *testing.T) {
	c := revkittest.NewCluster().WithTag("prod", "1-24-0")
	require.Error(t, c.Err())
	assert.Panics(t, func() { c.Kube() }, "a broken fixture is a bug in the test")
}

func TestWritesAndFaults(t *testing.T) {
	kube := revkittest.NewCluster().WithRevision("1-24-0").
		WithNamespace("shop").WithDeployment("shop", "web").Kube()
	kube.ClearActions()
	revkittest.NoWrites(t, kube)

	boom := apierrors.NewInternalError(errors.New("boom"))
	calls := revkittest.FailNth(kube, "patch", "deployments", 2, boom)
	patch := []byte(`{"spec":{"template":{"metadata":{"annotations":{"kubectl.kubernetes.io/restartedAt":"now"}}}}}`)
	_, err := kube.AppsV1().Deployments("shop").Patch(ctx, "web", types.MergePatchType, patch, metav1.PatchOptions{})
	require.NoError(t, err)
	_, err = kube.AppsV1().Deployments("shop").Patch(ctx, "web", types.MergePatchType, patch, metav1.PatchOptions{DryRun: []string{"All"}})
	require.ErrorIs(t, err, boom)
	_, err = kube.AppsV1().Deployments("shop").Patch(ctx, "web", types.MergePatchType, patch, metav1.PatchOptions{})
	require.NoError(t, err)
	assert.Equal(t, 3, calls())
	assert.Equal(t, []string{
		"patch deployments shop/web",
		"patch deployments shop/web (dry-run)",
		"patch deployments shop/web",
	}, revkittest.Writes(kube))
	assert.Len(t, revkittest.Patches(kube), 3)

	restarted, err := revkittest.Restarted(ctx, kube)
	require.NoError(t, err)
	assert.Equal(t, []string{"Deployment/shop/web"}, restarted)

	revkittest.FailAlways(kube, "delete", "*", boom)
	err = kube.CoreV1().Namespaces().Delete(ctx, "shop", metav1.DeleteOptions{})
	require.ErrorIs(t, err, boom)

	ft := &fakeT{}
	revkittest.NoWrites(ft, kube)
	assert.True(t, ft.failed, "NoWrites must fail when there were writes")
}

type fakeT struct {
	testing.TB
	failed bool
}

func (f *fakeT) Helper()               {}
func (f *fakeT) Errorf(string, ...any) { f.failed = true }

func TestConnectionRefused(t *testing.T) {
	err := revkittest.ConnectionRefused()
	assert.True(t, utilnet.IsConnectionRefused(err), "client-go's own check sees a refused connection")
	assert.ErrorIs(t, err, syscall.ECONNREFUSED)
	assert.Contains(t, err.Error(), "connect: connection refused")
}
