package gateway

import (
	"cmp"
	"context"
	"fmt"
	"sort"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/client-go/kubernetes"

	"github.com/revkit/revkit"
	"github.com/revkit/revkit/internal/kubeutil"
	"github.com/revkit/revkit/internal/mesh"
)

const (
	// LabelCanaryOf marks a canary gateway Deployment with the name of the
	// gateway it copies.
	LabelCanaryOf = "revkit.io/canary-of"
	// LabelCanaryRevision is added to a canary's selector and pod labels so
	// that its pods stay apart from the original's.
	LabelCanaryRevision = "revkit.io/canary-revision"
)

// Gateway is one gateway Deployment.
type Gateway struct {
	Namespace string
	Name      string
	// Revision is the istio.io/rev label of its pod template; "" when the
	// gateway follows its namespace's injection.
	Revision string
	// Pods counts its running pods by the revision of their proxy.
	Pods map[string]int
	// CanaryOf names the gateway this one is a canary of, if any.
	CanaryOf string
	// Release is the Helm release that owns it (Istio's gateway chart sets
	// Helm's meta.helm.sh/release-name), and Chart that release's chart
	// (its helm.sh/chart label, e.g. "gateway-1.31.0"); both "" for a
	// gateway not installed with Helm. Move refuses such a gateway.
	Release, Chart string
}

// HelmOwnedError refuses to move a gateway a Helm release owns: patching
// its Deployment would drift from the release, and the next helm upgrade
// would undo it. Move it through its release instead (UpgradeRelease), or
// install a canary release beside it (CanaryRelease). MoveAPI
// refuses a Gateway API Gateway a release installed (Kind "Gateway") the
// same way: its istio.io/rev label belongs to the release's values. It
// matches revkit.ErrInvalidInput.
type HelmOwnedError struct {
	// Kind is "Gateway" for a Gateway API Gateway; "" for a gateway
	// Deployment.
	Kind                     string
	Namespace, Name, Release string
}

func (e *HelmOwnedError) Error() string {
	if e.Kind == "Gateway" {
		return fmt.Sprintf("Gateway %s/%s belongs to Helm release %s: set its istio.io/rev label through the release (helm upgrade %s); "+
			"revkit does not patch what a release owns", e.Namespace, e.Name, e.Release, e.Release)
	}
	return fmt.Sprintf("gateway %s/%s belongs to Helm release %s: move it through its release (UpgradeRelease: helm upgrade %s --set revision=<revision>) "+
		"or install a canary release beside it (CanaryRelease); revkit does not patch what a release owns", e.Namespace, e.Name, e.Release, e.Release)
}

// Is matches revkit.ErrInvalidInput.
func (e *HelmOwnedError) Is(target error) bool { return target == revkit.ErrInvalidInput }

// helmRelease is the Helm release that owns a Deployment, or "".
func helmRelease(d *appsv1.Deployment) string { return d.Annotations["meta.helm.sh/release-name"] }

// IsGateway reports whether a Deployment runs an Istio gateway: its pods use
// the gateway injection template, or carry an "istio" label naming a
// gateway (as Istio's gateway chart sets).
//
// A Deployment istiod made for a Gateway API Gateway (labelled
// gateway.istio.io/managed) is not one: istiod owns it and rewrites it, so
// it is listed and moved by its Gateway (ListAPI, MoveAPI) instead.
func IsGateway(d *appsv1.Deployment) bool {
	t := d.Spec.Template
	for _, l := range []map[string]string{d.Labels, t.Labels} {
		if _, managed := l[mesh.LabelGatewayManaged]; managed {
			return false
		}
	}
	return mesh.IsGateway(t.Labels, t.Annotations)
}

// ListOptions configures List.
type ListOptions struct {
	// Namespaces to look in; empty means all.
	Namespaces []string
}

