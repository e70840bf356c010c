package revision

import (
	"context"
	"fmt"
	"sort"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"

	"github.com/revkit/revkit"
	"github.com/revkit/revkit/internal/kubeutil"
	"github.com/revkit/revkit/internal/mesh"
)

// UninstallOptions configures Uninstall.
type UninstallOptions struct {
	revkit.Common
	// Revision to remove. Required.
	Revision string
	// Force removes the revision although namespaces or pods still use it.
	// Their pods keep running with a proxy that has lost its control plane;
	// new pods in those namespaces get no sidecar. Force does not override
	// a tag pointing at the revision: move or remove the tag first, since
	// its webhook would otherwise fail every injection it matches (Istio
	// issue 40134).
	Force bool
	// ControlPlaneNamespace; default istio-system.
	ControlPlaneNamespace string
	// Helm, when set, uninstalls the revision's Helm release
	// ("istiod-<revision>") if it has one (helm.New gives one); objects left behind are then
	// removed by label as for a revision installed without Helm. Objects
	// of the release that serve a tag or another revision are taken out
	// of it first and kept.
	Helm Installer `json:"-"`
	// Timeout bounds the Helm uninstall; default 5 minutes.
	Timeout time.Duration
}

// UninstallResult reports what Uninstall did.
type UninstallResult struct {
	Revision string
	// Found is false when the revision was not installed; nothing was done.
	Found bool
	// Release is the Helm release that was uninstalled, if any.
	Release string
	// Usage is who used the revision (non-empty only when forced).
	Usage revkit.Usage
	// Changes lists deletions (the release's objects, reason "release
	// <name>", and those found by label or name), the objects taken out of
	// the release and kept (updates, with the tag or revision they serve),
	// and the objects left alone on purpose (gateways labelled with the
	// revision), in the order handled.
	Changes []revkit.Change
	DryRun  revkit.DryRun
}

// Validate checks the options as Uninstall does before any request.
func (o *UninstallOptions) Validate() error {
	if err := revkit.ValidateRevision(o.Revision); err != nil {
		return err
	}
	if err := revkit.ValidateNamespace("ControlPlaneNamespace", o.ControlPlaneNamespace); err != nil {
		return err
	}
	if o.Timeout < 0 {
		return &revkit.InvalidInputError{Field: "Timeout", Reason: "must not be negative"}
	}
	return o.DryRun.Validate()
}

// Changed reports whether anything was (or would be) deleted.
func (r *UninstallResult) Changed() bool { return revkit.AnyChanged(r.Changes) }

// ObjectChanges lists what Uninstall deleted; see revkit.Result.
func (r *UninstallResult) ObjectChanges() []revkit.Change { return r.Changes }

