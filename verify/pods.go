package verify

import (
	"context"
	"fmt"
	"slices"
	"sort"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/client-go/kubernetes"

	"github.com/revkit/revkit"
	"github.com/revkit/revkit/internal/kubeutil"
	"github.com/revkit/revkit/internal/mesh"
)

const opPods = "verify.Pods"

// PodsOptions selects the namespaces whose pods Pods inspects and the
// revision they should run.
type PodsOptions struct {
	// Namespaces lists namespaces by name; each must exist.
	Namespaces []string
	// Selector is a label selector on namespaces, e.g. "istio.io/rev" or
	// "team=shop". Namespaces it matches are added to Namespaces.
	//
	// When both Namespaces and Selector are empty, Pods looks at every
	// namespace of the mesh: those an injector would inject and those where a
	// pod already carries a sidecar.
	Selector string
	// Target is the revision, or a tag naming it, that every pod should run.
	// When empty, each pod is expected to run the revision that would inject
	// it if it were created now (the revision its namespace and labels
	// select), which is what a rollout restart would give it.
	Target string
	// ControlPlaneNamespace is where istiod runs; empty means istio-system.
	ControlPlaneNamespace string
}

// Straggler is a pod that does not run the expected sidecar.
type Straggler struct {
	Namespace string
	Pod       string
	// Revision is the revision of its sidecar, "" when it has none.
	Revision string
	// Expected lists the revisions it should run; empty when it should have
	// no sidecar at all.
	Expected []string
	// Reason is "on revision <rev>" or "not injected".
	Reason string
}

// String returns "<namespace>/<pod>: <reason>".
func (s Straggler) String() string { return s.Namespace + "/" + s.Pod + ": " + s.Reason }

// NamespacePods counts the pods of one namespace.
type NamespacePods struct {
	Namespace string
	// Injects lists the revisions that would inject a new plain pod of the
	// namespace: usually one, none when the namespace is not injected. It
	// follows the webhooks the apiserver calls, not the labels alone.
	Injects []string
	// Injections are those webhooks.
	Injections []Injection
	// Conflict is set when the namespace is labelled both istio-injection
	// and istio.io/rev (IST0123): istio-injection decides.
	Conflict *LabelConflict
	// Revisions counts active pods by the revision of their sidecar.
	Revisions map[string]int
	// NoSidecar counts active pods without a sidecar (ambient ones aside),
	// OptedOut those of them (and of the others) labelled
	// sidecar.istio.io/inject=false.
	NoSidecar int
	OptedOut  int
	// Ambient counts active pods in ambient mode (istio.io/dataplane-mode
	// on their namespace or themselves, or enrolled by istio-cni) without a
	// sidecar: their node's ztunnel serves them, not a revision's injector,
	// so they are never stragglers of a revision. Ambient is set when the
	// namespace itself is labelled istio.io/dataplane-mode=ambient.
	Ambient          int
	AmbientNamespace bool
	// Terminating counts pods being deleted; they are not counted anywhere
	// else and are never stragglers.
	Terminating int
	// Stragglers are the active pods not on the expected revision.
	Stragglers []Straggler
}

// Active returns the number of active pods counted.
func (n NamespacePods) Active() int {
	total := n.NoSidecar + n.Ambient
	for _, c := range n.Revisions {
		total += c
	}
	return total
}

// PodsReport is the result of Pods.
type PodsReport struct {
	// Target is the option as given, Revision what it resolved to ("" when
	// no Target was given).
	Target   string
	Revision string
	// Namespaces are the namespaces inspected, sorted by name.
	Namespaces []NamespacePods
	// Stragglers are those of every namespace, sorted by namespace and pod.
	Stragglers []Straggler
}

// OK reports whether every active pod runs the expected sidecar.
func (r *PodsReport) OK() bool { return len(r.Stragglers) == 0 }

// Err returns a *VerificationError listing the stragglers, or nil when OK.
func (r *PodsReport) Err() error {
	var problems []Problem
	for _, s := range r.Stragglers {
		problems = append(problems, Problem{Kind: ProblemStraggler, Object: s.Namespace + "/" + s.Pod, Detail: s.Reason})
	}
	return verificationErr(opPods, problems)
}

// Validate checks the options as Pods does before any request.
func (o *PodsOptions) Validate() error {
	_, err := o.validate()
	return err
}

func (o *PodsOptions) validate() (labels.Selector, error) {
	if err := validateNamespaces(o.Namespaces); err != nil {
		return nil, err
	}
	var sel labels.Selector
	if o.Selector != "" {
		s, err := labels.Parse(o.Selector)
		if err != nil {
			return nil, &revkit.InvalidInputError{Field: "Selector", Value: o.Selector, Reason: err.Error()}
		}
		sel = s
	}
	if o.Target != "" {
		if err := validateTarget("Target", o.Target); err != nil {
			return nil, err
		}
	}
	return sel, validateControlPlaneNamespace(o.ControlPlaneNamespace)
}

