package tag

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
	"github.com/revkit/revkit/internal/kubeutil"
	"github.com/revkit/revkit/internal/mesh"
)

// SetOptions configures Set.
type SetOptions struct {
	revkit.Common
	// Tag is the tag to create or move. Required.
	Tag string
	// Revision is the revision the tag should point to. Required.
	Revision string
	// Overwrite allows moving a tag that already points to another revision.
	Overwrite bool
	// ControlPlaneNamespace holds istiod and the tag's Service; default
	// istio-system.
	ControlPlaneNamespace string
}

// SetResult reports what Set did.
type SetResult struct {
	Tag      string
	Revision string
	// Previous is the revision the tag pointed to before, or "" if it is new.
	Previous string
	// Changes lists every object touched or left alone.
	Changes []revkit.Change
	DryRun  revkit.DryRun
}

// Changed reports whether Set altered (or in a dry run, would alter) the
// cluster.
func (r *SetResult) Changed() bool { return revkit.AnyChanged(r.Changes) }

// ObjectChanges lists what Set changed; see revkit.Result.
func (r *SetResult) ObjectChanges() []revkit.Change { return r.Changes }

// Validate checks the options as Set does before any request.
func (o *SetOptions) Validate() error {
	if err := revkit.ValidateTag(o.Tag); err != nil {
		return err
	}
	if err := revkit.ValidateRevision(o.Revision); err != nil {
		return err
	}
	if err := revkit.ValidateNamespace("ControlPlaneNamespace", o.ControlPlaneNamespace); err != nil {
		return err
	}
	return o.DryRun.Validate()
}

// Set creates the revision tag opts.Tag pointing to opts.Revision, or moves
// it there, exactly as istioctl tag set does: a MutatingWebhookConfiguration
// "istio-revision-tag-<tag>" that copies the revision injector's client
// config, and a Service "istiod-revision-tag-<tag>". For the default tag it
// also deactivates a non-revisioned injector and points the default
// validating webhook "istiod-default-validator" at the revision.
//
// Set refuses, before writing anything: a malformed name
// (revkit.ErrInvalidInput), a revision that is not installed
// (revkit.ErrNotFound), a tag named like an installed revision or a move
// without Overwrite (revkit.ErrExists), and a change that would make two
// injectors match the same pod (revkit.ErrOverlap). Running it twice
// reports every object unchanged the second time.
//
// The result is never nil. When Set fails part-way, its Changes list every
// object it wrote before the failure and the failed write, so a caller (or
// a plan's rollback) knows what to undo.
func Set(ctx context.Context, kube kubernetes.Interface, opts SetOptions) (*SetResult, error) {
	const op = "tag.Set"
	res := &SetResult{Tag: opts.Tag, Revision: opts.Revision, DryRun: opts.DryRun}
	if err := opts.Validate(); err != nil {
		return res, err
	}
	ns := revkit.ControlPlaneNamespace(opts.ControlPlaneNamespace)
	model, err := mesh.Load(ctx, kube, ns)
	if err != nil {
		return res, fmt.Errorf("%s: %w", op, err)
	}
	if opts.Tag != revkit.DefaultTag && len(model.RevisionInjectors(opts.Tag)) > 0 {
		return res, &revkit.ExistsError{Kind: "revision", Name: opts.Tag,
			Detail: "a tag must not share its name with an installed revision"}
	}
	revInjs := model.RevisionInjectors(opts.Revision)
	switch {
	case len(revInjs) == 0:
		return res, &revkit.NotFoundError{Kind: "revision", Name: opts.Revision}
	case len(revInjs) > 1:
		return res, fmt.Errorf("%s: revision %q has %d injector webhooks (%s, %s); expected one",
			op, opts.Revision, len(revInjs), revInjs[0].Name, revInjs[1].Name)
	}
	revInj := revInjs[0]
	existing := model.TagInjector(opts.Tag)
	if existing != nil {
		res.Previous = existing.Revision
		if existing.Revision != opts.Revision && !opts.Overwrite {
			return res, &revkit.ExistsError{Kind: "tag", Name: opts.Tag,
				Detail: fmt.Sprintf("it points to revision %q; set Overwrite to move it to %q", existing.Revision, opts.Revision)}
		}
	}

	desired := mesh.TagWebhook(opts.Tag, revInj)
	var legacy *mesh.Injector
	if opts.Tag == revkit.DefaultTag {
		legacy = legacyInjector(model)
	}
	if err := checkOverlap(model, desired, legacy); err != nil {
		return res, err
	}

	rec := kubeutil.NewRecorder(op, opts.Common)
	err = apply(ctx, kube, rec, opts, ns, desired, legacy, model, revInj)
	// Everything written before a failure is in the result too.
	res.Changes = rec.Changes
	return res, err
}

