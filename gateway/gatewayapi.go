package gateway

import (
	"cmp"
	"context"
	"fmt"
	"sort"
	"strings"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/client-go/dynamic"
	"k8s.io/client-go/kubernetes"

	"github.com/revkit/revkit"
	"github.com/revkit/revkit/internal/kubeutil"
	"github.com/revkit/revkit/internal/mesh"
)

// GatewayResource is the Kubernetes Gateway API resource ListAPI and
// MoveAPI read and label: gateway.networking.k8s.io/v1 gateways.
var GatewayResource = schema.GroupVersionResource{Group: "gateway.networking.k8s.io", Version: "v1", Resource: "gateways"}

const (
	// ClassIstio is the GatewayClass of Istio's Gateway API gateways.
	ClassIstio = "istio"
	// ClassWaypoint is the GatewayClass of ambient waypoints.
	ClassWaypoint = "istio-waypoint"
	// LabelWaypointFor on a waypoint says what traffic it handles
	// ("service", "workload", "all", "none").
	LabelWaypointFor = "istio.io/waypoint-for"
	// LabelManaged marks what istiod's gateway deployment controller
	// created for a Gateway.
	LabelManaged = "gateway.istio.io/managed" // = mesh.LabelGatewayManaged (istio.io/api label.GatewayManaged)
	// labelGatewayName names a managed object's Gateway.
	labelGatewayName = "gateway.networking.k8s.io/gateway-name"
)

// APIGateway is a Kubernetes Gateway API Gateway of an Istio class: a
// gateway (class istio) or an ambient waypoint (class istio-waypoint).
// istiod itself deploys it — the istiod whose revision or tag its
// istio.io/rev label names — and rewrites that Deployment whenever it
// reconciles, so it moves by its label, never by patching the Deployment.
type APIGateway struct {
	Namespace, Name string
	// Class is its gatewayClassName; Waypoint is true for istio-waypoint,
	// and WaypointFor is then its istio.io/waypoint-for label.
	Class       string
	Waypoint    bool
	WaypointFor string
	// Label is its istio.io/rev label ("" when it has none). Selector is
	// what chooses its istiod, as istiod decides: Label, or without one the
	// namespace's istio.io/rev label, or "" (the default revision).
	Label, Selector string
	// Revision is the revision whose istiod serves it: Selector resolved
	// through the tags (Tag names the tag when it is one), or the default
	// tag's (or default revision's) for an empty Selector. "" when no
	// installed revision answers to Selector: nothing deploys it.
	Revision, Tag string
	// Manual is set when its addresses name an existing Service (a
	// hostname): istiod then deploys nothing for it.
	Manual bool
	// HelmRelease is the Helm release that installed the Gateway resource,
	// if any; MoveAPI refuses it.
	HelmRelease string
	// Deployment is the Deployment istiod made for it ("" when none yet).
	// DeploymentRevision is the revision whose istiod last rendered it (the
	// istio.io/rev annotation of its pod template), ProxyImage the image of
	// its istio-proxy container, and RolledOut whether its rollout is
	// complete. When DeploymentRevision differs from Revision, the serving
	// istiod has not re-rolled it yet.
	Deployment, DeploymentRevision, ProxyImage string
	RolledOut                                  bool
}

// Current reports whether the Deployment has been rendered by the revision
// that serves the gateway and has rolled out.
func (g *APIGateway) Current() bool {
	return g.Revision != "" && g.Deployment != "" && g.DeploymentRevision == g.Revision && g.RolledOut
}

// UnsupportedClassError refuses a Gateway whose class istiod does not
// deploy by revision: only istio and istio-waypoint move. It matches
// revkit.ErrInvalidInput.
type UnsupportedClassError struct {
	Namespace, Name, Class string
}

func (e *UnsupportedClassError) Error() string {
	return fmt.Sprintf("Gateway %s/%s has class %q: only Gateways of class %q or %q are deployed by an Istio revision",
		e.Namespace, e.Name, e.Class, ClassIstio, ClassWaypoint)
}

// Is matches revkit.ErrInvalidInput.
func (e *UnsupportedClassError) Is(target error) bool { return target == revkit.ErrInvalidInput }

// istioClass reports whether istiod deploys Gateways of class c by
// revision.
func istioClass(c string) bool { return c == ClassIstio || c == ClassWaypoint }

