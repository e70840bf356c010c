package revision

import (
	"context"
	"fmt"
	"sort"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/client-go/kubernetes"

	"github.com/revkit/revkit"
	"github.com/revkit/revkit/internal/kubeutil"
	"github.com/revkit/revkit/internal/mesh"
)

// Helm's ownership metadata. Helm 4 deletes a release's object on
// uninstall only when the live object still carries all three with the
// release's values (action.verifyOwnershipBeforeDelete); without them it
// skips the object. The resource-policy annotation is only read from the
// release's stored manifest on uninstall, which cannot be changed, so
// Uninstall takes objects out of a release by removing the ownership
// metadata instead.
const (
	helmManagedByLabel       = "app.kubernetes.io/managed-by"
	helmReleaseNameAnno      = "meta.helm.sh/release-name"
	helmReleaseNamespaceAnno = "meta.helm.sh/release-namespace"
)

// releaseObject is one object of a release's manifest, with what Uninstall
// does with it.
type releaseObject struct {
	Ref revkit.ObjectRef
	// Keep is why the object is taken out of the release rather than
	// deleted with it; "" when Helm deletes it.
	Keep string
}

// releaseObjects lists the objects of a release (refs, from its manifest)
// that exist and that its uninstall would delete, and marks those that
// must stay: an object labelled with another revision, or with a tag (a
// tag's webhook, its Service, the default validator), serves that revision
// or tag now, whichever release rendered it. Istio's chart renders the
// webhooks and Services of its revisionTags into the release of the
// revision they first pointed to; moving the tag later does not change
// their owner.
func releaseObjects(ctx context.Context, kube kubernetes.Interface, refs []revkit.ObjectRef, rev string) ([]releaseObject, error) {
	var out []releaseObject
	for _, ref := range refs {
		if ref.Kind == "" || ref.Name == "" {
			continue
		}
		labels, exists, err := liveLabels(ctx, kube, ref)
		if err != nil {
			return nil, &revkit.OpError{Op: "revision.Uninstall", Verb: "get", Object: ref, Err: err}
		}
		if !exists {
			continue
		}
		o := releaseObject{Ref: ref}
		if judged[ref.Kind] {
			o.Keep = keepReason(labels, rev)
		}
		out = append(out, o)
	}
	sort.SliceStable(out, func(i, j int) bool { return out[i].Ref.String() < out[j].Ref.String() })
	return out, nil
}

// keepReason says why an object with these live labels must outlive the
// uninstall of rev, or "" when it goes with it.
func keepReason(labels map[string]string, rev string) string {
	if labels == nil {
		return ""
	}
	owner, tag := labels[mesh.LabelRev], labels[mesh.LabelTag]
	switch {
	case tag != "" && owner != rev:
		return fmt.Sprintf("serves tag %q of revision %q: taken out of the Helm release", tag, owner)
	case tag == "" && owner != "" && owner != rev:
		return fmt.Sprintf("belongs to revision %q: taken out of the Helm release", owner)
	}
	return ""
}

// judged are the kinds whose live labels decide whether a release's
// object stays (see keepReason): the only kinds the chart renders for tags
// and that disown can take out of a release.
var judged = map[string]bool{"MutatingWebhookConfiguration": true, "ValidatingWebhookConfiguration": true, "Service": true}

// liveLabels reads an object's labels and whether it exists. Kinds it does
// not know are reported as existing with no labels; for kinds that are not
// judged, a failed read (e.g. Forbidden to a least-privileged caller) is
// too: Helm decides about those, and the result lists them as deleted.
func liveLabels(ctx context.Context, kube kubernetes.Interface, ref revkit.ObjectRef) (map[string]string, bool, error) {
	meta, err := getMeta(ctx, kube, ref)
	if meta == nil && err == nil {
		return nil, true, nil
	}
	switch {
	case apierrors.IsNotFound(err):
		return nil, false, nil
	case err != nil && judged[ref.Kind]:
		return nil, false, err
	case err != nil:
		return nil, true, nil
	}
	if meta.Labels == nil {
		return map[string]string{}, true, nil
	}
	return meta.Labels, true, nil
}

// getMeta reads the metadata of the kinds Istio's istiod chart renders;
// nil and no error for other kinds.
func getMeta(ctx context.Context, kube kubernetes.Interface, ref revkit.ObjectRef) (*metav1.ObjectMeta, error) {
	ns, name, o := ref.Namespace, ref.Name, metav1.GetOptions{}
	switch ref.Kind {
	case "MutatingWebhookConfiguration":
		x, err := kube.AdmissionregistrationV1().MutatingWebhookConfigurations().Get(ctx, name, o)
		if err != nil {
			return nil, err
		}
		return &x.ObjectMeta, nil
	case "ValidatingWebhookConfiguration":
		x, err := kube.AdmissionregistrationV1().ValidatingWebhookConfigurations().Get(ctx, name, o)
		if err != nil {
			return nil, err
		}
		return &x.ObjectMeta, nil
	case "Service":
		x, err := kube.CoreV1().Services(ns).Get(ctx, name, o)
		if err != nil {
			return nil, err
		}
		return &x.ObjectMeta, nil
	case "Deployment":
		x, err := kube.AppsV1().Deployments(ns).Get(ctx, name, o)
		if err != nil {
			return nil, err
		}
		return &x.ObjectMeta, nil
	case "ConfigMap":
		x, err := kube.CoreV1().ConfigMaps(ns).Get(ctx, name, o)
		if err != nil {
			return nil, err
		}
		return &x.ObjectMeta, nil
	case "ServiceAccount":
		x, err := kube.CoreV1().ServiceAccounts(ns).Get(ctx, name, o)
		if err != nil {
			return nil, err
		}
		return &x.ObjectMeta, nil
	case "Role":
		x, err := kube.RbacV1().Roles(ns).Get(ctx, name, o)
		if err != nil {
			return nil, err
		}
		return &x.ObjectMeta, nil
	case "RoleBinding":
		x, err := kube.RbacV1().RoleBindings(ns).Get(ctx, name, o)
		if err != nil {
			return nil, err
		}
		return &x.ObjectMeta, nil
	case "ClusterRole":
		x, err := kube.RbacV1().ClusterRoles().Get(ctx, name, o)
		if err != nil {
			return nil, err
		}
		return &x.ObjectMeta, nil
	case "ClusterRoleBinding":
		x, err := kube.RbacV1().ClusterRoleBindings().Get(ctx, name, o)
		if err != nil {
			return nil, err
		}
		return &x.ObjectMeta, nil
	case "HorizontalPodAutoscaler":
		x, err := kube.AutoscalingV2().HorizontalPodAutoscalers(ns).Get(ctx, name, o)
		if err != nil {
			return nil, err
		}
		return &x.ObjectMeta, nil
	case "PodDisruptionBudget":
		x, err := kube.PolicyV1().PodDisruptionBudgets(ns).Get(ctx, name, o)
		if err != nil {
			return nil, err
		}
		return &x.ObjectMeta, nil
	}
	return nil, nil
}

