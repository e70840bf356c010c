package upgrade_test

import (
	"context"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/revkit/revkit"
	"github.com/revkit/revkit/revkittest"
	"github.com/revkit/revkit/upgrade"
)

// nopReleaser stands for helm.Client in plans that are built, not run.
type nopReleaser struct{}

func (nopReleaser) UpgradeRelease(context.Context, revkit.ReleaseOptions) (*revkit.ReleaseResult, error) {
	return &revkit.ReleaseResult{}, nil
}

func ambientOptions() upgrade.CanaryOptions {
	charts := func(v string) upgrade.AgentCharts {
		return upgrade.AgentCharts{CNI: &revkit.ChartSource{Path: "charts/" + v + "/istio-cni"},
			Ztunnel: &revkit.ChartSource{Path: "charts/" + v + "/ztunnel"}, ZtunnelValues: map[string]any{"tag": v}}
	}
	return upgrade.CanaryOptions{From: "1-24-0", To: "1-25-0", CanaryTag: "prod-canary", StableTag: "prod-stable",
		Ambient:           &upgrade.AmbientOptions{Releaser: nopReleaser{}, To: charts("1.25.0"), From: charts("1.24.0"), NodeByNode: true, Drain: true},
		RollbackOnFailure: true}
}

// An ambient mesh needs no namespace selected: its pods have no sidecar to
// restart. The agents come after the control plane, istio-cni before
// ztunnel; the rollback takes ztunnel back first.
func TestCanaryAmbientOrder(t *testing.T) {
	kube := revkittest.NewCluster().WithRevision("1-24-0").WithRevision("1-25-0").Kube()
	plan, err := upgrade.Canary(ctx, kube, ambientOptions())
	require.NoError(t, err)
	assert.Equal(t, []string{"precheck", "set-tag prod-canary→1-25-0", "upgrade-istio-cni 1-25-0", "upgrade-ztunnel 1-25-0",
		"set-tag prod-stable→1-25-0", "verify-webhooks", "uninstall-revision 1-24-0"}, stepNames(plan))
	assert.Equal(t, []string{"rollback: upgrade-ztunnel 1-24-0", "rollback: upgrade-istio-cni 1-24-0", "rollback: set-tag prod-stable→1-24-0"},
		stepNames(upgrade.Plan{Steps: plan.OnFailure}))
	for _, s := range plan.Steps[2:4] {
		assert.Equal(t, upgrade.KindUpgradeAgent, upgrade.KindOf(s))
	}
	assert.Contains(t, plan.Steps[3].Description(), "node by node with drain")

	// Saved and loaded, the agent steps get their Releaser back from Helm's
	// client (any Releaser given as LoadOptions.Releaser).
	sp, err := upgrade.Save(ctx, kube, plan)
	require.NoError(t, err)
	_, err = sp.Plan(upgrade.LoadOptions{})
	assert.ErrorIs(t, err, revkit.ErrInvalidInput, "an agent step without a Releaser")
	_, back := roundTrip(t, sp, upgrade.LoadOptions{Releaser: nopReleaser{}})
	assert.Equal(t, upgrade.Fingerprint(plan), upgrade.Fingerprint(back))
}

func TestCanaryAmbientRefusals(t *testing.T) {
	kube := revkittest.NewCluster().WithRevision("1-24-0").WithRevision("1-25-0").Kube()
	for _, tc := range []struct {
		name string
		edit func(*upgrade.AmbientOptions)
	}{
		{"no releaser", func(a *upgrade.AmbientOptions) { a.Releaser = nil }},
		{"no chart", func(a *upgrade.AmbientOptions) { a.To = upgrade.AgentCharts{} }},
		{"a chart with two sources", func(a *upgrade.AmbientOptions) { a.From.Ztunnel = &revkit.ChartSource{Path: "x", Ref: "oci://y"} }},
		{"negative timeout", func(a *upgrade.AmbientOptions) { a.NodeTimeout = -1 }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			o := ambientOptions()
			a := *o.Ambient
			tc.edit(&a)
			o.Ambient = &a
			_, err := upgrade.Canary(ctx, kube, o)
			assert.ErrorIs(t, err, revkit.ErrInvalidInput)
		})
	}
	// Without Ambient, selecting no namespace is still refused.
	o := ambientOptions()
	o.Ambient = nil
	_, err := upgrade.Canary(ctx, kube, o)
	assert.ErrorIs(t, err, revkit.ErrInvalidInput)
}
