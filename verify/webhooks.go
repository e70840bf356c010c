package verify

import (
	"context"
	"fmt"
	"sort"

	admv1 "k8s.io/api/admissionregistration/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"

	"github.com/revkit/revkit"
	"github.com/revkit/revkit/internal/mesh"
)

const opWebhooks = "verify.Webhooks"

// Kinds of webhook configuration, as they appear in findings.
const (
	KindMutating   = "MutatingWebhookConfiguration"
	KindValidating = "ValidatingWebhookConfiguration"
)

// WebhooksOptions configures Webhooks. The zero value checks a control
// plane in istio-system.
type WebhooksOptions struct {
	// ControlPlaneNamespace is where istiod runs; empty means istio-system.
	ControlPlaneNamespace string
}

// Overlap is a namespace/pod label combination that two injector
// configurations would both inject (istioctl's IST0139).
type Overlap = revkit.Overlap

// DanglingService is a webhook whose client config names a Service that
// does not exist: every call to it fails.
type DanglingService struct {
	// Kind is KindMutating or KindValidating; Configuration and Webhook name
	// the configuration and the webhook inside it.
	Kind          string
	Configuration string
	Webhook       string
	// Service is the missing Service.
	Service revkit.ObjectRef
}

// String names the webhook and the missing Service.
func (d DanglingService) String() string {
	return fmt.Sprintf("%s %s webhook %s calls missing %s", d.Kind, d.Configuration, d.Webhook, d.Service)
}

// OrphanedWebhook is a webhook configuration that belongs to a revision
// that is not installed: a validator left behind by an uninstall, or a tag
// whose revision was removed, which stops injection in the namespaces
// using it.
type OrphanedWebhook struct {
	Kind string
	Name string
	// Revision is the missing revision, Tag the tag for a tag webhook.
	Revision string
	Tag      string
}

// String names the webhook and the missing revision.
func (o OrphanedWebhook) String() string {
	if o.Tag != "" {
		return fmt.Sprintf("%s %s: tag %q points at revision %q, which is not installed", o.Kind, o.Name, o.Tag, o.Revision)
	}
	return fmt.Sprintf("%s %s: revision %q is not installed", o.Kind, o.Name, o.Revision)
}

// Injection names an injector webhook the apiserver calls for a pod.
type Injection struct {
	// Configuration is the MutatingWebhookConfiguration, Webhook the
	// webhook inside it.
	Configuration string
	Webhook       string
	// Revision is the revision it injects, Tag the tag it implements (""
	// for a revision's own injector).
	Revision string
	Tag      string
}

// LabelConflict is a namespace labelled both istio-injection and
// istio.io/rev, which Istio's analyzer reports as IST0123: the
// istio-injection label decides, so the namespace is injected by the
// default tag's (or default revision's) webhook for istio-injection=enabled
// — or not at all — and never by the revision or tag its istio.io/rev label
// names.
type LabelConflict struct {
	Namespace string
	// Injection and Rev are the two labels' values.
	Injection string
	Rev       string
	// Injections are the webhooks the apiserver calls for a plain pod of
	// the namespace; none when it injects nothing there.
	Injections []Injection
}

// String reads like Istio's IST0123 message and names the webhook that
// injects the namespace.
func (c LabelConflict) String() string {
	mc := mesh.LabelConflict{Namespace: c.Namespace, Injection: c.Injection, Rev: c.Rev}
	for _, in := range c.Injections {
		mc.Injections = append(mc.Injections, mesh.Injection(in))
	}
	return mc.String()
}

func labelConflict(model *mesh.Model, ns *corev1.Namespace) *LabelConflict {
	mc, ok := model.NamespaceConflict(ns)
	if !ok {
		return nil
	}
	c := &LabelConflict{Namespace: mc.Namespace, Injection: mc.Injection, Rev: mc.Rev}
	for _, in := range mc.Injections {
		c.Injections = append(c.Injections, Injection(in))
	}
	return c
}

// UninjectedNamespace is a namespace labelled for injection
// (istio-injection=enabled, or istio.io/rev without istio-injection) whose
// new pods no injector webhook matches: the apiserver creates them without
// a sidecar, silently — typically after the default tag, or the tag or
// revision its label names, was removed (Istio issue 40134).
type UninjectedNamespace struct {
	Namespace string
	// Label is the injection label it carries, e.g. "istio-injection=enabled".
	Label string
}

// String names the namespace and its label.
func (u UninjectedNamespace) String() string {
	return fmt.Sprintf("namespace %s is labelled %s but no injector webhook serves it: new pods get no sidecar", u.Namespace, u.Label)
}

