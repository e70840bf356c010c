// Package revkittest builds fake clusters with Istio revisions, tags,
// namespaces and injected pods, for unit tests of programs that use revkit.
//
// The objects match what Istio's charts, istiod and revkit's own operations
// create: injector webhooks per revision, istiod Deployments and Services,
// tag webhooks and Services, labelled namespaces, and pods whose
// sidecar.istio.io/status annotation names the injecting revision.
//
//	kube := revkittest.NewCluster().
//		WithRevision("1-24-0").
//		WithTag("prod-stable", "1-24-0").
//		WithNamespace("shop", revkittest.Rev("prod-stable")).
//		WithDeployment("shop", "cart", revkittest.Replicas(2), revkittest.OnRevision("1-24-0")).
//		Kube()
//
// Nothing moves in such a cluster: a restarted Deployment gets no new
// pods. Simulate instead of Kube starts a Simulation, which plays the
// controllers and Istio's injector in memory, so that a whole upgrade plan
// runs to completion in milliseconds, and can be told to fail a rollout,
// crash a revision's sidecars or stop an istiod:
//
//	sim := revkittest.NewCluster().WithRevision("1-24-0").WithRevision("1-25-0").
//		WithNamespace("shop", revkittest.Rev("1-24-0")).
//		WithDeployment("shop", "cart", revkittest.OnRevision("1-24-0")).
//		Simulate(revkittest.SimOptions{})
//	rep, err := upgrade.Execute(ctx, upgrade.Env{Kube: sim.Kube()}, plan)
//	state, err := revkittest.ReadMesh(ctx, sim.Kube(), "shop")
//
// Gateways come in the shapes Istio installs them: WithGateway (a gateway
// Deployment), WithHelmGateway (one a Helm release of Istio's gateway chart
// owns), and WithAPIGateway and WithWaypoint (Kubernetes Gateway API
// Gateways of class istio and istio-waypoint, with the Deployment istiod
// renders for them). The Gateway resources live in a fake dynamic client,
// Dynamic; WithAmbientNamespace adds a namespace in ambient mode:
//
//	c := revkittest.NewCluster().WithRevision("1-24-0").WithTag("prod", "1-24-0").
//		WithAmbientNamespace("shop").
//		WithWaypoint("shop", "waypoint", "prod")
//	gws, err := gateway.ListAPI(ctx, c.Kube(), c.Dynamic(), gateway.ListOptions{})
package revkittest

import (
	"fmt"
	"sort"
	"strings"

	admv1 "k8s.io/api/admissionregistration/v1"
	appsv1 "k8s.io/api/apps/v1"
	authorizationv1 "k8s.io/api/authorization/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/version"
	fakediscovery "k8s.io/client-go/discovery/fake"
	"k8s.io/client-go/kubernetes/fake"
	k8stesting "k8s.io/client-go/testing"
	"k8s.io/utils/ptr"

	"github.com/revkit/revkit"
	"github.com/revkit/revkit/internal/mesh"
	"github.com/revkit/revkit/internal/sim"
)

// Cluster accumulates the objects of a fake cluster. Build it with the With
// methods, then call Kube (or Objects).
type Cluster struct {
	version string
	denied  map[string]bool
	cpNS    string
	objects []runtime.Object
	revs    map[string]*mesh.Injector
	nsSeen  map[string]bool
	tags    map[string]string
	// gateways are the Gateway API objects, served by Dynamic.
	gateways []*unstructured.Unstructured
	err      error
}

// NewCluster starts an empty cluster whose control plane lives in
// istio-system.
func NewCluster() *Cluster {
	c := &Cluster{cpNS: revkit.DefaultControlPlaneNamespace, revs: map[string]*mesh.Injector{}, nsSeen: map[string]bool{}, tags: map[string]string{},
		version: "v1.36.3", denied: map[string]bool{}}
	return c
}

// WithControlPlaneNamespace moves the control plane to ns; call it first.
func (c *Cluster) WithControlPlaneNamespace(ns string) *Cluster {
	c.cpNS = ns
	return c
}

// ControlPlaneNamespace returns the control-plane namespace.
func (c *Cluster) ControlPlaneNamespace() string { return c.cpNS }

