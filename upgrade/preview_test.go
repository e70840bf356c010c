package upgrade_test

import (
	"fmt"
	"sort"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/revkit/revkit"
	"github.com/revkit/revkit/gateway"
	"github.com/revkit/revkit/namespace"
	"github.com/revkit/revkit/revkittest"
	"github.com/revkit/revkit/upgrade"
)

// previewPlan is the standard canary plan through a new tag, gateways as
// canaries, and the old revision uninstalled at the end: every step after
// the first tag depends on an earlier one.
func previewPlan(t *testing.T, c *revkittest.Cluster, change ...func(*upgrade.CanaryOptions)) upgrade.Plan {
	t.Helper()
	opts := upgrade.CanaryOptions{
		From: "1-24-0", To: "1-25-0", CanaryTag: "prod-canary", StableTag: "prod-stable",
		Namespaces: namespace.Selection{Selector: "team=shop"}, BatchSize: 2, Gateways: gateway.Canary, RecordState: true,
	}
	for _, f := range change {
		f(&opts)
	}
	p, err := upgrade.Canary(ctx, c.Kube(), opts)
	require.NoError(t, err)
	return p
}

func changeSet(changes []revkit.Change) []string {
	var out []string
	for _, c := range changes {
		if c.Action.Changed() {
			out = append(out, fmt.Sprintf("%s %s %s/%s", c.Action, c.Object.Kind, c.Object.Namespace, c.Object.Name))
		}
	}
	sort.Strings(out)
	return out
}

func liveWrites(kube revkittest.Faker) []string {
	var out []string
	for _, w := range revkittest.Writes(kube) {
		if !strings.Contains(w, "selfsubjectaccessreviews") { // access reviews only ask
			out = append(out, w)
		}
	}
	return out
}

// The standard canary plan fails its own plain dry run (the namespaces move
// to a tag the dry run did not create) but previews to the end, without a
// write to the cluster, and lists what the plan changes object by object.
func TestPreviewComposesTheCanaryPlan(t *testing.T) {
	live := fleetCluster().Kube()
	plan := previewPlan(t, fleetCluster())

	_, err := upgrade.Execute(ctx, upgrade.Env{Kube: live, Common: revkit.Common{DryRun: revkit.DryRunClient}}, plan)
	require.ErrorIs(t, err, revkit.ErrNotFound, "a plain dry run cannot move namespaces to a tag it did not create")

	var events int
	rep, err := upgrade.Preview(ctx, live, plan, upgrade.PreviewOptions{Common: revkit.Common{OnEvent: func(revkit.Event) { events++ }}})
	require.NoError(t, err, "%s", rep)
	assert.Empty(t, liveWrites(live), "a preview only reads the cluster")
	assert.Equal(t, revkit.DryRunClient, rep.DryRun)
	assert.Positive(t, events)

	got := changeSet(rep.Changes())
	for _, want := range []string{
		"create ConfigMap istio-system/" + upgrade.StateName(plan.Name),
		"create MutatingWebhookConfiguration /istio-revision-tag-prod-canary",
		"update Namespace /a", "update Namespace /b", "update Namespace /c",
		"update Deployment a/web",
		"create Deployment istio-ingress/ingressgateway-1-25-0",
		"update MutatingWebhookConfiguration /istio-revision-tag-prod-stable",
		"delete MutatingWebhookConfiguration /istio-sidecar-injector-1-24-0",
		"delete Deployment istio-system/istiod-1-24-0",
	} {
		found := false
		for _, g := range got {
			found = found || strings.HasPrefix(g, want)
		}
		assert.True(t, found, "the preview lists %q; it lists:\n%s", want, strings.Join(got, "\n"))
	}
	for _, s := range rep.Steps {
		assert.NotEqual(t, upgrade.Failed, s.Outcome, s.Name)
		if strings.HasPrefix(s.Name, "verify-pods") {
			assert.Equal(t, upgrade.Skipped, s.Outcome, "pods do not move in the copy")
		}
		if s.Name == "verify-webhooks" {
			assert.Equal(t, upgrade.Done, s.Outcome, "the webhooks as the plan leaves them are checked: %s", s.Detail)
		}
	}
}

// What the preview lists is what a real run then changes. (On the fake,
// pods do not move and rollouts do not progress, so both runs leave out the
// pod verification, the gateway canaries, whose wait would not end, and the
// uninstall, which the real run's unmoved pods would refuse.)
func TestPreviewMatchesARealRun(t *testing.T) {
	withoutPodChecks := func(p upgrade.Plan) upgrade.Plan {
		var steps []upgrade.Step
		for _, s := range p.Steps {
			if !strings.HasPrefix(s.Name(), "verify-pods") {
				steps = append(steps, s)
			}
		}
		p.Steps = steps
		return p
	}
	fakeable := func(o *upgrade.CanaryOptions) { o.Gateways, o.KeepOld = gateway.InPlace, true }
	live := fleetCluster().Kube()
	preview, err := upgrade.Preview(ctx, live, withoutPodChecks(previewPlan(t, fleetCluster(), fakeable)), upgrade.PreviewOptions{})
	require.NoError(t, err, "%s", preview)

	real := fleetCluster().Kube()
	rep, err := upgrade.Execute(ctx, upgrade.Env{Kube: real}, withoutPodChecks(previewPlan(t, fleetCluster(), fakeable)))
	require.NoError(t, err, "%s", rep)
	assert.Equal(t, changeSet(rep.Changes()), changeSet(preview.Changes()))
	assert.NotEmpty(t, changeSet(rep.Changes()))
}

// The whole plan — pod checks, gateway canaries and the uninstall
// included — previews exactly what it then changes on a simulated cluster,
// where pods move and rollouts progress: the preview's copy runs on the
// same simulation.
func TestPreviewMatchesASimulatedRun(t *testing.T) {
	live := fleetCluster().Kube()
	preview, err := upgrade.Preview(ctx, live, previewPlan(t, fleetCluster()), upgrade.PreviewOptions{})
	require.NoError(t, err, "%s", preview)
	assert.Empty(t, liveWrites(live))

	sim := fleetCluster().Simulate(revkittest.SimOptions{})
	rep, err := upgrade.Execute(ctx, upgrade.Env{Kube: sim.Kube()}, previewPlan(t, fleetCluster()))
	require.NoError(t, err, "%s", rep)
	assert.Equal(t, changeSet(rep.Changes()), changeSet(preview.Changes()))
	assert.Contains(t, changeSet(preview.Changes()), "delete MutatingWebhookConfiguration /istio-sidecar-injector-1-24-0",
		"the uninstall at the end sees every pod moved")
}

func TestPreviewRefusals(t *testing.T) {
	rep, err := upgrade.Preview(ctx, nil, upgrade.Plan{Steps: []upgrade.Step{upgrade.Pause(0)}}, upgrade.PreviewOptions{})
	assert.ErrorIs(t, err, revkit.ErrInvalidInput)
	require.NotNil(t, rep)
	assert.Equal(t, upgrade.NotRun, rep.Steps[0].Outcome)

	live := fleetCluster().Kube()
	revkittest.FailAlways(live, "list", "pods", revkittest.ConnectionRefused())
	_, err = upgrade.Preview(ctx, live, previewPlan(t, fleetCluster()), upgrade.PreviewOptions{})
	var op *revkit.OpError
	require.ErrorAs(t, err, &op)
	assert.Equal(t, "upgrade.Preview", op.Op)
}