// uninjected reports a namespace labelled for injection that no injector
// serves.
func uninjected(model *mesh.Model, ns *corev1.Namespace) *UninjectedNamespace {
	label := ""
	if v, ok := ns.Labels[mesh.LabelInjection]; ok {
		if v == "enabled" {
			label = mesh.LabelInjection + "=enabled"
		}
	} else if v, ok := ns.Labels[mesh.LabelRev]; ok {
		label = mesh.LabelRev + "=" + v
	}
	if label == "" || len(model.PodInjections(ns, nil)) > 0 {
		return nil
	}
	return &UninjectedNamespace{Namespace: ns.Name, Label: label}
}

// WebhooksReport is the result of Webhooks.
type WebhooksReport struct {
	// Revisions are the installed revisions, for context.
	Revisions []string
	// Injectors names every injector configuration checked.
	Injectors []string
	// Overlaps are the pairs of injectors that would both inject some pod.
	Overlaps []Overlap
	// Dangling are the webhooks that call a Service that does not exist.
	Dangling []DanglingService
	// Orphaned are the webhooks of revisions that are not installed.
	Orphaned []OrphanedWebhook
	// Conflicts are the namespaces labelled both istio-injection and
	// istio.io/rev (IST0123), sorted, with the webhook that injects them.
	// Like Istio's analyzer, which reports them as a warning, they do not
	// make the report fail: the apiserver's choice is well defined, but it
	// is not what the istio.io/rev label says.
	Conflicts []LabelConflict
	// Uninjected are the namespaces labelled for injection that no
	// injector serves, sorted. They do not make the report fail (OK, Err):
	// a namespace may keep a label on purpose while it has no workloads,
	// so the caller decides; a promotion or uninstall should expect none.
	Uninjected []UninjectedNamespace
}

// OK reports whether no problem was found.
func (r *WebhooksReport) OK() bool {
	return len(r.Overlaps) == 0 && len(r.Dangling) == 0 && len(r.Orphaned) == 0
}

// Err returns a *VerificationError listing the problems, or nil when OK. It
// matches revkit.ErrVerificationFailed whenever it is not nil, and
// revkit.ErrOverlap when injectors overlap; errors.As then also finds a
// *revkit.OverlapError with the first overlap's details.
func (r *WebhooksReport) Err() error {
	var problems []Problem
	var causes []error
	for _, o := range r.Overlaps {
		problems = append(problems, Problem{Kind: ProblemOverlap, Object: o.First + "+" + o.Second, Detail: o.String()})
		causes = append(causes, &revkit.OverlapError{Subject: "installed injectors", Overlap: o})
	}
	for _, d := range r.Dangling {
		problems = append(problems, Problem{Kind: ProblemDanglingService, Object: d.Configuration,
			Detail: "webhook " + d.Webhook + " calls missing " + d.Service.String()})
	}
	for _, o := range r.Orphaned {
		problems = append(problems, Problem{Kind: ProblemMissingRevision, Object: o.Name, Detail: o.String()})
	}
	return verificationErr(opWebhooks, problems, causes...)
}

// Validate checks the options as Webhooks does before any request.
func (o *WebhooksOptions) Validate() error {
	return validateControlPlaneNamespace(o.ControlPlaneNamespace)
}