// ListAPI returns the Gateway API gateways and waypoints of Istio's classes,
// sorted by namespace and name, with the revision that serves each and the
// state of the Deployment istiod made for it. Gateways of other classes are
// left out. A cluster without the Gateway API CRDs has none.
func ListAPI(ctx context.Context, kube kubernetes.Interface, dyn dynamic.Interface, opts ListOptions) ([]APIGateway, error) {
	const op = "gateway.ListAPI"
	model, err := mesh.Load(ctx, kube, revkit.DefaultControlPlaneNamespace)
	if err != nil {
		return nil, &revkit.OpError{Op: op, Verb: "list", Object: revkit.ObjectRef{Kind: "control plane"}, Err: err}
	}
	objs, err := listGateways(ctx, dyn, opts.Namespaces)
	if err != nil {
		return nil, &revkit.OpError{Op: op, Verb: "list", Object: revkit.ObjectRef{Kind: "Gateway"}, Err: err}
	}
	var keep []unstructured.Unstructured
	for _, o := range objs {
		if istioClass(gatewayClass(&o)) {
			keep = append(keep, o)
		}
	}
	return describe(ctx, kube, model, keep, op)
}

// listGateways lists Gateways in namespaces (all when empty), sorted; a
// cluster without the CRD has none.
func listGateways(ctx context.Context, dyn dynamic.Interface, namespaces []string) ([]unstructured.Unstructured, error) {
	if len(namespaces) == 0 {
		namespaces = []string{metav1.NamespaceAll}
	}
	var out []unstructured.Unstructured
	for _, ns := range namespaces {
		list, err := dyn.Resource(GatewayResource).Namespace(ns).List(ctx, metav1.ListOptions{})
		if err != nil {
			if isNotFound(err) {
				continue // no Gateway API CRDs
			}
			return nil, err
		}
		out = append(out, list.Items...)
	}
	sort.Slice(out, func(i, j int) bool {
		return out[i].GetNamespace()+"/"+out[i].GetName() < out[j].GetNamespace()+"/"+out[j].GetName()
	})
	return out, nil
}

func gatewayClass(u *unstructured.Unstructured) string {
	c, _, _ := unstructured.NestedString(u.Object, "spec", "gatewayClassName")
	return c
}

// manual mirrors istiod's IsManaged: one address that is not an IP (a
// hostname of an existing Service), or several, mean no Deployment.
func manual(u *unstructured.Unstructured) bool {
	addrs, _, _ := unstructured.NestedSlice(u.Object, "spec", "addresses")
	if len(addrs) > 1 {
		return true
	}
	if len(addrs) == 1 {
		m, _ := addrs[0].(map[string]any)
		t, _ := m["type"].(string)
		return t != "" && t != "IPAddress"
	}
	return false
}

// describe reads the namespaces and Deployments of the gateways.
func describe(ctx context.Context, kube kubernetes.Interface, model *mesh.Model, objs []unstructured.Unstructured, op string) ([]APIGateway, error) {
	nsLabels := map[string]map[string]string{}
	deps := map[string][]appsv1.Deployment{}
	out := make([]APIGateway, 0, len(objs))
	for i := range objs {
		u := &objs[i]
		ns := u.GetNamespace()
		if _, ok := nsLabels[ns]; !ok {
			n, err := kube.CoreV1().Namespaces().Get(ctx, ns, metav1.GetOptions{})
			switch {
			case err == nil:
				nsLabels[ns] = n.Labels
			case isNotFound(err):
				nsLabels[ns] = nil
			default:
				return nil, &revkit.OpError{Op: op, Verb: "get", Object: revkit.ObjectRef{Kind: "Namespace", Name: ns}, Err: err}
			}
			list, err := kube.AppsV1().Deployments(ns).List(ctx, metav1.ListOptions{LabelSelector: LabelManaged})
			if err != nil {
				return nil, &revkit.OpError{Op: op, Verb: "list", Object: revkit.ObjectRef{Kind: "Deployment", Namespace: ns}, Err: err}
			}
			deps[ns] = list.Items
		}
		g := APIGateway{Namespace: ns, Name: u.GetName(), Class: gatewayClass(u), Manual: manual(u),
			HelmRelease: u.GetAnnotations()["meta.helm.sh/release-name"]}
		g.Waypoint = g.Class == ClassWaypoint
		g.WaypointFor = u.GetLabels()[LabelWaypointFor]
		label, hasLabel := u.GetLabels()[mesh.LabelRev]
		g.Label, g.Selector = label, label
		if !hasLabel {
			g.Selector = nsLabels[ns][mesh.LabelRev]
		}
		g.Revision, g.Tag = serving(model, g.Selector)
		if d := deploymentOf(deps[ns], u); d != nil {
			g.Deployment = d.Name
			g.DeploymentRevision = d.Spec.Template.Annotations[mesh.LabelRev]
			g.ProxyImage = proxyImage(&d.Spec.Template.Spec)
			pending, err := kubeutil.RolloutStatus(d)
			g.RolledOut = err == nil && pending == ""
		}
		out = append(out, g)
	}
	return out, nil
}

