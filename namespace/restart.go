package namespace

import (
	"context"
	"encoding/json"
	"fmt"
	"sort"
	"strings"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/client-go/kubernetes"

	"github.com/revkit/revkit"
	"github.com/revkit/revkit/internal/kubeutil"
	"github.com/revkit/revkit/internal/mesh"
)

// Kind is a kind of workload RolloutRestart handles.
type Kind string

const (
	Deployment  Kind = "Deployment"
	StatefulSet Kind = "StatefulSet"
	DaemonSet   Kind = "DaemonSet"
)

// RestartOptions configures RolloutRestart.
type RestartOptions struct {
	revkit.Common
	Selection
	// Kinds limits the workloads; empty means all three kinds.
	Kinds []Kind
	// WorkloadSelector filters workloads by their own labels.
	WorkloadSelector string
	// Target is the revision or tag the pods should end up on. With
	// OnlyStale it selects what to restart.
	Target string
	// OnlyStale restarts only workloads that have a running pod not yet
	// injected by Target's revision. It makes a rerun a no-op.
	OnlyStale bool
	// Wait blocks until every restarted workload has rolled out. It rides
	// out an apiserver that cannot answer for a while (see the package
	// documentation), and ends at once with a *revkit.RolloutFailedError
	// when a Deployment's rollout has failed (ProgressDeadlineExceeded).
	Wait bool
	// Timeout bounds the wait; default 10 minutes.
	Timeout time.Duration
	// PollInterval is the pause between status checks when the wait polls;
	// default 2 seconds. A wait over at least ten namespaces watches each
	// kind across the cluster instead, and polls only when it may not.
	PollInterval time.Duration
	// Concurrency is how many requests are in flight at once (reads per
	// namespace, restart patches, status checks); default DefaultConcurrency
	// from ten namespaces on, else one. The client's QPS limit still
	// applies. With more than one, writes go out in no fixed order.
	Concurrency int
	// ControlPlaneNamespace; default istio-system.
	ControlPlaneNamespace string
	// Now stamps the restart annotation; default time.Now.
	Now func() time.Time `json:"-"`
	// RestartedSince, when set, marks workloads whose restart annotation is
	// at or after it, toward the same target revision, as restarted already
	// (by an earlier, interrupted run of the same plan): they are not
	// restarted again, only waited for. A restart since toward another
	// revision (a rollback's) does not count. upgrade.Execute sets it from
	// its journal.
	RestartedSince time.Time
}

// RestartResult reports what RolloutRestart did.
type RestartResult struct {
	// Workloads, sorted by namespace, kind and name.
	Workloads []WorkloadResult
	DryRun    revkit.DryRun
}

// WorkloadResult is the outcome for one workload.
type WorkloadResult struct {
	Kind      Kind
	Namespace string
	Name      string
	// Action is update (restarted), unchanged (already on the target) or
	// skip (see Reason).
	Action revkit.Action
	Reason string
	// RolledOut is set when Wait saw the rollout complete.
	RolledOut bool
	// Resumed is set for a workload restarted by an earlier run of the
	// same plan (see RestartOptions.RestartedSince): it was waited for, not
	// restarted again.
	Resumed bool
}

// Changed reports whether a workload was (or would be) restarted.
func (r *RestartResult) Changed() bool { return revkit.AnyChanged(r.ObjectChanges()) }

// ObjectChanges lists the workloads as object changes; see revkit.Result.
func (r *RestartResult) ObjectChanges() []revkit.Change {
	out := make([]revkit.Change, 0, len(r.Workloads))
	for _, w := range r.Workloads {
		out = append(out, revkit.Change{
			Object: revkit.ObjectRef{Kind: string(w.Kind), Namespace: w.Namespace, Name: w.Name},
			Action: w.Action, Reason: w.Reason})
	}
	return out
}

// Restarted returns the restarted workloads as "Kind/namespace/name".
func (r *RestartResult) Restarted() []string {
	var out []string
	for _, w := range r.Workloads {
		if w.Action.Changed() {
			out = append(out, fmt.Sprintf("%s/%s/%s", w.Kind, w.Namespace, w.Name))
		}
	}
	return out
}

