package upgrade

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"slices"
	"sort"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"

	"github.com/revkit/revkit"
	"github.com/revkit/revkit/ambient"
	"github.com/revkit/revkit/gateway"
	"github.com/revkit/revkit/namespace"
	"github.com/revkit/revkit/revision"
	"github.com/revkit/revkit/tag"
	"github.com/revkit/revkit/verify"
)

// SavedPlan is a plan written down to be reviewed and applied later: its
// steps as data (kind, name, inputs) and the part of the cluster it was
// computed from — the injection labels and resourceVersions of the
// namespaces it moves, where its tags pointed and which revisions were
// installed. Apply refuses it, with a *DriftError, when that part of the
// cluster has changed since. It marshals to JSON.
type SavedPlan struct {
	Name      string        `json:"name"`
	Saved     time.Time     `json:"saved"`
	Steps     []SavedStep   `json:"steps"`
	OnFailure []SavedStep   `json:"onFailure,omitempty"`
	Observed  ObservedState `json:"observed"`
}

// SavedStep is one step of a SavedPlan.
type SavedStep struct {
	Kind StepKind `json:"kind"`
	// Name is the step's name (a step renamed with Named keeps its name).
	Name string `json:"name"`
	// Inputs are the operation's options; absent for a custom step.
	Inputs json.RawMessage `json:"inputs,omitempty"`
	// Helm is set for an install or uninstall through Helm: the installer
	// is not saved, LoadOptions.Helm supplies it.
	Helm bool `json:"helm,omitempty"`
}

// ObservedState is the part of the cluster a saved plan was computed from.
type ObservedState struct {
	// Namespaces are the injection labels of the plan's namespaces.
	Namespaces map[string]namespace.InjectionLabels `json:"namespaces,omitempty"`
	// NamespaceVersions are their resourceVersions when saved, for review;
	// a change of other labels does not count as drift.
	NamespaceVersions map[string]string `json:"namespaceVersions,omitempty"`
	// Tags are the revisions of the tags the plan sets or removes ("" for
	// one that did not exist).
	Tags map[string]string `json:"tags,omitempty"`
	// Revisions are the revisions installed.
	Revisions []string `json:"revisions"`
}

// ErrDrift: the cluster changed since a plan was saved.
var ErrDrift = errors.New("cluster changed since the plan was saved")

// DriftError lists what changed since a plan was saved.
type DriftError struct {
	Plan string
	// Changes are one line each, e.g. `namespace shop: istio.io/rev=1-24-0 → istio.io/rev=1-25-0`.
	Changes []string
}

func (e *DriftError) Error() string {
	return fmt.Sprintf("plan %q: the cluster changed since the plan was saved: %v; save the plan again", e.Plan, e.Changes)
}

func (e *DriftError) Is(target error) bool { return target == ErrDrift }

// Save writes the plan down with the state of the cluster it depends on
// (see SavedPlan). Every step must be one this package builds, or a custom
// step (Func, or the caller's own type) that Load will be given back by
// name through LoadOptions.Custom; inputs that are not data — a Helm
// configuration, syncz sources — are left out and supplied again at Load.
// A step whose inputs cannot be written as JSON is a
// *revkit.InvalidInputError.
func Save(ctx context.Context, kube kubernetes.Interface, plan Plan) (*SavedPlan, error) {
	if err := plan.Validate(); err != nil {
		return nil, err
	}
	sp := &SavedPlan{Name: plan.Name, Saved: time.Now().UTC().Truncate(time.Second)}
	var err error
	if sp.Steps, err = saveSteps(plan.Steps); err != nil {
		return nil, err
	}
	if sp.OnFailure, err = saveSteps(plan.OnFailure); err != nil {
		return nil, err
	}
	sp.Observed, err = observe(ctx, kube, plan)
	return sp, err
}

