package upgrade

import (
	"context"
	"fmt"
	"slices"
	"strings"

	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/util/validation"

	"github.com/revkit/revkit"
	"github.com/revkit/revkit/namespace"
	"github.com/revkit/revkit/revision"
	"github.com/revkit/revkit/tag"
	"github.com/revkit/revkit/verify"
)

// opStep is a step that runs one operation. check applies the operation's
// own input rules, so that Execute refuses bad input before any step runs.
type opStep struct {
	name, desc string
	kube       bool
	check      func() error
	run        func(ctx context.Context, env Env) (Result, error)
}

func (s *opStep) Name() string        { return s.name }
func (s *opStep) Description() string { return s.desc }
func (s *opStep) Validate() error     { return s.check() }
func (s *opStep) needsKube() bool     { return s.kube }

func (s *opStep) Run(ctx context.Context, env Env) (Result, error) { return s.run(ctx, env) }

// SetTag points a revision tag at a revision with tag.Set. Its name is
// "set-tag <tag>→<revision>".
func SetTag(opts tag.SetOptions) Step {
	desc := fmt.Sprintf("point tag %s at revision %s", opts.Tag, opts.Revision)
	if opts.Overwrite {
		desc += " (moving it if it points elsewhere)"
	}
	return &opStep{
		name: "set-tag " + opts.Tag + "→" + opts.Revision,
		desc: desc,
		kube: true,
		check: func() error {
			if err := revkit.ValidateTag(opts.Tag); err != nil {
				return err
			}
			return revkit.ValidateRevision(opts.Revision)
		},
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
		name: "migrate-namespaces",
		desc: fmt.Sprintf("label %s istio.io/rev=%s, removing istio-injection", describeSelection(opts.Selection), opts.Target),
		kube: true,
		check: func() error {
			if err := checkTarget(opts.Target); err != nil {
				return err
			}
			return checkSelection(opts.Selection)
		},
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
		name: "restart-workloads",
		desc: desc,
		kube: true,
		check: func() error {
			if err := checkSelection(opts.Selection); err != nil {
				return err
			}
			if opts.Target != "" {
				if err := checkTarget(opts.Target); err != nil {
					return err
				}
			} else if opts.OnlyStale {
				return &revkit.InvalidInputError{Field: "Target", Reason: "OnlyStale needs the target revision or tag"}
			}
			for _, k := range opts.Kinds {
				if k != namespace.Deployment && k != namespace.StatefulSet && k != namespace.DaemonSet {
					return &revkit.InvalidInputError{Field: "Kinds", Value: string(k), Reason: "must be Deployment, StatefulSet or DaemonSet"}
				}
			}
			if err := checkSelector("WorkloadSelector", opts.WorkloadSelector); err != nil {
				return err
			}
			if opts.Timeout < 0 || opts.PollInterval < 0 {
				return &revkit.InvalidInputError{Field: "Timeout", Reason: "durations must not be negative"}
			}
			return nil
		},
		run: func(ctx context.Context, env Env) (Result, error) {
			o := opts
			o.Common = env.Common
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
		name:  "uninstall-revision " + opts.Revision,
		desc:  desc,
		kube:  true,
		check: func() error { return revkit.ValidateRevision(opts.Revision) },
		run: func(ctx context.Context, env Env) (Result, error) {
			o := opts
			o.Common = env.Common
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

// InstallOptions configures InstallRevision.
type InstallOptions struct {
	// Revision to install. Required.
	Revision string
	// ChartSource is the istiod chart: a repository reference, a URL or a
	// local path.
	ChartSource string
	// Values are the chart values; revision is set from Revision.
	Values map[string]any
	// ControlPlaneNamespace; default istio-system.
	ControlPlaneNamespace string
}

// InstallRevision installs a control-plane revision beside the current
// one. Its name is "install-revision <revision>".
//
// Not implemented yet: the Helm-based install comes with a later release,
// and until then the step fails with an error matching
// revkit.ErrNotImplemented. Install the revision beforehand (istioctl or
// Helm) and start the plan after it.
func InstallRevision(opts InstallOptions) Step {
	desc := fmt.Sprintf("install revision %s into %s", opts.Revision, revkit.ControlPlaneNamespace(opts.ControlPlaneNamespace))
	if opts.ChartSource != "" {
		desc += " from " + opts.ChartSource
	}
	return &opStep{
		name: "install-revision " + opts.Revision,
		desc: desc,
		kube: true,
		check: func() error {
			if err := revkit.ValidateRevision(opts.Revision); err != nil {
				return err
			}
			return checkNamespaceName("ControlPlaneNamespace", opts.ControlPlaneNamespace)
		},
		run: func(context.Context, Env) (Result, error) {
			return Result{}, fmt.Errorf("upgrade.InstallRevision %s: %w (install the revision with istioctl or Helm first)",
				opts.Revision, revkit.ErrNotImplemented)
		},
	}
}

// VerifyPods checks with verify.Pods that the pods run the expected
// sidecar; stragglers fail the step as a gate. Its name is "verify-pods".
// In a dry run it is skipped.
func VerifyPods(opts verify.PodsOptions) Step {
	opts.Namespaces = slices.Clone(opts.Namespaces)
	return &opStep{
		name: "verify-pods",
		desc: "check that the pods in " + describeSelection(namespace.Selection{Namespaces: opts.Namespaces, Selector: opts.Selector}) +
			" run " + expected(opts.Target, "the sidecar their namespace selects"),
		kube: true,
		check: func() error {
			if err := checkNamespaceList(opts.Namespaces); err != nil {
				return err
			}
			if err := checkSelector("Selector", opts.Selector); err != nil {
				return err
			}
			if opts.Target != "" {
				if err := checkRevisionField("Target", opts.Target); err != nil {
					return err
				}
			}
			return checkNamespaceName("ControlPlaneNamespace", opts.ControlPlaneNamespace)
		},
		run: func(ctx context.Context, env Env) (Result, error) {
			if skip, ok := skipVerification(env); ok {
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
		name: "verify-proxies",
		desc: desc,
		check: func() error {
			if len(opts.Sources) == 0 {
				return &revkit.InvalidInputError{Field: "Sources", Reason: "must name at least one istiod"}
			}
			for i, s := range opts.Sources {
				field := fmt.Sprintf("Sources[%d]", i)
				if s == nil {
					return &revkit.InvalidInputError{Field: field, Reason: "must not be nil"}
				}
				if err := checkRevisionField(field+".Revision", s.Revision()); err != nil {
					return err
				}
				if v, ok := s.(Validator); ok {
					if err := v.Validate(); err != nil {
						return err
					}
				}
			}
			if opts.Target != "" {
				if err := checkRevisionField("Target", opts.Target); err != nil {
					return err
				}
			}
			if err := checkNamespaceList(opts.Namespaces); err != nil {
				return err
			}
			return nil
		},
		run: func(ctx context.Context, env Env) (Result, error) {
			if skip, ok := skipVerification(env); ok {
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
		name:  "verify-webhooks",
		desc:  "check the webhooks in " + revkit.ControlPlaneNamespace(opts.ControlPlaneNamespace) + ": no overlapping injectors, no dangling service, no orphaned revision",
		kube:  true,
		check: func() error { return checkNamespaceName("ControlPlaneNamespace", opts.ControlPlaneNamespace) },
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

// checkTarget is namespace's rule for a revision-or-tag target.
func checkTarget(target string) error {
	if target == "" {
		return &revkit.InvalidInputError{Field: "Target", Reason: "must name a revision or a tag"}
	}
	return checkRevisionField("Target", target)
}

// checkRevisionField applies revkit.ValidateRevision, reporting field.
func checkRevisionField(field, name string) error {
	err := revkit.ValidateRevision(name)
	if iie, ok := err.(*revkit.InvalidInputError); ok {
		return &revkit.InvalidInputError{Field: field, Value: iie.Value, Reason: iie.Reason}
	}
	return err
}

func checkSelection(s namespace.Selection) error {
	if len(s.Namespaces) == 0 && s.Selector == "" {
		return &revkit.InvalidInputError{Field: "Namespaces", Reason: "name at least one namespace or give a Selector"}
	}
	for _, n := range s.Namespaces {
		if n == "" {
			return &revkit.InvalidInputError{Field: "Namespaces", Reason: "empty namespace name"}
		}
	}
	return checkSelector("Selector", s.Selector)
}

func checkSelector(field, sel string) error {
	if sel == "" {
		return nil
	}
	if _, err := labels.Parse(sel); err != nil {
		return &revkit.InvalidInputError{Field: field, Value: sel, Reason: err.Error()}
	}
	return nil
}

// checkNamespaceList is verify's rule for a list of namespaces: every
// entry a namespace name.
func checkNamespaceList(names []string) error {
	for _, n := range names {
		if n == "" {
			return &revkit.InvalidInputError{Field: "Namespaces", Reason: "must not be empty"}
		}
		if err := checkNamespaceName("Namespaces", n); err != nil {
			return err
		}
	}
	return nil
}

// checkNamespaceName accepts "" (the default) or a DNS-1123 label.
func checkNamespaceName(field, name string) error {
	if name == "" {
		return nil
	}
	if errs := validation.IsDNS1123Label(name); len(errs) > 0 {
		return &revkit.InvalidInputError{Field: field, Value: name, Reason: strings.Join(errs, "; ")}
	}
	return nil
}
