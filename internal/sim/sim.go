package sim

import (
	"fmt"
	"hash/fnv"
	"reflect"
	"sort"
	"sync"
	"time"

	admv1 "k8s.io/api/admissionregistration/v1"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	apimeta "k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/kubernetes/fake"
	"k8s.io/client-go/kubernetes/scheme"
	k8stesting "k8s.io/client-go/testing"

	"github.com/revkit/revkit"
)

// Options configures a Simulation. The zero value simulates a healthy
// cluster whose rollouts complete at once.
type Options struct {
	// Now stamps conditions and pod start times; default time.Now.
	Now func() time.Time
	// HoldStuckRollouts leaves a Deployment whose rollout cannot progress
	// (its new pods never become ready, or admission refuses them) in
	// progress (Progressing=True, ReplicaSetUpdated), as it is until its
	// progress deadline passes, so that a wait for it runs to its timeout.
	// By default simulated time jumps to the deadline: the Deployment
	// reports Progressing=False with reason ProgressDeadlineExceeded at
	// once, as its controller does once spec.progressDeadlineSeconds have
	// passed.
	HoldStuckRollouts bool
	// IstioVersions maps a revision to the Istio version of its proxies
	// (the proxy image tag, and istio_version in the sync status); default
	// the revision name.
	IstioVersions map[string]string
	// Nodes is the number of nodes a DaemonSet created during the
	// simulation runs one pod on; default 3. A DaemonSet of the Cluster
	// keeps its number of pods.
	Nodes int
}

// Simulation plays the part of a cluster's controllers and of Istio's
// injector on a fake clientset, synchronously, inside the calls that
// change something:
//
//   - when a Deployment, StatefulSet or DaemonSet is created or its spec
//     changes (a rollout restart, a label on the pod template, a scale),
//     the apiserver's part is played (defaults, metadata.generation) and
//     then the controller's: new pods replace the old ones as the
//     workload's update strategy says (a Deployment through a ReplicaSet
//     per pod template, labelled pod-template-hash; surge and
//     unavailability limits respected), and the status moves as the
//     controller moves it (observedGeneration, replica counts, and for a
//     Deployment the Available and Progressing conditions);
//   - when a pod is created, by a controller or by a client, the injector
//     webhooks the apiserver would call for it are found from the
//     MutatingWebhookConfigurations present, with the injection model
//     revkit uses for its own answers, and the first stamps its revision's
//     sidecar (the sidecar.istio.io/status annotation, the istio-proxy
//     container, the labels Istio's injection template sets). A webhook
//     that cannot be reached (its Service is missing, or its istiod was
//     stopped with StopIstiod) refuses the pod when it fails closed, as the
//     apiserver does, and is skipped when its failure policy is Ignore;
//   - a write with dryRun=All is judged (admission, conflicts) but not
//     stored, as by the apiserver; a plain fake clientset stores it;
//   - deleting a workload deletes its ReplicaSets and pods, as the garbage
//     collector does;
//   - writes are stored without the fake's managedFields bookkeeping, which
//     costs over a millisecond a write; server-side apply still goes
//     through the fake's field manager.
//
// SyncSource reports the proxies of the simulated pods as an istiod's
// /debug/syncz would, for verify.Proxies.
//
// Nothing runs in the background: each change is complete when the call
// that made it returns, so a test is deterministic and needs no waiting.
// Pods are running (and ready) as soon as they exist; pod names are
// derived from their owner, never random. Faults compose: the kit's
// FailNth, FailAlways and ConnectionRefused, and any reactor prepended to
// the clientset, see a call before the simulation does, so a call they
// fail never reaches it. FailRollout, CrashRevision, StopIstiod and
// StaleProxies make the simulated cluster itself misbehave.
//
// The pods the Cluster built are adopted when the simulation starts (given
// owner references and the labels their controller sets), as the pods of
// their workload's current template; a workload is not reconciled until
// something writes to it. The fake's watches deliver every change: a test
// that opens a watch must read it (the fake panics after 100 unread
// events).
type Simulation struct {
	kube    *fake.Clientset
	tracker k8stesting.ObjectTracker
	store   k8stesting.ReactionFunc
	opts    Options

	mu       sync.Mutex
	closed   bool
	failNext map[string]bool   // "ns/name": its next rollout fails
	failing  map[string]string // "ns/name" → the template hash whose pods never become ready
	crashing map[string]bool   // revisions whose proxies crash
	stopped  map[string]bool   // revisions whose istiod does not answer
	stale    map[string]bool   // revisions whose proxies do not acknowledge
	podSeq   map[string]int    // owner → pods it created, for their names
	uidSeq   int
}