// WithRevision installs a revision as Istio's istiod chart does: the
// injector "istio-sidecar-injector-<rev>", the validator
// "istio-validator-<rev>-<ns>", Deployment and Service "istiod-<rev>". The
// revision "default" is a non-revisioned install ("istio-sidecar-injector",
// "istiod") that also injects istio-injection=enabled namespaces.
func (c *Cluster) WithRevision(rev string) *Cluster {
	c.ensureNamespace(c.cpNS)
	isDefault := rev == mesh.DefaultRevision
	svc := mesh.IstiodName(rev)
	cc := admv1.WebhookClientConfig{
		Service:  &admv1.ServiceReference{Namespace: c.cpNS, Name: svc, Path: ptr.To("/inject"), Port: ptr.To[int32](443)},
		CABundle: []byte("ca-" + rev),
	}
	name := "istio-sidecar-injector"
	if !isDefault {
		name += "-" + rev
	}
	labels := map[string]string{mesh.LabelRev: rev, "app": "sidecar-injector", "operator.istio.io/component": "Pilot", "release": "istiod-" + rev}
	mwc := &admv1.MutatingWebhookConfiguration{
		ObjectMeta: metav1.ObjectMeta{Name: name, Labels: labels},
		Webhooks:   mesh.InjectionWebhooks(rev, isDefault, cc, nil),
	}
	inj, _ := mesh.ToInjector(mwc)
	c.revs[rev] = &inj
	vcc := mesh.ValidationClient(cc)
	vwc := mesh.DefaultValidator(rev, vcc, ptr.To(admv1.Fail))
	vwc.Name = "istio-validator-" + rev + "-" + c.cpNS
	if isDefault {
		vwc.Name = "istio-validator-" + c.cpNS
	}
	vwc.Labels = map[string]string{"app": "istiod", "istio": "istiod", mesh.LabelRev: rev}
	vwc.Webhooks[0].Name = "rev.validation.istio.io"
	podLabels := map[string]string{"app": "istiod", "istio": "pilot", mesh.LabelRev: rev}
	dep := &appsv1.Deployment{
		ObjectMeta: metav1.ObjectMeta{Name: svc, Namespace: c.cpNS, Labels: podLabels},
		Spec: appsv1.DeploymentSpec{
			Replicas: ptr.To[int32](1),
			Selector: &metav1.LabelSelector{MatchLabels: podLabels},
			Template: corev1.PodTemplateSpec{
				ObjectMeta: metav1.ObjectMeta{Labels: podLabels},
				Spec:       corev1.PodSpec{Containers: []corev1.Container{{Name: "discovery", Image: "istio/pilot:" + rev}}},
			},
		},
		Status: appsv1.DeploymentStatus{ObservedGeneration: 1, Replicas: 1, UpdatedReplicas: 1, ReadyReplicas: 1, AvailableReplicas: 1},
	}
	service := &corev1.Service{
		ObjectMeta: metav1.ObjectMeta{Name: svc, Namespace: c.cpNS, Labels: map[string]string{"app": "istiod", "istio": "pilot", mesh.LabelRev: rev}},
		Spec:       corev1.ServiceSpec{Ports: mesh.StandardIstiodPorts(), Selector: map[string]string{"app": "istiod", mesh.LabelRev: rev}},
	}
	cm := &corev1.ConfigMap{
		ObjectMeta: metav1.ObjectMeta{Name: "istio-sidecar-injector-" + rev, Namespace: c.cpNS, Labels: map[string]string{mesh.LabelRev: rev, "operator.istio.io/component": "Pilot"}},
		Data:       map[string]string{"config": "policy: enabled"},
	}
	if isDefault {
		cm.Name = "istio-sidecar-injector"
	}
	c.objects = append(c.objects, mwc, vwc, dep, service, cm)
	return c
}

