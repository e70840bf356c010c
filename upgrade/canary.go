package upgrade

import (
	"cmp"
	"context"
	"fmt"
	"slices"
	"strings"
	"time"

	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/client-go/kubernetes"

	"github.com/revkit/revkit"
	"github.com/revkit/revkit/gateway"
	"github.com/revkit/revkit/internal/kubeutil"
	"github.com/revkit/revkit/namespace"
	"github.com/revkit/revkit/revision"
	"github.com/revkit/revkit/tag"
	"github.com/revkit/revkit/verify"
)

// CanaryOptions describes a canary upgrade from one revision to another:
// the guide's walkthrough as a plan.
type CanaryOptions struct {
	// From is the revision in use now; To the revision to move to. Both
	// required.
	From, To string
	// Install, when set, installs To first (its Revision is set to To).
	// Leave it nil when To is installed already.
	Install *revision.InstallOptions
	// CanaryTag, when set (e.g. "prod-canary"), is pointed at To and the
	// namespaces move to it; otherwise they move to To itself.
	CanaryTag string
	// StableTag, when set (e.g. "prod-stable"), is moved to To at promotion.
	StableTag string
	// PromoteDefault moves the default tag to To at promotion, which also
	// moves istio-injection=enabled namespaces and validation.
	PromoteDefault bool
	// Namespaces selects the namespaces to migrate: a list, a label
	// selector, or both.
	Namespaces namespace.Selection
	// BatchSize is the number of namespaces migrated, restarted and
	// verified together; BatchPercent sets it as a share of all selected
	// namespaces instead. Zero for both means one batch.
	BatchSize    int
	BatchPercent int
	// Pause waits between batches.
	Pause time.Duration
	// Proxies, when set, are checked after every batch: the batch's proxies
	// must be connected to To and SYNCED. ProxySettle is how long each check
	// waits for proxies still receiving a push or pods whose Envoy is still
	// connecting (verify.ProxiesOptions.Settle); default 30 seconds.
	Proxies     []verify.SyncSource
	ProxySettle time.Duration
	// FromVersion and ToVersion, when set, are the Istio versions of From
	// and To (e.g. "1.29.3", "1.30.1"). The precheck then checks them
	// against Istio's support policy before any write (verify.CheckSkew:
	// the Kubernetes server against ToVersion's row of the support table,
	// the jump from FromVersion, at most MaxMinorJump minor versions,
	// default verify.DefaultMaxMinorJump), and with Proxies set every
	// batch's proxies are checked against their control plane too
	// (VerifySkew). Rollback checks the way back (a downgrade, allowed).
	FromVersion, ToVersion string
	MaxMinorJump           int
	// Gates are extra health checks run after every batch's own checks; a
	// failing gate stops the plan.
	Gates []Step
	// Gateways moves gateway Deployments to To ("" leaves them alone).
	Gateways gateway.Mode
	// GatewayNamespaces limits the gateways moved; empty means all.
	GatewayNamespaces []string
	// GatewayReleases are gateways installed by Helm (Istio's gateway
	// chart), which Gateways leaves alone (gateway.Move refuses them): each
	// moves through its own release after the namespaces — in place to To
	// (UpgradeGatewayRelease), or with GatewayReleaseMode Canary as a
	// canary release beside it (CanaryGatewayRelease), promoted with the
	// stable tag (PromoteGatewayRelease). Rollback uninstalls a canary and
	// moves each back to From in place. The plan sets each one's Target;
	// its Releaser keeps its records in the gateway's namespace.
	GatewayReleases    []gateway.ReleaseOptions
	GatewayReleaseMode gateway.Mode
	// KeepOld leaves From installed at the end.
	KeepOld bool
	// Helm is the installer (helm.New) that uninstalls a revision
	// installed with Helm — From at the end, To on rollback — when
	// Install is not set; Install.Helm is used otherwise. Without either,
	// uninstalling a revision whose objects belong to a Helm release is
	// refused (revision.Uninstall), since deleting them would leave the
	// release behind.
	Helm revision.Installer `json:"-"`
	// RollbackOnFailure runs the rollback steps (without uninstalling To)
	// when a step fails.
	RollbackOnFailure bool
	// RollbackFailedBatch, when a step of a batch fails (a health gate,
	// say), moves just that batch's namespaces back (to StableTag, or From)
	// and restarts and verifies them; earlier batches stay on To. Ignored
	// with RollbackOnFailure.
	RollbackFailedBatch bool
	// RecordState records, before the plan's first write, the injection
	// labels of its namespaces and where its tags pointed (RecordState, in a
	// ConfigMap named after the plan), and makes every rollback — Rollback,
	// RollbackOnFailure, RollbackFailedBatch — put back exactly that state
	// (RestoreState) instead of moving namespaces to StableTag or From: a
	// namespace that used istio-injection=enabled gets it back, a tag the
	// plan created is removed, gateways get their recorded revisions back,
	// and To is uninstalled only if it was not installed before the plan
	// (UninstallAdded). It needs create and get on ConfigMaps in the
	// control-plane namespace.
	RecordState bool
	// Ambient, when set, upgrades the ambient data plane's node agents
	// (istio-cni, then ztunnel) after the namespaces, through their Helm
	// releases, and back on rollback; see AmbientOptions. With it the plan
	// may select no namespace (a mesh of ambient namespaces only needs no
	// restart: its pods have no sidecar).
	Ambient *AmbientOptions
	// RestartTimeout bounds each batch's rollout wait; default 10 minutes.
	RestartTimeout time.Duration
	// ControlPlaneNamespace; default istio-system.
	ControlPlaneNamespace string
}

