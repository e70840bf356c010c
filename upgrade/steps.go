package upgrade

import (
	"context"
	"fmt"
	"maps"
	"slices"
	"strings"

	"github.com/revkit/revkit"
	"github.com/revkit/revkit/gateway"
	"github.com/revkit/revkit/namespace"
	"github.com/revkit/revkit/revision"
	"github.com/revkit/revkit/tag"
	"github.com/revkit/revkit/verify"
)

// opStep is a step that runs one operation. check applies the operation's
// own input rules, so that Execute refuses bad input before any step runs.
type opStep struct {
	name, desc string
	kind       StepKind
	kube       bool
	// inputs are the operation's options, covered by the plan's
	// Fingerprint.
	inputs any
	check  func() error
	run    func(ctx context.Context, env Env) (Result, error)
}

func (s *opStep) Name() string        { return s.name }
func (s *opStep) Description() string { return s.desc }
func (s *opStep) Validate() error     { return s.check() }
func (s *opStep) needsKube() bool     { return s.kube }
func (s *opStep) Inputs() any         { return s.inputs }
func (s *opStep) Kind() StepKind      { return s.kind }

func (s *opStep) Run(ctx context.Context, env Env) (Result, error) {
	if env.preview != nil {
		// The operation writes to Preview's in-memory copy.
		env.Common.DryRun = revkit.DryRunNone
	}
	return s.run(ctx, env)
}

// SetTag points a revision tag at a revision with tag.Set. Its name is
// "set-tag <tag>→<revision>".
func SetTag(opts tag.SetOptions) Step {
	desc := fmt.Sprintf("point tag %s at revision %s", opts.Tag, opts.Revision)
	if opts.Overwrite {
		desc += " (moving it if it points elsewhere)"
	}
	return &opStep{
		inputs: opts,
		name:   "set-tag " + opts.Tag + "→" + opts.Revision,
		kind:   KindSetTag,
		desc:   desc,
		kube:   true,
		check:  func() error { return opts.Validate() },
		run: func(ctx context.Context, env Env) (Result, error) {
			o := opts
			o.Common = env.Common
			res, err := tag.Set(ctx, env.Kube, o)
			if res == nil {
				return Result{}, err
			}
			prefix := fmt.Sprintf("%s → %s", res.Tag, res.Revision)
			if res.Previous != "" && res.Previous != res.Revision {
				prefix += " (was " + res.Previous + ")"
			}
			return changeResult(res.Changed(), prefix, res.Changes, env), err
		},
	}
}

// MigrateNamespace points namespaces at a revision or tag with
// namespace.Migrate. Its name is "migrate-namespaces".
func MigrateNamespace(opts namespace.MigrateOptions) Step {
	opts.Selection = cloneSelection(opts.Selection)
	return &opStep{
		inputs: opts,
		name:   "migrate-namespaces",
		kind:   KindMigrateNamespaces,
		desc:   fmt.Sprintf("label %s istio.io/rev=%s, removing istio-injection", describeSelection(opts.Selection), opts.Target),
		kube:   true,
		check:  func() error { return opts.Validate() },
		run: func(ctx context.Context, env Env) (Result, error) {
			o := opts
			o.Common = env.Common
			res, err := namespace.Migrate(ctx, env.Kube, o)
			if res == nil {
				return Result{}, err
			}
			var changes []revkit.Change
			for _, n := range res.Namespaces {
				changes = append(changes, revkit.Change{Object: revkit.ObjectRef{Kind: "Namespace", Name: n.Name}, Action: n.Action, Reason: n.Previous})
			}
			prefix := res.Target
			if res.Revision != "" && res.Revision != res.Target {
				prefix += " (" + res.Revision + ")"
			}
			return changeResult(res.Changed(), "→ "+prefix, changes, env), err
		},
	}
}

