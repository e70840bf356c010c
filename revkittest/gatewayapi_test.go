package revkittest_test

import (
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/revkit/revkit/revkittest"
)

func TestGatewayAPIObjects(t *testing.T) {
	c := revkittest.NewCluster().WithRevision("1-24-0").WithTag("prod", "1-24-0").
		WithNamespace("istio-ingress").
		WithAPIGateway("istio-ingress", "web", "prod").
		WithAmbientNamespace("shop").
		WithWaypoint("shop", "waypoint", "1-24-0", revkittest.WaypointFor("all")).
		WithAPIGateway("shop", "undeployed", "1-99-0").
		WithHelmGateway("istio-ingress", "edge", "1-24-0", revkittest.HelmRelease{Name: "edge"})
	require.NoError(t, c.Err())
	kube, dyn := c.Kube(), c.Dynamic()

	gws, err := dyn.Resource(revkittest.GatewayResource).Namespace("").List(ctx, metav1.ListOptions{})
	require.NoError(t, err)
	require.Len(t, gws.Items, 3)
	wp, err := dyn.Resource(revkittest.GatewayResource).Namespace("shop").Get(ctx, "waypoint", metav1.GetOptions{})
	require.NoError(t, err)
	assert.Equal(t, map[string]string{"istio.io/rev": "1-24-0", "istio.io/waypoint-for": "all"}, wp.GetLabels())

	// The tag resolves to the revision whose istiod renders the Deployment.
	d, err := kube.AppsV1().Deployments("istio-ingress").Get(ctx, "web-istio", metav1.GetOptions{})
	require.NoError(t, err)
	assert.Equal(t, "1-24-0", d.Spec.Template.Annotations["istio.io/rev"])
	assert.Equal(t, "prod", d.Spec.Template.Labels["istio.io/rev"], "istiod copies the Gateway's labels")
	assert.Equal(t, "istio.io-gateway-controller", d.Labels["gateway.istio.io/managed"])
	assert.Equal(t, "Gateway", d.OwnerReferences[0].Kind)
	assert.Equal(t, revkittest.ProxyImage("1-24-0"), d.Spec.Template.Spec.Containers[0].Image)
	wd, err := kube.AppsV1().Deployments("shop").Get(ctx, "waypoint", metav1.GetOptions{})
	require.NoError(t, err, "a waypoint's Deployment has its own name")
	assert.Equal(t, "istio.io-mesh-controller", wd.Labels["gateway.istio.io/managed"])
	_, err = kube.AppsV1().Deployments("shop").Get(ctx, "undeployed-istio", metav1.GetOptions{})
	assert.Error(t, err, "no installed revision answers to 1-99-0")

	ns, err := kube.CoreV1().Namespaces().Get(ctx, "shop", metav1.GetOptions{})
	require.NoError(t, err)
	assert.Equal(t, "ambient", ns.Labels["istio.io/dataplane-mode"])

	edge, err := kube.AppsV1().Deployments("istio-ingress").Get(ctx, "edge", metav1.GetOptions{})
	require.NoError(t, err)
	assert.Equal(t, "Helm", edge.Labels["app.kubernetes.io/managed-by"])
	assert.Equal(t, "gateway-1.31.0", edge.Labels["helm.sh/chart"])
	assert.Equal(t, map[string]string{"meta.helm.sh/release-name": "edge", "meta.helm.sh/release-namespace": "istio-ingress"}, edge.Annotations)
	assert.Equal(t, "1-24-0", edge.Spec.Template.Labels["istio.io/rev"])
}