// disown removes Helm's ownership metadata from an object so that the
// release's uninstall leaves it alone.
func disown(ctx context.Context, kube kubernetes.Interface, rec *kubeutil.Recorder, o releaseObject) error {
	switch o.Ref.Kind {
	case "MutatingWebhookConfiguration":
		return disownVia(ctx, rec, kube.AdmissionregistrationV1().MutatingWebhookConfigurations(), o)
	case "ValidatingWebhookConfiguration":
		return disownVia(ctx, rec, kube.AdmissionregistrationV1().ValidatingWebhookConfigurations(), o)
	case "Service":
		return disownVia(ctx, rec, kube.CoreV1().Services(o.Ref.Namespace), o)
	}
	return fmt.Errorf("revision.Uninstall: cannot take %s out of its release", o.Ref)
}

// disownVia strips the ownership metadata through a typed client.
func disownVia[T interface {
	runtime.Object
	metav1.Object
}](ctx context.Context, rec *kubeutil.Recorder, c kubeutil.Client[T], o releaseObject) error {
	return kubeutil.Modify(ctx, rec, c, o.Ref, func(cur T) T {
		next := cur.DeepCopyObject().(T)
		annotations, labels := next.GetAnnotations(), next.GetLabels()
		delete(annotations, helmReleaseNameAnno)
		delete(annotations, helmReleaseNamespaceAnno)
		if labels[helmManagedByLabel] == "Helm" {
			delete(labels, helmManagedByLabel)
		}
		next.SetAnnotations(annotations)
		next.SetLabels(labels)
		return next
	}, o.Keep)
}

// ownedByName lists the objects Istio's istiod chart gives a revision
// without the istio.io/rev label, so a label selector misses them: its
// ClusterRoles and ClusterRoleBindings (mesh.ClusterRoleNames, which
// verify.UninstallPermissions grants delete on) and the ServiceAccount,
// Role and RoleBinding "istiod-<rev>" in the control-plane namespace. Only
// objects whose labels show they are the chart's (app=istiod or
// app=istio-reader, no other revision's label) are returned; a foreign
// object with a colliding name is left alone. The non-revisioned "default"
// revision gets nothing by name: its names ("istiod",
// "istiod-clusterrole-<ns>") are not revision-specific.
func ownedByName(ctx context.Context, k kubernetes.Interface, ns, rev string) ([]kubeutil.Deletion, error) {
	if rev == mesh.DefaultRevision {
		return nil, nil
	}
	type candidate struct {
		ref revkit.ObjectRef
		del func(context.Context, string, metav1.DeleteOptions) error
	}
	var cands []candidate
	for _, name := range mesh.ClusterRoleNames(rev, ns) {
		cands = append(cands,
			candidate{revkit.ObjectRef{Kind: "ClusterRoleBinding", Name: name}, k.RbacV1().ClusterRoleBindings().Delete},
			candidate{revkit.ObjectRef{Kind: "ClusterRole", Name: name}, k.RbacV1().ClusterRoles().Delete})
	}
	name := mesh.IstiodName(rev)
	cands = append(cands,
		candidate{revkit.ObjectRef{Kind: "RoleBinding", Namespace: ns, Name: name}, k.RbacV1().RoleBindings(ns).Delete},
		candidate{revkit.ObjectRef{Kind: "Role", Namespace: ns, Name: name}, k.RbacV1().Roles(ns).Delete},
		candidate{revkit.ObjectRef{Kind: "ServiceAccount", Namespace: ns, Name: name}, k.CoreV1().ServiceAccounts(ns).Delete})
	var out []kubeutil.Deletion
	for _, c := range cands {
		meta, err := getMeta(ctx, k, c.ref)
		if apierrors.IsNotFound(err) {
			continue
		}
		if err != nil {
			return nil, &revkit.OpError{Op: "revision.Uninstall", Verb: "get", Object: c.ref, Err: err}
		}
		if chartOwned(meta.Labels, rev) {
			out = append(out, kubeutil.Named(c.ref.Kind, c.ref.Namespace, c.ref.Name, 3, c.del))
		}
	}
	return out, nil
}

// chartOwned: the labels show an object of the istiod chart (app=istiod or
// app=istio-reader) of rev, or of no revision.
func chartOwned(labels map[string]string, rev string) bool {
	if app := labels["app"]; app != "istiod" && app != "istio-reader" {
		return false
	}
	r, ok := labels[mesh.LabelRev]
	return !ok || r == rev
}
