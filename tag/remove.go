package tag

import (
	"context"
	"fmt"
	"sort"

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
	// Force removes the tag even though namespaces still use it; their new
	// pods will then get no sidecar.
	Force bool
	// ControlPlaneNamespace; default istio-system.
	ControlPlaneNamespace string
}

// RemoveResult reports what Remove did.
type RemoveResult struct {
	Tag string
	// Revision the tag pointed to, "" if it did not exist.
	Revision string
	// Namespaces that used the tag (only non-empty when forced).
	Namespaces []string
	Changes    []revkit.Change
	DryRun     revkit.DryRun
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
// *revkit.InUseError (matching revkit.ErrInUse) while namespaces use the tag,
// unless Force is set. Removing a tag that does not exist changes nothing
// and is not an error.
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
	tags, err := List(ctx, kube, ListOptions{ControlPlaneNamespace: ns})
	if err != nil {
		return res, err
	}
	for _, t := range tags {
		if t.Name == opts.Tag {
			res.Revision = t.Revision
			res.Namespaces = t.Namespaces
		}
	}
	if len(res.Namespaces) > 0 && !opts.Force {
		return res, &revkit.InUseError{Kind: "tag", Name: opts.Tag, Usage: revkit.Usage{Namespaces: res.Namespaces}}
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