func saveSteps(steps []Step) ([]SavedStep, error) {
	var out []SavedStep
	for _, s := range steps {
		ss := SavedStep{Kind: KindOf(s), Name: s.Name()}
		if ss.Kind != KindCustom {
			in := s.(InputReporter).Inputs()
			raw, err := json.Marshal(in)
			if err != nil {
				return nil, &revkit.InvalidInputError{Field: "step " + s.Name(), Reason: "its inputs cannot be saved: " + err.Error()}
			}
			ss.Inputs = raw
			switch o := in.(type) {
			case revision.InstallOptions:
				ss.Helm = o.Helm != nil
			case revision.UninstallOptions:
				ss.Helm = o.Helm != nil
			case UninstallAddedOptions:
				ss.Helm = o.Helm != nil
			case revision.BaseOptions:
				ss.Helm = o.Helm != nil
			case ambient.UpgradeOptions:
				ss.Helm = o.Releaser != nil
			case gateway.ReleaseOptions:
				ss.Helm = o.Releaser != nil
			}
		}
		out = append(out, ss)
	}
	return out, nil
}

// observe reads what the plan depends on: the namespaces its steps move,
// the tags they set or remove, and the revisions installed.
func observe(ctx context.Context, kube kubernetes.Interface, plan Plan) (ObservedState, error) {
	obs := ObservedState{Namespaces: map[string]namespace.InjectionLabels{}, NamespaceVersions: map[string]string{},
		Tags: map[string]string{}}
	cp := ""
	var sels []namespace.Selection
	var tags []string
	for _, s := range slices.Concat(plan.Steps, plan.OnFailure) {
		in, ok := s.(InputReporter)
		if !ok {
			continue
		}
		switch o := in.Inputs().(type) {
		case namespace.MigrateOptions:
			sels, cp = append(sels, o.Selection), o.ControlPlaneNamespace
		case namespace.RestartOptions:
			sels = append(sels, o.Selection)
		case RecordStateOptions:
			sels, tags = append(sels, o.Namespaces), append(tags, o.Tags...)
		case tag.SetOptions:
			tags, cp = append(tags, o.Tag), o.ControlPlaneNamespace
		case tag.RemoveOptions:
			tags = append(tags, o.Tag)
		}
	}
	for _, sel := range sels {
		labels, err := namespace.Snapshot(ctx, kube, sel, cp)
		if err != nil {
			return obs, err
		}
		maps.Copy(obs.Namespaces, labels)
	}
	for n := range obs.Namespaces {
		ns, err := kube.CoreV1().Namespaces().Get(ctx, n, metav1.GetOptions{})
		if err != nil {
			return obs, &revkit.OpError{Op: "upgrade.Save", Verb: "get", Object: revkit.ObjectRef{Kind: "Namespace", Name: n}, Err: err}
		}
		obs.NamespaceVersions[n] = ns.ResourceVersion
	}
	current, err := tag.List(ctx, kube, tag.ListOptions{ControlPlaneNamespace: cp})
	if err != nil {
		return obs, err
	}
	for _, t := range tags {
		obs.Tags[t] = ""
		for _, c := range current {
			if c.Name == t {
				obs.Tags[t] = c.Revision
			}
		}
	}
	revs, err := revision.List(ctx, kube, revision.ListOptions{ControlPlaneNamespace: cp})
	if err != nil {
		return obs, err
	}
	for _, r := range revs {
		obs.Revisions = append(obs.Revisions, r.Name)
	}
	sort.Strings(obs.Revisions)
	return obs, nil
}

// LoadOptions supplies what a saved plan does not hold.
type LoadOptions struct {
	// Helm is the installer (helm.New) of installs and uninstalls saved as
	// going through Helm.
	Helm revision.Installer
	// Releaser upgrades the node agents' releases (ambient steps); default
	// Helm, when it is one (a *helm.Client is).
	Releaser revkit.Releaser
	// GatewayReleasers give the steps that move a gateway through its Helm
	// release their Releaser, by the gateway's namespace (where its
	// release is recorded: helm.New with that namespace).
	GatewayReleasers map[string]revkit.Releaser
	// Proxies are the syncz sources of VerifyProxies steps.
	Proxies []verify.SyncSource
	// Custom gives back the custom steps by name.
	Custom map[string]Step
}