// Pods counts, per namespace, the pods running a sidecar of each revision
// and lists the stragglers: active pods whose sidecar is not of the
// expected revision, or that have none. Pods labelled
// sidecar.istio.io/inject=false are never stragglers; pods in ambient mode
// without a sidecar (istio.io/dataplane-mode=ambient on their namespace or
// themselves, or enrolled by istio-cni) are counted as Ambient, served by
// ztunnel, and never stragglers; finished pods are ignored and terminating
// ones only counted.
//
// For ten namespaces or more it reads the pods with one paged list across
// the cluster (per namespace when that is forbidden); without Namespaces
// or Selector it reads the whole mesh that way.
//
// Bad options return a *revkit.InvalidInputError before any request; an
// unknown Target or a listed namespace that does not exist a
// *revkit.NotFoundError. A report with stragglers is not an error: check
// OK or Err.
func Pods(ctx context.Context, kube kubernetes.Interface, opts PodsOptions) (*PodsReport, error) {
	sel, err := opts.validate()
	if err != nil {
		return nil, err
	}
	cpNS := revkit.ControlPlaneNamespace(opts.ControlPlaneNamespace)
	model, err := mesh.Load(ctx, kube, cpNS)
	if err != nil {
		return nil, fmt.Errorf("%s: read the control plane in %s: %w", opPods, cpNS, err)
	}
	report := &PodsReport{Target: opts.Target}
	if opts.Target != "" {
		rev, _, ok := model.Resolve(opts.Target)
		if !ok {
			return nil, &revkit.NotFoundError{Kind: "revision or tag", Name: opts.Target}
		}
		report.Revision = rev
	}

	var byNS map[string][]podFacts
	namespaces, err := selectNamespaces(ctx, kube, opts, sel)
	if err != nil {
		return nil, err
	}
	if namespaces == nil {
		namespaces, byNS, err = meshNamespaces(ctx, kube, model)
	} else if len(namespaces) >= kubeutil.ClusterWideFrom {
		byNS, err = podsByNamespace(ctx, kube, namespaces)
	}
	if err != nil {
		return nil, err
	}

	for i := range namespaces {
		ns := &namespaces[i]
		pods := byNS[ns.Name]
		if byNS == nil {
			if pods, err = listPods(ctx, kube, ns.Name); err != nil {
				return nil, err
			}
		}
		np := countPods(model, ns, pods, report.Revision)
		report.Namespaces = append(report.Namespaces, np)
		report.Stragglers = append(report.Stragglers, np.Stragglers...)
	}
	return report, nil
}

// podFacts is what Pods needs of a pod. Pods keeps these rather than the
// pods, so that reading the pods of a large cluster holds one page of them
// at a time.
type podFacts struct {
	name        string
	labels      map[string]string
	annotations map[string]string
	revision    string
	injected    bool
	finished    bool
	terminating bool
	optedOut    bool
}

func factsOf(p *corev1.Pod) podFacts {
	rev, injected := mesh.PodRevision(p)
	return podFacts{
		name:        p.Name,
		labels:      p.Labels,
		annotations: ambientOnly(p.Annotations),
		revision:    rev,
		injected:    injected,
		finished:    p.Status.Phase == corev1.PodSucceeded || p.Status.Phase == corev1.PodFailed,
		terminating: p.DeletionTimestamp != nil,
		optedOut:    mesh.InjectionDisabled(p.Labels, p.Annotations),
	}
}

// ambientOnly keeps the one annotation Pods reads besides the sidecar
// status, so that facts of many pods stay small.
func ambientOnly(a map[string]string) map[string]string {
	if v, ok := a[mesh.AnnotationAmbientRedirection]; ok {
		return map[string]string{mesh.AnnotationAmbientRedirection: v}
	}
	return nil
}

// podsByNamespace lists every pod once and keeps those of namespaces,
// grouped by namespace. It returns nil, nil when listing across the
// cluster is forbidden.
func podsByNamespace(ctx context.Context, kc kubernetes.Interface, namespaces []corev1.Namespace) (map[string][]podFacts, error) {
	byNS := make(map[string][]podFacts, len(namespaces))
	for _, ns := range namespaces {
		byNS[ns.Name] = nil
	}
	err := kubeutil.EachPod(ctx, kc, metav1.NamespaceAll, metav1.ListOptions{}, func(p *corev1.Pod) {
		if pods, ok := byNS[p.Namespace]; ok {
			byNS[p.Namespace] = append(pods, factsOf(p))
		}
	})
	if apierrors.IsForbidden(err) {
		return nil, nil
	}
	if err != nil {
		return nil, &revkit.OpError{Op: opPods, Verb: "list", Object: revkit.ObjectRef{Kind: "Pod"}, Err: err}
	}
	return byNS, nil
}