// WaitError reports workloads that had not rolled out when the wait ended.
type WaitError struct {
	// Pending lists "Kind/namespace/name" with the reason each is not done.
	Pending []string
	Err     error
	// LastError is set when the wait's latest read of the apiserver had
	// failed with a transient error (connection refused, 503 …) that the
	// wait was still riding out when it ended.
	LastError error
}

func (e *WaitError) Error() string {
	s := fmt.Sprintf("rollout not complete for %d workloads (%s): %v", len(e.Pending), strings.Join(e.Pending, "; "), e.Err)
	if e.LastError != nil {
		s += fmt.Sprintf(" (latest read failed: %v)", e.LastError)
	}
	return s
}

func (e *WaitError) Unwrap() error { return e.Err }

// RolloutRestart restarts Deployments, StatefulSets and DaemonSets the way
// kubectl rollout restart does, by stamping the pod template annotation
// kubectl.kubernetes.io/restartedAt, so that new pods get the sidecar of the
// revision their namespace now selects. Paused Deployments and workloads
// with the OnDelete update strategy are skipped with a reason, since a
// restart would not replace their pods.
//
// With Wait it then waits for the restarted workloads to roll out. A wait
// that times out returns a *WaitError. A Deployment whose controller
// reports its rollout failed — the Progressing condition with reason
// ProgressDeadlineExceeded, for the generation it has observed — ends the
// wait at once with a *revkit.RolloutFailedError (matching
// revkit.ErrRolloutFailed) that names the workload and the condition.
// Either way the result returned with the error lists every workload
// restarted, with RolledOut set on those seen done.
func RolloutRestart(ctx context.Context, kube kubernetes.Interface, opts RestartOptions) (*RestartResult, error) {
	const op = "namespace.RolloutRestart"
	if err := opts.Validate(); err != nil {
		return &RestartResult{DryRun: opts.DryRun}, err
	}
	cpNS := revkit.ControlPlaneNamespace(opts.ControlPlaneNamespace)
	var rev string
	if opts.Target != "" {
		r, err := resolveTarget(ctx, kube, op, cpNS, opts.Target)
		if err != nil {
			return &RestartResult{DryRun: opts.DryRun}, err
		}
		rev = r
	}
	nss, err := opts.Selection.resolve(ctx, kube, op, cpNS)
	if err != nil {
		return &RestartResult{DryRun: opts.DryRun}, err
	}
	now := time.Now
	if opts.Now != nil {
		now = opts.Now
	}
	patch := restartPatch(now(), rev)
	rec := kubeutil.NewRecorder(op, opts.Common)
	res := &RestartResult{DryRun: opts.DryRun}
	workers := concurrency(opts.Concurrency, len(nss))

	// Read and decide per namespace (concurrently), then patch.
	byNS, clusterWide, err := listSelected(ctx, kube, op, nss, opts.kinds(), opts.WorkloadSelector, workers)
	if err != nil {
		return res, err
	}
	decided := make([][]WorkloadResult, len(nss))
	workloads := make([][]workload, len(nss))
	ran, errs := forEach(ctx, len(nss), workers, func(ctx context.Context, i int) error {
		ns := nss[i].Name
		ws := byNS[ns]
		var pods []corev1.Pod
		if opts.OnlyStale && len(ws) > 0 {
			var err error
			pods, err = kubeutil.ListPods(ctx, kube, ns, metav1.ListOptions{})
			if err != nil {
				return &revkit.OpError{Op: op, Verb: "list", Object: revkit.ObjectRef{Kind: "Pod", Namespace: ns}, Err: err}
			}
		}
		out := make([]WorkloadResult, len(ws))
		for j, w := range ws {
			wr := WorkloadResult{Kind: w.kind, Namespace: w.namespace, Name: w.name}
			if at, ok := w.restartedAt(); ok && !opts.RestartedSince.IsZero() && !at.Before(opts.RestartedSince) &&
				w.template.Annotations[mesh.RestartTargetAnnotation] == rev {
				wr.Action, wr.Reason = revkit.ActionUnchanged, "restarted by this plan at "+at.Format(time.RFC3339)
				wr.Resumed = true
			} else if skip := w.skipReason(); skip != "" {
				wr.Action, wr.Reason = revkit.ActionSkip, skip
			} else if opts.OnlyStale {
				wr.Action, wr.Reason = staleness(w, pods, rev)
			} else {
				wr.Action = revkit.ActionUpdate
			}
			out[j] = wr
		}
		decided[i], workloads[i] = out, ws
		return nil
	})
	if err := firstError(ctx, ran, errs); err != nil {
		return res, err
	}
	var (
		all []WorkloadResult
		ws  []workload
	)
	for i := range nss {
		all = append(all, decided[i]...)
		ws = append(ws, workloads[i]...)
	}

	// Patch with bounded concurrency; after a failure nothing new starts and
	// the result lists what was done before it, in order.
	ran, errs = forEach(ctx, len(all), workers, func(ctx context.Context, i int) error {
		if all[i].Action != revkit.ActionUpdate || !rec.Sends() {
			return nil
		}
		return ws[i].patch(ctx, kube, patch, rec.PatchOptions())
	})
	var failure error
	for i := range all {
		if !ran[i] {
			continue
		}
		wr := all[i]
		ref := revkit.ObjectRef{Kind: string(wr.Kind), Namespace: wr.Namespace, Name: wr.Name}
		res.Workloads = append(res.Workloads, wr)
		if errs[i] != nil {
			if failure == nil {
				failure = rec.Fail("patch", ref, errs[i])
			}
			continue
		}
		rec.Record(ctx, ref, wr.Action, wr.Reason)
	}
	if failure != nil {
		return res, failure
	}
	if err := firstError(ctx, ran, errs); err != nil {
		return res, err
	}
	var restarted []*WorkloadResult
	for i := range res.Workloads {
		if res.Workloads[i].Action == revkit.ActionUpdate || res.Workloads[i].Resumed {
			restarted = append(restarted, &res.Workloads[i])
		}
	}
	if opts.Wait && opts.DryRun == revkit.DryRunNone && len(restarted) > 0 {
		if err := waitRollouts(ctx, kube, opts, restarted, clusterWide, workers); err != nil {
			return res, err
		}
	}
	return res, nil
}