// New starts a simulation on a fake clientset. It adopts the pods already
// there (see Simulation) and fails if an object cannot be read or written
// back.
func New(kube *fake.Clientset, opts Options) (*Simulation, error) {
	if kube == nil {
		return nil, &revkit.InvalidInputError{Field: "kube", Reason: "must not be nil"}
	}
	if opts.Nodes < 0 {
		return nil, &revkit.InvalidInputError{Field: "Nodes", Reason: "must not be negative"}
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	if opts.Nodes == 0 {
		opts.Nodes = 3
	}
	s := &Simulation{kube: kube, tracker: plainTracker(kube.Tracker()), opts: opts,
		failNext: map[string]bool{}, failing: map[string]string{}, crashing: map[string]bool{},
		stopped: map[string]bool{}, stale: map[string]bool{}, podSeq: map[string]int{}}
	s.store = k8stesting.ObjectReaction(s.tracker)
	if err := s.adopt(); err != nil {
		return nil, fmt.Errorf("sim: %w", err)
	}
	// The simulation goes right before the tracker's own reactor, the last
	// one of the chain: a reactor prepended at any time, before or after,
	// sees each call first.
	kube.Lock()
	defer kube.Unlock()
	chain := kube.ReactionChain
	at := len(chain)
	for i := len(chain) - 1; i >= 0; i-- {
		if r, ok := chain[i].(*k8stesting.SimpleReactor); ok && r.Verb == "*" && r.Resource == "*" {
			at = i
			break
		}
	}
	next := make([]k8stesting.Reactor, 0, len(chain)+1)
	next = append(next, chain[:at]...)
	next = append(next, &k8stesting.SimpleReactor{Verb: "*", Resource: "*", Reaction: s.react})
	kube.ReactionChain = append(next, chain[at:]...)
	return s, nil
}

// plainTracker returns the object tracker inside the field-managed one of
// fake.NewClientset, or t itself. The field-managed tracker builds a REST
// mapper for every write it stores (over a millisecond each); the
// simulation stores its own writes and the clients' (except server-side
// apply) in the tracker inside it, which holds the same objects and
// watches, so that a fleet's upgrade simulates in well under a second.
func plainTracker(t k8stesting.ObjectTracker) k8stesting.ObjectTracker {
	v := reflect.ValueOf(t)
	if v.Kind() != reflect.Pointer || v.Elem().Kind() != reflect.Struct {
		return t
	}
	f := v.Elem().FieldByName("ObjectTracker")
	if !f.IsValid() || !f.CanInterface() {
		return t
	}
	if inner, ok := f.Interface().(k8stesting.ObjectTracker); ok && inner != nil {
		return inner
	}
	return t
}

// Kube returns the simulated cluster's clientset.
func (s *Simulation) Kube() *fake.Clientset { return s.kube }

// Close stops the simulation: from then on the clientset is a plain fake
// again, whose writes move nothing. There is nothing else to stop.
func (s *Simulation) Close() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.closed = true
}

// FailRollout makes the next rollout of the workload namespace/name fail:
// the pods of its next pod template never become ready (their image
// cannot be pulled). A Deployment then reports ProgressDeadlineExceeded
// (see Options.HoldStuckRollouts), which ends revkit's rollout waits
// with a *revkit.RolloutFailedError; a StatefulSet or DaemonSet stays in
// progress, as their controllers report no failure, and a wait for it runs
// to its timeout. The rollout after that one is healthy again.
func (s *Simulation) FailRollout(namespace, name string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.failNext[namespace+"/"+name] = true
}

// CrashRevision makes the sidecars of revision rev crash: pods started
// from now on with its sidecar never become ready (istio-proxy in
// CrashLoopBackOff), so rollouts onto rev get stuck and its proxies never
// connect. Running pods are left alone.
func (s *Simulation) CrashRevision(rev string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.crashing[rev] = true
}

