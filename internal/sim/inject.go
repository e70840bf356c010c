package sim

import (
	"errors"
	"fmt"
	"hash/fnv"
	"strings"

	admv1 "k8s.io/api/admissionregistration/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/runtime"
	k8stesting "k8s.io/client-go/testing"

	"github.com/revkit/revkit/internal/mesh"
)

// refusedError is admission refusing a pod a controller creates; the
// controller reports it and goes on, unlike a failure of the simulation.
type refusedError struct{ err error }

func (e *refusedError) Error() string { return e.err.Error() }
func (e *refusedError) Unwrap() error { return e.err }

// isInternal reports whether a controller's error is the simulation's own
// failure rather than admission refusing a pod.
func isInternal(err error) bool {
	var r *refusedError
	return !errors.As(err, &r)
}

// startPod creates a pod of owner from a template, through admission, and
// starts it: running, and ready unless its image fails (imageFails) or
// its sidecar's revision crashes.
func (s *Simulation) startPod(owner metav1.Object, ownerKind string, tmpl *corev1.PodTemplateSpec, name string,
	extraLabels map[string]string, node string, imageFails bool) (*corev1.Pod, error) {
	p := &corev1.Pod{ObjectMeta: *tmpl.ObjectMeta.DeepCopy(), Spec: *tmpl.Spec.DeepCopy()}
	p.Name, p.Namespace, p.GenerateName = name, owner.GetNamespace(), ""
	p.Labels = labels.Merge(p.Labels, extraLabels)
	p.Spec.NodeName = node
	own(p, owner, ownerKind)
	if err := s.admit(p); err != nil {
		return nil, &refusedError{err: err}
	}
	s.prepare(p)
	s.run(p, imageFails)
	if err := s.tracker.Create(podsGVR, p, p.Namespace); err != nil {
		return nil, err
	}
	return p, nil
}

// createPodFromClient creates a pod a client sent: named (generateName),
// through admission, and started as a kubelet would.
func (s *Simulation) createPodFromClient(a k8stesting.CreateActionImpl) (runtime.Object, error) {
	in, ok := a.GetObject().(*corev1.Pod)
	if !ok {
		return nil, fmt.Errorf("revkittest: create pods with a %T", a.GetObject())
	}
	p := in.DeepCopy()
	if p.Namespace == "" {
		p.Namespace = a.GetNamespace()
	}
	if p.Name == "" && p.GenerateName != "" {
		p.Name = s.podName(&metav1.ObjectMeta{Namespace: p.Namespace, Name: strings.TrimSuffix(p.GenerateName, "-")})
	}
	if err := s.admit(p); err != nil {
		return nil, err
	}
	s.prepare(p)
	s.run(p, false)
	if err := s.tracker.Create(podsGVR, p, p.Namespace, a.CreateOptions); err != nil {
		return nil, err
	}
	return p.DeepCopy(), nil
}

// admit plays the mutating admission of a pod: every injector webhook the
// apiserver would call for it (mesh's injection model, on the webhook
// configurations present, in the apiserver's order: by configuration
// name) is called; the first to reach an uninjected pod injects its
// revision's sidecar, unless the pod opts out. A webhook that cannot be
// reached refuses the pod unless its failure policy is Ignore.
func (s *Simulation) admit(p *corev1.Pod) error {
	nsObj, err := s.tracker.Get(nsGVR, "", p.Namespace)
	if err != nil {
		return err
	}
	ns := nsObj.(*corev1.Namespace)
	list, err := s.tracker.List(mwcGVR, kindOf(mwcGVR), "")
	if err != nil {
		return err
	}
	var model mesh.Model
	model.SetInjectors(list.(*admv1.MutatingWebhookConfigurationList).Items)
	nsLabels := mesh.NamespaceLabels(ns)
	for i := range model.Injectors {
		inj := &model.Injectors[i]
		w := inj.MatchingWebhook(nsLabels, p.Labels)
		if w == nil {
			continue
		}
		if why := s.unreachable(inj, w); why != "" {
			if w.FailurePolicy != nil && *w.FailurePolicy == admv1.Ignore {
				continue
			}
			return apierrors.NewInternalError(fmt.Errorf("failed calling webhook %q: failed to call webhook: %s", w.Name, why))
		}
		if _, injected := mesh.PodRevision(p); injected || mesh.InjectionDisabled(p.Labels, p.Annotations) {
			continue
		}
		InjectSidecar(p, inj.Revision, s.istioVersion(inj.Revision))
	}
	return nil
}

// unreachable says why the apiserver cannot call webhook w of inj, or "".
func (s *Simulation) unreachable(inj *mesh.Injector, w *admv1.MutatingWebhook) string {
	target := ""
	cc := w.ClientConfig
	switch {
	case cc.Service != nil:
		port := int32(443)
		if cc.Service.Port != nil {
			port = *cc.Service.Port
		}
		target = fmt.Sprintf("https://%s.%s.svc:%d%s", cc.Service.Name, cc.Service.Namespace, port, ptrOr(cc.Service.Path))
		if _, err := s.tracker.Get(servicesGVR, cc.Service.Namespace, cc.Service.Name); err != nil {
			return fmt.Sprintf("Post %q: service %q not found", target+"?timeout=10s", cc.Service.Name)
		}
	case cc.URL != nil:
		target = *cc.URL
	}
	if s.stopped[inj.Revision] {
		return fmt.Sprintf("Post %q: dial tcp: connect: connection refused", target+"?timeout=10s")
	}
	return ""
}