// Uninstall removes a revision's control plane: every object labelled
// istio.io/rev=<revision> in the control-plane namespace and at cluster
// scope, injector webhooks first, and the RBAC objects Istio's chart names
// after the revision without that label (its ClusterRoles and
// ClusterRoleBindings, and the ServiceAccount, Role and RoleBinding
// istiod-<revision>, when their labels show they are istiod's). It never
// deletes objects of a tag (labelled istio.io/tag), of another revision, or
// gateways, which move with their own workflow (see the returned skip
// entries).
//
// With Helm set and a release "istiod-<revision>" present, the release is
// uninstalled with Helm. Objects of the release that now serve a tag or
// another revision — typically the default tag's webhook and Service,
// rendered by the chart's revisionTags and since moved to another revision
// with tag.Set — are first taken out of the release (Helm's ownership
// labels and annotations are removed, reported as updates) and kept, as
// istioctl's uninstall keeps a moved default tag. The result, and a dry
// run, list every object the uninstall deletes, from the release's
// manifest as well as by label.
//
// Without Helm, a revision whose objects belong to its Helm release (Helm's
// release-name annotation) is refused with a *revkit.InvalidInputError
// before any deletion: deleting them alone would leave a release that
// still says "deployed".
//
// While namespaces, tags or running pods use the revision it refuses with a
// *revkit.InUseError listing them, unless Force is set. Uninstalling a
// revision that is not there changes nothing and is not an error.
func Uninstall(ctx context.Context, kube kubernetes.Interface, opts UninstallOptions) (*UninstallResult, error) {
	const op = "revision.Uninstall"
	res := &UninstallResult{Revision: opts.Revision, DryRun: opts.DryRun}
	if err := opts.Validate(); err != nil {
		return res, err
	}
	ns := revkit.ControlPlaneNamespace(opts.ControlPlaneNamespace)
	st, err := load(ctx, kube, op, ns)
	if err != nil {
		return res, err
	}
	for _, r := range st.revisions() {
		if r.Name == opts.Revision {
			res.Found = true
			res.Usage = r.Usage()
		}
	}
	if (res.Usage.InUse() && !opts.Force) || len(res.Usage.Tags) > 0 {
		return res, &revkit.InUseError{Kind: "revision", Name: opts.Revision, Usage: res.Usage}
	}

	rec := kubeutil.NewRecorder(op, opts.Common)
	// done holds what the Helm uninstall deleted, so that the label-based
	// pass does not list it twice.
	done := map[revkit.ObjectRef]bool{}
	if opts.Helm != nil {
		name := ReleaseName(opts.Revision)
		refs, found, err := opts.Helm.ReleaseObjects(ctx, name)
		if err != nil {
			return res, rec.Fail("get", revkit.ObjectRef{Kind: "HelmRelease", Namespace: ns, Name: name}, err)
		}
		if found {
			res.Found, res.Release = true, name
			objs, err := releaseObjects(ctx, kube, refs, opts.Revision)
			if err != nil {
				return res, err
			}
			// Objects that serve a tag or another revision leave the
			// release before Helm deletes the rest of it.
			for _, o := range objs {
				if o.Keep == "" {
					continue
				}
				if err := disown(ctx, kube, rec, o); err != nil {
					res.Changes = rec.Changes
					return res, err
				}
				done[o.Ref] = true
			}
			if err := helmUninstall(ctx, opts, rec, ns, name); err != nil {
				res.Changes = rec.Changes
				return res, err
			}
			for _, o := range objs {
				if o.Keep == "" {
					rec.Record(ctx, o.Ref, revkit.ActionDelete, "release "+name)
					done[o.Ref] = true
				}
			}
		}
	}
	victims, kept, release, err := collect(ctx, kube, ns, opts.Revision)
	if err != nil {
		res.Changes = rec.Changes
		return res, &revkit.OpError{Op: op, Verb: "list", Object: revkit.ObjectRef{Kind: "revision objects", Name: opts.Revision}, Err: err}
	}
	if release != "" && opts.Helm == nil {
		// Deleting a release's objects behind Helm's back leaves a release
		// that says "deployed" with nothing left of it.
		return res, &revkit.InvalidInputError{Field: "Helm", Value: release, Reason: "the revision's objects belong to Helm release " + release +
			": set Helm (see helm.New) so that the release is uninstalled with them"}
	}
	byName, err := ownedByName(ctx, kube, ns, opts.Revision)
	if err != nil {
		res.Changes = rec.Changes
		return res, err
	}
	var rest []kubeutil.Deletion
	for _, d := range append(victims, byName...) {
		if !done[d.Ref] {
			done[d.Ref] = true
			rest = append(rest, d)
		}
	}
	sort.SliceStable(rest, func(i, j int) bool { return rest[i].Order < rest[j].Order })
	if len(rest) > 0 {
		res.Found = true
	}
	for _, k := range kept {
		rec.Record(ctx, k, revkit.ActionSkip, "gateway: move it to another revision before removing it")
	}
	err = kubeutil.DeleteAll(ctx, rec, rest)
	res.Changes = rec.Changes
	return res, err
}

// helmUninstall removes the revision's Helm release. Dry runs do not call
// Helm: the label-based listing that follows reports the same objects (and
// a server dry run sends their deletions with dryRun=All).
func helmUninstall(ctx context.Context, opts UninstallOptions, rec *kubeutil.Recorder, ns, name string) error {
	ref := revkit.ObjectRef{Kind: "HelmRelease", Namespace: ns, Name: name}
	if rec.Common.DryRun != revkit.DryRunNone {
		rec.Record(ctx, ref, revkit.ActionDelete, "release record")
		return nil
	}
	timeout := opts.Timeout
	if timeout == 0 {
		timeout = 5 * time.Minute
	}
	if err := opts.Helm.UninstallRelease(ctx, name, timeout); err != nil {
		return rec.Fail("helm uninstall", ref, err)
	}
	rec.Record(ctx, ref, revkit.ActionDelete, "")
	return nil
}

