package upgrade

import (
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"slices"
	"sort"
	"strings"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/kubernetes"

	"github.com/revkit/revkit"
	"github.com/revkit/revkit/gateway"
	"github.com/revkit/revkit/internal/kubeutil"
	"github.com/revkit/revkit/internal/mesh"
	"github.com/revkit/revkit/namespace"
	"github.com/revkit/revkit/revision"
	"github.com/revkit/revkit/tag"
)

// State is what a plan is about to change, recorded before its first write
// (RecordState) so that a rollback puts back exactly that (RestoreState)
// rather than what the plan's options suggest: a namespace that used
// istio-injection=enabled gets it back, a tag the plan created is removed
// instead of being pointed at the old revision.
type State struct {
	// Name is the record's name, usually the plan's.
	Name string `json:"name"`
	// Recorded is when it was recorded.
	Recorded time.Time `json:"recorded"`
	// Namespaces are the injection labels of the plan's namespaces.
	Namespaces map[string]namespace.InjectionLabels `json:"namespaces"`
	// Tags are the revisions the plan's tags pointed to; "" for a tag that
	// did not exist.
	Tags map[string]string `json:"tags"`
	// Revisions are the revisions installed at the time, sorted.
	Revisions []string `json:"revisions"`
	// Gateways are the istio.io/rev labels of the gateways' pod templates,
	// by "namespace/name"; "" for a gateway that follows its namespace's
	// injection. Canary gateways (gateway.CanaryName) are not recorded:
	// the plan made them, and its rollback removes them.
	Gateways map[string]string `json:"gateways,omitempty"`
}

const stateKey = "state"

// StateName is the name of the ConfigMap holding the State recorded under
// name.
func StateName(name string) string {
	return "revkit-state-" + strings.TrimPrefix(JournalName(name), journalPrefix)
}

// RecordStateOptions configures RecordState.
type RecordStateOptions struct {
	revkit.Common
	// Name names the record, usually the plan's name. Required.
	Name string
	// Namespaces are the namespaces whose injection labels the plan
	// changes.
	Namespaces namespace.Selection
	// Tags are the tags the plan sets or moves.
	Tags []string
	// Gateways, when set, records the revisions of the gateways in
	// GatewayNamespaces (all namespaces when empty): the plan moves them.
	Gateways          bool
	GatewayNamespaces []string
	// ControlPlaneNamespace holds the record; default istio-system.
	ControlPlaneNamespace string
}

// Validate checks the options before any request.
func (o *RecordStateOptions) Validate() error {
	if o.Name == "" {
		return &revkit.InvalidInputError{Field: "Name", Reason: "a state record needs a name"}
	}
	for _, t := range o.Tags {
		if err := revkit.ValidateTag(t); err != nil {
			return err
		}
	}
	for _, n := range o.GatewayNamespaces {
		if err := revkit.ValidateNamespace("GatewayNamespaces", n); err != nil {
			return err
		}
	}
	return revkit.ValidateNamespace("ControlPlaneNamespace", o.ControlPlaneNamespace)
}

// StateResult is what RecordState and RestoreState did; see revkit.Result.
type StateResult struct {
	// State is the record, as read or written.
	State *State
	// Changes lists the record's ConfigMap (RecordState) or the objects put
	// back (RestoreState).
	Changes []revkit.Change
}

// ObjectChanges lists what the step changed; see revkit.Result.
func (r *StateResult) ObjectChanges() []revkit.Change { return r.Changes }

// RecordState records the state a plan is about to change (see State) in a
// ConfigMap StateName(opts.Name) in the control-plane namespace. It keeps a
// record that is already there: a rerun of an interrupted plan must not
// replace the state from before the plan with a state half-way through it;
// delete the ConfigMap to record anew. In a dry run it reads the state and
// sends the create with the dry-run mode. Its name is "record-state".
func RecordState(opts RecordStateOptions) Step {
	opts.Namespaces.Namespaces = slices.Clone(opts.Namespaces.Namespaces)
	opts.Tags = slices.Clone(opts.Tags)
	opts.GatewayNamespaces = slices.Clone(opts.GatewayNamespaces)
	what := "injection labels and tags"
	if opts.Gateways {
		what = "injection labels, tags and gateway revisions"
	}
	return newOp("record-state", fmt.Sprintf("record the %s the plan changes, for a rollback (ConfigMap %s)", what, StateName(opts.Name)), opts,
		opSpec[RecordStateOptions, *StateResult]{kind: KindRecordState, call: recordState, headline: recordHeadline})
}