// serving resolves what selects a Gateway's istiod to a revision, as each
// istiod's tag watcher decides whether a Gateway is its own: a revision or
// a tag by name; for none, the default tag's revision, else the revision
// the default validator belongs to, else a non-revisioned install.
func serving(model *mesh.Model, selector string) (rev, tag string) {
	if selector != "" {
		r, isTag, ok := model.Resolve(selector)
		if !ok {
			return "", ""
		}
		if isTag {
			return r, selector
		}
		return r, ""
	}
	if r, ok := model.Tags()[revkit.DefaultTag]; ok {
		return r, revkit.DefaultTag
	}
	for _, v := range model.Validators {
		if v.Name == mesh.DefaultValidatorName && v.Labels[mesh.LabelRev] != "" {
			return v.Labels[mesh.LabelRev], ""
		}
	}
	if model.HasRevision(mesh.DefaultRevision) {
		return mesh.DefaultRevision, ""
	}
	return "", ""
}

// deploymentOf finds the Deployment istiod made for a Gateway: owned by it
// (by UID when both carry one), else labelled with its name.
func deploymentOf(deps []appsv1.Deployment, gw *unstructured.Unstructured) *appsv1.Deployment {
	var byLabel *appsv1.Deployment
	for i := range deps {
		d := &deps[i]
		for _, o := range d.OwnerReferences {
			if o.Kind == "Gateway" && strings.HasPrefix(o.APIVersion, GatewayResource.Group+"/") && o.Name == gw.GetName() &&
				(o.UID == "" || gw.GetUID() == "" || o.UID == gw.GetUID()) {
				return d
			}
		}
		if d.Labels[labelGatewayName] == gw.GetName() && byLabel == nil {
			byLabel = d
		}
	}
	return byLabel
}

func proxyImage(spec *corev1.PodSpec) string {
	for _, c := range spec.Containers {
		if c.Name == "istio-proxy" {
			return c.Image
		}
	}
	return ""
}

// MoveAPIOptions configures MoveAPI.
type MoveAPIOptions struct {
	revkit.Common
	// Namespaces limits the Gateways moved; empty means all namespaces.
	Namespaces []string
	// Names moves only the Gateways of these names (in Namespaces); each
	// must exist and be of an Istio class. Empty moves every Gateway of
	// Classes in Namespaces.
	Names []string
	// Classes limits the Gateways moved to these classes: ClassIstio,
	// ClassWaypoint or both (the default).
	Classes []string
	// Target is the revision or tag the Gateways should be served by; it is
	// written as their istio.io/rev label, so a Gateway moved to a tag
	// follows the tag when it is moved later. Required.
	Target string
	// ControlPlaneNamespace; default istio-system.
	ControlPlaneNamespace string
	// Wait blocks until, for every Gateway moved (changed or already on
	// Target), the target revision's istiod has re-rendered its Deployment
	// (its pod template annotated istio.io/rev=<revision>) and the rollout
	// has completed. A read that fails transiently is retried at the next
	// check; a Deployment whose rollout failed (ProgressDeadlineExceeded)
	// ends the wait at once with a *revkit.RolloutFailedError. Gateways
	// istiod deploys nothing for (Manual) are not waited for.
	Wait bool
	// Timeout bounds the wait; default 5 minutes. PollInterval is the pause
	// between checks; default 1 second.
	Timeout, PollInterval time.Duration
}