func (o *CanaryOptions) validate() error {
	if err := revkit.ValidateRevision(o.From); err != nil {
		return fieldErr("From", err)
	}
	if err := revkit.ValidateRevision(o.To); err != nil {
		return fieldErr("To", err)
	}
	if o.FromVersion != "" && o.ToVersion == "" {
		return &revkit.InvalidInputError{Field: "ToVersion", Reason: "needed with FromVersion"}
	}
	if sk := o.skew(false); sk != nil {
		if err := sk.Validate(); err != nil {
			return err
		}
	}
	if o.From == o.To {
		return &revkit.InvalidInputError{Field: "To", Value: o.To, Reason: "must differ from From"}
	}
	for _, t := range []string{o.CanaryTag, o.StableTag} {
		if t == "" {
			continue
		}
		if err := revkit.ValidateTag(t); err != nil {
			return err
		}
		if t == o.From || t == o.To {
			return &revkit.InvalidInputError{Field: "tag", Value: t, Reason: "a tag must not share its name with a revision"}
		}
	}
	if o.CanaryTag != "" && o.CanaryTag == o.StableTag {
		return &revkit.InvalidInputError{Field: "CanaryTag", Value: o.CanaryTag, Reason: "must differ from StableTag"}
	}
	if o.BatchSize < 0 || o.BatchPercent < 0 || o.BatchPercent > 100 {
		return &revkit.InvalidInputError{Field: "BatchSize", Reason: "BatchSize must be >= 0 and BatchPercent within 0..100"}
	}
	if o.Pause < 0 || o.RestartTimeout < 0 || o.ProxySettle < 0 {
		return &revkit.InvalidInputError{Field: "Pause", Reason: "durations must not be negative"}
	}
	if o.Ambient != nil {
		if err := o.Ambient.validate(); err != nil {
			return err
		}
	}
	if m := o.GatewayReleaseMode; m != "" && m != gateway.InPlace && m != gateway.Canary {
		return &revkit.InvalidInputError{Field: "GatewayReleaseMode", Value: string(m), Reason: `must be "", "in-place" or "canary"`}
	}
	for i := range o.GatewayReleases {
		g := o.gatewayRelease(i, o.To)
		if err := g.Validate(); err != nil {
			return err
		}
	}
	if o.Gateways != "" && o.Gateways != gateway.InPlace && o.Gateways != gateway.Canary {
		return &revkit.InvalidInputError{Field: "Gateways", Value: string(o.Gateways), Reason: `must be "", "in-place" or "canary"`}
	}
	return revkit.ValidateNamespace("ControlPlaneNamespace", o.ControlPlaneNamespace)
}

