package upgrade_test

import (
	"context"
	"slices"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"

	"github.com/revkit/revkit"
	"github.com/revkit/revkit/gateway"
	"github.com/revkit/revkit/namespace"
	"github.com/revkit/revkit/revision"
	"github.com/revkit/revkit/revkittest"
	"github.com/revkit/revkit/tag"
	"github.com/revkit/revkit/upgrade"
	"github.com/revkit/revkit/verify"
)

// recordedCanary is a canary of canaryCluster's two namespaces (shop uses
// istio-injection=enabled, blog the prod-stable tag) through a new tag,
// prod-canary, whose pod verification fails: the plan stops after moving
// the namespaces, and rolls back.
func recordedCanary(t *testing.T, kube kubernetes.Interface, record bool) upgrade.Plan {
	t.Helper()
	opts := upgrade.CanaryOptions{From: "1-24-0", To: "1-25-0", CanaryTag: "prod-canary", StableTag: "prod-stable",
		Namespaces: namespace.Selection{Namespaces: []string{"shop", "blog"}}, KeepOld: true,
		RollbackOnFailure: true, RecordState: record}
	p, err := upgrade.Canary(ctx, kube, opts)
	require.NoError(t, err)
	for i, s := range p.Steps {
		if s.Name() == "verify-pods 1/1" {
			p.Steps[i] = upgrade.Named(s.Name(), upgrade.Func("gate", "failing gate", func(context.Context, upgrade.Env) (upgrade.Result, error) {
				return upgrade.Result{}, revkit.ErrVerificationFailed
			}))
		}
	}
	return p
}

func tagTargets(t *testing.T, kube kubernetes.Interface) map[string]string {
	t.Helper()
	tags, err := tag.List(ctx, kube, tag.ListOptions{})
	require.NoError(t, err)
	out := map[string]string{}
	for _, tg := range tags {
		out[tg.Name] = tg.Revision
	}
	return out
}

func namespaceLabels(t *testing.T, kube kubernetes.Interface) map[string]map[string]string {
	t.Helper()
	out := map[string]map[string]string{}
	for _, n := range []string{"shop", "blog"} {
		ns, err := kube.CoreV1().Namespaces().Get(ctx, n, metav1.GetOptions{})
		require.NoError(t, err)
		out[n] = map[string]string{}
		for _, k := range []string{"istio-injection", "istio.io/rev"} {
			if v, ok := ns.Labels[k]; ok {
				out[n][k] = v
			}
		}
	}
	return out
}

// With RecordState, the rollback after a failed gate puts back exactly the
// state before the plan: shop gets istio-injection=enabled back (not the
// stable tag), and the canary tag the plan created is gone. Without it the
// rollback moves both namespaces to the stable tag and keeps the canary
// tag — which is what this test tells apart.
func TestCanaryRollbackRestoresRecordedState(t *testing.T) {
	kube := canaryCluster().Kube()
	beforeLabels, beforeTags := namespaceLabels(t, kube), tagTargets(t, kube)
	require.Equal(t, map[string]string{"istio-injection": "enabled"}, beforeLabels["shop"])
	require.NotContains(t, beforeTags, "prod-canary")

	p := recordedCanary(t, kube, true)
	assert.Equal(t, []string{"precheck", "record-state", "set-tag prod-canary→1-25-0", "migrate-namespaces 1/1"}, stepNames(p)[:4])
	rep, err := upgrade.Execute(ctx, upgrade.Env{Kube: kube}, p)
	require.ErrorIs(t, err, revkit.ErrVerificationFailed)
	require.NotEmpty(t, rep.OnFailure)
	for _, s := range rep.OnFailure {
		assert.NotEqual(t, upgrade.Failed, s.Outcome, "%s: %s", s.Name, s.Detail)
	}
	assert.Equal(t, "rollback: restore-state", rep.OnFailure[0].Name)

	assert.Equal(t, beforeLabels, namespaceLabels(t, kube), "the namespaces' labels are as before the plan")
	assert.Equal(t, beforeTags, tagTargets(t, kube), "the tags are as before the plan: prod-canary is gone")

	st, err := upgrade.LoadState(ctx, kube, p.Name, "")
	require.NoError(t, err)
	assert.Equal(t, map[string]string{"prod-canary": "", "prod-stable": "1-24-0"}, st.Tags)
	assert.Equal(t, []string{"1-24-0", "1-25-0"}, st.Revisions)
}

