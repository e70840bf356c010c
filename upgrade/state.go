package upgrade

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"sort"
	"strings"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"

	"github.com/revkit/revkit"
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
}

const stateKey = "state"

// StateName is the name of the ConfigMap holding the State recorded under
// name.
func StateName(name string) string {
	return "revkit-state-" + strings.TrimPrefix(JournalName(name), journalPrefix)
}

// RecordStateOptions configures RecordState.
type RecordStateOptions struct {
	// Name names the record, usually the plan's name. Required.
	Name string
	// Namespaces are the namespaces whose injection labels the plan
	// changes.
	Namespaces namespace.Selection
	// Tags are the tags the plan sets or moves.
	Tags []string
	// ControlPlaneNamespace holds the record; default istio-system.
	ControlPlaneNamespace string
}

func (o *RecordStateOptions) validate() error {
	if o.Name == "" {
		return &revkit.InvalidInputError{Field: "Name", Reason: "a state record needs a name"}
	}
	for _, t := range o.Tags {
		if err := revkit.ValidateTag(t); err != nil {
			return err
		}
	}
	return revkit.ValidateNamespace("ControlPlaneNamespace", o.ControlPlaneNamespace)
}

// RecordState records the state a plan is about to change (see State) in a
// ConfigMap StateName(opts.Name) in the control-plane namespace. It keeps a
// record that is already there: a rerun of an interrupted plan must not
// replace the state from before the plan with a state half-way through it;
// delete the ConfigMap to record anew. In a dry run it reads the state and
// sends the create with the dry-run mode. Its name is "record-state".
func RecordState(opts RecordStateOptions) Step {
	opts.Namespaces.Namespaces = slices.Clone(opts.Namespaces.Namespaces)
	opts.Tags = slices.Clone(opts.Tags)
	return &opStep{
		inputs: opts,
		name:   "record-state",
		kind:   KindRecordState,
		desc:   fmt.Sprintf("record the injection labels and tags the plan changes, for a rollback (ConfigMap %s)", StateName(opts.Name)),
		kube:   true,
		check:  opts.validate,
		run: func(ctx context.Context, env Env) (Result, error) {
			st, changes, err := recordState(ctx, env, opts)
			res := changeResult(revkit.AnyChanged(changes), "", changes, env)
			if err != nil {
				return res, err
			}
			if st != nil {
				res.Detail = fmt.Sprintf("%d namespaces, %d tags recorded %s: %s", len(st.Namespaces), len(st.Tags),
					st.Recorded.Format(time.RFC3339), res.Detail)
			}
			return res, nil
		},
	}
}

func recordState(ctx context.Context, env Env, opts RecordStateOptions) (*State, []revkit.Change, error) {
	const op = "upgrade.RecordState"
	cp := revkit.ControlPlaneNamespace(opts.ControlPlaneNamespace)
	rec := kubeutil.NewRecorder(op, env.Common)
	ref := revkit.ObjectRef{Kind: "ConfigMap", Namespace: cp, Name: StateName(opts.Name)}
	if old, err := LoadState(ctx, env.Kube, opts.Name, cp); err == nil {
		rec.Record(ctx, ref, revkit.ActionUnchanged, "recorded "+old.Recorded.Format(time.RFC3339)+" by an earlier run")
		return old, rec.Changes, nil
	} else if !errors.Is(err, revkit.ErrNotFound) {
		return nil, nil, err
	}
	st := &State{Name: opts.Name, Recorded: time.Now().UTC().Truncate(time.Second), Tags: map[string]string{}}
	if len(opts.Namespaces.Namespaces) > 0 || opts.Namespaces.Selector != "" {
		labels, err := namespace.Snapshot(ctx, env.Kube, opts.Namespaces, cp)
		if err != nil {
			return nil, nil, err
		}
		st.Namespaces = labels
	}
	tags, err := tag.List(ctx, env.Kube, tag.ListOptions{ControlPlaneNamespace: cp})
	if err != nil {
		return nil, nil, err
	}
	for _, t := range opts.Tags {
		st.Tags[t] = ""
		for _, have := range tags {
			if have.Name == t {
				st.Tags[t] = have.Revision
			}
		}
	}
	revs, err := revision.List(ctx, env.Kube, revision.ListOptions{ControlPlaneNamespace: cp})
	if err != nil {
		return nil, nil, err
	}
	for _, r := range revs {
		st.Revisions = append(st.Revisions, r.Name)
	}
	sort.Strings(st.Revisions)
	body, err := json.MarshalIndent(st, "", "  ")
	if err != nil {
		return nil, nil, err
	}
	cm := &corev1.ConfigMap{
		ObjectMeta: metav1.ObjectMeta{Name: ref.Name, Namespace: cp,
			Labels: map[string]string{"app.kubernetes.io/managed-by": "revkit"}},
		Data: map[string]string{stateKey: string(body)},
	}
	if rec.Sends() {
		if _, err := env.Kube.CoreV1().ConfigMaps(cp).Create(ctx, cm, rec.CreateOptions()); err != nil {
			return nil, rec.Changes, rec.Fail("create", ref, err)
		}
	}
	rec.Record(ctx, ref, revkit.ActionCreate, fmt.Sprintf("%d namespaces, %d tags", len(st.Namespaces), len(st.Tags)))
	return st, rec.Changes, nil
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
	// Name is the record's name, as given to RecordState. Required.
	Name string
	// Namespaces, when set, limits the restore to these namespaces (a failed
	// batch); tags are then left alone. Empty restores everything recorded.
	Namespaces []string
	// ControlPlaneNamespace; default istio-system.
	ControlPlaneNamespace string
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
	return &opStep{
		inputs: opts,
		name:   "restore-state",
		kind:   KindRestoreState,
		desc:   fmt.Sprintf("put back the injection labels and tags recorded in %s", StateName(opts.Name)),
		kube:   true,
		check: func() error {
			if opts.Name == "" {
				return &revkit.InvalidInputError{Field: "Name", Reason: "name the recorded state"}
			}
			return revkit.ValidateNamespace("ControlPlaneNamespace", opts.ControlPlaneNamespace)
		},
		run: func(ctx context.Context, env Env) (Result, error) {
			changes, err := restoreState(ctx, env, opts)
			return changeResult(revkit.AnyChanged(changes), "", changes, env), err
		},
	}
}