func fieldErr(field string, err error) error {
	if iie, ok := err.(*revkit.InvalidInputError); ok {
		return &revkit.InvalidInputError{Field: field, Value: iie.Value, Reason: iie.Reason}
	}
	return err
}

// defaultProxySettle is CanaryOptions.ProxySettle's default.
const defaultProxySettle = 30 * time.Second

// target is what namespaces are labelled with during the canary.
func (o *CanaryOptions) target() string {
	if o.CanaryTag != "" {
		return o.CanaryTag
	}
	return o.To
}

// home is what namespaces go back to on rollback.
func (o *CanaryOptions) home() string {
	if o.StableTag != "" {
		return o.StableTag
	}
	return o.From
}

// Batches resolves the selection to namespace names and splits them into
// batches, in name order. A named namespace that does not exist is a
// *revkit.NotFoundError. With a nil kube (a plan built offline) the named
// namespaces are taken as given and a selector is refused.
func (o *CanaryOptions) Batches(ctx context.Context, kube kubernetes.Interface) ([][]string, error) {
	if o.Namespaces.Selector != "" {
		if _, err := labels.Parse(o.Namespaces.Selector); err != nil {
			return nil, &revkit.InvalidInputError{Field: "Namespaces.Selector", Value: o.Namespaces.Selector, Reason: err.Error()}
		}
	}
	var names []string
	if kube == nil {
		// A plan built offline (no cluster) can name its namespaces but
		// not select them; the steps check that they exist.
		if o.Namespaces.Selector != "" {
			return nil, &revkit.InvalidInputError{Field: "Namespaces.Selector", Value: o.Namespaces.Selector,
				Reason: "a label selector needs a cluster to resolve it (kube is nil)"}
		}
		names = slices.Clone(o.Namespaces.Namespaces)
		slices.Sort(names)
		names = slices.Compact(names)
	} else {
		nss, err := kubeutil.SelectNamespaces(ctx, kube, "upgrade.Canary", o.Namespaces.Namespaces, o.Namespaces.Selector)
		if err != nil {
			return nil, err
		}
		names = make([]string, len(nss))
		for i, ns := range nss {
			names[i] = ns.Name
		}
	}
	if len(names) == 0 {
		if o.Ambient != nil {
			return nil, nil
		}
		return nil, &revkit.InvalidInputError{Field: "Namespaces", Reason: "selects no namespace"}
	}
	size := o.BatchSize
	if o.BatchPercent > 0 {
		size = (len(names)*o.BatchPercent + 99) / 100
	}
	if size <= 0 || size > len(names) {
		size = len(names)
	}
	var out [][]string
	for i := 0; i < len(names); i += size {
		out = append(out, names[i:min(i+size, len(names))])
	}
	return out, nil
}