// RolloutRestart restarts the workloads of namespaces with
// namespace.RolloutRestart. Its name is "restart-workloads".
func RolloutRestart(opts namespace.RestartOptions) Step {
	opts.Selection = cloneSelection(opts.Selection)
	opts.Kinds = slices.Clone(opts.Kinds)
	desc := "restart workloads in " + describeSelection(opts.Selection)
	switch {
	case opts.OnlyStale:
		desc += " whose pods are not on " + opts.Target
	case opts.Target != "":
		desc += " (target " + opts.Target + ")"
	}
	if opts.Wait {
		desc += ", and wait for the rollouts"
	}
	return &opStep{
		inputs: opts,
		name:   "restart-workloads",
		kind:   KindRestartWorkloads,
		desc:   desc,
		kube:   true,
		check:  func() error { return opts.Validate() },
		run: func(ctx context.Context, env Env) (Result, error) {
			o := opts
			o.Common = env.Common
			if o.RestartedSince.IsZero() {
				o.RestartedSince = env.PlanStarted
			}
			if env.preview != nil {
				o.Wait = false // nothing rolls out in the in-memory copy
			}
			res, err := namespace.RolloutRestart(ctx, env.Kube, o)
			if res == nil {
				return Result{}, err
			}
			var changes []revkit.Change
			for _, w := range res.Workloads {
				changes = append(changes, revkit.Change{
					Object: revkit.ObjectRef{Kind: string(w.Kind), Namespace: w.Namespace, Name: w.Name},
					Action: w.Action, Reason: w.Reason})
			}
			return changeResult(res.Changed(), "", changes, env), err
		},
	}
}

// Uninstall removes a revision's control plane with revision.Uninstall. Its
// name is "uninstall-revision <revision>".
func Uninstall(opts revision.UninstallOptions) Step {
	desc := fmt.Sprintf("remove revision %s from %s", opts.Revision, revkit.ControlPlaneNamespace(opts.ControlPlaneNamespace))
	if opts.Force {
		desc += " even if it is still in use (forced)"
	} else {
		desc += " unless it is still in use"
	}
	return &opStep{
		inputs: opts,
		name:   "uninstall-revision " + opts.Revision,
		kind:   KindUninstallRevision,
		desc:   desc,
		kube:   true,
		check:  func() error { return opts.Validate() },
		run: func(ctx context.Context, env Env) (Result, error) {
			o := opts
			o.Common = env.Common
			if env.preview != nil {
				o.Helm = nil // delete from the in-memory copy by label, never through Helm
			}
			res, err := revision.Uninstall(ctx, env.Kube, o)
			if res == nil {
				return Result{}, err
			}
			if !res.Found && err == nil {
				return Result{Outcome: Unchanged, Detail: "revision " + res.Revision + " is not installed"}, nil
			}
			return changeResult(res.Changed(), "", res.Changes, env), err
		},
	}
}

// InstallRevision installs a control-plane revision beside the current
// one with revision.Install (Helm). Its name is "install-revision
// <revision>".
func InstallRevision(opts revision.InstallOptions) Step {
	opts.Values = maps.Clone(opts.Values)
	desc := fmt.Sprintf("install revision %s into %s", opts.Revision, revkit.ControlPlaneNamespace(opts.ControlPlaneNamespace))
	switch {
	case opts.Chart.Path != "":
		desc += " from " + opts.Chart.Path
	case opts.Chart.Ref != "":
		desc += " from " + opts.Chart.Ref
	}
	if opts.Upgrade {
		desc += " (upgrading its release if it exists)"
	}
	return &opStep{
		inputs: opts,
		name:   "install-revision " + opts.Revision,
		kind:   KindInstallRevision,
		desc:   desc,
		kube:   true,
		check:  func() error { return opts.Validate() },
		run: func(ctx context.Context, env Env) (Result, error) {
			o := opts
			o.Common = env.Common
			if env.preview != nil {
				return previewInstall(ctx, env, o)
			}
			res, err := revision.Install(ctx, env.Kube, o)
			if res == nil {
				return Result{}, err
			}
			verb := "installed"
			if res.Upgraded {
				verb = "upgraded"
			}
			if env.Common.DryRun != revkit.DryRunNone {
				verb = "would have " + verb
			}
			return Result{Outcome: Done, Detail: fmt.Sprintf("%s release %s (%d objects, injector %s)",
				verb, res.Release, len(res.Objects), res.Injector)}, err
		},
	}
}