// List returns the gateway Deployments, sorted by namespace and name.
func List(ctx context.Context, kube kubernetes.Interface, opts ListOptions) ([]Gateway, error) {
	nss := opts.Namespaces
	if len(nss) == 0 {
		nss = []string{metav1.NamespaceAll}
	}
	var out []Gateway
	for _, ns := range nss {
		deps, err := kube.AppsV1().Deployments(ns).List(ctx, metav1.ListOptions{})
		if err != nil {
			return nil, &revkit.OpError{Op: "gateway.List", Verb: "list", Object: revkit.ObjectRef{Kind: "Deployment", Namespace: ns}, Err: err}
		}
		for i := range deps.Items {
			d := &deps.Items[i]
			if !IsGateway(d) {
				continue
			}
			g := Gateway{Namespace: d.Namespace, Name: d.Name, Revision: d.Spec.Template.Labels[mesh.LabelRev],
				CanaryOf: d.Labels[LabelCanaryOf], Pods: map[string]int{}, Release: helmRelease(d)}
			if g.Release != "" {
				g.Chart = d.Labels["helm.sh/chart"]
			}
			sel, err := metav1.LabelSelectorAsSelector(d.Spec.Selector)
			if err == nil && !sel.Empty() {
				pods, err := kubeutil.ListPods(ctx, kube, d.Namespace, metav1.ListOptions{LabelSelector: sel.String()})
				if err != nil {
					return nil, &revkit.OpError{Op: "gateway.List", Verb: "list", Object: revkit.ObjectRef{Kind: "Pod", Namespace: d.Namespace}, Err: err}
				}
				for i := range pods {
					if !mesh.PodActive(&pods[i]) || !ownedBy(&pods[i], d) {
						continue
					}
					rev, injected := mesh.PodRevision(&pods[i])
					if !injected {
						rev = "none"
					}
					g.Pods[rev]++
				}
			}
			out = append(out, g)
		}
	}
	sort.Slice(out, func(i, j int) bool {
		if out[i].Namespace != out[j].Namespace {
			return out[i].Namespace < out[j].Namespace
		}
		return out[i].Name < out[j].Name
	})
	return out, nil
}

// ownedBy tells a Deployment's pods from those of a canary whose selector
// overlaps it: a canary's pods carry LabelCanaryRevision, the original's
// do not.
func ownedBy(p *corev1.Pod, d *appsv1.Deployment) bool {
	_, podIsCanary := p.Labels[LabelCanaryRevision]
	_, depIsCanary := d.Spec.Template.Labels[LabelCanaryRevision]
	return podIsCanary == depIsCanary
}

// Mode says how Move moves a gateway.
type Mode string

const (
	// InPlace relabels the gateway itself.
	InPlace Mode = "in-place"
	// Canary adds a second gateway Deployment on the target revision.
	Canary Mode = "canary"
)

// MoveOptions configures Move.
type MoveOptions struct {
	revkit.Common
	// Namespaces limits the gateways moved; empty means all namespaces.
	Namespaces []string
	// Names limits the gateways moved to these Deployment names.
	Names []string
	// Target is the revision or tag the gateways should run. Required.
	Target string
	// Mode is InPlace (the default) or Canary.
	Mode Mode
	// ControlPlaneNamespace; default istio-system.
	ControlPlaneNamespace string
	// Wait blocks until every changed gateway has rolled out, so that no
	// pod of the old revision is left when Move returns. A read that fails
	// transiently (connection refused, 429, 5xx) is retried at the next
	// check, until the timeout. A gateway whose rollout has failed
	// (ProgressDeadlineExceeded) ends the wait at once with a
	// *revkit.RolloutFailedError.
	Wait bool
	// Timeout bounds the wait; default 5 minutes. PollInterval is the pause
	// between checks; default 1 second.
	Timeout, PollInterval time.Duration
}

// Validate checks the options as Move does before any request.
func (o *MoveOptions) Validate() error {
	if err := validateMove(o.Target, o.ControlPlaneNamespace, o.Timeout, o.PollInterval); err != nil {
		return err
	}
	if o.Mode != "" && o.Mode != InPlace && o.Mode != Canary {
		return &revkit.InvalidInputError{Field: "Mode", Value: string(o.Mode), Reason: `must be "in-place" or "canary"`}
	}
	return o.DryRun.Validate()
}