// StopIstiod makes revision rev's istiod stop answering: its injector
// webhooks (the revision's own and its tags') cannot be called, so pods
// they select are refused (or, with failurePolicy Ignore, created without
// a sidecar), and its sync source fails with a refused connection.
func (s *Simulation) StopIstiod(rev string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.stopped[rev] = true
}

// StartIstiod undoes StopIstiod.
func (s *Simulation) StartIstiod(rev string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	delete(s.stopped, rev)
}

// StaleProxies makes revision rev's proxies report STALE: istiod sent them
// configuration they have not acknowledged.
func (s *Simulation) StaleProxies(rev string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.stale[rev] = true
}

var (
	podsGVR      = corev1.SchemeGroupVersion.WithResource("pods")
	nsGVR        = corev1.SchemeGroupVersion.WithResource("namespaces")
	servicesGVR  = corev1.SchemeGroupVersion.WithResource("services")
	deployGVR    = appsv1.SchemeGroupVersion.WithResource("deployments")
	stsGVR       = appsv1.SchemeGroupVersion.WithResource("statefulsets")
	dsGVR        = appsv1.SchemeGroupVersion.WithResource("daemonsets")
	rsGVR        = appsv1.SchemeGroupVersion.WithResource("replicasets")
	mwcGVR       = admv1.SchemeGroupVersion.WithResource("mutatingwebhookconfigurations")
	workloadGVRs = map[string]bool{"deployments": true, "statefulsets": true, "daemonsets": true}
)

func kindOf(gvr schema.GroupVersionResource) schema.GroupVersionKind {
	switch gvr.Resource {
	case "pods":
		return corev1.SchemeGroupVersion.WithKind("Pod")
	case "namespaces":
		return corev1.SchemeGroupVersion.WithKind("Namespace")
	case "deployments":
		return appsv1.SchemeGroupVersion.WithKind("Deployment")
	case "statefulsets":
		return appsv1.SchemeGroupVersion.WithKind("StatefulSet")
	case "daemonsets":
		return appsv1.SchemeGroupVersion.WithKind("DaemonSet")
	case "replicasets":
		return appsv1.SchemeGroupVersion.WithKind("ReplicaSet")
	case "mutatingwebhookconfigurations":
		return admv1.SchemeGroupVersion.WithKind("MutatingWebhookConfiguration")
	}
	return schema.GroupVersionKind{}
}

