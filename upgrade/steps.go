package upgrade

import (
	"context"
	"fmt"
	"maps"
	"reflect"
	"slices"
	"strings"

	"k8s.io/client-go/kubernetes"

	"github.com/revkit/revkit"
	"github.com/revkit/revkit/gateway"
	"github.com/revkit/revkit/namespace"
	"github.com/revkit/revkit/revision"
	"github.com/revkit/revkit/tag"
	"github.com/revkit/revkit/verify"
)

// The steps that run a library operation are all one generic adapter:
// opStep for the operations that write (their results meet revkit.Result)
// and gateStep for the verifications (their reports pass or not). Each
// operation is described once, by the package function it calls and, where
// the plan's run changes its options, a prepare function; there is no
// closure per step.

// writeOptions is what opStep needs of an operation's options: its own
// input rules, and the shared settings (dry-run mode, events) that the
// plan replaces with its own.
type writeOptions[O any] interface {
	*O
	Validate() error
	SetCommon(revkit.Common)
}

// opSpec describes one write operation for opStep.
type opSpec[O any, R revkit.Result] struct {
	kind StepKind
	// call is the library function itself, e.g. tag.Set.
	call func(context.Context, kubernetes.Interface, O) (R, error)
	// prepare, when set, adapts the options to the run: the plan's start,
	// Preview's in-memory copy.
	prepare func(*O, Env)
	// preview, when set, replaces call in Preview.
	preview func(context.Context, Env, O) (Result, error)
	// headline, when set, begins the step's one-line detail.
	headline func(R) string
}

// opStep runs one write operation in the plan's dry-run mode and reports
// the operation's object changes.
type opStep[O any, P writeOptions[O], R revkit.Result] struct {
	name, desc string
	opts       O
	op         opSpec[O, R]
}

func newOp[O any, P writeOptions[O], R revkit.Result](name, desc string, opts O, op opSpec[O, R]) Step {
	return &opStep[O, P, R]{name: name, desc: desc, opts: opts, op: op}
}

func (s *opStep[O, P, R]) Name() string        { return s.name }
func (s *opStep[O, P, R]) Description() string { return s.desc }
func (s *opStep[O, P, R]) Validate() error     { o := s.opts; return P(&o).Validate() }
func (s *opStep[O, P, R]) needsKube() bool     { return true }
func (s *opStep[O, P, R]) Inputs() any         { return s.opts }
func (s *opStep[O, P, R]) Kind() StepKind      { return s.op.kind }

func (s *opStep[O, P, R]) Run(ctx context.Context, env Env) (Result, error) {
	o := s.opts
	common := env.Common
	if env.preview != nil {
		// The operation writes to Preview's in-memory copy.
		common.DryRun = revkit.DryRunNone
	}
	P(&o).SetCommon(common)
	if s.op.prepare != nil {
		s.op.prepare(&o, env)
	}
	if env.preview != nil && s.op.preview != nil {
		return s.op.preview(ctx, env, o)
	}
	res, err := s.op.call(ctx, env.Kube, o)
	if v := reflect.ValueOf(res); !v.IsValid() || (v.Kind() == reflect.Pointer && v.IsNil()) {
		return Result{}, err
	}
	changes := res.ObjectChanges()
	if err != nil {
		// The report says why the step failed, and what it changed before.
		r := Result{Detail: err.Error(), Changes: changes}
		if revkit.AnyChanged(changes) {
			r.Detail += " (after " + summarize(changes) + ")"
		}
		return r, err
	}
	headline := ""
	if s.op.headline != nil {
		headline = s.op.headline(res)
	}
	return changeResult(revkit.AnyChanged(changes), headline, changes, env), nil
}

// SetTag points a revision tag at a revision with tag.Set. Its name is
// "set-tag <tag>→<revision>".
func SetTag(opts tag.SetOptions) Step {
	desc := fmt.Sprintf("point tag %s at revision %s", opts.Tag, opts.Revision)
	if opts.Overwrite {
		desc += " (moving it if it points elsewhere)"
	}
	return newOp("set-tag "+opts.Tag+"→"+opts.Revision, desc, opts,
		opSpec[tag.SetOptions, *tag.SetResult]{kind: KindSetTag, call: tag.Set, headline: tagHeadline})
}

func tagHeadline(res *tag.SetResult) string {
	h := fmt.Sprintf("%s → %s", res.Tag, res.Revision)
	if res.Previous != "" && res.Previous != res.Revision {
		h += " (was " + res.Previous + ")"
	}
	return h
}

