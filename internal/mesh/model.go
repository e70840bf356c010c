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
	for _, w := range i.Webhooks {
		if Matches(w.NamespaceSelector, nsLabels) && Matches(w.ObjectSelector, podLabels) {
			return true
		}
	}
	return false
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

// NamespaceRevisions returns the revisions a namespace is bound to: by its
// istio.io/rev label (resolving tags) and by the injectors that would inject
// a plain pod in it. Usually one; none when the namespace is not injected.
func (m *Model) NamespaceRevisions(ns *corev1.Namespace) []string {
	set := map[string]bool{}
	if v, ok := ns.Labels[LabelRev]; ok {
		if rev, _, found := m.Resolve(v); found {
			set[rev] = true
		}
	}
	for _, inj := range m.Matching(nsLabelsWithName(ns), nil) {
		set[inj.Revision] = true
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

// NamespaceTag returns the tag a namespace is labelled with, or "".
// Namespaces labelled istio-injection=enabled depend on the default tag.
func (m *Model) NamespaceTag(ns *corev1.Namespace) string {
	tags := m.Tags()
	if v, ok := ns.Labels[LabelRev]; ok {
		if _, isTag := tags[v]; isTag {
			return v
		}
		return ""
	}
	if ns.Labels[LabelInjection] == "enabled" {
		if _, ok := tags[DefaultRevision]; ok {
			return DefaultRevision
		}
	}
	return ""
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