// Canary returns the guide's canary upgrade as a plan: precheck, install
// the new revision, point the canary tag at it, then per batch of
// namespaces migrate, restart and verify (a failed check stops the plan),
// move gateways, promote the stable and default tags, check the webhooks,
// and uninstall the old revision. It reads the cluster only to resolve the
// namespace selection into batches. The plan is ordinary data: print it,
// edit it, run it with Execute.
func Canary(ctx context.Context, kube kubernetes.Interface, opts CanaryOptions) (Plan, error) {
	if err := opts.validate(); err != nil {
		return Plan{}, err
	}
	batches, err := opts.Batches(ctx, kube)
	if err != nil {
		return Plan{}, err
	}
	cp := opts.ControlPlaneNamespace
	p := Plan{Name: opts.canaryName()}
	add := func(s ...Step) { p.Steps = append(p.Steps, s...) }

	add(Precheck(opts.precheck(false)))
	if opts.RecordState {
		add(RecordState(opts.recordOptions(p.Name, batches)))
	}
	if opts.Install != nil {
		in := *opts.Install
		in.Revision = opts.To
		if in.ControlPlaneNamespace == "" {
			in.ControlPlaneNamespace = cp
		}
		if in.Base != nil {
			// The base chart (CRDs) first, as its own step: its dry run
			// lists the CRD changes, and it refuses to drop a stored
			// version.
			add(UpgradeBase(revision.BaseOptions{Chart: *in.Base, Values: in.BaseValues, Wait: in.Wait, Timeout: in.Timeout,
				ControlPlaneNamespace: in.ControlPlaneNamespace, Helm: in.Helm}))
			in.Base, in.BaseValues = nil, nil
		}
		add(InstallRevision(in))
	}
	if opts.CanaryTag != "" {
		add(SetTag(tag.SetOptions{Tag: opts.CanaryTag, Revision: opts.To, Overwrite: true, ControlPlaneNamespace: cp}))
	}
	// batchOf maps each step of a batch to its batch (from 1), for the
	// rollback of a failed batch.
	batchOf := map[string]int{}
	for i, batch := range batches {
		label := fmt.Sprintf(" %d/%d", i+1, len(batches))
		first := len(p.Steps)
		if i > 0 && opts.Pause > 0 {
			add(Named("pause"+label, Pause(opts.Pause)))
		}
		sel := namespace.Selection{Namespaces: batch, AllowSystem: opts.Namespaces.AllowSystem}
		add(
			Named("migrate-namespaces"+label, MigrateNamespace(namespace.MigrateOptions{Selection: sel, Target: opts.target(), ControlPlaneNamespace: cp})),
			Named("restart-workloads"+label, RolloutRestart(namespace.RestartOptions{Selection: sel, Target: opts.target(), OnlyStale: true,
				Wait: true, Timeout: opts.RestartTimeout, ControlPlaneNamespace: cp})),
			Named("verify-pods"+label, VerifyPods(verify.PodsOptions{Namespaces: batch, Target: opts.To, ControlPlaneNamespace: cp})),
		)
		if len(opts.Proxies) > 0 {
			add(Named("verify-proxies"+label, VerifyProxies(verify.ProxiesOptions{Sources: opts.Proxies, Target: opts.To, Namespaces: batch,
				Settle: cmp.Or(opts.ProxySettle, defaultProxySettle)})))
			if sk := opts.skew(false); sk != nil {
				sk.ControlPlaneVersions = map[string]string{opts.To: opts.ToVersion}
				if opts.FromVersion != "" {
					sk.ControlPlaneVersions[opts.From] = opts.FromVersion
				}
				add(Named("verify-skew"+label, VerifySkew(verify.ProxySkewOptions{Skew: *sk, Sources: opts.Proxies, Namespaces: batch})))
			}
		}
		for _, g := range opts.Gates {
			add(Named(g.Name()+label, g))
		}
		for _, s := range p.Steps[first:] {
			batchOf[s.Name()] = i + 1
		}
	}
	if opts.Ambient != nil {
		add(opts.Ambient.agentSteps(cp, opts.Ambient.To, opts.To, opts.ToVersion, false)...)
	}
	if opts.Gateways != "" {
		add(MoveGateways(gateway.MoveOptions{Target: opts.To, Mode: opts.Gateways, Namespaces: opts.GatewayNamespaces,
			ControlPlaneNamespace: cp, Wait: true, Timeout: opts.RestartTimeout}))
	}
	for i := range opts.GatewayReleases {
		if opts.GatewayReleaseMode == gateway.Canary {
			add(CanaryGatewayRelease(opts.gatewayRelease(i, opts.To)))
		} else {
			add(UpgradeGatewayRelease(opts.gatewayRelease(i, opts.To)))
		}
	}
	if opts.StableTag != "" {
		add(SetTag(tag.SetOptions{Tag: opts.StableTag, Revision: opts.To, Overwrite: true, ControlPlaneNamespace: cp}))
	}
	if opts.GatewayReleaseMode == gateway.Canary {
		for i := range opts.GatewayReleases {
			add(PromoteGatewayRelease(opts.gatewayRelease(i, opts.To)))
		}
	}
	if opts.Gateways == gateway.Canary {
		// Promotion: the gateways themselves move, then their canaries go.
		add(Named("promote-gateways "+opts.To, MoveGateways(gateway.MoveOptions{Target: opts.To, Mode: gateway.InPlace,
			Namespaces: opts.GatewayNamespaces, ControlPlaneNamespace: cp, Wait: true, Timeout: opts.RestartTimeout})))
		add(RemoveCanaryGateways(gateway.RemoveCanariesOptions{Revision: opts.To, Namespaces: opts.GatewayNamespaces}))
	}
	if opts.PromoteDefault {
		add(SetTag(tag.SetOptions{Tag: revkit.DefaultTag, Revision: opts.To, Overwrite: true, ControlPlaneNamespace: cp}))
	}
	add(VerifyWebhooks(verify.WebhooksOptions{ControlPlaneNamespace: cp}))
	if !opts.KeepOld {
		add(Uninstall(revision.UninstallOptions{Revision: opts.From, ControlPlaneNamespace: cp, Helm: opts.helm()}))
	}
	switch {
	case opts.RollbackOnFailure:
		p.OnFailure = rollbackSteps(opts, batches, false, "rollback: ")
	case opts.RollbackFailedBatch:
		p.OnFailure = []Step{rollbackBatch(opts, batches, batchOf)}
	}
	return p, nil
}