// MoveGateways moves gateways to a revision with gateway.Move, in place or
// as canaries. Its name is "move-gateways <target>".
func MoveGateways(opts gateway.MoveOptions) Step {
	opts.Namespaces, opts.Names = slices.Clone(opts.Namespaces), slices.Clone(opts.Names)
	mode := opts.Mode
	if mode == "" {
		mode = gateway.InPlace
	}
	return &opStep{
		inputs: opts,
		name:   "move-gateways " + opts.Target,
		kind:   KindMoveGateways,
		desc:   fmt.Sprintf("move gateways to %s (%s)", opts.Target, mode),
		kube:   true,
		check:  func() error { return opts.Validate() },
		run: func(ctx context.Context, env Env) (Result, error) {
			o := opts
			o.Common = env.Common
			if env.preview != nil {
				o.Wait = false // nothing rolls out in the in-memory copy
			}
			res, err := gateway.Move(ctx, env.Kube, o)
			if res == nil {
				return Result{}, err
			}
			return changeResult(res.Changed(), "", res.Gateways, env), err
		},
	}
}

// RemoveCanaryGateways deletes the canary gateways on a revision with
// gateway.RemoveCanaries. Its name is "remove-canary-gateways <revision>".
func RemoveCanaryGateways(opts gateway.RemoveCanariesOptions) Step {
	opts.Namespaces = slices.Clone(opts.Namespaces)
	return &opStep{
		inputs: opts,
		name:   "remove-canary-gateways " + opts.Revision,
		kind:   KindRemoveCanaryGateways,
		desc:   fmt.Sprintf("delete canary gateways on revision %s", opts.Revision),
		kube:   true,
		check:  func() error { return opts.Validate() },
		run: func(ctx context.Context, env Env) (Result, error) {
			o := opts
			o.Common = env.Common
			changes, err := gateway.RemoveCanaries(ctx, env.Kube, o)
			return changeResult(revkit.AnyChanged(changes), "", changes, env), err
		},
	}
}

// VerifyPods checks with verify.Pods that the pods run the expected
// sidecar; stragglers fail the step as a gate. Its name is "verify-pods".
// In a dry run it is skipped.
func VerifyPods(opts verify.PodsOptions) Step {
	opts.Namespaces = slices.Clone(opts.Namespaces)
	return &opStep{
		inputs: opts,
		name:   "verify-pods",
		kind:   KindVerifyPods,
		desc: "check that the pods in " + describeSelection(namespace.Selection{Namespaces: opts.Namespaces, Selector: opts.Selector}) +
			" run " + expected(opts.Target, "the sidecar their namespace selects"),
		kube:  true,
		check: func() error { return opts.Validate() },
		run: func(ctx context.Context, env Env) (Result, error) {
			if skip, ok := skipLive(env); ok {
				return skip, nil
			}
			rep, err := verify.Pods(ctx, env.Kube, opts)
			if err != nil {
				return Result{}, err
			}
			pods := 0
			for _, n := range rep.Namespaces {
				pods += n.Active()
			}
			on := expected(rep.Revision, "their expected revision")
			if !rep.OK() {
				return Result{Outcome: Failed, Detail: fmt.Sprintf("%d of %s not on %s", len(rep.Stragglers), plural(pods, "pod"), on)}, rep.Err()
			}
			return Result{Outcome: Done, Detail: fmt.Sprintf("%s in %s on %s", plural(pods, "pod"), plural(len(rep.Namespaces), "namespace"), on)}, nil
		},
	}
}

