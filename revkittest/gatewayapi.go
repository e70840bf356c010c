package revkittest

import (
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/types"
	dynamicfake "k8s.io/client-go/dynamic/fake"
	"k8s.io/utils/ptr"

	"github.com/revkit/revkit/internal/mesh"
)

// GatewayResource is the Kubernetes Gateway API resource the kit's
// Gateways and waypoints are stored as (gateway.networking.k8s.io/v1).
var GatewayResource = schema.GroupVersionResource{Group: "gateway.networking.k8s.io", Version: "v1", Resource: "gateways"}

// GatewayOption shapes a Gateway API gateway or waypoint.
type GatewayOption func(*apiGateway)

type apiGateway struct {
	class, waypointFor string
	deployedBy         string
	deployedSet        bool
	labels             map[string]string
	annotations        map[string]string
	hostname           string
}

// DeployedBy makes the Deployment of the gateway as rev's istiod renders
// it (its pod template annotated istio.io/rev=<rev>, rev's proxy image);
// "" leaves it without one, as before any istiod has served it. Without
// this option the Deployment is that of the revision its istio.io/rev label
// resolves to (through the tags built so far), if any.
func DeployedBy(rev string) GatewayOption {
	return func(g *apiGateway) { g.deployedBy, g.deployedSet = rev, true }
}

// GatewayClass sets the gatewayClassName; the default is "istio" for
// WithAPIGateway and "istio-waypoint" for WithWaypoint.
func GatewayClass(name string) GatewayOption { return func(g *apiGateway) { g.class = name } }

// WaypointFor sets a waypoint's istio.io/waypoint-for label ("service",
// "workload", "all" or "none"); the default is "service".
func WaypointFor(v string) GatewayOption { return func(g *apiGateway) { g.waypointFor = v } }

// GatewayLabel sets a label on the Gateway resource.
func GatewayLabel(key, value string) GatewayOption {
	return func(g *apiGateway) { g.labels[key] = value }
}

// GatewayHelmRelease marks the Gateway resource as installed by a Helm
// release (the meta.helm.sh annotations Helm puts on what it installs).
func GatewayHelmRelease(release string) GatewayOption {
	return func(g *apiGateway) {
		g.labels["app.kubernetes.io/managed-by"] = "Helm"
		g.annotations["meta.helm.sh/release-name"] = release
	}
}

// ManualDeployment gives the Gateway a hostname address, which tells
// istiod to deploy nothing for it: it uses an existing Service.
func ManualDeployment(hostname string) GatewayOption {
	return func(g *apiGateway) { g.hostname = hostname }
}

// WithAPIGateway adds a Kubernetes Gateway API Gateway of class "istio",
// labelled istio.io/rev=<revOrTag> (no label when ""), and the Deployment
// istiod made for it (see DeployedBy). The Gateway is held apart from the
// clientset's objects: Dynamic returns a dynamic client holding it.
func (c *Cluster) WithAPIGateway(ns, name, revOrTag string, opts ...GatewayOption) *Cluster {
	return c.withAPIGateway(ns, name, revOrTag, "istio", opts)
}

// WithWaypoint adds an ambient waypoint: a Gateway of class
// "istio-waypoint" labelled istio.io/waypoint-for, as `istioctl waypoint
// apply` makes it, with a listener for HBONE on 15008; otherwise as
// WithAPIGateway.
func (c *Cluster) WithWaypoint(ns, name, revOrTag string, opts ...GatewayOption) *Cluster {
	return c.withAPIGateway(ns, name, revOrTag, "istio-waypoint", opts)
}

func (c *Cluster) withAPIGateway(ns, name, revOrTag, class string, opts []GatewayOption) *Cluster {
	c.ensureNamespace(ns)
	g := &apiGateway{class: class, labels: map[string]string{}, annotations: map[string]string{}}
	if class == "istio-waypoint" {
		g.waypointFor = "service"
	}
	for _, o := range opts {
		o(g)
	}
	if revOrTag != "" {
		g.labels[mesh.LabelRev] = revOrTag
	}
	if g.waypointFor != "" && g.class == "istio-waypoint" {
		g.labels["istio.io/waypoint-for"] = g.waypointFor
	}
	listener := map[string]any{"name": "http", "port": int64(80), "protocol": "HTTP"}
	if g.class == "istio-waypoint" {
		listener = map[string]any{"name": "mesh", "port": int64(15008), "protocol": "HBONE"}
	}
	uid := types.UID("uid-gateway-" + ns + "-" + name)
	spec := map[string]any{"gatewayClassName": g.class, "listeners": []any{listener}}
	if g.hostname != "" {
		spec["addresses"] = []any{map[string]any{"type": "Hostname", "value": g.hostname}}
	}
	u := &unstructured.Unstructured{Object: map[string]any{
		"apiVersion": "gateway.networking.k8s.io/v1",
		"kind":       "Gateway",
		"metadata":   map[string]any{"name": name, "namespace": ns, "uid": string(uid), "generation": int64(1)},
		"spec":       spec,
	}}
	u.SetLabels(g.labels)
	if len(g.annotations) > 0 {
		u.SetAnnotations(g.annotations)
	}
	c.gateways = append(c.gateways, u)

	rev := g.deployedBy
	if !g.deployedSet && revOrTag != "" {
		rev = revOrTag
		if r, ok := c.tags[revOrTag]; ok {
			rev = r
		}
		if _, ok := c.revs[rev]; !ok {
			rev = ""
		}
	}
	if rev != "" && g.hostname == "" {
		c.objects = append(c.objects, GatewayDeployment(u, rev))
	}
	return c
}