// Webhooks checks the Istio webhook configurations: that no two injectors
// would inject the same pod (for every combination of namespace and pod
// labels), that every injector and validator calls a Service that exists,
// and that no validator or tag belongs to a revision that is not
// installed (Istio issues 28880 and 40134). It also reports the namespaces
// labelled for injection that no injector serves (Uninjected), and those
// labelled both istio-injection and istio.io/rev (Conflicts, Istio's
// IST0123) with the webhook the apiserver calls for them.
//
// Failed API calls are returned as *revkit.OpError (or wrapped with what was
// being read) and keep their API status. Problems found are not an error:
// check OK or Err.
func Webhooks(ctx context.Context, kube kubernetes.Interface, opts WebhooksOptions) (*WebhooksReport, error) {
	if err := validateControlPlaneNamespace(opts.ControlPlaneNamespace); err != nil {
		return nil, err
	}
	cpNS := revkit.ControlPlaneNamespace(opts.ControlPlaneNamespace)
	model, err := mesh.Load(ctx, kube, cpNS)
	if err != nil {
		return nil, fmt.Errorf("%s: read the control plane in %s: %w", opWebhooks, cpNS, err)
	}
	report := &WebhooksReport{}
	if revs := model.Revisions(); len(revs) > 0 {
		report.Revisions = revs
	}
	for _, inj := range model.Injectors {
		report.Injectors = append(report.Injectors, inj.Name)
	}
	for _, ov := range mesh.FindOverlaps(model.Injectors) {
		report.Overlaps = append(report.Overlaps, ov)
	}

	services := serviceChecker{kube: kube, seen: map[revkit.ObjectRef]bool{}}
	for _, inj := range model.Injectors {
		for _, w := range inj.Webhooks {
			d, err := services.dangling(ctx, KindMutating, inj.Name, w.Name, w.ClientConfig)
			if err != nil {
				return nil, err
			}
			if d != nil {
				report.Dangling = append(report.Dangling, *d)
			}
		}
		if inj.IsTag() && !model.HasRevision(inj.Revision) {
			report.Orphaned = append(report.Orphaned, OrphanedWebhook{Kind: KindMutating, Name: inj.Name, Revision: inj.Revision, Tag: inj.Tag})
		}
	}
	for i := range model.Validators {
		v := &model.Validators[i]
		for _, w := range v.Webhooks {
			d, err := services.dangling(ctx, KindValidating, v.Name, w.Name, w.ClientConfig)
			if err != nil {
				return nil, err
			}
			if d != nil {
				report.Dangling = append(report.Dangling, *d)
			}
		}
		if rev, ok := validatorRevision(v); ok && !model.HasRevision(rev) {
			report.Orphaned = append(report.Orphaned, OrphanedWebhook{Kind: KindValidating, Name: v.Name, Revision: rev, Tag: v.Labels[mesh.LabelTag]})
		}
	}
	nss, err := kube.CoreV1().Namespaces().List(ctx, metav1.ListOptions{})
	if err != nil {
		return nil, &revkit.OpError{Op: opWebhooks, Verb: "list", Object: revkit.ObjectRef{Kind: "Namespace"}, Err: err}
	}
	for i := range nss.Items {
		if c := labelConflict(model, &nss.Items[i]); c != nil {
			report.Conflicts = append(report.Conflicts, *c)
		}
		if u := uninjected(model, &nss.Items[i]); u != nil {
			report.Uninjected = append(report.Uninjected, *u)
		}
	}
	sort.Slice(report.Uninjected, func(a, b int) bool { return report.Uninjected[a].Namespace < report.Uninjected[b].Namespace })
	sort.Slice(report.Conflicts, func(a, b int) bool { return report.Conflicts[a].Namespace < report.Conflicts[b].Namespace })
	sort.SliceStable(report.Orphaned, func(a, b int) bool {
		if report.Orphaned[a].Kind != report.Orphaned[b].Kind {
			return report.Orphaned[a].Kind < report.Orphaned[b].Kind
		}
		return report.Orphaned[a].Name < report.Orphaned[b].Name
	})
	return report, nil
}

// validatorRevision returns the revision a validating webhook belongs to:
// its istio.io/rev label, or the revision in the name of the istiod Service
// it calls.
func validatorRevision(v *admv1.ValidatingWebhookConfiguration) (string, bool) {
	if rev := v.Labels[mesh.LabelRev]; rev != "" {
		return rev, true
	}
	for _, w := range v.Webhooks {
		if _, name := mesh.WebhookService(w.ClientConfig); name != "" {
			if rev, ok := mesh.RevisionFromServiceName(name); ok {
				return rev, true
			}
		}
	}
	return "", false
}

// serviceChecker looks each Service up once.
type serviceChecker struct {
	kube kubernetes.Interface
	seen map[revkit.ObjectRef]bool // exists?
}

func (s *serviceChecker) dangling(ctx context.Context, kind, config, webhook string, cc admv1.WebhookClientConfig) (*DanglingService, error) {
	ns, name := mesh.WebhookService(cc)
	if name == "" {
		return nil, nil // a URL: nothing to look up in the cluster
	}
	ref := revkit.ObjectRef{Kind: "Service", Namespace: ns, Name: name}
	exists, known := s.seen[ref]
	if !known {
		_, err := s.kube.CoreV1().Services(ns).Get(ctx, name, metav1.GetOptions{})
		switch {
		case err == nil:
			exists = true
		case apierrors.IsNotFound(err):
			exists = false
		default:
			return nil, &revkit.OpError{Op: opWebhooks, Verb: "get", Object: ref, Err: err}
		}
		s.seen[ref] = exists
	}
	if exists {
		return nil, nil
	}
	return &DanglingService{Kind: kind, Configuration: config, Webhook: webhook, Service: ref}, nil
}