// rollbackBatch undoes the batch of the failed step: its namespaces go back
// home, restart and are verified on From.
func rollbackBatch(opts CanaryOptions, batches [][]string, batchOf map[string]int) Step {
	cp := opts.ControlPlaneNamespace
	return Func("rollback-failed-batch", "move the failed batch's namespaces back to "+opts.home()+" and restart them",
		func(ctx context.Context, env Env) (Result, error) {
			i, n := batchOf[env.FailedStep], len(batches)
			if i < 1 || i > n {
				return Result{Outcome: Skipped, Detail: fmt.Sprintf("step %q is not part of a batch", env.FailedStep)}, nil
			}
			batch := batches[i-1]
			sel := namespace.Selection{Namespaces: batch, AllowSystem: opts.Namespaces.AllowSystem}
			target := opts.home()
			// What it changed before a failure is reported with the failure.
			var changes []revkit.Change
			partial := func(err error) (Result, error) {
				return Result{Outcome: Failed, Changes: changes, Detail: err.Error()}, err
			}
			if opts.RecordState {
				r, err := restoreState(ctx, env.Kube, RestoreStateOptions{Common: env.Common, Name: opts.canaryName(), Namespaces: batch, ControlPlaneNamespace: cp})
				changes = append(changes, r.Changes...)
				if err != nil {
					return partial(err)
				}
				target = opts.From
			} else {
				mo := namespace.MigrateOptions{Common: env.Common, Selection: sel, Target: target, ControlPlaneNamespace: cp}
				res, err := namespace.Migrate(ctx, env.Kube, mo)
				changes = append(changes, res.ObjectChanges()...)
				if err != nil {
					return partial(err)
				}
			}
			ro := namespace.RestartOptions{Common: env.Common, Selection: sel, Target: target, OnlyStale: true,
				Wait: true, Timeout: opts.RestartTimeout, ControlPlaneNamespace: cp}
			res, err := namespace.RolloutRestart(ctx, env.Kube, ro)
			changes = append(changes, res.ObjectChanges()...)
			if err != nil {
				return partial(err)
			}
			detail := fmt.Sprintf("batch %d/%d (%s) back on %s, %d workloads restarted", i, n, strings.Join(batch, ", "),
				target, len(res.Restarted()))
			if env.Common.DryRun.Persists() {
				rep, err := verify.Pods(ctx, env.Kube, verify.PodsOptions{Namespaces: batch, Target: opts.From, ControlPlaneNamespace: cp})
				if err != nil {
					return partial(err)
				}
				if err := rep.Err(); err != nil {
					return Result{Outcome: Failed, Changes: changes, Detail: detail + "; " + err.Error()}, err
				}
			}
			return Result{Outcome: Done, Changes: changes, Detail: detail}, nil
		})
}

