package mesh

import (
	"context"
	"fmt"
	"sort"
	"strings"

	admv1 "k8s.io/api/admissionregistration/v1"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
)

// Injector is one MutatingWebhookConfiguration that injects sidecars: a
// revision's own injector, a tag's, or a legacy non-revisioned one.
type Injector struct {
	// Name of the MutatingWebhookConfiguration.
	Name string
	// Revision is the revision it injects (istio.io/rev; "default" when the
	// label is missing).
	Revision string
	// Tag is the tag it implements, or "".
	Tag string
	// Webhooks are its injection webhooks.
	Webhooks []admv1.MutatingWebhook
	// Object is the configuration as read.
	Object *admv1.MutatingWebhookConfiguration
}

// IsTag reports whether the injector implements a revision tag.
func (i *Injector) IsTag() bool { return i.Tag != "" }

// Deactivated reports whether every webhook of the injector is disabled with
// istioctl's never-match selector.
func (i *Injector) Deactivated() bool {
	for _, w := range i.Webhooks {
		if !NeverMatches(w.NamespaceSelector) && !NeverMatches(w.ObjectSelector) {
			return false
		}
	}
	return true
}

// Matches reports whether a pod with podLabels in a namespace with nsLabels
// would be sent to this injector.
func (i *Injector) Matches(nsLabels, podLabels map[string]string) bool {
	return i.MatchingWebhook(nsLabels, podLabels) != nil
}

// MatchingWebhook returns the first of the injector's webhooks that the
// apiserver would call for a pod with podLabels in a namespace with
// nsLabels, or nil.
func (i *Injector) MatchingWebhook(nsLabels, podLabels map[string]string) *admv1.MutatingWebhook {
	for k := range i.Webhooks {
		w := &i.Webhooks[k]
		if Matches(w.NamespaceSelector, nsLabels) && Matches(w.ObjectSelector, podLabels) {
			return w
		}
	}
	return nil
}

// ToInjector classifies a webhook configuration; ok is false when it has no
// injection webhook.
func ToInjector(mwc *admv1.MutatingWebhookConfiguration) (Injector, bool) {
	inj := Injector{Name: mwc.Name, Object: mwc, Tag: mwc.Labels[LabelTag], Revision: mwc.Labels[LabelRev]}
	if inj.Revision == "" {
		inj.Revision = DefaultRevision
	}
	for _, w := range mwc.Webhooks {
		if strings.HasSuffix(w.Name, InjectorSuffix) {
			inj.Webhooks = append(inj.Webhooks, w)
		}
	}
	return inj, len(inj.Webhooks) > 0
}

// Model is the control plane as found in the cluster.
type Model struct {
	// Injectors, sorted by name.
	Injectors []Injector
	// Validators are the Istio ValidatingWebhookConfigurations.
	Validators []admv1.ValidatingWebhookConfiguration
	// Deployments of istiod in the control-plane namespace, by revision.
	Deployments map[string][]string
	// Namespace is the control-plane namespace.
	Namespace string
}

// Load reads injectors, validators and istiod Deployments.
func Load(ctx context.Context, kube kubernetes.Interface, controlPlaneNS string) (*Model, error) {
	m := &Model{Namespace: controlPlaneNS, Deployments: map[string][]string{}}
	mwcs, err := kube.AdmissionregistrationV1().MutatingWebhookConfigurations().List(ctx, metav1.ListOptions{})
	if err != nil {
		return nil, fmt.Errorf("list MutatingWebhookConfigurations: %w", err)
	}
	m.SetInjectors(mwcs.Items)
	vwcs, err := kube.AdmissionregistrationV1().ValidatingWebhookConfigurations().List(ctx, metav1.ListOptions{})
	if err != nil {
		return nil, fmt.Errorf("list ValidatingWebhookConfigurations: %w", err)
	}
	for _, v := range vwcs.Items {
		for _, w := range v.Webhooks {
			if strings.HasSuffix(w.Name, ValidatorSuffix) {
				m.Validators = append(m.Validators, v)
				break
			}
		}
	}
	deps, err := kube.AppsV1().Deployments(controlPlaneNS).List(ctx, metav1.ListOptions{LabelSelector: "app=istiod"})
	if err != nil {
		return nil, fmt.Errorf("list istiod Deployments in %s: %w", controlPlaneNS, err)
	}
	for _, d := range deps.Items {
		m.addDeployment(&d)
	}
	return m, nil
}