// validateMove checks what every move of gateways shares: a target
// revision or tag, the control-plane namespace, the wait's durations.
func validateMove(target, cp string, timeout, interval time.Duration) error {
	if target == "" {
		return &revkit.InvalidInputError{Field: "Target", Reason: "must name a revision or a tag"}
	}
	if err := revkit.ValidateRevision(target); err != nil {
		return err
	}
	if err := revkit.ValidateNamespace("ControlPlaneNamespace", cp); err != nil {
		return err
	}
	if timeout < 0 || interval < 0 {
		return &revkit.InvalidInputError{Field: "Timeout", Reason: "durations must not be negative"}
	}
	return nil
}

// MoveResult reports what Move did, one entry per gateway.
type MoveResult struct {
	Target   string
	Revision string
	Gateways []revkit.Change
	DryRun   revkit.DryRun
}

// Changed reports whether a gateway was (or would be) changed.
func (r *MoveResult) Changed() bool { return revkit.AnyChanged(r.Gateways) }

// CanaryName is the Deployment name of a gateway's canary on a revision.
func CanaryName(gateway, rev string) string { return gateway + "-" + rev }

// Move puts gateways on the target revision: InPlace sets istio.io/rev on
// the pod template (their pods roll over); Canary creates or updates
// "<name>-<revision>" on the target next to each gateway. Canaries
// themselves are never moved. Rerunning it changes nothing. A gateway a
// Helm release owns (Istio's gateway chart) refuses the whole move with a
// *HelmOwnedError before any write: it moves through its release.
//
// With Wait, a wait that times out returns an error wrapping
// context.DeadlineExceeded that names each pending gateway; a gateway
// Deployment whose controller reports its rollout failed (the Progressing
// condition with reason ProgressDeadlineExceeded, for the generation it has
// observed) ends the wait at once with a *revkit.RolloutFailedError
// (matching revkit.ErrRolloutFailed) naming it and the condition. Either
// way the result lists every gateway changed.
func Move(ctx context.Context, kube kubernetes.Interface, opts MoveOptions) (*MoveResult, error) {
	const op = "gateway.Move"
	// A refusal still returns a result, of nothing changed.
	res := &MoveResult{Target: opts.Target, DryRun: opts.DryRun}
	if err := opts.Validate(); err != nil {
		return res, err
	}
	if opts.Mode == "" {
		opts.Mode = InPlace
	}
	model, err := mesh.Load(ctx, kube, revkit.ControlPlaneNamespace(opts.ControlPlaneNamespace))
	if err != nil {
		return res, &revkit.OpError{Op: op, Verb: "list", Object: revkit.ObjectRef{Kind: "control plane"}, Err: err}
	}
	rev, _, ok := model.Resolve(opts.Target)
	if !ok {
		return res, &revkit.NotFoundError{Kind: "revision or tag", Name: opts.Target}
	}
	deps, err := gatewayDeployments(ctx, kube, opts.Namespaces, opts.Names)
	if err != nil {
		return res, &revkit.OpError{Op: op, Verb: "list", Object: revkit.ObjectRef{Kind: "Deployment"}, Err: err}
	}
	// A gateway a Helm release owns refuses the whole move, before any
	// write: nothing is left half-moved.
	for i := range deps {
		if rel := helmRelease(&deps[i]); rel != "" && deps[i].Labels[LabelCanaryOf] == "" {
			return res, &HelmOwnedError{Namespace: deps[i].Namespace, Name: deps[i].Name, Release: rel}
		}
	}
	rec := kubeutil.NewRecorder(op, opts.Common)
	res.Revision = rev
	for i := range deps {
		d := &deps[i]
		if d.Labels[LabelCanaryOf] != "" {
			continue
		}
		var err error
		if opts.Mode == InPlace {
			err = moveInPlace(ctx, kube, rec, d, opts.Target)
		} else {
			err = applyCanary(ctx, kube, rec, d, opts.Target, rev)
		}
		if err != nil {
			res.Gateways = rec.Changes
			return res, err
		}
	}
	res.Gateways = rec.Changes
	if opts.Wait && opts.DryRun == revkit.DryRunNone {
		if err := waitRolledOut(ctx, kube, opts, res.Gateways); err != nil {
			return res, err
		}
	}
	return res, nil
}