func listPods(ctx context.Context, kc kubernetes.Interface, ns string) ([]podFacts, error) {
	var pods []podFacts
	err := kubeutil.EachPod(ctx, kc, ns, metav1.ListOptions{}, func(p *corev1.Pod) { pods = append(pods, factsOf(p)) })
	if err != nil {
		return nil, &revkit.OpError{Op: opPods, Verb: "list", Object: revkit.ObjectRef{Kind: "Pod", Namespace: ns}, Err: err}
	}
	return pods, nil
}

// selectNamespaces returns the listed and selected namespaces sorted by
// name, or nil when the options name none.
func selectNamespaces(ctx context.Context, kc kubernetes.Interface, opts PodsOptions, sel labels.Selector) ([]corev1.Namespace, error) {
	if len(opts.Namespaces) == 0 && sel == nil {
		return nil, nil
	}
	selector := ""
	if sel != nil {
		selector = sel.String()
	}
	return kubeutil.SelectNamespaces(ctx, kc, opPods, opts.Namespaces, selector)
}

// meshNamespaces finds the namespaces of the mesh: those an injector would
// inject, those in ambient mode and those where a pod carries a sidecar.
// It lists every pod once, so it returns them grouped by namespace as
// well.
func meshNamespaces(ctx context.Context, kc kubernetes.Interface, model *mesh.Model) ([]corev1.Namespace, map[string][]podFacts, error) {
	list, err := kc.CoreV1().Namespaces().List(ctx, metav1.ListOptions{})
	if err != nil {
		return nil, nil, &revkit.OpError{Op: opPods, Verb: "list", Object: revkit.ObjectRef{Kind: "Namespace"}, Err: err}
	}
	byNS := map[string][]podFacts{}
	injected := map[string]bool{}
	err = kubeutil.EachPod(ctx, kc, metav1.NamespaceAll, metav1.ListOptions{}, func(p *corev1.Pod) {
		f := factsOf(p)
		byNS[p.Namespace] = append(byNS[p.Namespace], f)
		injected[p.Namespace] = injected[p.Namespace] || f.injected
	})
	if err != nil {
		return nil, nil, &revkit.OpError{Op: opPods, Verb: "list", Object: revkit.ObjectRef{Kind: "Pod"}, Err: err}
	}
	var out []corev1.Namespace
	for _, ns := range list.Items {
		if injected[ns.Name] || len(model.NamespaceRevisions(&ns)) > 0 || ns.Labels[mesh.LabelDataplaneMode] == "ambient" {
			out = append(out, ns)
		}
	}
	sort.Slice(out, func(a, b int) bool { return out[a].Name < out[b].Name })
	return out, byNS, nil
}

// countPods tallies one namespace. target is the resolved revision, or ""
// to expect whatever would inject each pod now.
func countPods(model *mesh.Model, ns *corev1.Namespace, pods []podFacts, target string) NamespacePods {
	np := NamespacePods{Namespace: ns.Name, Revisions: map[string]int{}}
	if revs := model.NamespaceRevisions(ns); len(revs) > 0 {
		np.Injects = revs
	}
	for _, in := range model.PodInjections(ns, nil) {
		np.Injections = append(np.Injections, Injection(in))
	}
	np.Conflict = labelConflict(model, ns)
	nsLabels := mesh.NamespaceLabels(ns)
	np.AmbientNamespace = nsLabels[mesh.LabelDataplaneMode] == "ambient"
	sort.Slice(pods, func(a, b int) bool { return pods[a].name < pods[b].name })
	for i := range pods {
		p := &pods[i]
		if p.finished {
			continue
		}
		if p.terminating {
			np.Terminating++
			continue
		}
		switch {
		case p.injected:
			np.Revisions[p.revision]++
		case mesh.Ambient(nsLabels, p.labels, p.annotations):
			np.Ambient++
			continue
		default:
			np.NoSidecar++
		}
		if p.optedOut {
			np.OptedOut++
			continue
		}
		var expected []string
		if target != "" {
			expected = []string{target}
		} else {
			expected = injectingRevisions(model, nsLabels, p.labels)
		}
		switch {
		case p.injected && !slices.Contains(expected, p.revision):
			np.Stragglers = append(np.Stragglers, Straggler{Namespace: ns.Name, Pod: p.name, Revision: p.revision,
				Expected: expected, Reason: "on revision " + p.revision})
		case !p.injected && len(expected) > 0:
			np.Stragglers = append(np.Stragglers, Straggler{Namespace: ns.Name, Pod: p.name,
				Expected: expected, Reason: "not injected"})
		}
	}
	return np
}

// injectingRevisions returns the revisions whose injectors would inject a
// pod with these labels if it were created now.
func injectingRevisions(model *mesh.Model, nsLabels, podLabels map[string]string) []string {
	var out []string
	for _, inj := range model.Matching(nsLabels, podLabels) {
		if !slices.Contains(out, inj.Revision) {
			out = append(out, inj.Revision)
		}
	}
	sort.Strings(out)
	return out
}