func (m *Model) addDeployment(d *appsv1.Deployment) {
	rev := d.Labels[LabelRev]
	if rev == "" {
		rev = DefaultRevision
	}
	m.Deployments[rev] = append(m.Deployments[rev], d.Name)
}

// SetInjectors replaces the injectors with those found in mwcs.
func (m *Model) SetInjectors(mwcs []admv1.MutatingWebhookConfiguration) {
	m.Injectors = m.Injectors[:0]
	for i := range mwcs {
		if inj, ok := ToInjector(&mwcs[i]); ok {
			m.Injectors = append(m.Injectors, inj)
		}
	}
	sort.Slice(m.Injectors, func(a, b int) bool { return m.Injectors[a].Name < m.Injectors[b].Name })
}

// Revisions returns the names of the installed revisions: those with their
// own injector or an istiod Deployment. A deactivated legacy injector still
// counts: its istiod may serve proxies.
func (m *Model) Revisions() []string {
	set := map[string]bool{}
	for _, inj := range m.Injectors {
		if !inj.IsTag() {
			set[inj.Revision] = true
		}
	}
	for rev := range m.Deployments {
		set[rev] = true
	}
	return sortedKeys(set)
}

// HasRevision reports whether rev is installed.
func (m *Model) HasRevision(rev string) bool {
	for _, r := range m.Revisions() {
		if r == rev {
			return true
		}
	}
	return false
}

// RevisionInjectors returns the revision's own injectors (not its tags').
func (m *Model) RevisionInjectors(rev string) []*Injector {
	var out []*Injector
	for i := range m.Injectors {
		if inj := &m.Injectors[i]; !inj.IsTag() && inj.Revision == rev {
			out = append(out, inj)
		}
	}
	return out
}

// Tags maps each tag to the revision it points to.
func (m *Model) Tags() map[string]string {
	out := map[string]string{}
	for _, inj := range m.Injectors {
		if inj.IsTag() {
			out[inj.Tag] = inj.Revision
		}
	}
	return out
}

// TagInjector returns the injector of a tag, or nil.
func (m *Model) TagInjector(tag string) *Injector {
	for i := range m.Injectors {
		if m.Injectors[i].Tag == tag {
			return &m.Injectors[i]
		}
	}
	return nil
}

// Resolve turns a revision or tag name into a revision. ok is false when
// the name is neither.
func (m *Model) Resolve(name string) (rev string, isTag bool, ok bool) {
	if r, found := m.Tags()[name]; found {
		return r, true, true
	}
	if m.HasRevision(name) {
		return name, false, true
	}
	return "", false, false
}

// Matching returns the active injectors that would inject a pod with
// podLabels in a namespace with nsLabels. More than one is an overlap.
func (m *Model) Matching(nsLabels, podLabels map[string]string) []*Injector {
	var out []*Injector
	for i := range m.Injectors {
		if m.Injectors[i].Matches(nsLabels, podLabels) {
			out = append(out, &m.Injectors[i])
		}
	}
	return out
}

// NamespaceRevisions returns the revisions whose injectors the apiserver
// would call for a new plain pod of the namespace: usually one, none when
// the namespace is not injected, more when injectors overlap. It follows
// the webhooks' selectors, not the labels alone: a namespace labelled both
// istio-injection=enabled and istio.io/rev=<r> is injected by the default
// tag's (or default revision's) injector, not by r's (see
// NamespaceConflict). A namespace labelled istio.io/rev=<r> without
// istio-injection that no injector serves still counts for r when r is
// installed: its injector is missing, and removing r would leave the label
// dangling.
func (m *Model) NamespaceRevisions(ns *corev1.Namespace) []string {
	set := map[string]bool{}
	for _, inj := range m.Matching(nsLabelsWithName(ns), nil) {
		set[inj.Revision] = true
	}
	if len(set) == 0 {
		if v, ok := ns.Labels[LabelRev]; ok {
			if _, blocked := ns.Labels[LabelInjection]; !blocked {
				if rev, _, found := m.Resolve(v); found {
					set[rev] = true
				}
			}
		}
	}
	return sortedKeys(set)
}

// PodRevisions returns the revisions whose injectors would inject a new pod
// with podLabels in the namespace: usually one, none when it is not
// injected, more when injectors overlap.
func (m *Model) PodRevisions(ns *corev1.Namespace, podLabels map[string]string) []string {
	set := map[string]bool{}
	for _, inj := range m.Matching(nsLabelsWithName(ns), podLabels) {
		set[inj.Revision] = true
	}
	return sortedKeys(set)
}