// WithTag points a tag at an installed revision, with the objects revkit's
// tag.Set (and istioctl tag set) create. The default tag also gets
// "istiod-default-validator" and deactivates a non-revisioned injector.
func (c *Cluster) WithTag(tag, rev string) *Cluster {
	inj, ok := c.revs[rev]
	if !ok {
		c.fail(fmt.Errorf("WithTag(%q, %q): call WithRevision(%q) first", tag, rev, rev))
		return c
	}
	c.tags[tag] = rev
	c.objects = append(c.objects, mesh.TagWebhook(tag, inj), mesh.TagService(tag, rev, c.cpNS, nil))
	if tag == revkit.DefaultTag {
		cc, _, _ := mesh.InjectorClient(inj)
		c.objects = append(c.objects, mesh.DefaultValidator(rev, mesh.ValidationClient(cc), ptr.To(admv1.Fail)))
		for _, o := range c.objects {
			if mwc, ok := o.(*admv1.MutatingWebhookConfiguration); ok && mwc.Labels[mesh.LabelRev] == mesh.DefaultRevision && mwc.Labels[mesh.LabelTag] == "" {
				for i := range mwc.Webhooks {
					mwc.Webhooks[i].NamespaceSelector = mesh.NeverMatchSelector()
					mwc.Webhooks[i].ObjectSelector = mesh.NeverMatchSelector()
				}
			}
		}
	}
	return c
}

// WithObjects adds arbitrary objects, e.g. a hand-made webhook.
func (c *Cluster) WithObjects(objs ...runtime.Object) *Cluster {
	c.objects = append(c.objects, objs...)
	return c
}

// NamespaceOption sets up a namespace.
type NamespaceOption func(*corev1.Namespace)

// Rev labels the namespace istio.io/rev=<revOrTag>.
func Rev(revOrTag string) NamespaceOption {
	return Label(mesh.LabelRev, revOrTag)
}

// InjectionEnabled labels the namespace istio-injection=enabled.
func InjectionEnabled() NamespaceOption { return Label(mesh.LabelInjection, "enabled") }

// Label sets any label on the namespace.
func Label(key, value string) NamespaceOption {
	return func(ns *corev1.Namespace) {
		if ns.Labels == nil {
			ns.Labels = map[string]string{}
		}
		ns.Labels[key] = value
	}
}

// WithNamespace adds a namespace with the given labels.
func (c *Cluster) WithNamespace(name string, opts ...NamespaceOption) *Cluster {
	ns := c.ensureNamespace(name)
	for _, o := range opts {
		o(ns)
	}
	return c
}

func (c *Cluster) ensureNamespace(name string) *corev1.Namespace {
	if c.nsSeen[name] {
		for _, o := range c.objects {
			if ns, ok := o.(*corev1.Namespace); ok && ns.Name == name {
				return ns
			}
		}
	}
	c.nsSeen[name] = true
	ns := &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: name, Labels: map[string]string{"kubernetes.io/metadata.name": name}}}
	c.objects = append(c.objects, ns)
	return ns
}

// WorkloadOption shapes a workload and its pods.
type WorkloadOption func(*workload)

type workload struct {
	replicas  int32
	rev       string
	paused    bool
	noInject  bool
	podLabels map[string]string
}

// Replicas sets the number of replicas (and pods); the default is 1.
func Replicas(n int32) WorkloadOption { return func(w *workload) { w.replicas = n } }

// OnRevision gives the workload's pods a sidecar of rev; without it they
// have none.
func OnRevision(rev string) WorkloadOption { return func(w *workload) { w.rev = rev } }

// Paused pauses a Deployment's rollouts.
func Paused() WorkloadOption { return func(w *workload) { w.paused = true } }

// InjectionDisabled labels the pod template sidecar.istio.io/inject=false.
func InjectionDisabled() WorkloadOption { return func(w *workload) { w.noInject = true } }

// WithDeployment adds a Deployment, complete and available, and its pods.
func (c *Cluster) WithDeployment(ns, name string, opts ...WorkloadOption) *Cluster {
	w, tmpl, sel := c.workload(ns, name, opts)
	d := &appsv1.Deployment{
		ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: ns, Generation: 1},
		Spec:       appsv1.DeploymentSpec{Replicas: ptr.To(w.replicas), Selector: sel, Template: tmpl, Paused: w.paused},
		Status: appsv1.DeploymentStatus{ObservedGeneration: 1, Replicas: w.replicas, UpdatedReplicas: w.replicas,
			ReadyReplicas: w.replicas, AvailableReplicas: w.replicas},
	}
	c.objects = append(c.objects, d)
	c.pods(ns, name, w)
	return c
}