// VerifyProxies checks with verify.Proxies that the proxies istiod reports
// are on the target revision and in sync; stragglers and proxies out of
// sync fail the step as a gate. Its name is "verify-proxies". In a dry run
// it is skipped.
func VerifyProxies(opts verify.ProxiesOptions) Step {
	opts.Sources = slices.Clone(opts.Sources)
	opts.Namespaces = slices.Clone(opts.Namespaces)
	var revs []string
	for _, s := range opts.Sources {
		if s != nil {
			revs = append(revs, s.Revision())
		}
	}
	desc := "check that the proxies reported by istiod " + strings.Join(revs, ", ") + " are SYNCED"
	if opts.Target != "" {
		desc += " and on revision " + opts.Target
	}
	return &opStep{
		inputs: opts,
		name:   "verify-proxies",
		kind:   KindVerifyProxies,
		desc:   desc,
		check:  func() error { return opts.Validate() },
		run: func(ctx context.Context, env Env) (Result, error) {
			if skip, ok := skipLive(env); ok {
				return skip, nil
			}
			rep, err := verify.Proxies(ctx, opts)
			if err != nil {
				return Result{}, err
			}
			if !rep.OK() {
				var parts []string
				if n := len(rep.Stragglers); n > 0 {
					parts = append(parts, fmt.Sprintf("%d on another revision", n))
				}
				if n := len(rep.NotSynced); n > 0 {
					parts = append(parts, fmt.Sprintf("%d not synced", n))
				}
				detail := plural(len(rep.Proxies), "proxy") + ": " + strings.Join(parts, ", ")
				return Result{Outcome: Failed, Detail: detail}, rep.Err()
			}
			detail := plural(len(rep.Proxies), "proxy") + " synced"
			if rep.Target != "" {
				detail += " on " + rep.Target
			}
			return Result{Outcome: Done, Detail: detail}, nil
		},
	}
}

// VerifyWebhooks checks the injector and validating webhooks with
// verify.Webhooks: overlapping injectors, webhooks calling a missing
// Service and webhooks of revisions that are not installed fail the step as
// a gate. Its name is "verify-webhooks". In a dry run it is skipped.
func VerifyWebhooks(opts verify.WebhooksOptions) Step {
	return &opStep{
		inputs: opts,
		name:   "verify-webhooks",
		kind:   KindVerifyWebhooks,
		desc:   "check the webhooks in " + revkit.ControlPlaneNamespace(opts.ControlPlaneNamespace) + ": no overlapping injectors, no dangling service, no orphaned revision",
		kube:   true,
		check:  func() error { return opts.Validate() },
		run: func(ctx context.Context, env Env) (Result, error) {
			if skip, ok := skipVerification(env); ok {
				return skip, nil
			}
			rep, err := verify.Webhooks(ctx, env.Kube, opts)
			if err != nil {
				return Result{}, err
			}
			if !rep.OK() {
				detail := nonZero(
					counted{len(rep.Overlaps), "overlapping injector pair"},
					counted{len(rep.Dangling), "dangling service reference"},
					counted{len(rep.Orphaned), "orphaned webhook"})
				return Result{Outcome: Failed, Detail: detail}, rep.Err()
			}
			return Result{Outcome: Done, Detail: plural(len(rep.Injectors), "injector") + ", no problem found"}, nil
		},
	}
}

// skipVerification skips a check in a dry run: nothing was moved, so there
// is nothing to verify.
func skipVerification(env Env) (Result, bool) {
	if env.Common.DryRun.Persists() {
		return Result{}, false
	}
	return Result{Outcome: Skipped, Detail: "dry run"}, true
}

// skipLive skips, in dry runs and previews, a step about what runs in the
// cluster — pods, proxies, the passing of time — which neither moves.
func skipLive(env Env) (Result, bool) {
	if env.preview != nil {
		return Result{Outcome: Skipped, Detail: "preview: pods and proxies do not move in the in-memory copy"}, true
	}
	return skipVerification(env)
}