// NamespaceTags returns the tags whose injectors the apiserver would call
// for a new plain pod of the namespace, sorted: the tag of its
// istio.io/rev label, or the default tag for istio-injection=enabled
// (which wins when both labels are set). None when no tag injects it.
func (m *Model) NamespaceTags(ns *corev1.Namespace) []string {
	set := map[string]bool{}
	for _, inj := range m.Matching(nsLabelsWithName(ns), nil) {
		if inj.IsTag() {
			set[inj.Tag] = true
		}
	}
	return sortedKeys(set)
}

// NamespaceTag returns the one tag that injects the namespace (see
// NamespaceTags), or "" when none or several do.
func (m *Model) NamespaceTag(ns *corev1.Namespace) string {
	if tags := m.NamespaceTags(ns); len(tags) == 1 {
		return tags[0]
	}
	return ""
}

// Injection is the injector webhook the apiserver calls for a pod.
type Injection struct {
	// Configuration names the MutatingWebhookConfiguration, Webhook the
	// webhook inside it.
	Configuration string
	Webhook       string
	// Revision it injects, and the tag it implements ("" for a revision's
	// own injector).
	Revision string
	Tag      string
}

// PodInjections returns the injector webhooks the apiserver would call for
// a new pod with podLabels in the namespace, by configuration name: one
// per matching configuration (the first of its webhooks that matches).
func (m *Model) PodInjections(ns *corev1.Namespace, podLabels map[string]string) []Injection {
	nsLabels := nsLabelsWithName(ns)
	var out []Injection
	for i := range m.Injectors {
		inj := &m.Injectors[i]
		if w := inj.MatchingWebhook(nsLabels, podLabels); w != nil {
			out = append(out, Injection{Configuration: inj.Name, Webhook: w.Name, Revision: inj.Revision, Tag: inj.Tag})
		}
	}
	return out
}

// LabelConflict is a namespace labelled both istio-injection and
// istio.io/rev, which Istio's analyzer reports as IST0123
// (NamespaceMultipleInjectionLabels): istio-injection decides, so the
// istio.io/rev label is ignored and its revision does not inject there.
type LabelConflict struct {
	Namespace string
	// Injection is the istio-injection value, Rev the istio.io/rev value.
	Injection string
	Rev       string
	// Injections are the webhooks the apiserver calls for a plain pod of
	// the namespace (none when istio-injection is not "enabled" or no
	// default injector exists).
	Injections []Injection
}

// String reads like Istio's IST0123 message, with the injector that wins.
func (c LabelConflict) String() string {
	who := "no injector"
	if len(c.Injections) > 0 {
		var names []string
		for _, in := range c.Injections {
			names = append(names, in.Configuration+"/"+in.Webhook+" (revision "+in.Revision+")")
		}
		who = strings.Join(names, ", ")
	}
	return fmt.Sprintf("namespace %s has both istio-injection=%s and istio.io/rev=%s (IST0123): %s injects its pods, not %q; "+
		"remove one label (kubectl label namespace %s istio-injection- or istio.io/rev-)", c.Namespace, c.Injection, c.Rev, who, c.Rev, c.Namespace)
}

// NamespaceConflict reports whether the namespace carries both injection
// labels, and which webhooks inject its pods then.
func (m *Model) NamespaceConflict(ns *corev1.Namespace) (LabelConflict, bool) {
	inj, hasInj := ns.Labels[LabelInjection]
	rev, hasRev := ns.Labels[LabelRev]
	if !hasInj || !hasRev {
		return LabelConflict{}, false
	}
	return LabelConflict{Namespace: ns.Name, Injection: inj, Rev: rev, Injections: m.PodInjections(ns, nil)}, true
}

// nsLabelsWithName adds the label the apiserver sets on every namespace, so
// selectors on it evaluate as they would in admission.
func nsLabelsWithName(ns *corev1.Namespace) map[string]string {
	out := make(map[string]string, len(ns.Labels)+1)
	for k, v := range ns.Labels {
		out[k] = v
	}
	out["kubernetes.io/metadata.name"] = ns.Name
	return out
}

// NamespaceLabels returns the labels admission sees on ns.
func NamespaceLabels(ns *corev1.Namespace) map[string]string { return nsLabelsWithName(ns) }

func sortedKeys(set map[string]bool) []string {
	out := make([]string, 0, len(set))
	for k := range set {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}