// recordOptions are the RecordState options of the canary plan named
// plan: every namespace of its batches and every tag it sets.
func (o *CanaryOptions) recordOptions(plan string, batches [][]string) RecordStateOptions {
	var all []string
	for _, b := range batches {
		all = append(all, b...)
	}
	r := RecordStateOptions{Name: plan, Namespaces: namespace.Selection{Namespaces: all, AllowSystem: o.Namespaces.AllowSystem},
		Gateways: o.Gateways != "", GatewayNamespaces: o.GatewayNamespaces, ControlPlaneNamespace: o.ControlPlaneNamespace}
	for _, t := range []string{o.CanaryTag, o.StableTag} {
		if t != "" {
			r.Tags = append(r.Tags, t)
		}
	}
	if o.PromoteDefault {
		r.Tags = append(r.Tags, revkit.DefaultTag)
	}
	return r
}

// precheck is what the canary plan (or, back, its rollback) checks before
// its first write: exactly the permissions its steps need — the install's
// when it installs To, the uninstall's of the revision it removes (From,
// or back To) unless KeepOld, the gateway canaries' — and the version skew.
func (o *CanaryOptions) precheck(back bool) verify.PrecheckOptions {
	cp := o.ControlPlaneNamespace
	pre := verify.PrecheckOptions{ControlPlaneNamespace: cp, Permissions: verify.DefaultPermissions(cp)}
	if in := o.Install; in != nil && !back {
		pre.Permissions = append(pre.Permissions, verify.InstallPermissions(o.To, cmp.Or(in.ControlPlaneNamespace, cp))...)
		if in.Wait {
			pre.Permissions = append(pre.Permissions, verify.InstallWaitPermissions(cmp.Or(in.ControlPlaneNamespace, cp))...)
		}
	}
	if !o.KeepOld {
		removed := o.From
		if back {
			removed = o.To
		}
		pre.Permissions = append(pre.Permissions, verify.UninstallPermissions(removed, cp)...)
		if o.helm() != nil {
			pre.Permissions = append(pre.Permissions, verify.HelmUninstallPermissions(cp)...)
		}
	}
	if o.Gateways == gateway.Canary {
		pre.Permissions = append(pre.Permissions, verify.GatewayCanaryPermissions(o.GatewayNamespaces)...)
	}
	if o.Ambient != nil {
		pre.Permissions = append(pre.Permissions, o.Ambient.permissions(cp)...)
	}
	for _, g := range o.GatewayReleases {
		pre.Permissions = append(pre.Permissions, verify.GatewayReleasePermissions(g.Namespace, o.GatewayReleaseMode == gateway.Canary)...)
	}
	pre.Skew = o.skew(back)
	return pre
}

// skew is the version-skew check of the plan, or of its rollback (back to
// FromVersion), or nil without ToVersion.
func (o *CanaryOptions) skew(back bool) *verify.SkewOptions {
	if o.ToVersion == "" {
		return nil
	}
	if back {
		if o.FromVersion == "" {
			return nil
		}
		return &verify.SkewOptions{Istio: o.FromVersion, From: o.ToVersion, AllowDowngrade: true, MaxMinorJump: o.MaxMinorJump}
	}
	return &verify.SkewOptions{Istio: o.ToVersion, From: o.FromVersion, MaxMinorJump: o.MaxMinorJump}
}

// canaryName is the name of the canary plan, under which its state is
// recorded.
func (o *CanaryOptions) canaryName() string { return fmt.Sprintf("canary %s → %s", o.From, o.To) }

// Rollback returns the reverse of Canary, after a precheck of the
// permissions it needs (with the uninstall of To's own ClusterRoles unless
// KeepOld): tags back to From, namespaces
// back (to StableTag, or From), their workloads restarted and verified on
// From, gateways back on From (canary gateways removed) — before To is
// uninstalled, so no gateway is lost (Istio issue 33822).
func Rollback(ctx context.Context, kube kubernetes.Interface, opts CanaryOptions) (Plan, error) {
	if err := opts.validate(); err != nil {
		return Plan{}, err
	}
	batches, err := opts.Batches(ctx, kube)
	if err != nil {
		return Plan{}, err
	}
	return Plan{
		Name:  fmt.Sprintf("rollback %s → %s", opts.To, opts.From),
		Steps: append([]Step{Precheck(opts.precheck(true))}, rollbackSteps(opts, batches, !opts.KeepOld, "")...),
	}, nil
}