func recordHeadline(res *StateResult) string {
	if res.State == nil {
		return ""
	}
	st := res.State
	return fmt.Sprintf("%d namespaces, %d tags, %d gateways recorded %s", len(st.Namespaces), len(st.Tags), len(st.Gateways),
		st.Recorded.Format(time.RFC3339))
}

func recordState(ctx context.Context, kube kubernetes.Interface, opts RecordStateOptions) (*StateResult, error) {
	const op = "upgrade.RecordState"
	cp := revkit.ControlPlaneNamespace(opts.ControlPlaneNamespace)
	rec := kubeutil.NewRecorder(op, opts.Common)
	res := &StateResult{}
	ref := revkit.ObjectRef{Kind: "ConfigMap", Namespace: cp, Name: StateName(opts.Name)}
	if err := opts.Validate(); err != nil {
		return res, err
	}
	if old, err := LoadState(ctx, kube, opts.Name, cp); err == nil {
		if diff := old.covers(opts); diff != "" {
			// Not a rerun of this plan: another plan of the same name
			// recorded other namespaces or tags, and restoring its record
			// would put back the wrong state.
			return res, &revkit.ExistsError{Kind: "recorded state", Name: ref.Name, Detail: "recorded " +
				old.Recorded.Format(time.RFC3339) + " by a plan of the same name over other objects (" + diff +
				"); if that plan is over, delete the ConfigMap to record anew"}
		}
		rec.Record(ctx, ref, revkit.ActionUnchanged, "recorded "+old.Recorded.Format(time.RFC3339)+" by an earlier run")
		res.State, res.Changes = old, rec.Changes
		return res, nil
	} else if !errors.Is(err, revkit.ErrNotFound) {
		return res, err
	}
	st := &State{Name: opts.Name, Recorded: time.Now().UTC().Truncate(time.Second), Tags: map[string]string{}}
	if len(opts.Namespaces.Namespaces) > 0 || opts.Namespaces.Selector != "" {
		labels, err := namespace.Snapshot(ctx, kube, opts.Namespaces, cp)
		if err != nil {
			return res, err
		}
		st.Namespaces = labels
	}
	tags, err := tag.List(ctx, kube, tag.ListOptions{ControlPlaneNamespace: cp})
	if err != nil {
		return res, err
	}
	for _, t := range opts.Tags {
		st.Tags[t] = ""
		for _, have := range tags {
			if have.Name == t {
				st.Tags[t] = have.Revision
			}
		}
	}
	revs, err := revision.List(ctx, kube, revision.ListOptions{ControlPlaneNamespace: cp})
	if err != nil {
		return res, err
	}
	for _, r := range revs {
		st.Revisions = append(st.Revisions, r.Name)
	}
	sort.Strings(st.Revisions)
	if opts.Gateways {
		gws, err := gateway.List(ctx, kube, gateway.ListOptions{Namespaces: opts.GatewayNamespaces})
		if err != nil {
			return res, err
		}
		st.Gateways = map[string]string{}
		for _, g := range gws {
			if g.CanaryOf == "" {
				st.Gateways[g.Namespace+"/"+g.Name] = g.Revision
			}
		}
	}
	body, err := json.MarshalIndent(st, "", "  ")
	if err != nil {
		return res, err
	}
	cm := &corev1.ConfigMap{
		ObjectMeta: metav1.ObjectMeta{Name: ref.Name, Namespace: cp,
			Labels: map[string]string{"app.kubernetes.io/managed-by": "revkit"}},
		Data: map[string]string{stateKey: string(body)},
	}
	if rec.Sends() {
		if _, err := kube.CoreV1().ConfigMaps(cp).Create(ctx, cm, rec.CreateOptions()); err != nil {
			res.Changes = rec.Changes
			return res, rec.Fail("create", ref, err)
		}
	}
	rec.Record(ctx, ref, revkit.ActionCreate, fmt.Sprintf("%d namespaces, %d tags, %d gateways", len(st.Namespaces), len(st.Tags), len(st.Gateways)))
	res.State, res.Changes = st, rec.Changes
	return res, nil
}