// The same plan without RecordState: the rollback is rebuilt from the
// options, which is not the state before the plan.
func TestCanaryRollbackWithoutRecordedState(t *testing.T) {
	kube := canaryCluster().Kube()
	beforeLabels := namespaceLabels(t, kube)
	_, err := upgrade.Execute(ctx, upgrade.Env{Kube: kube}, recordedCanary(t, kube, false))
	require.ErrorIs(t, err, revkit.ErrVerificationFailed)
	assert.NotEqual(t, beforeLabels, namespaceLabels(t, kube))
	assert.Contains(t, tagTargets(t, kube), "prod-canary")
}

// A rerun keeps the first record: the state from before the plan, not from
// half-way through it.
func TestRecordStateKeepsTheFirstRecord(t *testing.T) {
	kube := canaryCluster().Kube()
	step := upgrade.RecordState(upgrade.RecordStateOptions{Name: "p", Tags: []string{"prod-stable"},
		Namespaces: namespace.Selection{Namespaces: []string{"shop"}}})
	res, err := step.Run(ctx, upgrade.Env{Kube: kube})
	require.NoError(t, err)
	assert.Equal(t, upgrade.Done, res.Outcome)
	first, err := upgrade.LoadState(ctx, kube, "p", "")
	require.NoError(t, err)

	_, err = namespace.Migrate(ctx, kube, namespace.MigrateOptions{Selection: namespace.Selection{Namespaces: []string{"shop"}}, Target: "1-25-0"})
	require.NoError(t, err)
	res, err = step.Run(ctx, upgrade.Env{Kube: kube})
	require.NoError(t, err)
	assert.Equal(t, upgrade.Unchanged, res.Outcome)
	again, err := upgrade.LoadState(ctx, kube, "p", "")
	require.NoError(t, err)
	assert.Equal(t, first, again)
	require.NotNil(t, again.Namespaces["shop"].Injection)
	assert.Equal(t, "enabled", *again.Namespaces["shop"].Injection)
	assert.Nil(t, again.Namespaces["shop"].Rev)
}

// A record of the same name over other namespaces or tags belongs to
// another plan (an earlier canary between the same revisions): it is
// neither kept as this plan's nor overwritten, and nothing is written.
func TestRecordStateRefusesAnotherPlansRecord(t *testing.T) {
	kube := canaryCluster().Kube()
	record := func(tags []string, namespaces ...string) (upgrade.Result, error) {
		return upgrade.RecordState(upgrade.RecordStateOptions{Name: "p", Tags: tags,
			Namespaces: namespace.Selection{Namespaces: namespaces}}).Run(ctx, upgrade.Env{Kube: kube})
	}
	_, err := record([]string{"prod-stable"}, "shop")
	require.NoError(t, err)
	first, err := upgrade.LoadState(ctx, kube, "p", "")
	require.NoError(t, err)
	for _, tc := range []struct {
		name       string
		tags       []string
		namespaces []string
		want       string
	}{
		{"other namespaces", []string{"prod-stable"}, []string{"blog"}, "namespaces [shop], not [blog]"},
		{"more namespaces", []string{"prod-stable"}, []string{"shop", "blog"}, "namespaces [shop], not [blog shop]"},
		{"other tags", []string{"prod-canary", "prod-stable"}, []string{"shop"}, "tags [prod-stable], not [prod-canary prod-stable]"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			kube.ClearActions()
			_, err := record(tc.tags, tc.namespaces...)
			assert.ErrorIs(t, err, revkit.ErrExists)
			assert.ErrorContains(t, err, tc.want)
			revkittest.NoWrites(t, kube)
			again, err := upgrade.LoadState(ctx, kube, "p", "")
			require.NoError(t, err)
			assert.Equal(t, first, again)
		})
	}
	res, err := record([]string{"prod-stable"}, "shop", "shop")
	require.NoError(t, err, "the same plan: kept")
	assert.Equal(t, upgrade.Unchanged, res.Outcome)
}

