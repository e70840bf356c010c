package namespace

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/kubernetes"

	"github.com/revkit/revkit"
	"github.com/revkit/revkit/internal/kubeutil"
	"github.com/revkit/revkit/internal/mesh"
)

// Selection names namespaces by list, by label selector, or both (the
// union).
type Selection struct {
	// Namespaces lists namespaces by name.
	Namespaces []string
	// Selector is a label selector over namespaces, e.g. "team=shop".
	Selector string
	// AllowSystem permits kube-system, kube-public, kube-node-lease and the
	// control-plane namespace, which are refused by default.
	AllowSystem bool
}

func (s Selection) validate() error {
	if len(s.Namespaces) == 0 && s.Selector == "" {
		return &revkit.InvalidInputError{Field: "Namespaces", Reason: "name at least one namespace or give a Selector"}
	}
	for _, n := range s.Namespaces {
		if n == "" {
			return &revkit.InvalidInputError{Field: "Namespaces", Reason: "empty namespace name"}
		}
		if err := revkit.ValidateNamespace("Namespaces", n); err != nil {
			return err
		}
	}
	if s.Selector != "" {
		if _, err := labels.Parse(s.Selector); err != nil {
			return &revkit.InvalidInputError{Field: "Selector", Value: s.Selector, Reason: err.Error()}
		}
	}
	return nil
}

var systemNamespaces = map[string]bool{"kube-system": true, "kube-public": true, "kube-node-lease": true}

// resolve reads the selected namespaces, sorted by name. A named namespace
// that does not exist is a *revkit.NotFoundError; a system namespace without
// AllowSystem is a *revkit.InvalidInputError.
func (s Selection) resolve(ctx context.Context, kube kubernetes.Interface, op, cpNS string) ([]corev1.Namespace, error) {
	out, err := kubeutil.SelectNamespaces(ctx, kube, op, s.Namespaces, s.Selector)
	if err != nil {
		return nil, err
	}
	for _, ns := range out {
		if !s.AllowSystem && (systemNamespaces[ns.Name] || ns.Name == cpNS) {
			return nil, &revkit.InvalidInputError{Field: "Namespaces", Value: ns.Name,
				Reason: "system or control-plane namespace; set AllowSystem to include it"}
		}
	}
	return out, nil
}

// MigrateOptions configures Migrate.
type MigrateOptions struct {
	revkit.Common
	Selection
	// Target is the revision or tag the namespaces should use. Required.
	Target string
	// ControlPlaneNamespace; default istio-system.
	ControlPlaneNamespace string
	// Concurrency is how many label patches are in flight at once; default
	// DefaultConcurrency from ten namespaces on, else one. The client's QPS
	// limit still applies. With more than one, writes go out in no fixed
	// order.
	Concurrency int
}

// MigrateResult reports what Migrate did.
type MigrateResult struct {
	Target string
	// Revision is the revision Target resolves to.
	Revision string
	// Namespaces has one entry per selected namespace, sorted by name.
	Namespaces []NamespaceResult
	DryRun     revkit.DryRun
}

// NamespaceResult is the outcome for one namespace.
type NamespaceResult struct {
	Name   string
	Action revkit.Action
	// Previous describes the injection labels before, e.g.
	// "istio.io/rev=1-24-0" or "istio-injection=enabled"; "" if none.
	Previous string
}

// Changed reports whether any namespace was (or would be) relabelled.
func (r *MigrateResult) Changed() bool { return revkit.AnyChanged(r.ObjectChanges()) }

// ObjectChanges lists the namespaces as object changes, with the injection
// labels they had before as the reason; see revkit.Result.
func (r *MigrateResult) ObjectChanges() []revkit.Change {
	out := make([]revkit.Change, 0, len(r.Namespaces))
	for _, n := range r.Namespaces {
		out = append(out, revkit.Change{Object: revkit.ObjectRef{Kind: "Namespace", Name: n.Name}, Action: n.Action, Reason: n.Previous})
	}
	return out
}