// Plan rebuilds the plan from its saved form. A custom step missing from
// opts.Custom, or a Helm install or uninstall without opts.Helm, is a
// *revkit.InvalidInputError.
func (sp *SavedPlan) Plan(opts LoadOptions) (Plan, error) {
	p := Plan{Name: sp.Name}
	var err error
	if p.Steps, err = loadSteps(sp.Steps, opts); err != nil {
		return Plan{}, err
	}
	if p.OnFailure, err = loadSteps(sp.OnFailure, opts); err != nil {
		return Plan{}, err
	}
	return p, p.Validate()
}

func loadSteps(saved []SavedStep, opts LoadOptions) ([]Step, error) {
	var out []Step
	for _, ss := range saved {
		s, err := loadStep(ss, opts)
		if err != nil {
			return nil, err
		}
		if s.Name() != ss.Name {
			s = Named(ss.Name, s)
		}
		out = append(out, s)
	}
	return out, nil
}

// decode unmarshals a saved step's inputs and builds the step from them.
func decode[O any](ss SavedStep, build func(O) Step, fill func(*O) error) (Step, error) {
	var o O
	if err := json.Unmarshal(ss.Inputs, &o); err != nil {
		return nil, &revkit.InvalidInputError{Field: "step " + ss.Name, Reason: "bad saved inputs: " + err.Error()}
	}
	if fill != nil {
		if err := fill(&o); err != nil {
			return nil, err
		}
	}
	return build(o), nil
}

func loadStep(ss SavedStep, opts LoadOptions) (Step, error) {
	helm := func(field *revision.Installer) error {
		if !ss.Helm {
			return nil
		}
		if opts.Helm == nil {
			return &revkit.InvalidInputError{Field: "LoadOptions.Helm", Reason: fmt.Sprintf("step %q goes through Helm", ss.Name)}
		}
		*field = opts.Helm
		return nil
	}
	switch ss.Kind {
	case KindCustom:
		if s, ok := opts.Custom[ss.Name]; ok && s != nil {
			return s, nil
		}
		return nil, &revkit.InvalidInputError{Field: "LoadOptions.Custom", Value: ss.Name, Reason: "custom step not given back"}
	case KindPrecheck:
		return decode(ss, Precheck, nil)
	case KindInstallRevision:
		return decode(ss, InstallRevision, func(o *revision.InstallOptions) error { return helm(&o.Helm) })
	case KindUninstallRevision:
		return decode(ss, Uninstall, func(o *revision.UninstallOptions) error { return helm(&o.Helm) })
	case KindUpgradeBase:
		return decode(ss, UpgradeBase, func(o *revision.BaseOptions) error { return helm(&o.Helm) })
	case KindUninstallAdded:
		return decode(ss, UninstallAdded, func(o *UninstallAddedOptions) error { return helm(&o.Helm) })
	case KindSetTag:
		return decode(ss, SetTag, nil)
	case KindRemoveTag:
		return decode(ss, RemoveTag, nil)
	case KindMigrateNamespaces:
		return decode(ss, MigrateNamespace, nil)
	case KindRestartWorkloads:
		return decode(ss, RolloutRestart, nil)
	case KindVerifyPods:
		return decode(ss, VerifyPods, nil)
	case KindVerifyProxies:
		return decode(ss, VerifyProxies, func(o *verify.ProxiesOptions) error {
			o.Sources = opts.Proxies
			return nil
		})
	case KindVerifyWebhooks:
		return decode(ss, VerifyWebhooks, nil)
	case KindVerifySkew:
		return decode(ss, VerifySkew, func(o *verify.ProxySkewOptions) error {
			o.Sources = opts.Proxies
			return nil
		})
	case KindMoveGateways:
		return decode(ss, MoveGateways, nil)
	case KindRemoveCanaryGateways:
		return decode(ss, RemoveCanaryGateways, nil)
	case KindPause:
		return decode(ss, Pause, nil)
	case KindRecordState:
		return decode(ss, RecordState, nil)
	case KindRestoreState:
		return decode(ss, RestoreState, nil)
	case KindUpgradeGatewayRelease, KindCanaryGatewayRelease, KindPromoteGatewayRelease, KindRollbackGatewayRelease:
		build := map[StepKind]func(gateway.ReleaseOptions) Step{KindUpgradeGatewayRelease: UpgradeGatewayRelease,
			KindCanaryGatewayRelease: CanaryGatewayRelease, KindPromoteGatewayRelease: PromoteGatewayRelease,
			KindRollbackGatewayRelease: RollbackGatewayRelease}[ss.Kind]
		return decode(ss, build, func(o *gateway.ReleaseOptions) error {
			if !ss.Helm {
				return nil
			}
			if o.Releaser = opts.GatewayReleasers[o.Namespace]; o.Releaser == nil {
				return &revkit.InvalidInputError{Field: "LoadOptions.GatewayReleasers", Value: o.Namespace,
					Reason: fmt.Sprintf("step %q moves a gateway through its Helm release in that namespace", ss.Name)}
			}
			return nil
		})
	case KindUpgradeAgent:
		return decode(ss, UpgradeAgent, func(o *ambient.UpgradeOptions) error {
			if !ss.Helm {
				return nil
			}
			o.Releaser = opts.Releaser
			if o.Releaser == nil {
				o.Releaser, _ = opts.Helm.(revkit.Releaser)
			}
			if o.Releaser == nil {
				return &revkit.InvalidInputError{Field: "LoadOptions.Releaser", Reason: fmt.Sprintf("step %q upgrades a Helm release", ss.Name)}
			}
			return nil
		})
	}
	return nil, &revkit.InvalidInputError{Field: "step " + ss.Name, Value: string(ss.Kind), Reason: "unknown step kind"}
}