// waitRolledOut waits (kubeutil.WaitDeployments: kstatus, failed rollouts
// at once, transient reads retried) for the gateway Deployments Move
// changed.
func waitRolledOut(ctx context.Context, kube kubernetes.Interface, opts MoveOptions, changes []revkit.Change) error {
	var refs []revkit.ObjectRef
	for _, c := range changes {
		if c.Action.Changed() {
			refs = append(refs, c.Object)
		}
	}
	return kubeutil.WaitDeployments(ctx, kube, "gateway.Move", refs, cmp.Or(opts.Timeout, 5*time.Minute), cmp.Or(opts.PollInterval, time.Second))
}

func gatewayDeployments(ctx context.Context, kube kubernetes.Interface, namespaces, names []string) ([]appsv1.Deployment, error) {
	if len(namespaces) == 0 {
		namespaces = []string{metav1.NamespaceAll}
	}
	want := map[string]bool{}
	for _, n := range names {
		want[n] = true
	}
	var out []appsv1.Deployment
	for _, ns := range namespaces {
		list, err := kube.AppsV1().Deployments(ns).List(ctx, metav1.ListOptions{})
		if err != nil {
			return nil, err
		}
		for _, d := range list.Items {
			if IsGateway(&d) && (len(want) == 0 || want[d.Name] || want[d.Labels[LabelCanaryOf]]) {
				out = append(out, d)
			}
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Namespace+"/"+out[i].Name < out[j].Namespace+"/"+out[j].Name })
	return out, nil
}

func moveInPlace(ctx context.Context, kube kubernetes.Interface, rec *kubeutil.Recorder, d *appsv1.Deployment, target string) error {
	ref := revkit.ObjectRef{Kind: "Deployment", Namespace: d.Namespace, Name: d.Name}
	if d.Spec.Template.Labels[mesh.LabelRev] == target {
		rec.Record(ctx, ref, revkit.ActionUnchanged, "already on "+target)
		return nil
	}
	patch := fmt.Appendf(nil, `{"spec":{"template":{"metadata":{"labels":{%q:%q}}}}}`, mesh.LabelRev, target)
	if rec.Sends() {
		if _, err := kube.AppsV1().Deployments(d.Namespace).Patch(ctx, d.Name, typesMerge, patch, rec.PatchOptions()); err != nil {
			return rec.Fail("patch", ref, err)
		}
	}
	rec.Record(ctx, ref, revkit.ActionUpdate, fmt.Sprintf("%s → %s", orNone(d.Spec.Template.Labels[mesh.LabelRev]), target))
	return nil
}

func orNone(s string) string {
	if s == "" {
		return "namespace injection"
	}
	return s
}

// canaryOf builds the canary Deployment of gateway d on a revision.
func canaryOf(d *appsv1.Deployment, target, rev string) *appsv1.Deployment {
	c := &appsv1.Deployment{
		ObjectMeta: metav1.ObjectMeta{
			Name: CanaryName(d.Name, rev), Namespace: d.Namespace,
			// No istio.io/rev here: the canary is not part of the revision's
			// control plane, and revision.Uninstall must not see it as such.
			Labels: labels.Merge(d.Labels, map[string]string{LabelCanaryOf: d.Name, LabelCanaryRevision: rev}),
		},
		Spec: *d.Spec.DeepCopy(),
	}
	c.Spec.Paused = false
	sel := c.Spec.Selector.DeepCopy()
	if sel == nil {
		sel = &metav1.LabelSelector{}
	}
	sel.MatchLabels = labels.Merge(sel.MatchLabels, map[string]string{LabelCanaryRevision: rev})
	c.Spec.Selector = sel
	c.Spec.Template.Labels = labels.Merge(c.Spec.Template.Labels, map[string]string{LabelCanaryRevision: rev, mesh.LabelRev: target})
	return c
}