// WithStatefulSet adds a StatefulSet, complete and ready, and its pods.
func (c *Cluster) WithStatefulSet(ns, name string, opts ...WorkloadOption) *Cluster {
	w, tmpl, sel := c.workload(ns, name, opts)
	s := &appsv1.StatefulSet{
		ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: ns, Generation: 1},
		Spec: appsv1.StatefulSetSpec{Replicas: ptr.To(w.replicas), Selector: sel, Template: tmpl,
			UpdateStrategy: appsv1.StatefulSetUpdateStrategy{Type: appsv1.RollingUpdateStatefulSetStrategyType}},
		Status: appsv1.StatefulSetStatus{ObservedGeneration: 1, Replicas: w.replicas, ReadyReplicas: w.replicas,
			UpdatedReplicas: w.replicas, AvailableReplicas: w.replicas, CurrentRevision: name + "-1", UpdateRevision: name + "-1"},
	}
	c.objects = append(c.objects, s)
	c.pods(ns, name, w)
	return c
}

// WithDaemonSet adds a DaemonSet, complete and available, and its pods.
func (c *Cluster) WithDaemonSet(ns, name string, opts ...WorkloadOption) *Cluster {
	w, tmpl, sel := c.workload(ns, name, opts)
	d := &appsv1.DaemonSet{
		ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: ns, Generation: 1},
		Spec: appsv1.DaemonSetSpec{Selector: sel, Template: tmpl,
			UpdateStrategy: appsv1.DaemonSetUpdateStrategy{Type: appsv1.RollingUpdateDaemonSetStrategyType}},
		Status: appsv1.DaemonSetStatus{ObservedGeneration: 1, DesiredNumberScheduled: w.replicas, CurrentNumberScheduled: w.replicas,
			UpdatedNumberScheduled: w.replicas, NumberReady: w.replicas, NumberAvailable: w.replicas},
	}
	c.objects = append(c.objects, d)
	c.pods(ns, name, w)
	return c
}

func (c *Cluster) workload(ns, name string, opts []WorkloadOption) (*workload, corev1.PodTemplateSpec, *metav1.LabelSelector) {
	c.ensureNamespace(ns)
	w := &workload{replicas: 1, podLabels: map[string]string{"app": name}}
	for _, o := range opts {
		o(w)
	}
	if w.noInject {
		w.podLabels[mesh.LabelSidecarInject] = "false"
	}
	tmpl := corev1.PodTemplateSpec{
		ObjectMeta: metav1.ObjectMeta{Labels: copyMap(w.podLabels)},
		Spec:       corev1.PodSpec{Containers: []corev1.Container{{Name: "app", Image: "example/" + name}}},
	}
	return w, tmpl, &metav1.LabelSelector{MatchLabels: map[string]string{"app": name}}
}

func (c *Cluster) pods(ns, owner string, w *workload) {
	for i := int32(0); i < w.replicas; i++ {
		c.objects = append(c.objects, Pod(ns, fmt.Sprintf("%s-%d", owner, i), w.rev, copyMap(w.podLabels)))
	}
}

// WithGateway adds an Istio gateway Deployment as Istio's gateway chart
// makes it: pods labelled istio=<name>, injected with the gateway template,
// and on rev (set on the pod template) when rev is not empty.
func (c *Cluster) WithGateway(ns, name, rev string, opts ...WorkloadOption) *Cluster {
	w, tmpl, sel := c.workload(ns, name, append([]WorkloadOption{OnRevision(rev)}, opts...))
	tmpl.Labels["istio"] = name
	tmpl.Labels[mesh.LabelSidecarInject] = "true"
	if rev != "" {
		tmpl.Labels[mesh.LabelRev] = rev
	}
	tmpl.Annotations = map[string]string{"inject.istio.io/templates": "gateway"}
	d := &appsv1.Deployment{
		ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: ns, Generation: 1, Labels: map[string]string{"istio": name}},
		Spec:       appsv1.DeploymentSpec{Replicas: ptr.To(w.replicas), Selector: sel, Template: tmpl},
		Status: appsv1.DeploymentStatus{ObservedGeneration: 1, Replicas: w.replicas, UpdatedReplicas: w.replicas,
			ReadyReplicas: w.replicas, AvailableReplicas: w.replicas},
	}
	c.objects = append(c.objects, d)
	c.pods(ns, name, w)
	for _, o := range c.objects[len(c.objects)-int(w.replicas):] {
		p := o.(*corev1.Pod)
		if p.Annotations == nil {
			p.Annotations = map[string]string{}
		}
		p.Annotations["inject.istio.io/templates"] = "gateway"
	}
	return c
}