// collect lists the revision's objects, in deletion order, and the ones it
// keeps.
// The release is the revision's Helm release when the objects found belong
// to it (Helm's release-name annotation), or "".
func collect(ctx context.Context, k kubernetes.Interface, ns, rev string) (out []kubeutil.Deletion, kept []revkit.ObjectRef, release string, err error) {
	sel := metav1.ListOptions{LabelSelector: fmt.Sprintf("%s=%s,!%s", mesh.LabelRev, rev, mesh.LabelTag)}
	owned := func(m metav1.ObjectMeta) {
		if m.Annotations[helmReleaseNameAnno] == ReleaseName(rev) {
			release = ReleaseName(rev)
		}
	}
	add := func(d kubeutil.Deletion, labels map[string]string) {
		if mesh.IsGateway(labels, nil) {
			kept = append(kept, d.Ref)
			return
		}
		out = append(out, d)
	}

	mwcs, err := k.AdmissionregistrationV1().MutatingWebhookConfigurations().List(ctx, sel)
	if err != nil {
		return nil, nil, "", err
	}
	for _, o := range mwcs.Items {
		owned(o.ObjectMeta)
		add(kubeutil.DeleteMutatingWebhook(k, o.Name), o.Labels)
	}
	vwcs, err := k.AdmissionregistrationV1().ValidatingWebhookConfigurations().List(ctx, sel)
	if err != nil {
		return nil, nil, "", err
	}
	for _, o := range vwcs.Items {
		owned(o.ObjectMeta)
		d := kubeutil.DeleteValidatingWebhook(k, o.Name)
		d.Order = 0
		add(d, o.Labels)
	}
	deps, err := k.AppsV1().Deployments(ns).List(ctx, sel)
	if err != nil {
		return nil, nil, "", err
	}
	for _, o := range deps.Items {
		owned(o.ObjectMeta)
		add(kubeutil.Named("Deployment", ns, o.Name, 1, k.AppsV1().Deployments(ns).Delete), o.Labels)
	}
	hpas, err := k.AutoscalingV2().HorizontalPodAutoscalers(ns).List(ctx, sel)
	if err != nil {
		return nil, nil, "", err
	}
	for _, o := range hpas.Items {
		add(kubeutil.Named("HorizontalPodAutoscaler", ns, o.Name, 1, k.AutoscalingV2().HorizontalPodAutoscalers(ns).Delete), o.Labels)
	}
	pdbs, err := k.PolicyV1().PodDisruptionBudgets(ns).List(ctx, sel)
	if err != nil {
		return nil, nil, "", err
	}
	for _, o := range pdbs.Items {
		add(kubeutil.Named("PodDisruptionBudget", ns, o.Name, 1, k.PolicyV1().PodDisruptionBudgets(ns).Delete), o.Labels)
	}
	svcs, err := k.CoreV1().Services(ns).List(ctx, sel)
	if err != nil {
		return nil, nil, "", err
	}
	for _, o := range svcs.Items {
		add(kubeutil.DeleteService(k, ns, o.Name), o.Labels)
	}
	cms, err := k.CoreV1().ConfigMaps(ns).List(ctx, sel)
	if err != nil {
		return nil, nil, "", err
	}
	for _, o := range cms.Items {
		add(kubeutil.Named("ConfigMap", ns, o.Name, 3, k.CoreV1().ConfigMaps(ns).Delete), o.Labels)
	}
	sas, err := k.CoreV1().ServiceAccounts(ns).List(ctx, sel)
	if err != nil {
		return nil, nil, "", err
	}
	for _, o := range sas.Items {
		add(kubeutil.Named("ServiceAccount", ns, o.Name, 3, k.CoreV1().ServiceAccounts(ns).Delete), o.Labels)
	}
	roles, err := k.RbacV1().Roles(ns).List(ctx, sel)
	if err != nil {
		return nil, nil, "", err
	}
	for _, o := range roles.Items {
		add(kubeutil.Named("Role", ns, o.Name, 3, k.RbacV1().Roles(ns).Delete), o.Labels)
	}
	rbs, err := k.RbacV1().RoleBindings(ns).List(ctx, sel)
	if err != nil {
		return nil, nil, "", err
	}
	for _, o := range rbs.Items {
		add(kubeutil.Named("RoleBinding", ns, o.Name, 3, k.RbacV1().RoleBindings(ns).Delete), o.Labels)
	}
	crs, err := k.RbacV1().ClusterRoles().List(ctx, sel)
	if err != nil {
		return nil, nil, "", err
	}
	for _, o := range crs.Items {
		add(kubeutil.Named("ClusterRole", "", o.Name, 3, k.RbacV1().ClusterRoles().Delete), o.Labels)
	}
	crbs, err := k.RbacV1().ClusterRoleBindings().List(ctx, sel)
	if err != nil {
		return nil, nil, "", err
	}
	for _, o := range crbs.Items {
		add(kubeutil.Named("ClusterRoleBinding", "", o.Name, 3, k.RbacV1().ClusterRoleBindings().Delete), o.Labels)
	}
	sort.SliceStable(out, func(i, j int) bool { return out[i].Order < out[j].Order })
	return out, kept, release, nil
}