// previewInstall renders the revision's chart (Helm's client-side dry run)
// and adds what it renders to Preview's in-memory copy.
func previewInstall(ctx context.Context, env Env, o revision.InstallOptions) (Result, error) {
	o.DryRun = revkit.DryRunClient
	res, err := revision.Install(ctx, env.Kube, o)
	if err != nil {
		return Result{}, err
	}
	changes, err := addRendered(ctx, env.Kube, res.Manifest, revkit.ControlPlaneNamespace(o.ControlPlaneNamespace))
	r := changeResult(revkit.AnyChanged(changes), fmt.Sprintf("would install release %s (injector %s)", res.Release, res.Injector), changes, env)
	return r, err
}

// changeResult maps an operation's changes to Done or Unchanged with a
// one-line summary such as "update 2, unchanged 1".
func changeResult(changed bool, prefix string, changes []revkit.Change, env Env) Result {
	r := Result{Outcome: Unchanged, Changes: changes}
	if changed {
		r.Outcome = Done
	}
	var parts []string
	if prefix != "" {
		parts = append(parts, prefix+":")
	}
	parts = append(parts, summarize(changes))
	if !env.Common.DryRun.Persists() {
		parts = append(parts, "(dry run: "+env.Common.DryRun.String()+")")
	}
	r.Detail = strings.Join(parts, " ")
	return r
}

// summarize counts changes by action, in a fixed order.
func summarize(changes []revkit.Change) string {
	counts := map[revkit.Action]int{}
	for _, c := range changes {
		counts[c.Action]++
	}
	var parts []string
	for _, a := range []revkit.Action{revkit.ActionCreate, revkit.ActionUpdate, revkit.ActionDelete, revkit.ActionUnchanged, revkit.ActionSkip} {
		if n := counts[a]; n > 0 {
			parts = append(parts, fmt.Sprintf("%s %d", a, n))
		}
	}
	if len(parts) == 0 {
		return "nothing to do"
	}
	return strings.Join(parts, ", ")
}

// plural gives "1 pod", "2 pods", "3 proxies".
func plural(n int, noun string) string {
	if n == 1 {
		return "1 " + noun
	}
	if strings.HasSuffix(noun, "y") {
		return fmt.Sprintf("%d %sies", n, strings.TrimSuffix(noun, "y"))
	}
	return fmt.Sprintf("%d %ss", n, noun)
}

type counted struct {
	n    int
	what string
}

// nonZero lists the counts that are not zero: "2 orphaned webhooks, 1 …".
func nonZero(list ...counted) string {
	var parts []string
	for _, c := range list {
		if c.n != 0 {
			parts = append(parts, plural(c.n, c.what))
		}
	}
	return strings.Join(parts, ", ")
}

func expected(rev, otherwise string) string {
	if rev == "" {
		return otherwise
	}
	return "revision " + rev
}

func cloneSelection(s namespace.Selection) namespace.Selection {
	s.Namespaces = slices.Clone(s.Namespaces)
	return s
}

// describeSelection names the selected namespaces for a plan printout.
func describeSelection(s namespace.Selection) string {
	const shown = 5
	var parts []string
	if len(s.Namespaces) > 0 {
		list := s.Namespaces
		more := ""
		if len(list) > shown {
			list, more = list[:shown], fmt.Sprintf(" and %d more", len(s.Namespaces)-shown)
		}
		word := "namespaces "
		if len(s.Namespaces) == 1 {
			word = "namespace "
		}
		parts = append(parts, word+strings.Join(list, ", ")+more)
	}
	if s.Selector != "" {
		parts = append(parts, "namespaces matching "+s.Selector)
	}
	if len(parts) == 0 {
		return "all mesh namespaces"
	}
	return strings.Join(parts, " and ")
}

// The checks below repeat the input rules of the operations, which keep
// theirs unexported, so that a plan is refused before its first step.