func rollbackSteps(opts CanaryOptions, batches [][]string, uninstallCanary bool, prefix string) []Step {
	cp := opts.ControlPlaneNamespace
	var all []string
	for _, b := range batches {
		all = append(all, b...)
	}
	sel := namespace.Selection{Namespaces: all, AllowSystem: opts.Namespaces.AllowSystem}
	var out []Step
	add := func(s Step) { out = append(out, Named(prefix+s.Name(), s)) }
	if a := opts.Ambient; a != nil {
		// The node agents first, while From's istiod is what they go back
		// to: ztunnel, then istio-cni.
		for _, s := range a.agentSteps(cp, a.From, opts.From, opts.FromVersion, true) {
			add(s)
		}
	}
	restartTarget := opts.home()
	if opts.RecordState {
		// Tags, labels and gateways back as recorded; what they resolve to
		// is From.
		add(RestoreState(RestoreStateOptions{Name: opts.canaryName(), ControlPlaneNamespace: cp,
			WaitGateways: true, Timeout: opts.RestartTimeout}))
		restartTarget = opts.From
	} else {
		if opts.PromoteDefault {
			add(SetTag(tag.SetOptions{Tag: revkit.DefaultTag, Revision: opts.From, Overwrite: true, ControlPlaneNamespace: cp}))
		}
		if opts.StableTag != "" {
			add(SetTag(tag.SetOptions{Tag: opts.StableTag, Revision: opts.From, Overwrite: true, ControlPlaneNamespace: cp}))
		}
		if len(all) > 0 {
			add(MigrateNamespace(namespace.MigrateOptions{Selection: sel, Target: opts.home(), ControlPlaneNamespace: cp}))
		}
	}
	if len(all) > 0 {
		add(RolloutRestart(namespace.RestartOptions{Selection: sel, Target: restartTarget, OnlyStale: true,
			Wait: true, Timeout: opts.RestartTimeout, ControlPlaneNamespace: cp}))
		add(VerifyPods(verify.PodsOptions{Namespaces: all, Target: opts.From, ControlPlaneNamespace: cp}))
	}
	if opts.Gateways != "" {
		if !opts.RecordState {
			add(MoveGateways(gateway.MoveOptions{Target: opts.From, Mode: gateway.InPlace, Namespaces: opts.GatewayNamespaces,
				ControlPlaneNamespace: cp, Wait: true, Timeout: opts.RestartTimeout}))
		}
		add(RemoveCanaryGateways(gateway.RemoveCanariesOptions{Revision: opts.To, Namespaces: opts.GatewayNamespaces}))
	}
	for i := range opts.GatewayReleases {
		if opts.GatewayReleaseMode == gateway.Canary {
			add(RollbackGatewayRelease(opts.gatewayRelease(i, opts.To)))
		}
		add(UpgradeGatewayRelease(opts.gatewayRelease(i, opts.From)))
	}
	if opts.CanaryTag != "" && uninstallCanary && !opts.RecordState {
		add(RemoveTag(tag.RemoveOptions{Tag: opts.CanaryTag, ControlPlaneNamespace: cp}))
	}
	switch un := (revision.UninstallOptions{Revision: opts.To, ControlPlaneNamespace: cp, Helm: opts.helm()}); {
	case uninstallCanary && opts.RecordState:
		// Only if the plan installed it.
		add(UninstallAdded(UninstallAddedOptions{UninstallOptions: un, State: opts.canaryName()}))
	case uninstallCanary:
		add(Uninstall(un))
	}
	return out
}