// Validate checks the options as RolloutRestart does before any request.
func (o *RestartOptions) Validate() error {
	if err := o.Selection.validate(); err != nil {
		return err
	}
	if o.Target != "" {
		if err := validateTarget(o.Target); err != nil {
			return err
		}
	} else if o.OnlyStale {
		return &revkit.InvalidInputError{Field: "Target", Reason: "OnlyStale needs the target revision or tag"}
	}
	for _, k := range o.Kinds {
		if _, ok := kindAPIs[k]; !ok {
			return &revkit.InvalidInputError{Field: "Kinds", Value: string(k), Reason: "must be Deployment, StatefulSet or DaemonSet"}
		}
	}
	if o.WorkloadSelector != "" {
		if _, err := labels.Parse(o.WorkloadSelector); err != nil {
			return &revkit.InvalidInputError{Field: "WorkloadSelector", Value: o.WorkloadSelector, Reason: err.Error()}
		}
	}
	if err := revkit.ValidateNamespace("ControlPlaneNamespace", o.ControlPlaneNamespace); err != nil {
		return err
	}
	if o.Concurrency < 0 {
		return &revkit.InvalidInputError{Field: "Concurrency", Reason: "must not be negative"}
	}
	if o.Timeout < 0 || o.PollInterval < 0 {
		return &revkit.InvalidInputError{Field: "Timeout", Reason: "durations must not be negative"}
	}
	return o.DryRun.Validate()
}

func (o *RestartOptions) kinds() []Kind {
	if len(o.Kinds) == 0 {
		return allKinds
	}
	return o.Kinds
}