// MigrateNamespace points namespaces at a revision or tag with
// namespace.Migrate. Its name is "migrate-namespaces".
func MigrateNamespace(opts namespace.MigrateOptions) Step {
	opts.Selection = cloneSelection(opts.Selection)
	desc := fmt.Sprintf("label %s istio.io/rev=%s, removing istio-injection", describeSelection(opts.Selection), opts.Target)
	return newOp("migrate-namespaces", desc, opts,
		opSpec[namespace.MigrateOptions, *namespace.MigrateResult]{kind: KindMigrateNamespaces, call: namespace.Migrate, headline: migrateHeadline})
}

func migrateHeadline(res *namespace.MigrateResult) string {
	h := "→ " + res.Target
	if res.Revision != "" && res.Revision != res.Target {
		h += " (" + res.Revision + ")"
	}
	return h
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
	return newOp("restart-workloads", desc, opts,
		opSpec[namespace.RestartOptions, *namespace.RestartResult]{kind: KindRestartWorkloads, call: namespace.RolloutRestart, prepare: prepareRestart})
}

// prepareRestart does not restart again what an earlier run of the plan
// restarted, and waits for nothing in a preview, where nothing rolls out.
func prepareRestart(o *namespace.RestartOptions, env Env) {
	if o.RestartedSince.IsZero() {
		o.RestartedSince = env.PlanStarted
	}
	if env.preview != nil {
		o.Wait = false
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
	return newOp("uninstall-revision "+opts.Revision, desc, opts,
		opSpec[revision.UninstallOptions, *revision.UninstallResult]{kind: KindUninstallRevision, call: revision.Uninstall,
			prepare: prepareUninstall, headline: uninstallHeadline})
}

// prepareUninstall deletes from Preview's in-memory copy by label, never
// through Helm.
func prepareUninstall(o *revision.UninstallOptions, env Env) {
	if env.preview != nil {
		o.Helm = nil
	}
}

func uninstallHeadline(res *revision.UninstallResult) string {
	if !res.Found {
		return "revision " + res.Revision + " is not installed"
	}
	return ""
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
	return newOp("install-revision "+opts.Revision, desc, opts,
		opSpec[revision.InstallOptions, *revision.InstallResult]{kind: KindInstallRevision, call: revision.Install,
			preview: previewInstall, headline: installHeadline})
}

func installHeadline(res *revision.InstallResult) string {
	verb := "installed"
	if res.Upgraded {
		verb = "upgraded"
	}
	if res.DryRun != revkit.DryRunNone {
		verb = "would have " + verb
	}
	if res.Release == "" {
		return ""
	}
	h := fmt.Sprintf("%s release %s (injector %s)", verb, res.Release, res.Injector)
	if res.CarriedValues != nil {
		h += fmt.Sprintf(", %d top-level values carried over, %s changed", len(res.CarriedValues), plural(len(res.DefaultChanges), "chart default"))
	}
	return h
}

// UpgradeBase upgrades Istio's base chart (CRDs) with revision.UpgradeBase,
// refusing to drop a CRD version objects may still be stored in; its
// detail and changes list each CRD's new, removed and storage versions. Its
// name is "upgrade-base".
func UpgradeBase(opts revision.BaseOptions) Step {
	opts.Values = maps.Clone(opts.Values)
	desc := "upgrade Istio's base chart (CRDs) in " + revkit.ControlPlaneNamespace(opts.ControlPlaneNamespace)
	switch {
	case opts.Chart.Path != "":
		desc += " from " + opts.Chart.Path
	case opts.Chart.Ref != "":
		desc += " from " + opts.Chart.Ref
	}
	return newOp("upgrade-base", desc, opts,
		opSpec[revision.BaseOptions, *revision.BaseResult]{kind: KindUpgradeBase, call: revision.UpgradeBase, preview: previewBase, headline: baseHeadline})
}

func baseHeadline(res *revision.BaseResult) string {
	changed := 0
	for _, c := range res.CRDs {
		if c.Action.Changed() {
			changed++
		}
	}
	return fmt.Sprintf("release %s, %d of %s changed", res.Release, changed, plural(len(res.CRDs), "CRD"))
}

// previewBase: Preview's in-memory copy holds no CRDs, so a preview reports
// the base upgrade as the cluster's client-side dry run sees it.
func previewBase(context.Context, Env, revision.BaseOptions) (Result, error) {
	return Result{Outcome: Skipped, Detail: "preview: CRDs are not in the in-memory copy; dry-run UpgradeBase against the cluster to see its CRD changes"}, nil
}

// MoveGateways moves gateways to a revision with gateway.Move, in place or
// as canaries. Its name is "move-gateways <target>".
func MoveGateways(opts gateway.MoveOptions) Step {
	opts.Namespaces, opts.Names = slices.Clone(opts.Namespaces), slices.Clone(opts.Names)
	mode := opts.Mode
	if mode == "" {
		mode = gateway.InPlace
	}
	return newOp("move-gateways "+opts.Target, fmt.Sprintf("move gateways to %s (%s)", opts.Target, mode), opts,
		opSpec[gateway.MoveOptions, *gateway.MoveResult]{kind: KindMoveGateways, call: gateway.Move, prepare: prepareMoveGateways})
}

// prepareMoveGateways waits for nothing in a preview, where nothing rolls
// out.
func prepareMoveGateways(o *gateway.MoveOptions, env Env) {
	if env.preview != nil {
		o.Wait = false
	}
}

// RemoveCanaryGateways deletes the canary gateways on a revision with
// gateway.RemoveCanaries. Its name is "remove-canary-gateways <revision>".
func RemoveCanaryGateways(opts gateway.RemoveCanariesOptions) Step {
	opts.Namespaces = slices.Clone(opts.Namespaces)
	return newOp("remove-canary-gateways "+opts.Revision, fmt.Sprintf("delete canary gateways on revision %s", opts.Revision), opts,
		opSpec[gateway.RemoveCanariesOptions, changeList]{kind: KindRemoveCanaryGateways, call: removeCanaries})
}

// changeList is a bare list of changes as a revkit.Result.
type changeList []revkit.Change

func (l changeList) ObjectChanges() []revkit.Change { return l }

func removeCanaries(ctx context.Context, kube kubernetes.Interface, o gateway.RemoveCanariesOptions) (changeList, error) {
	changes, err := gateway.RemoveCanaries(ctx, kube, o)
	return changeList(changes), err
}

// report is what gateStep needs of a verification's report.
type report interface {
	OK() bool
	Err() error
}

// checkOptions is what gateStep needs of a verification's options.
type checkOptions[O any] interface {
	*O
	Validate() error
}

// gateSpec describes one verification for gateStep.
type gateSpec[O any, R report] struct {
	kind StepKind
	call func(context.Context, kubernetes.Interface, O) (R, error)
	// live marks a check of what runs in the cluster (pods, proxies), which
	// does not move in a preview either.
	live bool
	// kube is false for a check that does not read the apiserver.
	noKube bool
	// summary is the step's one-line detail, for a pass or a failure.
	summary func(R) string
}

// gateStep runs one verification; a report that is not OK fails the step
// as a gate. Dry runs skip it: nothing was moved, so nothing is to verify.
type gateStep[O any, P checkOptions[O], R report] struct {
	name, desc string
	opts       O
	c          gateSpec[O, R]
}

func newGate[O any, P checkOptions[O], R report](name, desc string, opts O, c gateSpec[O, R]) Step {
	return &gateStep[O, P, R]{name: name, desc: desc, opts: opts, c: c}
}

func (s *gateStep[O, P, R]) Name() string        { return s.name }
func (s *gateStep[O, P, R]) Description() string { return s.desc }
func (s *gateStep[O, P, R]) Validate() error     { o := s.opts; return P(&o).Validate() }
func (s *gateStep[O, P, R]) needsKube() bool     { return !s.c.noKube }
func (s *gateStep[O, P, R]) Inputs() any         { return s.opts }
func (s *gateStep[O, P, R]) Kind() StepKind      { return s.c.kind }

func (s *gateStep[O, P, R]) Run(ctx context.Context, env Env) (Result, error) {
	// A dry run moved nothing, so there is nothing to verify; a preview
	// moved the in-memory copy, where the checks of objects (webhooks) run
	// and those of pods and proxies, which do not move there, do not.
	switch skip, ok := skipLive(env); {
	case s.c.live && ok:
		return skip, nil
	case !s.c.live && env.preview == nil && ok:
		return skip, nil
	}
	rep, err := s.c.call(ctx, env.Kube, s.opts)
	if err != nil {
		return Result{}, err
	}
	if !rep.OK() {
		return Result{Outcome: Failed, Detail: s.c.summary(rep)}, rep.Err()
	}
	return Result{Outcome: Done, Detail: s.c.summary(rep)}, nil
}

// VerifyPods checks with verify.Pods that the pods run the expected
// sidecar; stragglers fail the step as a gate. Its name is "verify-pods".
// In a dry run it is skipped.
func VerifyPods(opts verify.PodsOptions) Step {
	opts.Namespaces = slices.Clone(opts.Namespaces)
	desc := "check that the pods in " + describeSelection(namespace.Selection{Namespaces: opts.Namespaces, Selector: opts.Selector}) +
		" run " + expected(opts.Target, "the sidecar their namespace selects")
	return newGate("verify-pods", desc, opts,
		gateSpec[verify.PodsOptions, *verify.PodsReport]{kind: KindVerifyPods, call: verify.Pods, live: true, summary: podsSummary})
}

func podsSummary(rep *verify.PodsReport) string {
	pods := 0
	for _, n := range rep.Namespaces {
		pods += n.Active()
	}
	on := expected(rep.Revision, "their expected revision")
	if !rep.OK() {
		return fmt.Sprintf("%d of %s not on %s", len(rep.Stragglers), plural(pods, "pod"), on)
	}
	return fmt.Sprintf("%s in %s on %s", plural(pods, "pod"), plural(len(rep.Namespaces), "namespace"), on)
}

// VerifyProxies checks with verify.Proxies that the proxies istiod reports
// are on the target revision and in sync, and (with the plan's cluster)
// that no running pod's sidecar is missing from its istiod's report;
// stragglers, proxies out of sync and pods never connected fail the step as
// a gate. Its name is "verify-proxies". In a dry run
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
	return newGate("verify-proxies", desc, opts,
		gateSpec[verify.ProxiesOptions, *verify.ProxiesReport]{kind: KindVerifyProxies, call: proxies, live: true, noKube: true, summary: proxiesSummary})
}