func TestRestoreStateRefusals(t *testing.T) {
	kube := canaryCluster().Kube()
	restore := upgrade.RestoreState(upgrade.RestoreStateOptions{Name: "p"})

	_, err := restore.Run(ctx, upgrade.Env{Kube: kube})
	assert.ErrorIs(t, err, revkit.ErrNotFound, "nothing recorded")

	_, err = upgrade.RecordState(upgrade.RecordStateOptions{Name: "p", Tags: []string{"prod-stable"},
		Namespaces: namespace.Selection{Namespaces: []string{"shop"}}}).Run(ctx, upgrade.Env{Kube: kube})
	require.NoError(t, err)
	// The plan moved the tag and uninstalled the revision it pointed to.
	_, err = tag.Set(ctx, kube, tag.SetOptions{Tag: "prod-stable", Revision: "1-25-0", Overwrite: true})
	require.NoError(t, err)
	require.NoError(t, kube.AdmissionregistrationV1().MutatingWebhookConfigurations().Delete(ctx, "istio-sidecar-injector-1-24-0", metav1.DeleteOptions{}))
	for _, d := range []string{"istiod-1-24-0"} {
		_ = kube.AppsV1().Deployments("istio-system").Delete(ctx, d, metav1.DeleteOptions{})
	}
	kube.ClearActions()
	_, err = restore.Run(ctx, upgrade.Env{Kube: kube})
	var nf *revkit.NotFoundError
	require.ErrorAs(t, err, &nf, "a revision the plan uninstalled cannot be restored")
	assert.Equal(t, "1-24-0", nf.Name)
	revkittest.NoWrites(t, kube)

	assert.ErrorIs(t, upgrade.RestoreState(upgrade.RestoreStateOptions{}).(upgrade.Validator).Validate(), revkit.ErrInvalidInput)
	assert.ErrorIs(t, upgrade.RecordState(upgrade.RecordStateOptions{}).(upgrade.Validator).Validate(), revkit.ErrInvalidInput)
}

// namespace.Restore sets and removes each label as recorded, in one patch
// per namespace, and leaves namespaces already as recorded alone.
func TestNamespaceRestoreLabels(t *testing.T) {
	kube := canaryCluster().Kube()
	enabled, stable := "enabled", "prod-stable"
	res, err := namespace.Restore(ctx, kube, namespace.RestoreOptions{Labels: map[string]namespace.InjectionLabels{
		"shop": {Rev: &stable}, // istio-injection removed, istio.io/rev set
		"blog": {Rev: &stable}, // as it is
	}})
	require.NoError(t, err)
	assert.True(t, res.Changed())
	assert.Equal(t, []string{"patch namespaces shop"}, revkittest.Writes(kube))
	assert.Equal(t, map[string]map[string]string{"shop": {"istio.io/rev": "prod-stable"}, "blog": {"istio.io/rev": "prod-stable"}},
		namespaceLabels(t, kube))

	kube.ClearActions()
	_, err = namespace.Restore(ctx, kube, namespace.RestoreOptions{Common: revkit.Common{DryRun: revkit.DryRunClient},
		Labels: map[string]namespace.InjectionLabels{"shop": {Injection: &enabled}}})
	require.NoError(t, err)
	revkittest.NoWrites(t, kube)

	_, err = namespace.Restore(ctx, kube, namespace.RestoreOptions{Labels: map[string]namespace.InjectionLabels{"gone": {}}})
	assert.ErrorIs(t, err, revkit.ErrNotFound)
	bad := "not a label value!"
	_, err = namespace.Restore(ctx, kube, namespace.RestoreOptions{Labels: map[string]namespace.InjectionLabels{"shop": {Rev: &bad}}})
	assert.ErrorIs(t, err, revkit.ErrInvalidInput)
}