func restoreState(ctx context.Context, env Env, opts RestoreStateOptions) ([]revkit.Change, error) {
	cp := revkit.ControlPlaneNamespace(opts.ControlPlaneNamespace)
	st, err := LoadState(ctx, env.Kube, opts.Name, cp)
	if err != nil {
		return nil, err
	}
	labels := st.Namespaces
	restoreTags := len(opts.Namespaces) == 0
	if !restoreTags {
		labels = map[string]namespace.InjectionLabels{}
		for _, n := range opts.Namespaces {
			l, ok := st.Namespaces[n]
			if !ok {
				return nil, &revkit.NotFoundError{Kind: "namespace in the recorded state", Name: n}
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
		revs, err := revision.List(ctx, env.Kube, revision.ListOptions{ControlPlaneNamespace: cp})
		if err != nil {
			return nil, err
		}
		installed := map[string]bool{}
		for _, r := range revs {
			installed[r.Name] = true
		}
		for _, t := range existed {
			if !installed[st.Tags[t]] {
				return nil, &revkit.NotFoundError{Kind: "revision", Name: st.Tags[t]}
			}
		}
	}
	var changes []revkit.Change
	for _, t := range existed {
		res, err := tag.Set(ctx, env.Kube, tag.SetOptions{Common: env.Common, Tag: t, Revision: st.Tags[t], Overwrite: true,
			ControlPlaneNamespace: cp})
		changes = append(changes, res.Changes...)
		if err != nil {
			return changes, err
		}
	}
	if len(labels) > 0 {
		res, err := namespace.Restore(ctx, env.Kube, namespace.RestoreOptions{Common: env.Common, Labels: labels})
		for _, n := range res.Namespaces {
			changes = append(changes, revkit.Change{Object: revkit.ObjectRef{Kind: "Namespace", Name: n.Name}, Action: n.Action, Reason: n.Previous})
		}
		if err != nil {
			return changes, err
		}
	}
	for _, t := range created {
		if !env.Common.DryRun.Persists() {
			// A dry run did not move the namespaces off the tag, so removing
			// it would be refused although the real run would not be.
			changes = append(changes, revkit.Change{Object: revkit.ObjectRef{Kind: "MutatingWebhookConfiguration", Name: mesh.TagWebhookName(t)},
				Action: revkit.ActionDelete, Reason: "tag created by the plan"})
			continue
		}
		res, err := tag.Remove(ctx, env.Kube, tag.RemoveOptions{Common: env.Common, Tag: t, ControlPlaneNamespace: cp})
		changes = append(changes, res.Changes...)
		if err != nil {
			return changes, err
		}
	}
	return changes, nil
}