// WithPod adds a single running pod; rev "" means no sidecar.
func (c *Cluster) WithPod(ns, name, rev string) *Cluster {
	c.ensureNamespace(ns)
	c.objects = append(c.objects, Pod(ns, name, rev, map[string]string{"app": name}))
	return c
}

// Pod returns a running pod; when rev is set it carries a sidecar injected
// by that revision, stamped as a Simulation's injector stamps it (see
// Simulation): the sidecar status istiod records, the istio-proxy
// container, and the labels and annotations of Istio's injection template.
func Pod(ns, name, rev string, labels map[string]string) *corev1.Pod {
	p := &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: ns, Labels: labels},
		Spec:       corev1.PodSpec{Containers: []corev1.Container{{Name: "app", Image: "example/app"}}},
		Status: corev1.PodStatus{Phase: corev1.PodRunning, PodIP: "10.244.0.1",
			Conditions: []corev1.PodCondition{{Type: corev1.PodReady, Status: corev1.ConditionTrue}}},
	}
	if rev != "" {
		sim.InjectSidecar(p, rev, rev)
	}
	return p
}

func copyMap(m map[string]string) map[string]string {
	out := make(map[string]string, len(m))
	for k, v := range m {
		out[k] = v
	}
	return out
}

func (c *Cluster) fail(err error) {
	if c.err == nil {
		c.err = err
	}
}

// Err returns the first mistake made while building, e.g. a tag pointing at
// a revision that was never added.
func (c *Cluster) Err() error { return c.err }

// Objects returns copies of the objects built so far, namespaces first.
func (c *Cluster) Objects() []runtime.Object {
	out := make([]runtime.Object, 0, len(c.objects))
	for _, o := range c.objects {
		out = append(out, o.DeepCopyObject())
	}
	sort.SliceStable(out, func(i, j int) bool {
		_, a := out[i].(*corev1.Namespace)
		_, b := out[j].(*corev1.Namespace)
		return a && !b
	})
	return out
}

// WithServerVersion sets the Kubernetes version discovery reports; the
// default is v1.36.3.
func (c *Cluster) WithServerVersion(gitVersion string) *Cluster {
	c.version = gitVersion
	return c
}

// Deny makes SelfSubjectAccessReviews for verb on group/resource come back
// denied; every other review is allowed, as for a cluster admin.
func (c *Cluster) Deny(verb, group, resource string) *Cluster {
	c.denied[verb+" "+group+"/"+resource] = true
	return c
}

// Kube returns a fake clientset holding the objects, whose discovery reports
// the server version and which answers SelfSubjectAccessReviews. It panics
// if the builder was misused (see Err): that is a bug in the test, not
// input.
func (c *Cluster) Kube() *fake.Clientset {
	if c.err != nil {
		panic("revkittest: " + c.err.Error())
	}
	kube := fake.NewClientset(c.Objects()...)
	if fd, ok := kube.Discovery().(*fakediscovery.FakeDiscovery); ok {
		v := strings.TrimPrefix(c.version, "v")
		parts := strings.SplitN(v, ".", 3)
		info := &version.Info{GitVersion: c.version}
		if len(parts) >= 2 {
			info.Major, info.Minor = parts[0], parts[1]
		}
		fd.FakedServerVersion = info
	}
	denied := c.denied
	kube.PrependReactor("create", "selfsubjectaccessreviews", func(a k8stesting.Action) (bool, runtime.Object, error) {
		review, ok := a.(k8stesting.CreateAction).GetObject().(*authorizationv1.SelfSubjectAccessReview)
		if !ok || review.Spec.ResourceAttributes == nil {
			return false, nil, nil
		}
		ra := review.Spec.ResourceAttributes
		out := review.DeepCopy()
		out.Status.Allowed = !denied[ra.Verb+" "+ra.Group+"/"+ra.Resource]
		if !out.Status.Allowed {
			out.Status.Reason = "denied by revkittest.Deny"
		}
		return true, out, nil
	})
	return kube
}

// DeleteNow returns delete options for removing an object at once, as a
// test does to simulate a pod that went away.
func DeleteNow() metav1.DeleteOptions {
	return metav1.DeleteOptions{GracePeriodSeconds: ptr.To[int64](0)}
}