// covers reports how a record differs from what opts would record — the
// namespaces listed and the tags — or "" when it is the record of the same
// plan. A selection by label selector is not compared: the namespaces it
// matches may change while a plan runs.
func (st *State) covers(opts RecordStateOptions) string {
	var diffs []string
	if opts.Namespaces.Selector == "" {
		want := slices.Sorted(slices.Values(opts.Namespaces.Namespaces))
		have := slices.Sorted(maps.Keys(st.Namespaces))
		if !slices.Equal(slices.Compact(want), have) {
			diffs = append(diffs, fmt.Sprintf("namespaces %v, not %v", have, want))
		}
	}
	want := slices.Sorted(slices.Values(opts.Tags))
	have := slices.Sorted(maps.Keys(st.Tags))
	if !slices.Equal(slices.Compact(want), have) {
		diffs = append(diffs, fmt.Sprintf("tags %v, not %v", have, want))
	}
	return strings.Join(diffs, "; ")
}

// LoadState reads the State recorded under name; a *revkit.NotFoundError
// when there is none.
func LoadState(ctx context.Context, kube kubernetes.Interface, name, controlPlaneNamespace string) (*State, error) {
	cp := revkit.ControlPlaneNamespace(controlPlaneNamespace)
	ref := revkit.ObjectRef{Kind: "ConfigMap", Namespace: cp, Name: StateName(name)}
	cm, err := kube.CoreV1().ConfigMaps(cp).Get(ctx, ref.Name, metav1.GetOptions{})
	if apierrors.IsNotFound(err) {
		return nil, &revkit.NotFoundError{Kind: "recorded state", Name: ref.Name}
	}
	if err != nil {
		return nil, &revkit.OpError{Op: "upgrade.LoadState", Verb: "get", Object: ref, Err: err}
	}
	var st State
	if err := json.Unmarshal([]byte(cm.Data[stateKey]), &st); err != nil {
		return nil, &revkit.InvalidInputError{Field: "ConfigMap " + ref.Name, Reason: "not a recorded state: " + err.Error()}
	}
	return &st, nil
}

// RestoreStateOptions configures RestoreState.
type RestoreStateOptions struct {
	revkit.Common
	// Name is the record's name, as given to RecordState. Required.
	Name string
	// Namespaces, when set, limits the restore to these namespaces (a failed
	// batch); tags are then left alone. Empty restores everything recorded.
	Namespaces []string
	// ControlPlaneNamespace; default istio-system.
	ControlPlaneNamespace string
	// WaitGateways blocks until the gateways it relabelled have rolled out
	// (a failed rollout ends the wait at once with a
	// *revkit.RolloutFailedError), so that no gateway runs on a revision
	// about to be uninstalled. Timeout bounds the wait; default 10 minutes.
	WaitGateways bool
	Timeout      time.Duration
}

// Validate checks the options before any request.
func (o *RestoreStateOptions) Validate() error {
	if o.Name == "" {
		return &revkit.InvalidInputError{Field: "Name", Reason: "name the recorded state"}
	}
	for _, n := range o.Namespaces {
		if err := revkit.ValidateNamespace("Namespaces", n); err != nil {
			return err
		}
	}
	return revkit.ValidateNamespace("ControlPlaneNamespace", o.ControlPlaneNamespace)
}