// gatewayRelease is the i-th gateway release's options, moved to target,
// waiting for its pods as the plan's other moves do.
func (o *CanaryOptions) gatewayRelease(i int, target string) gateway.ReleaseOptions {
	g := o.GatewayReleases[i]
	g.Target, g.Wait = target, true
	if g.ControlPlaneNamespace == "" {
		g.ControlPlaneNamespace = o.ControlPlaneNamespace
	}
	if g.Timeout == 0 {
		g.Timeout = o.RestartTimeout
	}
	return g
}

// helm is the installer that uninstalls revisions: Install's, or Helm
// when the plan installs nothing.
func (o *CanaryOptions) helm() revision.Installer {
	if o.Install != nil && o.Install.Helm != nil {
		return o.Install.Helm
	}
	return o.Helm
}

// Precheck gates a plan on verify.Precheck: Kubernetes version and the
// permissions the plan needs — with a journal (Env.Journal, outside dry
// runs), also verify.JournalPermissions. It runs in dry runs too, since it
// only reads. Its name is "precheck".
func Precheck(opts verify.PrecheckOptions) Step {
	opts.Permissions = slices.Clone(opts.Permissions)
	return &precheckStep{opts: opts}
}

type precheckStep struct{ opts verify.PrecheckOptions }

func (s *precheckStep) Name() string    { return "precheck" }
func (s *precheckStep) Kind() StepKind  { return KindPrecheck }
func (s *precheckStep) Inputs() any     { return s.opts }
func (s *precheckStep) needsKube() bool { return true }
func (s *precheckStep) Description() string {
	return "check the Kubernetes version and the permissions the upgrade needs"
}

func (s *precheckStep) Validate() error {
	return revkit.ValidateNamespace("ControlPlaneNamespace", s.opts.ControlPlaneNamespace)
}

func (s *precheckStep) Run(ctx context.Context, env Env) (Result, error) {
	opts := s.opts
	if env.Journal != nil && env.Common.DryRun == revkit.DryRunNone {
		if len(opts.Permissions) == 0 {
			opts.Permissions = verify.DefaultPermissions(opts.ControlPlaneNamespace)
		}
		opts.Permissions = append(slices.Clone(opts.Permissions), verify.JournalPermissions(env.Journal.Namespace)...)
	}
	rep, err := verify.Precheck(ctx, env.Kube, opts)
	if err != nil {
		return Result{}, err
	}
	if err := rep.Err(); err != nil {
		return Result{Outcome: Failed, Detail: err.Error()}, err
	}
	return Result{Outcome: Done, Detail: fmt.Sprintf("Kubernetes %s, %d permissions, revisions %v",
		rep.ServerVersion, rep.Checked, rep.Revisions)}, nil
}

// Pause waits d between batches; cancelling the context ends the wait and
// fails the step. In a dry run it is skipped. Its name is "pause".
func Pause(d time.Duration) Step { return pauseStep(d) }

type pauseStep time.Duration

func (d pauseStep) Name() string        { return "pause" }
func (d pauseStep) Kind() StepKind      { return KindPause }
func (d pauseStep) Inputs() any         { return time.Duration(d) }
func (d pauseStep) Description() string { return "wait " + time.Duration(d).String() }

func (d pauseStep) Validate() error {
	if d < 0 {
		return &revkit.InvalidInputError{Field: "Pause", Value: time.Duration(d).String(), Reason: "must not be negative"}
	}
	return nil
}

func (d pauseStep) Run(ctx context.Context, env Env) (Result, error) {
	if skip, ok := skipLive(env); ok {
		return skip, nil
	}
	t := time.NewTimer(time.Duration(d))
	defer t.Stop()
	select {
	case <-ctx.Done():
		return Result{}, ctx.Err()
	case <-t.C:
		return Result{Outcome: Done, Detail: "waited " + time.Duration(d).String()}, nil
	}
}

// RemoveTag removes a revision tag with tag.Remove. Its name is
// "remove-tag <tag>".
func RemoveTag(opts tag.RemoveOptions) Step {
	return newOp("remove-tag "+opts.Tag, "remove revision tag "+opts.Tag, opts,
		opSpec[tag.RemoveOptions, *tag.RemoveResult]{kind: KindRemoveTag, call: tag.Remove})
}