// proxies asks istiod, and with the plan's cluster also checks that every
// running pod's sidecar is connected (verify.ProxiesOptions.Kube).
func proxies(ctx context.Context, kube kubernetes.Interface, o verify.ProxiesOptions) (*verify.ProxiesReport, error) {
	if o.Kube == nil {
		o.Kube = kube
	}
	return verify.Proxies(ctx, o)
}

func proxiesSummary(rep *verify.ProxiesReport) string {
	if !rep.OK() {
		var parts []string
		if n := len(rep.Stragglers); n > 0 {
			parts = append(parts, fmt.Sprintf("%d on another revision", n))
		}
		if n := len(rep.NotSynced); n > 0 {
			parts = append(parts, fmt.Sprintf("%d not synced", n))
		}
		if n := len(rep.NotConnected); n > 0 {
			parts = append(parts, fmt.Sprintf("%d pods never connected", n))
		}
		return plural(len(rep.Proxies), "proxy") + ": " + strings.Join(parts, ", ")
	}
	detail := plural(len(rep.Proxies), "proxy") + " synced"
	if rep.Target != "" {
		detail += " on " + rep.Target
	}
	return detail
}

// VerifyWebhooks checks the injector and validating webhooks with
// verify.Webhooks: overlapping injectors, webhooks calling a missing
// Service and webhooks of revisions that are not installed fail the step as
// a gate. Its name is "verify-webhooks". In a dry run it is skipped.
func VerifyWebhooks(opts verify.WebhooksOptions) Step {
	desc := "check the webhooks in " + revkit.ControlPlaneNamespace(opts.ControlPlaneNamespace) + ": no overlapping injectors, no dangling service, no orphaned revision"
	return newGate("verify-webhooks", desc, opts,
		gateSpec[verify.WebhooksOptions, *verify.WebhooksReport]{kind: KindVerifyWebhooks, call: verify.Webhooks, summary: webhooksSummary})
}