// restartPatch stamps the restart annotation with t to the nanosecond
// (kubectl stamps whole seconds): two restarts within one second — a
// plan's and its rollback's — must still differ, or the second one would
// change nothing and start no rollout.
//
// It also records the target revision (RestartTargetAnnotation; removed
// when there is none), so that a plan resuming after an interruption does
// not take another plan's restart since — a rollback's, to another
// revision — for its own.
func restartPatch(t time.Time, target string) []byte {
	var to any // JSON null deletes the annotation in a merge patch
	if target != "" {
		to = target
	}
	p := map[string]any{"spec": map[string]any{"template": map[string]any{"metadata": map[string]any{
		"annotations": map[string]any{mesh.RestartedAtAnnotation: t.Format(time.RFC3339Nano), mesh.RestartTargetAnnotation: to},
	}}}}
	b, _ := json.Marshal(p)
	return b
}

// workload is the part of a Deployment, StatefulSet or DaemonSet that
// restarting needs.
type workload struct {
	kind      Kind
	namespace string
	name      string
	selector  *metav1.LabelSelector
	template  corev1.PodTemplateSpec
	paused    bool
	onDelete  bool
}

// restartedAt reads the restart annotation of the pod template.
func (w *workload) restartedAt() (time.Time, bool) {
	v, ok := w.template.Annotations[mesh.RestartedAtAnnotation]
	if !ok {
		return time.Time{}, false
	}
	t, err := time.Parse(time.RFC3339, v)
	return t, err == nil
}

func (w *workload) skipReason() string {
	switch {
	case w.paused:
		return "paused: resume the Deployment first (kubectl refuses to restart it too)"
	case w.onDelete:
		return "updateStrategy OnDelete: pods are only replaced when deleted"
	}
	return ""
}

func (w *workload) patch(ctx context.Context, kube kubernetes.Interface, body []byte, opts metav1.PatchOptions) error {
	api, ok := kindAPIs[w.kind]
	if !ok {
		return errUnknownKind(w.kind)
	}
	return api.patch(ctx, kube, w.namespace, w.name, body, opts)
}

func listWorkloads(ctx context.Context, kube kubernetes.Interface, ns string, kinds []Kind, sel string) ([]workload, error) {
	var out []workload
	for _, k := range kinds {
		objs, err := listKind(ctx, kube, ns, k, sel)
		if err != nil {
			return nil, err
		}
		for _, obj := range objs {
			out = append(out, kindAPIs[k].workload(obj))
		}
	}
	sort.SliceStable(out, func(i, j int) bool {
		if out[i].namespace != out[j].namespace {
			return out[i].namespace < out[j].namespace
		}
		if out[i].kind != out[j].kind {
			return out[i].kind < out[j].kind
		}
		return out[i].name < out[j].name
	})
	return out, nil
}

// staleness decides whether a workload still has pods off the target
// revision.
func staleness(w workload, pods []corev1.Pod, rev string) (revkit.Action, string) {
	if mesh.InjectionDisabled(w.template.Labels, w.template.Annotations) {
		return revkit.ActionSkip, "sidecar injection disabled on the pod template"
	}
	sel, err := metav1.LabelSelectorAsSelector(w.selector)
	if err != nil || sel.Empty() {
		// Without a usable selector its pods cannot be told apart; restart
		// to be safe.
		return revkit.ActionUpdate, "cannot match pods to the workload"
	}
	matched := 0
	for i := range pods {
		p := &pods[i]
		if !mesh.PodActive(p) || !sel.Matches(labels.Set(p.Labels)) {
			continue
		}
		matched++
		if r, injected := mesh.PodRevision(p); !injected || r != rev {
			if !injected {
				return revkit.ActionUpdate, fmt.Sprintf("pod %s has no sidecar", p.Name)
			}
			return revkit.ActionUpdate, fmt.Sprintf("pod %s is on revision %s", p.Name, r)
		}
	}
	if matched == 0 {
		return revkit.ActionUnchanged, "no running pods"
	}
	return revkit.ActionUnchanged, "all pods on revision " + rev
}