// Validate checks the options as MoveAPI does before any request.
func (o *MoveAPIOptions) Validate() error {
	if err := validateMove(o.Target, o.ControlPlaneNamespace, o.Timeout, o.PollInterval); err != nil {
		return err
	}
	for _, ns := range o.Namespaces {
		if err := revkit.ValidateNamespace("Namespaces", ns); err != nil {
			return err
		}
	}
	for _, c := range o.Classes {
		if !istioClass(c) {
			return &revkit.InvalidInputError{Field: "Classes", Value: c, Reason: fmt.Sprintf("must be %q or %q", ClassIstio, ClassWaypoint)}
		}
	}
	return o.DryRun.Validate()
}

// MoveAPIResult reports what MoveAPI did, one change per Gateway
// (Kind "Gateway").
type MoveAPIResult struct {
	Target   string
	Revision string
	Gateways []revkit.Change
	DryRun   revkit.DryRun
}

// Changed reports whether a Gateway was (or would be) relabelled.
func (r *MoveAPIResult) Changed() bool { return revkit.AnyChanged(r.Gateways) }

// ObjectChanges lists what MoveAPI changed; see revkit.Result.
func (r *MoveAPIResult) ObjectChanges() []revkit.Change { return r.Gateways }

// MoveAPI moves Gateway API gateways and waypoints to the target revision
// or tag by setting istio.io/rev=<Target> on each Gateway resource (a merge
// patch of its labels); the target revision's istiod then re-renders the
// Deployment. The Deployment, which istiod owns and would rewrite, is never
// patched. A Gateway already labelled with Target is unchanged; rerunning
// MoveAPI changes nothing.
//
// Before any write it refuses, for the whole call: an unknown revision or
// tag (*revkit.NotFoundError), a name in Names that matches no Gateway
// (*revkit.NotFoundError, Kind "Gateway"), a named Gateway of another class
// (*UnsupportedClassError), and a Gateway installed by a Helm release
// (*HelmOwnedError: move it through its release). A dry run reports the
// changes and writes nothing (DryRunServer sends the patches with
// dryRun=All).
//
// With Wait, see MoveAPIOptions.Wait; a wait that times out or whose
// context ends returns an error wrapping context.DeadlineExceeded (or the
// context's error) naming each pending Gateway and why. The result is never
// nil: after a refusal it lists nothing; after a failed write or wait it
// lists what was done.
func MoveAPI(ctx context.Context, kube kubernetes.Interface, dyn dynamic.Interface, opts MoveAPIOptions) (*MoveAPIResult, error) {
	const op = "gateway.MoveAPI"
	res := &MoveAPIResult{Target: opts.Target, DryRun: opts.DryRun}
	if err := opts.Validate(); err != nil {
		return res, err
	}
	model, err := mesh.Load(ctx, kube, revkit.ControlPlaneNamespace(opts.ControlPlaneNamespace))
	if err != nil {
		return res, &revkit.OpError{Op: op, Verb: "list", Object: revkit.ObjectRef{Kind: "control plane"}, Err: err}
	}
	rev, _, ok := model.Resolve(opts.Target)
	if !ok {
		return res, &revkit.NotFoundError{Kind: "revision or tag", Name: opts.Target}
	}
	res.Revision = rev
	objs, err := listGateways(ctx, dyn, opts.Namespaces)
	if err != nil {
		return res, &revkit.OpError{Op: op, Verb: "list", Object: revkit.ObjectRef{Kind: "Gateway"}, Err: err}
	}
	selected, err := selectGateways(objs, opts)
	if err != nil {
		return res, err
	}
	rec := kubeutil.NewRecorder(op, opts.Common)
	for i := range selected {
		u := &selected[i]
		ref := revkit.ObjectRef{Kind: "Gateway", Namespace: u.GetNamespace(), Name: u.GetName()}
		cur, has := u.GetLabels()[mesh.LabelRev]
		if has && cur == opts.Target {
			rec.Record(ctx, ref, revkit.ActionUnchanged, "already on "+opts.Target)
			continue
		}
		if rec.Sends() {
			patch := fmt.Appendf(nil, `{"metadata":{"labels":{%q:%q}}}`, mesh.LabelRev, opts.Target)
			if _, err := dyn.Resource(GatewayResource).Namespace(ref.Namespace).Patch(ctx, ref.Name, typesMerge, patch, rec.PatchOptions()); err != nil {
				res.Gateways = rec.Changes
				return res, rec.Fail("patch", ref, err)
			}
		}
		from := cur
		if !has {
			from = "no istio.io/rev label"
		}
		rec.Record(ctx, ref, revkit.ActionUpdate, fmt.Sprintf("%s → %s", from, opts.Target))
	}
	res.Gateways = rec.Changes
	if opts.Wait && opts.DryRun == revkit.DryRunNone {
		var wait []*unstructured.Unstructured
		for i := range selected {
			if !manual(&selected[i]) {
				wait = append(wait, &selected[i])
			}
		}
		if err := waitRerolled(ctx, kube, wait, rev, cmp.Or(opts.Timeout, 5*time.Minute), cmp.Or(opts.PollInterval, time.Second)); err != nil {
			return res, err
		}
	}
	return res, nil
}