// apply makes Set's writes in order, recording each in rec; it stops at the
// first failure.
func apply(ctx context.Context, kube kubernetes.Interface, rec *kubeutil.Recorder, opts SetOptions, ns string,
	desired *admv1.MutatingWebhookConfiguration, legacy *mesh.Injector, model *mesh.Model, revInj *mesh.Injector) error {
	if err := applyTagWebhook(ctx, kube, rec, desired); err != nil {
		return err
	}
	if err := applyTagService(ctx, kube, rec, ns, opts.Tag, opts.Revision); err != nil {
		return err
	}
	if opts.Tag != revkit.DefaultTag {
		return nil
	}
	if legacy != nil {
		if err := deactivate(ctx, kube, rec, legacy); err != nil {
			return err
		}
	}
	return applyDefaultValidator(ctx, kube, rec, model, revInj)
}

// legacyInjector returns an active non-revisioned injector ("istio.io/rev"
// default, not a tag), which the default tag replaces.
func legacyInjector(m *mesh.Model) *mesh.Injector {
	for _, inj := range m.RevisionInjectors(mesh.DefaultRevision) {
		if !inj.Deactivated() {
			return inj
		}
	}
	return nil
}

// checkOverlap simulates the injectors after the change and refuses it if
// the tag's webhook would match the same pods as another injector.
func checkOverlap(m *mesh.Model, desired *admv1.MutatingWebhookConfiguration, deactivated *mesh.Injector) error {
	tagInj, _ := mesh.ToInjector(desired)
	var removed []string
	if deactivated != nil {
		removed = append(removed, deactivated.Name)
	}
	if ovs := mesh.OverlapsAfter(m.Injectors, []mesh.Injector{tagInj}, removed...); len(ovs) > 0 {
		return &revkit.OverlapError{Subject: fmt.Sprintf("tag %q", tagInj.Tag), Overlap: ovs[0]}
	}
	return nil
}

func applyTagWebhook(ctx context.Context, k kubernetes.Interface, rec *kubeutil.Recorder, desired *admv1.MutatingWebhookConfiguration) error {
	ref := revkit.ObjectRef{Kind: "MutatingWebhookConfiguration", Name: desired.Name}
	return kubeutil.Apply(ctx, rec, k.AdmissionregistrationV1().MutatingWebhookConfigurations(), ref, desired,
		func(cur *admv1.MutatingWebhookConfiguration) *admv1.MutatingWebhookConfiguration {
			next := cur.DeepCopy()
			mergeLabels(&next.ObjectMeta, desired.Labels)
			next.Webhooks = desired.Webhooks
			return next
		}, "")
}

func applyTagService(ctx context.Context, k kubernetes.Interface, rec *kubeutil.Recorder, ns, tag, rev string) error {
	client := k.CoreV1().Services(ns)
	var ports []corev1.ServicePort
	if svc, err := client.Get(ctx, mesh.IstiodName(rev), metav1.GetOptions{}); err == nil {
		ports = svc.Spec.Ports
	} else if !apierrors.IsNotFound(err) {
		return rec.Fail("get", revkit.ObjectRef{Kind: "Service", Namespace: ns, Name: mesh.IstiodName(rev)}, err)
	}
	desired := mesh.TagService(tag, rev, ns, ports)
	for i := range desired.Spec.Ports {
		desired.Spec.Ports[i].NodePort = 0
	}
	ref := revkit.ObjectRef{Kind: "Service", Namespace: ns, Name: desired.Name}
	return kubeutil.Apply(ctx, rec, client, ref, desired, func(cur *corev1.Service) *corev1.Service {
		next := cur.DeepCopy()
		mergeLabels(&next.ObjectMeta, desired.Labels)
		next.Spec.Selector = desired.Spec.Selector
		next.Spec.Ports = mergePorts(cur.Spec.Ports, desired.Spec.Ports)
		return next
	}, "")
}

// mergePorts keeps the node ports the apiserver allocated for ports that
// stay.
func mergePorts(cur, desired []corev1.ServicePort) []corev1.ServicePort {
	out := make([]corev1.ServicePort, len(desired))
	copy(out, desired)
	for i := range out {
		for _, c := range cur {
			if c.Name == out[i].Name && c.Port == out[i].Port {
				out[i].NodePort = c.NodePort
			}
		}
	}
	return out
}

func mergeLabels(meta *metav1.ObjectMeta, labels map[string]string) {
	if meta.Labels == nil {
		meta.Labels = map[string]string{}
	}
	for k, v := range labels {
		meta.Labels[k] = v
	}
}