// react is the simulation's reactor; it runs with the clientset locked, so
// it reads and writes the tracker directly.
func (s *Simulation) react(a k8stesting.Action) (bool, runtime.Object, error) {
	verb := a.GetVerb()
	if verb != "create" && verb != "update" && verb != "patch" && verb != "delete" {
		return false, nil, nil
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed || a.GetSubresource() != "" {
		return false, nil, nil
	}
	if dryRun(a) {
		obj, err := s.dryRun(a)
		return true, obj, err
	}
	res := a.GetResource().Resource
	switch {
	case res == "pods" && verb == "create":
		obj, err := s.createPodFromClient(a.(k8stesting.CreateActionImpl))
		return true, obj, err
	case workloadGVRs[res] && verb == "delete":
		obj, err := s.deleteWorkload(a)
		return true, obj, err
	case workloadGVRs[res]:
		obj, err := s.writeWorkload(a)
		return true, obj, err
	}
	if p, ok := a.(k8stesting.PatchActionImpl); ok && p.GetPatchType() == types.ApplyPatchType {
		return false, nil, nil // the fake's field manager merges it
	}
	obj, err := s.storeObject(a)
	return true, obj, err
}

// storeObject stores a write nothing simulated reacts to.
func (s *Simulation) storeObject(a k8stesting.Action) (runtime.Object, error) {
	_, obj, err := s.store(a)
	return obj, err
}

func dryRun(a k8stesting.Action) bool {
	switch act := a.(type) {
	case k8stesting.CreateActionImpl:
		return len(act.CreateOptions.DryRun) > 0
	case k8stesting.UpdateActionImpl:
		return len(act.UpdateOptions.DryRun) > 0
	case k8stesting.PatchActionImpl:
		return len(act.PatchOptions.DryRun) > 0
	case k8stesting.DeleteActionImpl:
		return len(act.DeleteOptions.DryRun) > 0
	}
	return false
}

// dryRun answers a dry-run write as the apiserver does: the write is
// applied to a scratch copy of the object (a created pod goes through
// admission), and nothing is stored.
func (s *Simulation) dryRun(a k8stesting.Action) (runtime.Object, error) {
	gvr, ns := a.GetResource(), a.GetNamespace()
	scratch := k8stesting.NewObjectTracker(scheme.Scheme, scheme.Codecs.UniversalDecoder())
	name := ""
	switch act := a.(type) {
	case k8stesting.CreateActionImpl:
		m, err := apimeta.Accessor(act.GetObject())
		if err != nil {
			return nil, err
		}
		name = m.GetName()
		if pod, ok := act.GetObject().(*corev1.Pod); ok {
			pod = pod.DeepCopy()
			if err := s.admit(pod); err != nil {
				return nil, err
			}
			act.Object = pod
			a = act
		}
	case k8stesting.UpdateActionImpl:
		m, err := apimeta.Accessor(act.GetObject())
		if err != nil {
			return nil, err
		}
		name = m.GetName()
	case k8stesting.PatchActionImpl:
		name = act.GetName()
	case k8stesting.DeleteActionImpl:
		name = act.GetName()
	}
	if cur, err := s.tracker.Get(gvr, ns, name); err == nil {
		if err := scratch.Create(gvr, cur, ns); err != nil {
			return nil, err
		}
	}
	_, obj, err := k8stesting.ObjectReaction(scratch)(a)
	return obj, err
}

// adopt prepares the objects the Cluster built as the apiserver and the
// controllers would have left them: workloads defaulted and given UIDs,
// each Deployment's current template given a ReplicaSet, and the pods
// each workload's selector matches owned by it and labelled as their
// controller labels them.
func (s *Simulation) adopt() error {
	podList, err := s.tracker.List(podsGVR, kindOf(podsGVR), "")
	if err != nil {
		return err
	}
	pods := podList.(*corev1.PodList).Items
	taken := make([]bool, len(pods))
	orphans := func(ns string, sel *metav1.LabelSelector) []*corev1.Pod {
		var out []*corev1.Pod
		for i := range pods {
			p := &pods[i]
			if taken[i] || p.Namespace != ns || metav1.GetControllerOf(p) != nil || !selects(sel, p.Labels) {
				continue
			}
			taken[i] = true
			out = append(out, p)
		}
		return out
	}
	var adopted []*corev1.Pod

	deps, err := s.tracker.List(deployGVR, kindOf(deployGVR), "")
	if err != nil {
		return err
	}
	for i := range deps.(*appsv1.DeploymentList).Items {
		d := &deps.(*appsv1.DeploymentList).Items[i]
		s.prepare(d)
		defaultDeployment(d)
		rs, err := s.newReplicaSet(d, templateHash(&d.Spec.Template))
		if err != nil {
			return err
		}
		mine := orphans(d.Namespace, d.Spec.Selector)
		for _, p := range mine {
			own(p, rs, "ReplicaSet")
			p.Labels[appsv1.DefaultDeploymentUniqueLabelKey] = rs.Labels[appsv1.DefaultDeploymentUniqueLabelKey]
		}
		adopted = append(adopted, mine...)
		n := int32(len(mine))
		rs.Status = appsv1.ReplicaSetStatus{Replicas: n, ReadyReplicas: n, AvailableReplicas: n, FullyLabeledReplicas: n, ObservedGeneration: 1}
		if err := s.tracker.Update(rsGVR, rs, rs.Namespace); err != nil {
			return err
		}
		if err := s.tracker.Update(deployGVR, d, d.Namespace); err != nil {
			return err
		}
	}
	sts, err := s.tracker.List(stsGVR, kindOf(stsGVR), "")
	if err != nil {
		return err
	}
	for i := range sts.(*appsv1.StatefulSetList).Items {
		st := &sts.(*appsv1.StatefulSetList).Items[i]
		s.prepare(st)
		defaultStatefulSet(st)
		rev := st.Name + "-" + templateHash(&st.Spec.Template)
		st.Status.CurrentRevision, st.Status.UpdateRevision = rev, rev
		mine := orphans(st.Namespace, st.Spec.Selector)
		for _, p := range mine {
			own(p, st, "StatefulSet")
			p.Labels[appsv1.ControllerRevisionHashLabelKey] = rev
			p.Labels[appsv1.StatefulSetPodNameLabel] = p.Name
		}
		adopted = append(adopted, mine...)
		if err := s.tracker.Update(stsGVR, st, st.Namespace); err != nil {
			return err
		}
	}
	dss, err := s.tracker.List(dsGVR, kindOf(dsGVR), "")
	if err != nil {
		return err
	}
	for i := range dss.(*appsv1.DaemonSetList).Items {
		d := &dss.(*appsv1.DaemonSetList).Items[i]
		s.prepare(d)
		defaultDaemonSet(d)
		hash := templateHash(&d.Spec.Template)
		mine := orphans(d.Namespace, d.Spec.Selector)
		for n, p := range mine {
			own(p, d, "DaemonSet")
			p.Labels[appsv1.ControllerRevisionHashLabelKey] = hash
			if p.Spec.NodeName == "" {
				p.Spec.NodeName = nodeName(n)
			}
		}
		adopted = append(adopted, mine...)
		if d.Status.DesiredNumberScheduled == 0 {
			d.Status.DesiredNumberScheduled = int32(len(mine))
		}
		if err := s.tracker.Update(dsGVR, d, d.Namespace); err != nil {
			return err
		}
	}
	for _, p := range adopted {
		if err := s.tracker.Update(podsGVR, p, p.Namespace); err != nil {
			return err
		}
	}
	return nil
}

// prepare gives an object what the apiserver gives every object it
// stores: a UID, a creation time and, for a workload, generation 1.
func (s *Simulation) prepare(obj metav1.Object) {
	if obj.GetUID() == "" {
		s.uidSeq++
		obj.SetUID(types.UID(fmt.Sprintf("sim-%08d", s.uidSeq)))
	}
	if ts := obj.GetCreationTimestamp(); ts.IsZero() {
		obj.SetCreationTimestamp(metav1.NewTime(s.opts.Now()))
	}
	if obj.GetGeneration() == 0 {
		obj.SetGeneration(1)
	}
	if obj.GetLabels() == nil {
		obj.SetLabels(map[string]string{})
	}
}

// own makes owner the controller of obj.
func own(obj metav1.Object, owner metav1.Object, kind string) {
	obj.SetOwnerReferences([]metav1.OwnerReference{*metav1.NewControllerRef(owner, appsv1.SchemeGroupVersion.WithKind(kind))})
}

func ownedBy(obj metav1.Object, owner types.UID) bool {
	ref := metav1.GetControllerOfNoCopy(obj)
	return ref != nil && ref.UID == owner
}

// templateHash names a pod template as the controllers do, by a hash of
// its content, in the alphabet Kubernetes uses for generated names.
func templateHash(t *corev1.PodTemplateSpec) string {
	h := fnv.New64a()
	b, _ := t.Marshal()
	_, _ = h.Write(b)
	return encode(h.Sum64(), 10)
}

const nameAlphabet = "bcdfghjklmnpqrstvwxz2456789"

func encode(v uint64, n int) string {
	out := make([]byte, n)
	for i := range out {
		out[i] = nameAlphabet[v%uint64(len(nameAlphabet))]
		v /= uint64(len(nameAlphabet))
	}
	return string(out)
}

func nodeName(i int) string { return fmt.Sprintf("sim-node-%d", i) }

// selects reports whether a workload's selector matches a pod's labels; a
// selector that matches everything or cannot be read selects nothing, as
// for controllers.
func selects(sel *metav1.LabelSelector, set map[string]string) bool {
	if sel == nil {
		return false
	}
	s, err := metav1.LabelSelectorAsSelector(sel)
	if err != nil || s.Empty() {
		return false
	}
	return s.Matches(labels.Set(set))
}

// notFound reports whether err says an object does not exist.
func notFound(err error) bool { return apierrors.IsNotFound(err) }

func sortPods(pods []*corev1.Pod) {
	sort.Slice(pods, func(i, j int) bool { return pods[i].Name < pods[j].Name })
}