func ptrOr(p *string) string {
	if p == nil {
		return ""
	}
	return *p
}

func (s *Simulation) istioVersion(rev string) string {
	if v := s.opts.IstioVersions[rev]; v != "" {
		return v
	}
	return rev
}

// run gives a pod the status a kubelet reports for it: running and ready,
// or, when its image cannot be pulled, pending, or, when its sidecar's
// revision crashes, running with istio-proxy in CrashLoopBackOff.
func (s *Simulation) run(p *corev1.Pod, imageFails bool) {
	rev, injected := mesh.PodRevision(p)
	crash := injected && s.crashing[rev]
	now := metav1.NewTime(s.opts.Now())
	ready := !imageFails && !crash
	st := corev1.PodStatus{Phase: corev1.PodRunning, PodIP: podIP(p), HostIP: "10.0.1.1", StartTime: &now, QOSClass: corev1.PodQOSBestEffort}
	if imageFails {
		st.Phase = corev1.PodPending
	}
	for _, c := range p.Spec.Containers {
		cs := corev1.ContainerStatus{Name: c.Name, Image: c.Image, Ready: ready, Started: ptrBool(ready)}
		switch {
		case imageFails && c.Name != "istio-proxy":
			cs.State.Waiting = &corev1.ContainerStateWaiting{Reason: "ImagePullBackOff", Message: "Back-off pulling image " + c.Image}
		case crash && c.Name == "istio-proxy":
			cs.State.Waiting = &corev1.ContainerStateWaiting{Reason: "CrashLoopBackOff", Message: "back-off restarting failed container istio-proxy"}
			cs.RestartCount = 3
		default:
			cs.State.Running = &corev1.ContainerStateRunning{StartedAt: now}
			cs.Ready = ready
		}
		st.ContainerStatuses = append(st.ContainerStatuses, cs)
	}
	cond := func(t corev1.PodConditionType, ok bool) corev1.PodCondition {
		c := corev1.PodCondition{Type: t, Status: corev1.ConditionTrue, LastTransitionTime: now}
		if !ok {
			c.Status, c.Reason = corev1.ConditionFalse, "ContainersNotReady"
		}
		return c
	}
	st.Conditions = []corev1.PodCondition{cond(corev1.PodScheduled, true), cond(corev1.PodInitialized, true),
		cond(corev1.ContainersReady, ready), cond(corev1.PodReady, ready)}
	p.Status = st
}

func ptrBool(b bool) *bool { return &b }

// podIP derives a pod's address from its name, so runs agree.
func podIP(p *corev1.Pod) string {
	h := fnv.New32a()
	_, _ = h.Write([]byte(p.Namespace + "/" + p.Name))
	v := h.Sum32()
	return fmt.Sprintf("10.%d.%d.%d", 244+v%8, (v>>8)&0xff, 1+(v>>16)%254)
}

// InjectSidecar stamps what Istio's injector adds to a pod for revision
// rev: the sidecar status (the annotation revkit reads the revision from),
// the istio-proxy container of Istio version, and the labels and
// annotations Istio's injection template sets.
func InjectSidecar(p *corev1.Pod, rev, version string) {
	if p.Annotations == nil {
		p.Annotations = map[string]string{}
	}
	if p.Labels == nil {
		p.Labels = map[string]string{}
	}
	p.Annotations[mesh.AnnotationStatus] = fmt.Sprintf(
		`{"initContainers":["istio-init"],"containers":["istio-proxy"],"volumes":["istio-envoy"],"imagePullSecrets":null,"revision":%q}`, rev)
	p.Annotations[mesh.LabelRev] = rev
	if len(p.Spec.Containers) > 0 && p.Spec.Containers[0].Name != "istio-proxy" {
		setDefault(p.Annotations, "kubectl.kubernetes.io/default-container", p.Spec.Containers[0].Name)
		setDefault(p.Annotations, "kubectl.kubernetes.io/default-logs-container", p.Spec.Containers[0].Name)
	}
	setDefault(p.Labels, "security.istio.io/tlsMode", "istio")
	setDefault(p.Labels, "service.istio.io/canonical-name", firstOf(p.Labels, "app.kubernetes.io/name", "app"))
	setDefault(p.Labels, "service.istio.io/canonical-revision", firstOf(p.Labels, "app.kubernetes.io/version", "version"))
	if p.Labels["service.istio.io/canonical-name"] == "" {
		p.Labels["service.istio.io/canonical-name"] = p.Name
	}
	if p.Labels["service.istio.io/canonical-revision"] == "" {
		p.Labels["service.istio.io/canonical-revision"] = "latest"
	}
	proxy := corev1.Container{Name: "istio-proxy", Image: "istio/proxyv2:" + version}
	for i := range p.Spec.Containers {
		if p.Spec.Containers[i].Name == proxy.Name {
			// A gateway's template names the container: the injector sets
			// its image ("auto" in Istio's gateway chart).
			p.Spec.Containers[i].Image = proxy.Image
			return
		}
	}
	p.Spec.Containers = append(p.Spec.Containers, proxy)
}

func setDefault(m map[string]string, k, v string) {
	if _, ok := m[k]; !ok && v != "" {
		m[k] = v
	}
}

func firstOf(m map[string]string, keys ...string) string {
	for _, k := range keys {
		if v := m[k]; v != "" {
			return v
		}
	}
	return ""
}
