package upgrade_test

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/revkit/revkit"
	"github.com/revkit/revkit/gateway"
	"github.com/revkit/revkit/namespace"
	"github.com/revkit/revkit/revision"
	"github.com/revkit/revkit/revkittest"
	"github.com/revkit/revkit/upgrade"
	"github.com/revkit/revkit/verify"
)

func fleetCluster() *revkittest.Cluster {
	c := revkittest.NewCluster().WithRevision("1-24-0").WithRevision("1-25-0").
		WithTag("prod-stable", "1-24-0").
		WithNamespace("istio-ingress").WithGateway("istio-ingress", "ingressgateway", "1-24-0")
	for _, ns := range []string{"a", "b", "c"} {
		c = c.WithNamespace(ns, revkittest.Rev("prod-stable"), revkittest.Label("team", "shop")).
			WithDeployment(ns, "web", revkittest.OnRevision("1-24-0"))
	}
	return c
}

func canaryOpts() upgrade.CanaryOptions {
	return upgrade.CanaryOptions{
		From: "1-24-0", To: "1-25-0", CanaryTag: "prod-canary", StableTag: "prod-stable",
		Namespaces: namespace.Selection{Selector: "team=shop"}, BatchSize: 2,
		Gateways: gateway.Canary,
	}
}

func stepNames(p upgrade.Plan) []string {
	var out []string
	for _, s := range p.Steps {
		out = append(out, s.Name())
	}
	return out
}

func TestCanaryPlanShape(t *testing.T) {
	kube := fleetCluster().Kube()
	p, err := upgrade.Canary(ctx, kube, canaryOpts())
	require.NoError(t, err)
	assert.Equal(t, []string{
		"precheck",
		"set-tag prod-canary→1-25-0",
		"migrate-namespaces 1/2", "restart-workloads 1/2", "verify-pods 1/2",
		"migrate-namespaces 2/2", "restart-workloads 2/2", "verify-pods 2/2",
		"move-gateways 1-25-0",
		"set-tag prod-stable→1-25-0",
		"promote-gateways 1-25-0", "remove-canary-gateways 1-25-0",
		"verify-webhooks",
		"uninstall-revision 1-24-0",
	}, stepNames(p))
	assert.Empty(t, p.OnFailure)
	require.NoError(t, p.Validate())
	revkittest.NoWrites(t, kube)

	opts := canaryOpts()
	opts.BatchSize, opts.BatchPercent, opts.Pause, opts.RollbackOnFailure, opts.KeepOld = 0, 50, time.Second, true, true
	opts.Gates = []upgrade.Step{upgrade.Func("error-rate", "error rate below 1%", func(context.Context, upgrade.Env) (upgrade.Result, error) {
		return upgrade.Result{}, nil
	})}
	p, err = upgrade.Canary(ctx, kube, opts)
	require.NoError(t, err)
	names := stepNames(p)
	assert.Contains(t, names, "pause 2/2")
	assert.Contains(t, names, "error-rate 1/2")
	assert.NotContains(t, names, "uninstall-revision 1-24-0", "KeepOld")
	assert.Equal(t, []string{
		"rollback: set-tag prod-stable→1-24-0",
		"rollback: migrate-namespaces",
		"rollback: restart-workloads",
		"rollback: verify-pods",
		"rollback: move-gateways 1-24-0",
		"rollback: remove-canary-gateways 1-25-0",
	}, stepNames(upgrade.Plan{Steps: p.OnFailure}), "the on-failure rollback keeps the canary installed")
	require.NoError(t, p.Validate())
	assert.Contains(t, p.String(), "canary 1-24-0 → 1-25-0")
}