// Migrate points namespaces at a revision or tag: it removes the
// istio-injection label (which would otherwise win over istio.io/rev) and
// sets istio.io/rev=<Target>. Pods already running keep their sidecar;
// restart them with RolloutRestart.
//
// Before any write it refuses a malformed target or selection
// (revkit.ErrInvalidInput), a target that is neither an installed revision
// nor a tag and a named namespace that does not exist (revkit.ErrNotFound).
// Namespaces already on the target are reported unchanged. The result is
// never nil; after a failure it lists the namespaces relabelled before it.
func Migrate(ctx context.Context, kube kubernetes.Interface, opts MigrateOptions) (*MigrateResult, error) {
	const op = "namespace.Migrate"
	res := &MigrateResult{Target: opts.Target, DryRun: opts.DryRun}
	if err := opts.Validate(); err != nil {
		return res, err
	}
	cpNS := revkit.ControlPlaneNamespace(opts.ControlPlaneNamespace)
	rev, err := resolveTarget(ctx, kube, op, cpNS, opts.Target)
	if err != nil {
		return res, err
	}
	res.Revision = rev
	nss, err := opts.Selection.resolve(ctx, kube, op, cpNS)
	if err != nil {
		return res, err
	}
	rec := kubeutil.NewRecorder(op, opts.Common)
	results := make([]NamespaceResult, len(nss))
	for i, ns := range nss {
		results[i] = NamespaceResult{Name: ns.Name, Previous: previous(ns.Labels), Action: revkit.ActionUpdate}
		_, hasInjection := ns.Labels[mesh.LabelInjection]
		if ns.Labels[mesh.LabelRev] == opts.Target && !hasInjection {
			results[i].Action = revkit.ActionUnchanged
		}
	}
	// Patch with bounded concurrency; after a failure nothing new starts.
	ran, errs := forEach(ctx, len(nss), concurrency(opts.Concurrency, len(nss)), func(ctx context.Context, i int) error {
		if results[i].Action != revkit.ActionUpdate || !rec.Sends() {
			return nil
		}
		_, err := kube.CoreV1().Namespaces().Patch(ctx, nss[i].Name, types.MergePatchType, labelPatch(opts.Target), rec.PatchOptions())
		return err
	})
	var failure error
	for i, nr := range results {
		if !ran[i] {
			continue
		}
		ref := revkit.ObjectRef{Kind: "Namespace", Name: nr.Name}
		if errs[i] != nil {
			if failure == nil {
				failure = rec.Fail("patch", ref, errs[i])
			}
			continue
		}
		reason := ""
		if nr.Action == revkit.ActionUpdate {
			reason = fmt.Sprintf("%s → %s=%s", orNone(nr.Previous), mesh.LabelRev, opts.Target)
		}
		rec.Record(ctx, ref, nr.Action, reason)
		res.Namespaces = append(res.Namespaces, nr)
	}
	if failure != nil {
		return res, failure
	}
	return res, firstError(ctx, ran, errs)
}

// Validate checks the options as Migrate does before any request.
func (o *MigrateOptions) Validate() error {
	if err := validateTarget(o.Target); err != nil {
		return err
	}
	if err := o.Selection.validate(); err != nil {
		return err
	}
	if err := revkit.ValidateNamespace("ControlPlaneNamespace", o.ControlPlaneNamespace); err != nil {
		return err
	}
	if o.Concurrency < 0 {
		return &revkit.InvalidInputError{Field: "Concurrency", Reason: "must not be negative"}
	}
	return o.DryRun.Validate()
}

func validateTarget(target string) error {
	if target == "" {
		return &revkit.InvalidInputError{Field: "Target", Reason: "must name a revision or a tag"}
	}
	if err := revkit.ValidateRevision(target); err != nil {
		var inv *revkit.InvalidInputError
		if errors.As(err, &inv) {
			inv.Field = "Target"
		}
		return err
	}
	return nil
}

// resolveTarget returns the revision a revision-or-tag name stands for.
func resolveTarget(ctx context.Context, kube kubernetes.Interface, op, cpNS, target string) (string, error) {
	model, err := mesh.Load(ctx, kube, cpNS)
	if err != nil {
		return "", &revkit.OpError{Op: op, Verb: "list", Object: revkit.ObjectRef{Kind: "control plane"}, Err: err}
	}
	rev, _, ok := model.Resolve(target)
	if !ok {
		return "", &revkit.NotFoundError{Kind: "revision or tag", Name: target}
	}
	return rev, nil
}

// labelPatch removes istio-injection and sets istio.io/rev in one merge
// patch, so a namespace is never left with both or neither.
func labelPatch(target string) []byte {
	p := map[string]any{"metadata": map[string]any{"labels": map[string]any{
		mesh.LabelInjection: nil,
		mesh.LabelRev:       target,
	}}}
	b, _ := json.Marshal(p)
	return b
}

func previous(l map[string]string) string {
	if v, ok := l[mesh.LabelInjection]; ok {
		return mesh.LabelInjection + "=" + v
	}
	if v, ok := l[mesh.LabelRev]; ok {
		return mesh.LabelRev + "=" + v
	}
	return ""
}

func orNone(s string) string {
	if s == "" {
		return "no injection label"
	}
	return s
}