// RestoreState puts back the State recorded under opts.Name: first the
// tags that existed are pointed at their recorded revisions, then the
// namespaces get their recorded injection labels (namespace.Restore), then
// the tags that did not exist are removed (refused while a namespace not in
// the record uses one). Workloads keep their sidecars: restart them
// afterwards (RolloutRestart with OnlyStale).
//
// It cannot bring back a revision the plan uninstalled: if a recorded tag
// points at a revision no longer installed, it fails with a
// *revkit.NotFoundError before any write; reinstall the revision
// (InstallRevision) and run it again. Its name is "restore-state".
func RestoreState(opts RestoreStateOptions) Step {
	opts.Namespaces = slices.Clone(opts.Namespaces)
	return newOp("restore-state", fmt.Sprintf("put back the injection labels, tags and gateway revisions recorded in %s", StateName(opts.Name)), opts,
		opSpec[RestoreStateOptions, *StateResult]{kind: KindRestoreState, call: restoreState})
}

func restoreState(ctx context.Context, kube kubernetes.Interface, opts RestoreStateOptions) (*StateResult, error) {
	res := &StateResult{}
	if err := opts.Validate(); err != nil {
		return res, err
	}
	cp := revkit.ControlPlaneNamespace(opts.ControlPlaneNamespace)
	st, err := LoadState(ctx, kube, opts.Name, cp)
	if err != nil {
		return res, err
	}
	res.State = st
	labels := st.Namespaces
	restoreTags := len(opts.Namespaces) == 0
	if !restoreTags {
		labels = map[string]namespace.InjectionLabels{}
		for _, n := range opts.Namespaces {
			l, ok := st.Namespaces[n]
			if !ok {
				return res, &revkit.NotFoundError{Kind: "namespace in the recorded state", Name: n}
			}
			labels[n] = l
		}
	}
	var existed, created []string
	if restoreTags {
		for t, rev := range st.Tags {
			if rev == "" {
				created = append(created, t)
			} else {
				existed = append(existed, t)
			}
		}
		sort.Strings(existed)
		sort.Strings(created)
		revs, err := revision.List(ctx, kube, revision.ListOptions{ControlPlaneNamespace: cp})
		if err != nil {
			return res, err
		}
		installed := map[string]bool{}
		for _, r := range revs {
			installed[r.Name] = true
		}
		for _, t := range existed {
			if !installed[st.Tags[t]] {
				return res, &revkit.NotFoundError{Kind: "revision", Name: st.Tags[t]}
			}
		}
	}
	for _, t := range existed {
		r, err := tag.Set(ctx, kube, tag.SetOptions{Common: opts.Common, Tag: t, Revision: st.Tags[t], Overwrite: true,
			ControlPlaneNamespace: cp})
		res.Changes = append(res.Changes, r.Changes...)
		if err != nil {
			return res, err
		}
	}
	if len(labels) > 0 {
		r, err := namespace.Restore(ctx, kube, namespace.RestoreOptions{Common: opts.Common, Labels: labels})
		res.Changes = append(res.Changes, r.ObjectChanges()...)
		if err != nil {
			return res, err
		}
	}
	if restoreTags {
		if err := restoreGateways(ctx, kube, opts, st.Gateways, res); err != nil {
			return res, err
		}
	}
	for _, t := range created {
		if !opts.Common.DryRun.Persists() {
			// A dry run did not move the namespaces off the tag, so removing
			// it would be refused although the real run would not be.
			res.Changes = append(res.Changes, revkit.Change{Object: revkit.ObjectRef{Kind: "MutatingWebhookConfiguration", Name: mesh.TagWebhookName(t)},
				Action: revkit.ActionDelete, Reason: "tag created by the plan"})
			continue
		}
		r, err := tag.Remove(ctx, kube, tag.RemoveOptions{Common: opts.Common, Tag: t, ControlPlaneNamespace: cp})
		res.Changes = append(res.Changes, r.Changes...)
		if err != nil {
			return res, err
		}
	}
	return res, nil
}