// GatewayDeployment is the Deployment rev's istiod renders for a Gateway
// API Gateway (Istio's kube-gateway and waypoint templates): named after
// the Gateway ("<name>-istio" for class istio, the Gateway's own name for a
// waypoint), owned by it, labelled gateway.istio.io/managed (with the
// controller's name, istio.io-gateway-controller or, for a waypoint,
// istio.io-mesh-controller), its pod
// template annotated istio.io/rev=<rev> and running rev's proxy image,
// rolled out.
func GatewayDeployment(gw *unstructured.Unstructured, rev string) *appsv1.Deployment {
	class, _, _ := unstructured.NestedString(gw.Object, "spec", "gatewayClassName")
	name := gw.GetName() + "-" + class
	if class == "istio-waypoint" {
		name = gw.GetName()
	}
	labels := map[string]string{}
	for k, v := range gw.GetLabels() {
		labels[k] = v
	}
	labels["gateway.networking.k8s.io/gateway-name"] = gw.GetName()
	labels["gateway.networking.k8s.io/gateway-class-name"] = class
	// The controller's name, "/" made "-": waypoints have their own.
	labels["gateway.istio.io/managed"] = "istio.io-gateway-controller"
	if class == "istio-waypoint" {
		labels["gateway.istio.io/managed"] = "istio.io-mesh-controller"
	}
	podLabels := copyMap(labels)
	podLabels[mesh.LabelSidecarInject] = "false"
	return &appsv1.Deployment{
		ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: gw.GetNamespace(), Generation: 1, Labels: labels,
			OwnerReferences: []metav1.OwnerReference{{APIVersion: "gateway.networking.k8s.io/v1", Kind: "Gateway", Name: gw.GetName(), UID: gw.GetUID()}}},
		Spec: appsv1.DeploymentSpec{
			Replicas: ptr.To[int32](1),
			Selector: &metav1.LabelSelector{MatchLabels: map[string]string{"gateway.networking.k8s.io/gateway-name": gw.GetName()}},
			Template: corev1.PodTemplateSpec{
				ObjectMeta: metav1.ObjectMeta{Labels: podLabels, Annotations: map[string]string{mesh.LabelRev: rev}},
				Spec:       corev1.PodSpec{Containers: []corev1.Container{{Name: "istio-proxy", Image: ProxyImage(rev)}}},
			},
		},
		Status: appsv1.DeploymentStatus{ObservedGeneration: 1, Replicas: 1, UpdatedReplicas: 1, ReadyReplicas: 1, AvailableReplicas: 1},
	}
}

// ProxyImage is the proxy image the kit's revision rev runs.
func ProxyImage(rev string) string { return "istio/proxyv2:" + rev }

// GatewayObjects returns copies of the Gateway API Gateways built so far.
func (c *Cluster) GatewayObjects() []runtime.Object {
	out := make([]runtime.Object, 0, len(c.gateways))
	for _, g := range c.gateways {
		out = append(out, g.DeepCopy())
	}
	return out
}

// Dynamic returns a fake dynamic client holding the Gateway API Gateways
// (WithAPIGateway, WithWaypoint); pair it with Kube, which holds the rest.
func (c *Cluster) Dynamic() *dynamicfake.FakeDynamicClient {
	if c.err != nil {
		panic("revkittest: " + c.err.Error())
	}
	dyn := dynamicfake.NewSimpleDynamicClientWithCustomListKinds(runtime.NewScheme(),
		map[schema.GroupVersionResource]string{GatewayResource: "GatewayList"})
	// Created with their resource named: the tracker would file objects
	// given to the constructor under a guessed plural ("gatewaies").
	for _, g := range c.gateways {
		if err := dyn.Tracker().Create(GatewayResource, g.DeepCopy(), g.GetNamespace()); err != nil {
			panic("revkittest: " + err.Error())
		}
	}
	return dyn
}

// Ambient puts a namespace in ambient mode (istio.io/dataplane-mode=ambient):
// its pods are served by ztunnel, without sidecars.
func Ambient() NamespaceOption { return Label(mesh.LabelDataplaneMode, "ambient") }

// WithAmbientNamespace adds a namespace in ambient mode; opts add labels.
func (c *Cluster) WithAmbientNamespace(name string, opts ...NamespaceOption) *Cluster {
	return c.WithNamespace(name, append([]NamespaceOption{Ambient()}, opts...)...)
}

// HelmRelease names the Helm release that installed an object.
type HelmRelease struct {
	// Name of the release; Namespace its namespace (default: the object's).
	Name, Namespace string
	// Chart is the chart's name and version as Helm's helm.sh/chart label
	// has it; default "gateway-1.31.0".
	Chart string
}

// WithHelmGateway adds a gateway as Istio's gateway chart installs it with
// Helm: WithGateway's Deployment, labelled app.kubernetes.io/managed-by=Helm
// and helm.sh/chart, annotated meta.helm.sh/release-name and
// release-namespace.
func (c *Cluster) WithHelmGateway(ns, name, rev string, rel HelmRelease, opts ...WorkloadOption) *Cluster {
	c.WithGateway(ns, name, rev, opts...)
	if rel.Namespace == "" {
		rel.Namespace = ns
	}
	if rel.Chart == "" {
		rel.Chart = "gateway-1.31.0"
	}
	for _, o := range c.objects {
		if d, ok := o.(*appsv1.Deployment); ok && d.Namespace == ns && d.Name == name {
			d.Labels["app.kubernetes.io/managed-by"] = "Helm"
			d.Labels["helm.sh/chart"] = rel.Chart
			if d.Annotations == nil {
				d.Annotations = map[string]string{}
			}
			d.Annotations["meta.helm.sh/release-name"] = rel.Name
			d.Annotations["meta.helm.sh/release-namespace"] = rel.Namespace
		}
	}
	return c
}