// selectGateways applies Names and Classes, refusing before any write a
// name that is missing, of a foreign class, or owned by a Helm release.
func selectGateways(objs []unstructured.Unstructured, opts MoveAPIOptions) ([]unstructured.Unstructured, error) {
	classes := map[string]bool{}
	for _, c := range opts.Classes {
		classes[c] = true
	}
	if len(classes) == 0 {
		classes[ClassIstio], classes[ClassWaypoint] = true, true
	}
	names := map[string]bool{}
	for _, n := range opts.Names {
		names[n] = false
	}
	var out []unstructured.Unstructured
	for i := range objs {
		u := &objs[i]
		class := gatewayClass(u)
		if len(names) > 0 {
			if _, want := names[u.GetName()]; !want {
				continue
			}
			names[u.GetName()] = true
			if !istioClass(class) {
				return nil, &UnsupportedClassError{Namespace: u.GetNamespace(), Name: u.GetName(), Class: class}
			}
		}
		if !classes[class] {
			continue
		}
		if rel := u.GetAnnotations()["meta.helm.sh/release-name"]; rel != "" {
			return nil, &HelmOwnedError{Kind: "Gateway", Namespace: u.GetNamespace(), Name: u.GetName(), Release: rel}
		}
		out = append(out, *u)
	}
	var missing []string
	for n, found := range names {
		if !found {
			missing = append(missing, n)
		}
	}
	if len(missing) > 0 {
		sort.Strings(missing)
		where := ""
		if len(opts.Namespaces) > 0 {
			where = " in " + strings.Join(opts.Namespaces, ", ")
		}
		return nil, &revkit.NotFoundError{Kind: "Gateway", Name: strings.Join(missing, ", ") + where}
	}
	return out, nil
}

// waitRerolled polls until the Deployment of each Gateway was rendered by
// rev's istiod and has rolled out.
func waitRerolled(ctx context.Context, kube kubernetes.Interface, gws []*unstructured.Unstructured, rev string, timeout, interval time.Duration) error {
	const op = "gateway.MoveAPI"
	byRef := map[revkit.ObjectRef]*unstructured.Unstructured{}
	var refs []revkit.ObjectRef
	for _, g := range gws {
		ref := revkit.ObjectRef{Kind: "Gateway", Namespace: g.GetNamespace(), Name: g.GetName()}
		byRef[ref] = g
		refs = append(refs, ref)
	}
	return kubeutil.WaitAll(ctx, op, "not re-rolled by revision "+rev, refs, timeout, interval, func(ctx context.Context, ref revkit.ObjectRef) (string, error) {
		list, err := kube.AppsV1().Deployments(ref.Namespace).List(ctx, metav1.ListOptions{LabelSelector: LabelManaged})
		if err != nil {
			return "cannot read its Deployment", &revkit.OpError{Op: op, Verb: "list", Object: revkit.ObjectRef{Kind: "Deployment", Namespace: ref.Namespace}, Err: err}
		}
		d := deploymentOf(list.Items, byRef[ref])
		switch {
		case d == nil:
			return "istiod has not created its Deployment yet", nil
		case d.Spec.Template.Annotations[mesh.LabelRev] != rev:
			return fmt.Sprintf("Deployment %s still rendered by revision %q, not %q", d.Name, d.Spec.Template.Annotations[mesh.LabelRev], rev), nil
		}
		why, err := kubeutil.RolloutStatus(d)
		if why != "" {
			why = "Deployment " + d.Name + ": " + why
		}
		return why, err
	})
}