// restoreGateways puts the recorded istio.io/rev labels back on the
// gateways' pod templates (removing the label from a gateway that followed
// its namespace). A recorded gateway that no longer exists is reported as
// skipped: the rollback cannot bring it back.
func restoreGateways(ctx context.Context, kube kubernetes.Interface, opts RestoreStateOptions, recorded map[string]string, res *StateResult) error {
	rec := kubeutil.NewRecorder("upgrade.RestoreState", opts.Common)
	defer func() { res.Changes = append(res.Changes, rec.Changes...) }()
	var moved []revkit.ObjectRef
	for _, key := range sortedKeys(recorded) {
		ns, name, _ := strings.Cut(key, "/")
		want := recorded[key]
		ref := revkit.ObjectRef{Kind: "Deployment", Namespace: ns, Name: name}
		d, err := kube.AppsV1().Deployments(ns).Get(ctx, name, metav1.GetOptions{})
		if apierrors.IsNotFound(err) {
			rec.Record(ctx, ref, revkit.ActionSkip, "recorded gateway no longer exists: cannot restore it")
			continue
		}
		if err != nil {
			return rec.Fail("get", ref, err)
		}
		have := d.Spec.Template.Labels[mesh.LabelRev]
		if have == want {
			rec.Record(ctx, ref, revkit.ActionUnchanged, "gateway already on "+orAbsent(want))
			continue
		}
		value := "null"
		if want != "" {
			value = fmt.Sprintf("%q", want)
		}
		patch := fmt.Appendf(nil, `{"spec":{"template":{"metadata":{"labels":{%q:%s}}}}}`, mesh.LabelRev, value)
		if rec.Sends() {
			if _, err := kube.AppsV1().Deployments(ns).Patch(ctx, name, types.MergePatchType, patch, rec.PatchOptions()); err != nil {
				return rec.Fail("patch", ref, err)
			}
		}
		rec.Record(ctx, ref, revkit.ActionUpdate, fmt.Sprintf("gateway %s → %s", orAbsent(have), orAbsent(want)))
		moved = append(moved, ref)
	}
	if !opts.WaitGateways || !opts.DryRun.Persists() || len(moved) == 0 {
		return nil
	}
	return kubeutil.WaitDeployments(ctx, kube, "upgrade.RestoreState", moved, cmp.Or(opts.Timeout, 10*time.Minute), time.Second)
}

// UninstallAddedOptions configures UninstallAdded.
type UninstallAddedOptions struct {
	revision.UninstallOptions
	// State names the record (RecordState) that says which revisions were
	// installed before the plan. Required.
	State string
}

// Validate checks the options before any request.
func (o *UninstallAddedOptions) Validate() error {
	if o.State == "" {
		return &revkit.InvalidInputError{Field: "State", Reason: "name the recorded state"}
	}
	return o.UninstallOptions.Validate()
}

// UninstallAdded uninstalls a revision (revision.Uninstall) only if the
// state recorded under opts.State says it was not installed before the
// plan: a rollback removes the revision its plan added and keeps one that
// was already there. Its name is "uninstall-revision <revision>".
func UninstallAdded(opts UninstallAddedOptions) Step {
	return newOp("uninstall-revision "+opts.Revision,
		fmt.Sprintf("remove revision %s from %s unless %s records it as installed before the plan",
			opts.Revision, revkit.ControlPlaneNamespace(opts.ControlPlaneNamespace), StateName(opts.State)), opts,
		opSpec[UninstallAddedOptions, *revision.UninstallResult]{kind: KindUninstallAdded, call: uninstallAdded,
			prepare: prepareUninstallAdded, headline: uninstallHeadline})
}

func prepareUninstallAdded(o *UninstallAddedOptions, env Env) {
	prepareUninstall(&o.UninstallOptions, env)
}

func uninstallAdded(ctx context.Context, kube kubernetes.Interface, opts UninstallAddedOptions) (*revision.UninstallResult, error) {
	res := &revision.UninstallResult{Revision: opts.Revision, DryRun: opts.DryRun}
	if err := opts.Validate(); err != nil {
		return res, err
	}
	st, err := LoadState(ctx, kube, opts.State, opts.ControlPlaneNamespace)
	if err != nil {
		return res, err
	}
	if slices.Contains(st.Revisions, opts.Revision) {
		res.Found = true
		res.Changes = []revkit.Change{{Object: revkit.ObjectRef{Kind: "Revision", Name: opts.Revision}, Action: revkit.ActionSkip,
			Reason: "installed before the plan (" + StateName(opts.State) + "): kept"}}
		return res, nil
	}
	return revision.Uninstall(ctx, kube, opts.UninstallOptions)
}
