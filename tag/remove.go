package tag

import (
	"context"
	"fmt"
	"slices"
	"sort"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"

	"github.com/revkit/revkit"
	"github.com/revkit/revkit/internal/kubeutil"
	"github.com/revkit/revkit/internal/mesh"
)

// RemoveOptions configures Remove.
type RemoveOptions struct {
	revkit.Common
	// Tag to remove. Required.
	Tag string
	// Force removes the tag even though namespaces or pods still depend on
	// it; their new pods will then get no sidecar.
	Force bool
	// ControlPlaneNamespace; default istio-system.
	ControlPlaneNamespace string
}

// RemoveResult reports what Remove did.
type RemoveResult struct {
	Tag string
	// Revision the tag pointed to, "" if it did not exist.
	Revision string
	// Namespaces whose new pods the tag's webhook injects (only non-empty
	// when forced).
	Namespaces []string
	// Pods ("namespace/name") outside those namespaces whose own labels
	// make the tag's webhook inject them (istio.io/rev=<tag> on the pod, or
	// sidecar.istio.io/inject=true for the default tag): their replacements
	// would be injected by the tag. Only non-empty when forced.
	Pods    []string
	Changes []revkit.Change
	DryRun  revkit.DryRun
}

// Validate checks the options as Remove does before any request.
func (o *RemoveOptions) Validate() error {
	if err := revkit.ValidateTag(o.Tag); err != nil {
		return err
	}
	if err := revkit.ValidateNamespace("ControlPlaneNamespace", o.ControlPlaneNamespace); err != nil {
		return err
	}
	return o.DryRun.Validate()
}

// Changed reports whether Remove deleted (or would delete) anything.
func (r *RemoveResult) Changed() bool { return revkit.AnyChanged(r.Changes) }

// ObjectChanges lists what Remove changed; see revkit.Result.
func (r *RemoveResult) ObjectChanges() []revkit.Change { return r.Changes }

// Remove deletes a revision tag: its webhook, its Service and, for the
// default tag, the default validating webhook it owns. It refuses with a
// *revkit.InUseError (matching revkit.ErrInUse), before any write, while
// the tag's webhook is the one the apiserver calls for new pods of a
// namespace or for a running pod's replacements, unless Force is set. That
// is decided from the webhooks' selectors, not from labels alone: the
// default tag serves istio-injection=enabled namespaces even when they
// also carry istio.io/rev=<another tag or revision> (Istio's IST0123).
// Removing a tag that does not exist changes nothing and is not an error.
//
// The result is never nil; when Remove fails part-way its Changes list what
// it deleted before the failure.
func Remove(ctx context.Context, kube kubernetes.Interface, opts RemoveOptions) (*RemoveResult, error) {
	const op = "tag.Remove"
	res := &RemoveResult{Tag: opts.Tag, DryRun: opts.DryRun}
	if err := opts.Validate(); err != nil {
		return res, err
	}
	ns := revkit.ControlPlaneNamespace(opts.ControlPlaneNamespace)
	usage, rev, err := tagUsage(ctx, kube, op, ns, opts.Tag)
	if err != nil {
		return res, err
	}
	res.Revision, res.Namespaces, res.Pods = rev, usage.Namespaces, usage.Pods
	if usage.InUse() && !opts.Force {
		return res, &revkit.InUseError{Kind: "tag", Name: opts.Tag, Usage: usage}
	}

	rec := kubeutil.NewRecorder(op, opts.Common)
	sel := metav1.ListOptions{LabelSelector: fmt.Sprintf("%s=%s", mesh.LabelTag, opts.Tag)}
	mwcs, err := kube.AdmissionregistrationV1().MutatingWebhookConfigurations().List(ctx, sel)
	if err != nil {
		return res, rec.Fail("list", revkit.ObjectRef{Kind: "MutatingWebhookConfiguration"}, err)
	}
	vwcs, err := kube.AdmissionregistrationV1().ValidatingWebhookConfigurations().List(ctx, sel)
	if err != nil {
		return res, rec.Fail("list", revkit.ObjectRef{Kind: "ValidatingWebhookConfiguration"}, err)
	}
	svcs, err := kube.CoreV1().Services(ns).List(ctx, sel)
	if err != nil {
		return res, rec.Fail("list", revkit.ObjectRef{Kind: "Service", Namespace: ns}, err)
	}

	// The webhook goes first: once it is gone nothing new is sent to the
	// tag's Service, so removing the Service next cannot fail injections.
	var victims []kubeutil.Deletion
	for _, o := range mwcs.Items {
		victims = append(victims, kubeutil.DeleteMutatingWebhook(kube, o.Name))
	}
	for _, o := range svcs.Items {
		victims = append(victims, kubeutil.DeleteService(kube, ns, o.Name))
	}
	for _, o := range vwcs.Items {
		victims = append(victims, kubeutil.DeleteValidatingWebhook(kube, o.Name))
	}
	sort.SliceStable(victims, func(i, j int) bool { return victims[i].Order < victims[j].Order })
	err = kubeutil.DeleteAll(ctx, rec, victims)
	res.Changes = rec.Changes
	return res, err
}

// tagUsage returns who depends on the tag's webhook and the revision it
// points to ("" when the tag does not exist): the namespaces whose plain
// pods it injects, and the active pods elsewhere whose labels make it
// inject their replacements.
func tagUsage(ctx context.Context, kube kubernetes.Interface, op, ns, tag string) (revkit.Usage, string, error) {
	model, err := mesh.Load(ctx, kube, ns)
	if err != nil {
		return revkit.Usage{}, "", fmt.Errorf("%s: %w", op, err)
	}
	inj := model.TagInjector(tag)
	if inj == nil {
		return revkit.Usage{}, "", nil
	}
	nss, err := kube.CoreV1().Namespaces().List(ctx, metav1.ListOptions{})
	if err != nil {
		return revkit.Usage{}, "", &revkit.OpError{Op: op, Verb: "list", Object: revkit.ObjectRef{Kind: "Namespace"}, Err: err}
	}
	var usage revkit.Usage
	byName := map[string]*corev1.Namespace{}
	counted := map[string]bool{}
	for i := range nss.Items {
		n := &nss.Items[i]
		byName[n.Name] = n
		if slices.Contains(model.NamespaceTags(n), tag) {
			usage.Namespaces = append(usage.Namespaces, n.Name)
			counted[n.Name] = true
		}
	}
	err = kubeutil.EachPod(ctx, kube, metav1.NamespaceAll, metav1.ListOptions{}, func(p *corev1.Pod) {
		n := byName[p.Namespace]
		if n == nil || counted[p.Namespace] || !mesh.PodActive(p) {
			return
		}
		if inj.Matches(mesh.NamespaceLabels(n), p.Labels) {
			usage.Pods = append(usage.Pods, p.Namespace+"/"+p.Name)
		}
	})
	if err != nil {
		return revkit.Usage{}, "", &revkit.OpError{Op: op, Verb: "list", Object: revkit.ObjectRef{Kind: "Pod"}, Err: err}
	}
	sort.Strings(usage.Namespaces)
	sort.Strings(usage.Pods)
	return usage, inj.Revision, nil
}
