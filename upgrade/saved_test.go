package upgrade_test

import (
	"context"
	"encoding/json"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"

	"github.com/revkit/revkit"
	"github.com/revkit/revkit/gateway"
	"github.com/revkit/revkit/namespace"
	"github.com/revkit/revkit/revision"
	"github.com/revkit/revkit/revkittest"
	"github.com/revkit/revkit/tag"
	"github.com/revkit/revkit/upgrade"
)

// roundTrip saves a plan, writes it as JSON, reads it back and rebuilds it.
func roundTrip(t *testing.T, sp *upgrade.SavedPlan, opts upgrade.LoadOptions) (*upgrade.SavedPlan, upgrade.Plan) {
	t.Helper()
	b, err := json.MarshalIndent(sp, "", "  ")
	require.NoError(t, err)
	var back upgrade.SavedPlan
	require.NoError(t, json.Unmarshal(b, &back))
	p, err := back.Plan(opts)
	require.NoError(t, err)
	return &back, p
}

// A saved standard canary plan comes back step for step with the same
// inputs: its fingerprint, which covers every input of every step, is the
// same.
func TestSavedPlanRoundTrip(t *testing.T) {
	kube := fleetCluster().Kube()
	plan := previewPlan(t, fleetCluster(), func(o *upgrade.CanaryOptions) {
		o.Gateways, o.RollbackOnFailure = gateway.InPlace, true
	})
	sp, err := upgrade.Save(ctx, kube, plan)
	require.NoError(t, err)
	assert.Empty(t, liveWrites(kube), "saving only reads")
	_, back := roundTrip(t, sp, upgrade.LoadOptions{})
	assert.Equal(t, upgrade.Fingerprint(plan), upgrade.Fingerprint(back))
	assert.Equal(t, plan.String(), back.String())
	for i, s := range back.Steps {
		assert.Equal(t, upgrade.KindOf(plan.Steps[i]), upgrade.KindOf(s), s.Name())
	}
	assert.Equal(t, map[string]string{"prod-canary": "", "prod-stable": "1-24-0"}, sp.Observed.Tags)
	assert.Equal(t, []string{"1-24-0", "1-25-0"}, sp.Observed.Revisions)
	require.Contains(t, sp.Observed.Namespaces, "a")
	assert.Equal(t, "istio.io/rev=prod-stable", sp.Observed.Namespaces["a"].String())
}

func savedTagPlan(t *testing.T) (*upgrade.SavedPlan, *revkittest.Cluster) {
	t.Helper()
	c := canaryCluster()
	plan := upgrade.Plan{Name: "move blog", Steps: []upgrade.Step{
		upgrade.SetTag(tag.SetOptions{Tag: "prod-canary", Revision: "1-25-0"}),
		upgrade.MigrateNamespace(namespace.MigrateOptions{Selection: namespace.Selection{Namespaces: []string{"blog"}}, Target: "prod-canary"}),
	}}
	sp, err := upgrade.Save(ctx, c.Kube(), plan)
	require.NoError(t, err)
	sp, _ = roundTrip(t, sp, upgrade.LoadOptions{})
	return sp, c
}

// A saved plan applies to the cluster it was saved from, and is refused,
// before any write, once a namespace it moves was relabelled in between.
func TestApplySavedPlan(t *testing.T) {
	t.Run("unchanged cluster", func(t *testing.T) {
		sp, c := savedTagPlan(t)
		kube := c.Kube()
		rep, err := upgrade.Apply(ctx, upgrade.Env{Kube: kube}, sp, upgrade.LoadOptions{})
		require.NoError(t, err, "%s", rep)
		inj, err := revkittest.NamespaceInjection(ctx, kube)
		require.NoError(t, err)
		assert.Equal(t, "istio.io/rev=prod-canary", inj["blog"])
	})
	t.Run("a namespace label changed", func(t *testing.T) {
		sp, c := savedTagPlan(t)
		kube := c.Kube()
		_, err := kube.CoreV1().Namespaces().Patch(ctx, "blog", types.MergePatchType,
			[]byte(`{"metadata":{"labels":{"istio.io/rev":"1-25-0"}}}`), metav1.PatchOptions{})
		require.NoError(t, err)
		kube.ClearActions()
		rep, err := upgrade.Apply(ctx, upgrade.Env{Kube: kube}, sp, upgrade.LoadOptions{})
		var drift *upgrade.DriftError
		require.ErrorAs(t, err, &drift)
		assert.ErrorIs(t, err, upgrade.ErrDrift)
		assert.Equal(t, []string{"namespace blog: istio.io/rev=prod-stable → istio.io/rev=1-25-0"}, drift.Changes)
		require.NotNil(t, rep)
		assert.Equal(t, upgrade.NotRun, rep.Steps[0].Outcome)
		assert.Empty(t, revkittest.Writes(kube))
	})
	t.Run("a tag was created in between", func(t *testing.T) {
		sp, c := savedTagPlan(t)
		kube := c.Kube()
		_, err := tag.Set(ctx, kube, tag.SetOptions{Tag: "prod-canary", Revision: "1-24-0"})
		require.NoError(t, err)
		_, err = upgrade.Apply(ctx, upgrade.Env{Kube: kube}, sp, upgrade.LoadOptions{})
		var drift *upgrade.DriftError
		require.ErrorAs(t, err, &drift)
		assert.Equal(t, []string{"tag prod-canary: (absent) → 1-24-0"}, drift.Changes)
	})
}

// Custom steps are given back by name, Helm configurations supplied again.
func TestSavedPlanCustomAndHelmSteps(t *testing.T) {
	kube := canaryCluster().Kube()
	notify := upgrade.Func("notify", "tell the team", func(context.Context, upgrade.Env) (upgrade.Result, error) {
		return upgrade.Result{}, nil
	})
	plan := upgrade.Plan{Name: "p", Steps: []upgrade.Step{
		notify,
		upgrade.InstallRevision(revision.InstallOptions{Revision: "1-26-0", Chart: revision.ChartSource{Path: "/charts/istiod"},
			Helm: memHelm()}),
		upgrade.Named("rename", upgrade.Pause(0)),
	}}
	sp, err := upgrade.Save(ctx, kube, plan)
	require.NoError(t, err)
	assert.Equal(t, upgrade.KindCustom, sp.Steps[0].Kind)
	assert.True(t, sp.Steps[1].Helm)

	_, err = sp.Plan(upgrade.LoadOptions{Helm: memHelm()})
	assert.ErrorIs(t, err, revkit.ErrInvalidInput, "the custom step is missing")
	_, err = sp.Plan(upgrade.LoadOptions{Custom: map[string]upgrade.Step{"notify": notify}})
	assert.ErrorIs(t, err, revkit.ErrInvalidInput, "the Helm configuration is missing")
	back, err := sp.Plan(upgrade.LoadOptions{Custom: map[string]upgrade.Step{"notify": notify}, Helm: memHelm()})
	require.NoError(t, err)
	assert.Equal(t, upgrade.Fingerprint(plan), upgrade.Fingerprint(back))
	assert.Equal(t, "rename", back.Steps[2].Name())
	assert.Equal(t, upgrade.KindPause, upgrade.KindOf(back.Steps[2]))
}
