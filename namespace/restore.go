package namespace

import (
	"context"
	"encoding/json"
	"fmt"
	"sort"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/util/validation"
	"k8s.io/client-go/kubernetes"

	"github.com/revkit/revkit"
	"github.com/revkit/revkit/internal/kubeutil"
	"github.com/revkit/revkit/internal/mesh"
)

// InjectionLabels are a namespace's two injection labels as they were: nil
// for a label that was absent. They are what Snapshot records and Restore
// puts back.
type InjectionLabels struct {
	// Injection is the istio-injection label ("enabled", "disabled").
	Injection *string `json:"istio-injection,omitempty"`
	// Rev is the istio.io/rev label (a revision or a tag).
	Rev *string `json:"istio.io/rev,omitempty"`
}

// String renders the labels as "istio-injection=enabled,istio.io/rev=x",
// or "no injection label".
func (l InjectionLabels) String() string {
	var s string
	if l.Injection != nil {
		s = mesh.LabelInjection + "=" + *l.Injection
	}
	if l.Rev != nil {
		if s != "" {
			s += ","
		}
		s += mesh.LabelRev + "=" + *l.Rev
	}
	return orNone(s)
}

func labelsOf(l map[string]string) InjectionLabels {
	var out InjectionLabels
	if v, ok := l[mesh.LabelInjection]; ok {
		out.Injection = &v
	}
	if v, ok := l[mesh.LabelRev]; ok {
		out.Rev = &v
	}
	return out
}

func (l InjectionLabels) equal(o InjectionLabels) bool {
	eq := func(a, b *string) bool { return (a == nil) == (b == nil) && (a == nil || *a == *b) }
	return eq(l.Injection, o.Injection) && eq(l.Rev, o.Rev)
}

// Snapshot reads the injection labels of the selected namespaces, by
// namespace name: the state a rollback restores with Restore.
func Snapshot(ctx context.Context, kube kubernetes.Interface, sel Selection, controlPlaneNamespace string) (map[string]InjectionLabels, error) {
	if err := sel.validate(); err != nil {
		return nil, err
	}
	if err := revkit.ValidateNamespace("ControlPlaneNamespace", controlPlaneNamespace); err != nil {
		return nil, err
	}
	nss, err := sel.resolve(ctx, kube, "namespace.Snapshot", revkit.ControlPlaneNamespace(controlPlaneNamespace))
	if err != nil {
		return nil, err
	}
	out := make(map[string]InjectionLabels, len(nss))
	for _, ns := range nss {
		out[ns.Name] = labelsOf(ns.Labels)
	}
	return out, nil
}

// RestoreOptions configures Restore.
type RestoreOptions struct {
	revkit.Common
	// Labels are the injection labels to put back, by namespace name, as
	// Snapshot recorded them. Required.
	Labels map[string]InjectionLabels
}

// Validate checks the options as Restore does before any request.
func (o *RestoreOptions) Validate() error {
	if len(o.Labels) == 0 {
		return &revkit.InvalidInputError{Field: "Labels", Reason: "name at least one namespace"}
	}
	for ns, l := range o.Labels {
		if err := revkit.ValidateNamespace("Labels", ns); err != nil {
			return err
		}
		if ns == "" {
			return &revkit.InvalidInputError{Field: "Labels", Reason: "empty namespace name"}
		}
		for key, v := range map[string]*string{mesh.LabelInjection: l.Injection, mesh.LabelRev: l.Rev} {
			if v == nil {
				continue
			}
			if errs := validation.IsValidLabelValue(*v); len(errs) > 0 {
				return &revkit.InvalidInputError{Field: "Labels", Value: ns + ": " + key + "=" + *v, Reason: errs[0]}
			}
		}
	}
	return o.DryRun.Validate()
}

// Restore puts namespaces' injection labels back exactly as recorded: each
// of istio-injection and istio.io/rev is set to its recorded value or
// removed if it was absent, in one merge patch per namespace. Namespaces
// already as recorded are reported unchanged; a namespace that no longer
// exists is a *revkit.NotFoundError before any write. Pods keep their
// sidecar; restart them with RolloutRestart.
//
// The result is never nil; when Restore fails part-way it lists the
// namespaces it relabelled before the failure.
func Restore(ctx context.Context, kube kubernetes.Interface, opts RestoreOptions) (*MigrateResult, error) {
	const op = "namespace.Restore"
	res := &MigrateResult{DryRun: opts.DryRun}
	if err := opts.Validate(); err != nil {
		return res, err
	}
	names := make([]string, 0, len(opts.Labels))
	for n := range opts.Labels {
		names = append(names, n)
	}
	sort.Strings(names)
	current := make([]InjectionLabels, len(names))
	for i, n := range names {
		ns, err := kube.CoreV1().Namespaces().Get(ctx, n, metav1.GetOptions{})
		if apierrors.IsNotFound(err) {
			return res, &revkit.NotFoundError{Kind: "namespace", Name: n}
		}
		if err != nil {
			return res, &revkit.OpError{Op: op, Verb: "get", Object: revkit.ObjectRef{Kind: "Namespace", Name: n}, Err: err}
		}
		current[i] = labelsOf(ns.Labels)
	}
	rec := kubeutil.NewRecorder(op, opts.Common)
	for i, n := range names {
		want := opts.Labels[n]
		nr := NamespaceResult{Name: n, Previous: previous(labelMap(current[i])), Action: revkit.ActionUnchanged}
		ref := revkit.ObjectRef{Kind: "Namespace", Name: n}
		if !current[i].equal(want) {
			nr.Action = revkit.ActionUpdate
			if rec.Sends() {
				if _, err := kube.CoreV1().Namespaces().Patch(ctx, n, types.MergePatchType, restorePatch(want), rec.PatchOptions()); err != nil {
					return res, rec.Fail("patch", ref, err)
				}
			}
		}
		reason := ""
		if nr.Action == revkit.ActionUpdate {
			reason = fmt.Sprintf("%s → %s", current[i], want)
		}
		rec.Record(ctx, ref, nr.Action, reason)
		res.Namespaces = append(res.Namespaces, nr)
	}
	return res, nil
}

func labelMap(l InjectionLabels) map[string]string {
	m := map[string]string{}
	if l.Injection != nil {
		m[mesh.LabelInjection] = *l.Injection
	}
	if l.Rev != nil {
		m[mesh.LabelRev] = *l.Rev
	}
	return m
}

// restorePatch sets or removes both injection labels in one merge patch.
func restorePatch(l InjectionLabels) []byte {
	value := func(v *string) any {
		if v == nil {
			return nil
		}
		return *v
	}
	b, _ := json.Marshal(map[string]any{"metadata": map[string]any{"labels": map[string]any{
		mesh.LabelInjection: value(l.Injection),
		mesh.LabelRev:       value(l.Rev),
	}}})
	return b
}