// On a fake cluster restarted pods never come back on the new revision, so
// the first batch's verification is a failing health gate: the plan must
// stop there, name the step, and touch nothing after it.
func TestCanaryStopsAtFailedGate(t *testing.T) {
	kube := fleetCluster().Kube()
	p, err := upgrade.Canary(ctx, kube, canaryOpts())
	require.NoError(t, err)
	kube.ClearActions()
	rep, err := upgrade.Execute(ctx, upgrade.Env{Kube: kube}, p)
	require.Error(t, err)
	assert.ErrorIs(t, err, revkit.ErrVerificationFailed)
	failed := rep.Failed()
	require.NotNil(t, failed)
	assert.Equal(t, "verify-pods 1/2", failed.Name)
	assert.True(t, failed.GateFailed())
	after := false
	for _, s := range rep.Steps {
		if after {
			assert.Equal(t, upgrade.NotRun, s.Outcome, s.Name)
		}
		if s.Name == failed.Name {
			after = true
		}
	}
	for _, w := range revkittest.Writes(kube) {
		assert.False(t, strings.Contains(w, "namespaces c") || strings.Contains(w, "deployments c/"),
			"batch 2 (namespace c) must not be touched: %s", w)
		assert.NotContains(t, w, "istio-revision-tag-prod-stable", "no promotion after a failed gate")
	}
	inj, err := revkittest.NamespaceInjection(ctx, kube)
	require.NoError(t, err)
	assert.Equal(t, "istio.io/rev=prod-canary", inj["a"])
	assert.Equal(t, "istio.io/rev=prod-stable", inj["c"])
}

func TestCanaryRollbackOnFailure(t *testing.T) {
	kube := fleetCluster().Kube()
	opts := canaryOpts()
	opts.RollbackOnFailure = true
	p, err := upgrade.Canary(ctx, kube, opts)
	require.NoError(t, err)
	rep, err := upgrade.Execute(ctx, upgrade.Env{Kube: kube}, p)
	require.Error(t, err)
	require.NotEmpty(t, rep.OnFailure)
	assert.Equal(t, upgrade.Done, rep.OnFailure[1].Outcome, "namespaces went back: %+v", rep.OnFailure[1])
	inj, err := revkittest.NamespaceInjection(ctx, kube)
	require.NoError(t, err)
	for _, ns := range []string{"a", "b", "c"} {
		assert.Equal(t, "istio.io/rev=prod-stable", inj[ns], ns)
	}
}

func TestRollbackPlan(t *testing.T) {
	// The canary revision is installed and tagged, a gateway canary runs,
	// but the namespaces are (back) on the stable tag.
	c := fleetCluster().WithTag("prod-canary", "1-25-0")
	kube := c.Kube()
	_, err := gateway.Move(ctx, kube, gateway.MoveOptions{Target: "1-25-0", Mode: gateway.Canary})
	require.NoError(t, err)

	p, err := upgrade.Rollback(ctx, kube, canaryOpts())
	require.NoError(t, err)
	assert.Equal(t, []string{
		"precheck",
		"set-tag prod-stable→1-24-0",
		"migrate-namespaces", "restart-workloads", "verify-pods",
		"move-gateways 1-24-0", "remove-canary-gateways 1-25-0",
		"remove-tag prod-canary",
		"uninstall-revision 1-25-0",
	}, stepNames(p))
	rep, err := upgrade.Execute(ctx, upgrade.Env{Kube: kube}, p)
	require.NoError(t, err, "%s", rep)
	_, err = kube.AppsV1().Deployments("istio-ingress").Get(ctx, "ingressgateway-1-25-0", metav1.GetOptions{})
	assert.Error(t, err, "the canary gateway is gone")
	_, err = kube.AppsV1().Deployments("istio-ingress").Get(ctx, "ingressgateway", metav1.GetOptions{})
	assert.NoError(t, err, "the original gateway survives the rollback")
	_, err = kube.AdmissionregistrationV1().MutatingWebhookConfigurations().Get(ctx, "istio-sidecar-injector-1-25-0", metav1.GetOptions{})
	assert.Error(t, err, "the canary revision is uninstalled")
}