// With a journal, the precheck also checks the journal's permissions.
func TestPrecheckChecksJournalPermissions(t *testing.T) {
	kube := canaryCluster().Deny("update", "coordination.k8s.io", "leases").Kube()
	plan := upgrade.Plan{Name: "p", Steps: []upgrade.Step{upgrade.Precheck(verifyPrecheckDefaults())}}
	_, err := upgrade.Execute(ctx, upgrade.Env{Kube: kube}, plan)
	require.NoError(t, err, "without a journal leases do not matter")

	rep, err := upgrade.Execute(ctx, upgrade.Env{Kube: kube, Journal: &upgrade.Journal{}}, plan)
	var forbidden *revkit.ForbiddenError
	require.ErrorAs(t, err, &forbidden)
	assert.Equal(t, "leases", forbidden.Resource)
	assert.Equal(t, "update", forbidden.Verb)
	assert.Equal(t, "precheck", rep.Failed().Name)
}

func gatewayRevisions(t *testing.T, kube kubernetes.Interface) map[string]string {
	t.Helper()
	out := map[string]string{}
	for _, n := range []string{"ingress", "egress"} {
		d, err := kube.AppsV1().Deployments("istio-gateways").Get(ctx, n, metav1.GetOptions{})
		require.NoError(t, err)
		v, ok := d.Spec.Template.Labels["istio.io/rev"]
		if !ok {
			v = "(absent)"
		}
		out[n] = v
	}
	return out
}

// Gateways' revisions are recorded and restored exactly: one on a revision
// goes back to it, one that followed its namespace loses the label again
// (moving "back to From" would have labelled it instead).
func TestRestoreStatePutsGatewaysBack(t *testing.T) {
	kube := canaryCluster().
		WithNamespace("istio-gateways", revkittest.Rev("1-24-0")).
		WithGateway("istio-gateways", "ingress", "1-24-0").
		WithGateway("istio-gateways", "egress", "").Kube()
	before := gatewayRevisions(t, kube)
	require.Equal(t, map[string]string{"ingress": "1-24-0", "egress": "(absent)"}, before)

	p := upgrade.Plan{Name: "gw", Steps: []upgrade.Step{
		upgrade.RecordState(upgrade.RecordStateOptions{Name: "gw", Gateways: true, GatewayNamespaces: []string{"istio-gateways"}}),
		upgrade.MoveGateways(gateway.MoveOptions{Target: "1-25-0", Namespaces: []string{"istio-gateways"}}),
	}}
	_, err := upgrade.Execute(ctx, upgrade.Env{Kube: kube}, p)
	require.NoError(t, err)
	require.Equal(t, map[string]string{"ingress": "1-25-0", "egress": "1-25-0"}, gatewayRevisions(t, kube))

	st, err := upgrade.LoadState(ctx, kube, "gw", "")
	require.NoError(t, err)
	assert.Equal(t, map[string]string{"istio-gateways/ingress": "1-24-0", "istio-gateways/egress": ""}, st.Gateways)

	rep, err := upgrade.Execute(ctx, upgrade.Env{Kube: kube}, upgrade.Plan{Name: "back", Steps: []upgrade.Step{
		upgrade.RestoreState(upgrade.RestoreStateOptions{Name: "gw", WaitGateways: true}),
	}})
	require.NoError(t, err)
	assert.Equal(t, before, gatewayRevisions(t, kube))
	assert.Contains(t, rep.Changes(), revkit.Change{Object: revkit.ObjectRef{Kind: "Deployment", Namespace: "istio-gateways", Name: "egress"},
		Action: revkit.ActionUpdate, Reason: "gateway 1-25-0 → (absent)"})

	// A recorded gateway deleted since cannot be restored, and says so.
	require.NoError(t, kube.AppsV1().Deployments("istio-gateways").Delete(ctx, "egress", metav1.DeleteOptions{}))
	rep, err = upgrade.Execute(ctx, upgrade.Env{Kube: kube}, upgrade.Plan{Name: "back", Steps: []upgrade.Step{
		upgrade.RestoreState(upgrade.RestoreStateOptions{Name: "gw"}),
	}})
	require.NoError(t, err)
	var skipped []string
	for _, c := range rep.Steps[0].Changes {
		if c.Action == revkit.ActionSkip {
			skipped = append(skipped, c.Object.Name+": "+c.Reason)
		}
	}
	assert.Equal(t, []string{"egress: recorded gateway no longer exists: cannot restore it"}, skipped)
}