func applyCanary(ctx context.Context, kube kubernetes.Interface, rec *kubeutil.Recorder, d *appsv1.Deployment, target, rev string) error {
	want := canaryOf(d, target, rev)
	ref := revkit.ObjectRef{Kind: "Deployment", Namespace: want.Namespace, Name: want.Name}
	client := kube.AppsV1().Deployments(d.Namespace)
	cur, err := client.Get(ctx, want.Name, metav1.GetOptions{})
	switch {
	case err == nil:
		if cur.Spec.Template.Labels[mesh.LabelRev] == target && cur.Labels[LabelCanaryOf] == d.Name {
			rec.Record(ctx, ref, revkit.ActionUnchanged, "canary exists")
			return nil
		}
		if cur.Labels[LabelCanaryOf] != d.Name {
			return &revkit.ExistsError{Kind: "Deployment", Name: d.Namespace + "/" + want.Name,
				Detail: "it is not a canary of gateway " + d.Name}
		}
		next := cur.DeepCopy()
		next.Spec.Template.Labels[mesh.LabelRev] = target
		if rec.Sends() {
			if _, err := client.Update(ctx, next, rec.UpdateOptions()); err != nil {
				return rec.Fail("update", ref, err)
			}
		}
		rec.Record(ctx, ref, revkit.ActionUpdate, "canary of "+d.Name+" on "+target)
		return nil
	case isNotFound(err):
		if rec.Sends() {
			if _, err := client.Create(ctx, want, rec.CreateOptions()); err != nil {
				return rec.Fail("create", ref, err)
			}
		}
		rec.Record(ctx, ref, revkit.ActionCreate, "canary of "+d.Name+" on "+target)
		return nil
	default:
		return rec.Fail("get", ref, err)
	}
}

// RemoveCanariesOptions configures RemoveCanaries.
type RemoveCanariesOptions struct {
	revkit.Common
	// Namespaces limits the search; empty means all namespaces.
	Namespaces []string
	// Revision removes only canaries on this revision; empty removes all
	// canaries.
	Revision string
}

// Validate checks the options as RemoveCanaries does before any request.
func (o *RemoveCanariesOptions) Validate() error {
	if o.Revision != "" {
		if err := revkit.ValidateRevision(o.Revision); err != nil {
			return err
		}
	}
	return o.DryRun.Validate()
}

// RemoveCanaries deletes the canary gateway Deployments Move created, for
// one revision or all. The original gateways are untouched, and so are the
// canaries CanaryRelease installed: a Helm release owns them.
func RemoveCanaries(ctx context.Context, kube kubernetes.Interface, opts RemoveCanariesOptions) ([]revkit.Change, error) {
	const op = "gateway.RemoveCanaries"
	if err := opts.Validate(); err != nil {
		return nil, err
	}
	nss := opts.Namespaces
	if len(nss) == 0 {
		nss = []string{metav1.NamespaceAll}
	}
	sel := LabelCanaryOf
	if opts.Revision != "" {
		sel += "," + LabelCanaryRevision + "=" + opts.Revision
	}
	rec := kubeutil.NewRecorder(op, opts.Common)
	for _, ns := range nss {
		list, err := kube.AppsV1().Deployments(ns).List(ctx, metav1.ListOptions{LabelSelector: sel})
		if err != nil {
			return rec.Changes, rec.Fail("list", revkit.ObjectRef{Kind: "Deployment", Namespace: ns}, err)
		}
		for _, d := range list.Items {
			if helmRelease(&d) != "" {
				// A canary release's: RollbackCanaryRelease uninstalls it.
				continue
			}
			ref := revkit.ObjectRef{Kind: "Deployment", Namespace: d.Namespace, Name: d.Name}
			if rec.Sends() {
				if err := kube.AppsV1().Deployments(d.Namespace).Delete(ctx, d.Name, rec.DeleteOptions()); err != nil && !isNotFound(err) {
					return rec.Changes, rec.Fail("delete", ref, err)
				}
			}
			rec.Record(ctx, ref, revkit.ActionDelete, "canary of "+d.Labels[LabelCanaryOf])
		}
	}
	return rec.Changes, nil
}