func TestCanaryRefusals(t *testing.T) {
	kube := fleetCluster().Kube()
	for name, mutate := range map[string]func(*upgrade.CanaryOptions){
		"same revisions":       func(o *upgrade.CanaryOptions) { o.To = o.From },
		"dotted revision":      func(o *upgrade.CanaryOptions) { o.To = "1.25.0" },
		"empty from":           func(o *upgrade.CanaryOptions) { o.From = "" },
		"tag named a revision": func(o *upgrade.CanaryOptions) { o.CanaryTag = "1-25-0" },
		"same tags":            func(o *upgrade.CanaryOptions) { o.CanaryTag = o.StableTag },
		"bad percent":          func(o *upgrade.CanaryOptions) { o.BatchPercent = 101 },
		"bad gateways":         func(o *upgrade.CanaryOptions) { o.Gateways = "sideways" },
		"no namespaces":        func(o *upgrade.CanaryOptions) { o.Namespaces = namespace.Selection{Selector: "team=nobody"} },
		"bad selector":         func(o *upgrade.CanaryOptions) { o.Namespaces = namespace.Selection{Selector: "a in (("} },
	} {
		t.Run(name, func(t *testing.T) {
			o := canaryOpts()
			mutate(&o)
			_, err := upgrade.Canary(ctx, kube, o)
			assert.ErrorIs(t, err, revkit.ErrInvalidInput)
			_, err = upgrade.Rollback(ctx, kube, o)
			assert.ErrorIs(t, err, revkit.ErrInvalidInput)
		})
	}
	revkittest.NoWrites(t, kube)
}

func TestPauseStep(t *testing.T) {
	s := upgrade.Pause(time.Hour)
	cctx, cancel := context.WithCancel(ctx)
	cancel()
	_, err := s.Run(cctx, upgrade.Env{})
	assert.True(t, errors.Is(err, context.Canceled))
	res, err := s.Run(ctx, upgrade.Env{Common: revkit.Common{DryRun: revkit.DryRunClient}})
	require.NoError(t, err)
	assert.Equal(t, upgrade.Skipped, res.Outcome)
	res, err = upgrade.Pause(time.Millisecond).Run(ctx, upgrade.Env{})
	require.NoError(t, err)
	assert.Equal(t, upgrade.Done, res.Outcome)
	assert.Error(t, upgrade.Pause(-1).(upgrade.Validator).Validate())
}

func TestPrecheckStepDenied(t *testing.T) {
	kube := fleetCluster().Deny("patch", "", "namespaces").Kube()
	rep, err := upgrade.Execute(ctx, upgrade.Env{Kube: kube}, upgrade.Plan{Steps: []upgrade.Step{
		upgrade.Precheck(verifyPrecheckDefaults()),
	}})
	require.Error(t, err)
	assert.Contains(t, rep.Steps[0].Detail, "patch namespaces")
}

// With RollbackFailedBatch a failed gate moves just its batch back.
func TestCanaryRollsBackTheFailedBatch(t *testing.T) {
	kube := fleetCluster().Kube()
	opts := canaryOpts()
	opts.BatchSize, opts.RollbackFailedBatch = 1, true
	gateFails := upgrade.Func("health", "fails on the second batch", func(_ context.Context, env upgrade.Env) (upgrade.Result, error) {
		return upgrade.Result{}, nil
	})
	opts.Gates = []upgrade.Step{gateFails}
	p, err := upgrade.Canary(ctx, kube, opts)
	require.NoError(t, err)
	// On the fake, restarted pods keep the old sidecar: drop the pod
	// verification so that batch 1 passes, and fail the gate of batch 2.
	var steps []upgrade.Step
	for _, s := range p.Steps {
		switch {
		case strings.HasPrefix(s.Name(), "verify-pods"):
		case s.Name() == "health 2/3":
			steps = append(steps, upgrade.Named(s.Name(), upgrade.Func("x", "failing gate", func(context.Context, upgrade.Env) (upgrade.Result, error) {
				return upgrade.Result{}, revkit.ErrVerificationFailed
			})))
		default:
			steps = append(steps, s)
		}
	}
	p.Steps = steps
	rep, err := upgrade.Execute(ctx, upgrade.Env{Kube: kube}, p)
	require.Error(t, err)
	assert.Equal(t, "health 2/3", rep.Failed().Name)
	require.Len(t, rep.OnFailure, 1)
	assert.Equal(t, upgrade.Done, rep.OnFailure[0].Outcome, "%+v", rep.OnFailure[0])
	assert.Contains(t, rep.OnFailure[0].Detail, "batch 2/3 (b) back on prod-stable")
	inj, err := revkittest.NamespaceInjection(ctx, kube)
	require.NoError(t, err)
	assert.Equal(t, "istio.io/rev=prod-canary", inj["a"], "batch 1 passed and stays")
	assert.Equal(t, "istio.io/rev=prod-stable", inj["b"], "the failed batch went back")
	assert.Equal(t, "istio.io/rev=prod-stable", inj["c"], "batch 3 never moved")

	// A failure outside a batch leaves everything.
	res, err := p.OnFailure[0].Run(ctx, upgrade.Env{Kube: kube, FailedStep: "precheck"})
	require.NoError(t, err)
	assert.Equal(t, upgrade.Skipped, res.Outcome)
}