// VerifySkew checks with verify.ProxySkew that the Kubernetes version, the
// upgrade's jump and every proxy the sources report are within Istio's
// support policy; anything outside fails the step as a gate with an error
// matching revkit.ErrVersionSkew. Its name is "verify-skew". In a dry run
// it is skipped.
func VerifySkew(opts verify.ProxySkewOptions) Step {
	opts.Sources = slices.Clone(opts.Sources)
	opts.Namespaces = slices.Clone(opts.Namespaces)
	desc := "check that Kubernetes and every proxy are within Istio " + opts.Skew.Istio + "'s version-skew policy"
	return newGate("verify-skew", desc, opts,
		gateSpec[verify.ProxySkewOptions, *verify.SkewReport]{kind: KindVerifySkew, call: verify.ProxySkew, live: true, summary: skewSummary})
}

func skewSummary(rep *verify.SkewReport) string {
	var versions []string
	for _, v := range sortedKeys(rep.ProxyVersions) {
		versions = append(versions, fmt.Sprintf("%s ×%d", v, rep.ProxyVersions[v]))
	}
	detail := fmt.Sprintf("Kubernetes %s, proxies %s", rep.Kubernetes, strings.Join(versions, ", "))
	if !rep.OK() {
		detail += ": " + plural(len(rep.Problems), "problem")
	}
	return detail
}

func webhooksSummary(rep *verify.WebhooksReport) string {
	if !rep.OK() {
		return nonZero(
			counted{len(rep.Overlaps), "overlapping injector pair"},
			counted{len(rep.Dangling), "dangling service reference"},
			counted{len(rep.Orphaned), "orphaned webhook"})
	}
	return plural(len(rep.Injectors), "injector") + ", no problem found"
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