// deactivate makes a non-revisioned injector inert without deleting it, as
// istioctl does, so that a user can still switch back to it.
func deactivate(ctx context.Context, k kubernetes.Interface, rec *kubeutil.Recorder, inj *mesh.Injector) error {
	ref := revkit.ObjectRef{Kind: "MutatingWebhookConfiguration", Name: inj.Name}
	return kubeutil.Modify(ctx, rec, k.AdmissionregistrationV1().MutatingWebhookConfigurations(), ref,
		func(cur *admv1.MutatingWebhookConfiguration) *admv1.MutatingWebhookConfiguration {
			next := cur.DeepCopy()
			for i := range next.Webhooks {
				next.Webhooks[i].NamespaceSelector = mesh.NeverMatchSelector()
				next.Webhooks[i].ObjectSelector = mesh.NeverMatchSelector()
			}
			return next
		}, "deactivated non-revisioned injector")
}

// applyDefaultValidator points istiod-default-validator at the revision.
// The endpoint comes from the revision's own validating webhook when there
// is one, otherwise from its injector with path /validate.
func applyDefaultValidator(ctx context.Context, k kubernetes.Interface, rec *kubeutil.Recorder, m *mesh.Model, revInj *mesh.Injector) error {
	rev := revInj.Revision
	var cc *admv1.WebhookClientConfig
	for _, v := range m.Validators {
		if v.Name == mesh.DefaultValidatorName || v.Labels[mesh.LabelRev] != rev || v.Labels[mesh.LabelTag] != "" {
			continue
		}
		if len(v.Webhooks) > 0 {
			cc = v.Webhooks[0].ClientConfig.DeepCopy()
			break
		}
	}
	if cc == nil {
		inj, _, _ := mesh.InjectorClient(revInj)
		derived := mesh.ValidationClient(inj)
		cc = &derived
	}
	ref := revkit.ObjectRef{Kind: "ValidatingWebhookConfiguration", Name: mesh.DefaultValidatorName}
	return kubeutil.Apply(ctx, rec, k.AdmissionregistrationV1().ValidatingWebhookConfigurations(), ref, mesh.DefaultValidator(rev, *cc, nil),
		func(cur *admv1.ValidatingWebhookConfiguration) *admv1.ValidatingWebhookConfiguration {
			// istiod switches failurePolicy to Fail once it serves; keep
			// that when the validator stays on the same revision.
			var failure *admv1.FailurePolicyType
			if cur.Labels[mesh.LabelRev] == rev && len(cur.Webhooks) > 0 {
				failure = cur.Webhooks[0].FailurePolicy
			}
			desired := mesh.DefaultValidator(rev, *cc, failure)
			next := cur.DeepCopy()
			mergeLabels(&next.ObjectMeta, desired.Labels)
			next.Webhooks = desired.Webhooks
			return next
		}, "")
}

// Tag describes one revision tag.
type Tag struct {
	Name     string
	Revision string
	// Webhook is the tag's MutatingWebhookConfiguration.
	Webhook string
	// Namespaces whose new pods the tag's webhook injects, sorted: those
	// labelled istio.io/rev=<tag> and, for the default tag, those labelled
	// istio-injection=enabled, as the apiserver evaluates the webhooks'
	// selectors. A namespace with both labels belongs to the default tag,
	// not to the tag of its istio.io/rev label (Istio's IST0123).
	Namespaces []string
}

// ListOptions configures List.
type ListOptions struct {
	// ControlPlaneNamespace; default istio-system.
	ControlPlaneNamespace string
}

// List returns the revision tags, sorted by name, with the revision each
// points to and the namespaces that use it, as istioctl tag list shows them.
func List(ctx context.Context, kube kubernetes.Interface, opts ListOptions) ([]Tag, error) {
	model, err := mesh.Load(ctx, kube, revkit.ControlPlaneNamespace(opts.ControlPlaneNamespace))
	if err != nil {
		return nil, fmt.Errorf("tag.List: %w", err)
	}
	nss, err := kube.CoreV1().Namespaces().List(ctx, metav1.ListOptions{})
	if err != nil {
		return nil, &revkit.OpError{Op: "tag.List", Verb: "list", Object: revkit.ObjectRef{Kind: "Namespace"}, Err: err}
	}
	users := map[string][]string{}
	for i := range nss.Items {
		for _, t := range model.NamespaceTags(&nss.Items[i]) {
			users[t] = append(users[t], nss.Items[i].Name)
		}
	}
	var out []Tag
	for _, inj := range model.Injectors {
		if !inj.IsTag() {
			continue
		}
		ns := users[inj.Tag]
		sort.Strings(ns)
		out = append(out, Tag{Name: inj.Tag, Revision: inj.Revision, Webhook: inj.Name, Namespaces: ns})
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out, nil
}