// A canary that moves gateways as canaries checks, in its precheck, that it
// may create and delete Deployments in the gateways' namespaces.
func TestCanaryPrecheckCoversGatewayCanaries(t *testing.T) {
	kube := fleetCluster().Kube()
	opts := canaryOpts()
	opts.GatewayNamespaces = []string{"istio-ingress"}
	p, err := upgrade.Canary(ctx, kube, opts)
	require.NoError(t, err)
	require.Equal(t, upgrade.KindPrecheck, upgrade.KindOf(p.Steps[0]))
	pre := p.Steps[0].(upgrade.InputReporter).Inputs().(verify.PrecheckOptions)
	for _, want := range verify.GatewayCanaryPermissions([]string{"istio-ingress"}) {
		assert.Contains(t, pre.Permissions, want)
	}
	assert.Contains(t, pre.Permissions, verify.Permission{Verb: "patch", Resource: "namespaces"}, "and the defaults")

	opts.Gateways = gateway.InPlace
	p, err = upgrade.Canary(ctx, kube, opts)
	require.NoError(t, err)
	inPlace := p.Steps[0].(upgrade.InputReporter).Inputs().(verify.PrecheckOptions).Permissions
	for _, g := range verify.GatewayCanaryPermissions([]string{"istio-ingress"}) {
		assert.NotContains(t, inPlace, g, "in place: no gateway canary permissions")
	}
	for _, u := range verify.UninstallPermissions("1-24-0", "") {
		assert.Contains(t, inPlace, u, "the plan uninstalls From: its own ClusterRoles, by name")
	}
	opts.KeepOld = true
	p, err = upgrade.Canary(ctx, kube, opts)
	require.NoError(t, err)
	kept := p.Steps[0].(upgrade.InputReporter).Inputs().(verify.PrecheckOptions).Permissions
	for _, u := range kept {
		assert.False(t, u.Verb == "delete" && u.Group == "rbac.authorization.k8s.io", "KeepOld: no delete of RBAC objects: %v", u)
	}
	assert.ElementsMatch(t, verify.DefaultPermissions(""), kept, "KeepOld, in place, no install: the defaults alone")
}

// A plan that installs nothing still uninstalls a Helm-installed revision
// through its release when given CanaryOptions.Helm — From at the end of
// the canary, To in the rollback — and its precheck asks for the Helm
// uninstall's permissions.
func TestCanaryUninstallsThroughHelmWithoutInstall(t *testing.T) {
	kube := fleetCluster().Kube()
	h := memHelm()
	opts := canaryOpts()
	opts.Install, opts.Helm = nil, h
	uninstallHelm := func(p upgrade.Plan) []revision.Installer {
		var out []revision.Installer
		for _, s := range p.Steps {
			if upgrade.KindOf(s) == upgrade.KindUninstallRevision {
				out = append(out, s.(upgrade.InputReporter).Inputs().(revision.UninstallOptions).Helm)
			}
		}
		return out
	}
	p, err := upgrade.Canary(ctx, kube, opts)
	require.NoError(t, err)
	assert.Equal(t, []revision.Installer{h}, uninstallHelm(p), "the canary uninstalls From with Helm")
	pre := p.Steps[0].(upgrade.InputReporter).Inputs().(verify.PrecheckOptions)
	for _, want := range verify.HelmUninstallPermissions("") {
		assert.Contains(t, pre.Permissions, want)
	}
	back, err := upgrade.Rollback(ctx, kube, opts)
	require.NoError(t, err)
	assert.Equal(t, []revision.Installer{h}, uninstallHelm(back), "the rollback uninstalls To with Helm")

	opts.Helm = nil
	p, err = upgrade.Canary(ctx, kube, opts)
	require.NoError(t, err)
	assert.Equal(t, []revision.Installer{nil}, uninstallHelm(p), "without Helm, revision.Uninstall decides (and refuses a release's objects)")
}