// Drift compares the cluster with the state the plan was saved from and
// returns a *DriftError listing the differences, or nil.
func (sp *SavedPlan) Drift(ctx context.Context, kube kubernetes.Interface, opts LoadOptions) error {
	p, err := sp.Plan(opts)
	if err != nil {
		return err
	}
	now, err := observe(ctx, kube, p)
	if err != nil {
		return err
	}
	var changes []string
	for _, n := range sortedKeys(sp.Observed.Namespaces) {
		was, is := sp.Observed.Namespaces[n], now.Namespaces[n]
		if was.String() != is.String() {
			changes = append(changes, fmt.Sprintf("namespace %s: %s → %s", n, was, is))
		}
	}
	for _, t := range sortedKeys(sp.Observed.Tags) {
		if was, is := sp.Observed.Tags[t], now.Tags[t]; was != is {
			changes = append(changes, fmt.Sprintf("tag %s: %s → %s", t, orAbsent(was), orAbsent(is)))
		}
	}
	if !slices.Equal(sp.Observed.Revisions, now.Revisions) {
		changes = append(changes, fmt.Sprintf("revisions installed: %v → %v", sp.Observed.Revisions, now.Revisions))
	}
	if len(changes) > 0 {
		return &DriftError{Plan: sp.Name, Changes: changes}
	}
	return nil
}

// Apply runs a saved plan: it rebuilds it (Plan), refuses with a
// *DriftError if the cluster changed since it was saved (Drift), and then
// executes it with env. Like Execute it always returns a report.
func Apply(ctx context.Context, env Env, sp *SavedPlan, opts LoadOptions) (*Report, error) {
	p, err := sp.Plan(opts)
	if err != nil {
		return unrun(env, Plan{Name: sp.Name}, err), err
	}
	if env.Kube == nil {
		err := &revkit.InvalidInputError{Field: "Env.Kube", Reason: "a saved plan is checked against the cluster"}
		return unrun(env, p, err), err
	}
	if err := sp.Drift(ctx, env.Kube, opts); err != nil {
		return unrun(env, p, err), err
	}
	return Execute(ctx, env, p)
}

func sortedKeys[V any](m map[string]V) []string {
	return slices.Sorted(maps.Keys(m))
}

func orAbsent(rev string) string {
	if rev == "" {
		return "(absent)"
	}
	return rev
}