// A rollback uninstalls the canary revision only if the plan installed it:
// a revision recorded as installed before the plan is kept.
func TestUninstallAddedKeepsARevisionInstalledBefore(t *testing.T) {
	for _, tc := range []struct {
		name      string
		installed bool // 1-25-0 installed before the record
		wantGone  bool
	}{
		{name: "installed before the plan: kept", installed: true, wantGone: false},
		{name: "added by the plan: uninstalled", installed: false, wantGone: true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := revkittest.NewCluster().WithRevision("1-24-0")
			if tc.installed {
				c = c.WithRevision("1-25-0")
			}
			kube := c.Kube()
			_, err := upgrade.Execute(ctx, upgrade.Env{Kube: kube}, upgrade.Plan{Name: "rec", Steps: []upgrade.Step{
				upgrade.RecordState(upgrade.RecordStateOptions{Name: "rec"})}})
			require.NoError(t, err)
			if !tc.installed {
				// The plan installs it after the record.
				for _, o := range revkittest.NewCluster().WithRevision("1-25-0").Objects() {
					if err := kube.Tracker().Add(o); err != nil {
						require.True(t, apierrors.IsAlreadyExists(err), err) // the shared namespace
					}
				}
			}
			_, err = upgrade.Execute(ctx, upgrade.Env{Kube: kube}, upgrade.Plan{Name: "rollback", Steps: []upgrade.Step{
				upgrade.UninstallAdded(upgrade.UninstallAddedOptions{State: "rec", UninstallOptions: revision.UninstallOptions{Revision: "1-25-0", Force: true}}),
			}})
			require.NoError(t, err)
			revs, err := revision.List(ctx, kube, revision.ListOptions{})
			require.NoError(t, err)
			var names []string
			for _, r := range revs {
				names = append(names, r.Name)
			}
			assert.Equal(t, tc.wantGone, !slices.Contains(names, "1-25-0"), "revisions left: %v", names)
			assert.Contains(t, names, "1-24-0")
		})
	}
	assert.ErrorIs(t, upgrade.UninstallAdded(upgrade.UninstallAddedOptions{UninstallOptions: revision.UninstallOptions{Revision: "1-25-0"}}).(upgrade.Validator).Validate(),
		revkit.ErrInvalidInput, "the record must be named")
}

// With a recorded state the rollback restores the gateways from the record
// (no move to From) and uninstalls To only if the plan added it.
func TestRecordedRollbackPlanShape(t *testing.T) {
	opts := canaryOpts()
	opts.RecordState = true
	p, err := upgrade.Rollback(ctx, fleetCluster().Kube(), opts)
	require.NoError(t, err)
	assert.Equal(t, []string{"precheck", "restore-state", "restart-workloads", "verify-pods", "remove-canary-gateways 1-25-0", "uninstall-revision 1-25-0"}, stepNames(p))
	var kinds []upgrade.StepKind
	for _, s := range p.Steps {
		kinds = append(kinds, upgrade.KindOf(s))
	}
	assert.Equal(t, []upgrade.StepKind{upgrade.KindPrecheck, upgrade.KindRestoreState, upgrade.KindRestartWorkloads, upgrade.KindVerifyPods,
		upgrade.KindRemoveCanaryGateways, upgrade.KindUninstallAdded}, kinds)
	pre := p.Steps[0].(upgrade.InputReporter).Inputs().(verify.PrecheckOptions).Permissions
	for _, u := range verify.UninstallPermissions("1-25-0", "") {
		assert.Contains(t, pre, u, "the rollback's precheck covers the uninstall of To's own objects")
	}
}
