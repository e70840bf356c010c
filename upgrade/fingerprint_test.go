package upgrade_test

import (
	"context"
	"log/slog"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"

	"github.com/revkit/revkit"
	"github.com/revkit/revkit/namespace"
	"github.com/revkit/revkit/revision"
	"github.com/revkit/revkit/upgrade"
)

// fingerprintPlan is a plan whose every input a case below changes.
func fingerprintPlan(change func(*revision.InstallOptions, *namespace.RestartOptions, *[]upgrade.Step)) upgrade.Plan {
	in := revision.InstallOptions{Revision: "1-25-0",
		Chart:  revision.ChartSource{Ref: "oci://example.com/istio/istiod", Version: "1.25.0"},
		Values: map[string]any{"pilot": map[string]any{"resources": map[string]any{"cpu": "500m"}}, "global": map[string]any{"hub": "a"}},
		Wait:   true, Timeout: 5 * time.Minute}
	rs := namespace.RestartOptions{Selection: namespace.Selection{Namespaces: []string{"shop", "blog"}},
		Target: "prod-canary", OnlyStale: true, Wait: true, Timeout: 10 * time.Minute}
	onFailure := []upgrade.Step{upgrade.Uninstall(revision.UninstallOptions{Revision: "1-25-0"})}
	if change != nil {
		change(&in, &rs, &onFailure)
	}
	return upgrade.Plan{Name: "canary", Steps: []upgrade.Step{upgrade.InstallRevision(in), upgrade.RolloutRestart(rs)},
		OnFailure: onFailure}
}

func TestFingerprintCoversEveryInput(t *testing.T) {
	base := upgrade.Fingerprint(fingerprintPlan(nil))
	assert.Equal(t, base, upgrade.Fingerprint(fingerprintPlan(nil)), "same inputs, same fingerprint")

	same := map[string]func(*revision.InstallOptions, *namespace.RestartOptions, *[]upgrade.Step){
		// The plan's own settings (dry run, callbacks, logger) are not inputs
		// of a step: Execute replaces them.
		"callbacks and logger": func(in *revision.InstallOptions, rs *namespace.RestartOptions, _ *[]upgrade.Step) {
			in.Common = revkit.Common{OnEvent: func(revkit.Event) {}, Logger: slog.Default()}
			rs.Common = revkit.Common{DryRun: revkit.DryRunServer}
		},
		"values in another map order": func(in *revision.InstallOptions, _ *namespace.RestartOptions, _ *[]upgrade.Step) {
			in.Values = map[string]any{"global": map[string]any{"hub": "a"}, "pilot": map[string]any{"resources": map[string]any{"cpu": "500m"}}}
		},
	}
	for name, change := range same {
		t.Run("same/"+name, func(t *testing.T) {
			assert.Equal(t, base, upgrade.Fingerprint(fingerprintPlan(change)))
		})
	}

	differs := map[string]func(*revision.InstallOptions, *namespace.RestartOptions, *[]upgrade.Step){
		"chart version": func(in *revision.InstallOptions, _ *namespace.RestartOptions, _ *[]upgrade.Step) {
			in.Chart.Version = "1.25.1"
		},
		"a nested value": func(in *revision.InstallOptions, _ *namespace.RestartOptions, _ *[]upgrade.Step) {
			in.Values["pilot"].(map[string]any)["resources"].(map[string]any)["cpu"] = "1"
		},
		"install timeout": func(in *revision.InstallOptions, _ *namespace.RestartOptions, _ *[]upgrade.Step) {
			in.Timeout = time.Minute
		},
		"restart timeout": func(_ *revision.InstallOptions, rs *namespace.RestartOptions, _ *[]upgrade.Step) {
			rs.Timeout = time.Minute
		},
		"restart selection": func(_ *revision.InstallOptions, rs *namespace.RestartOptions, _ *[]upgrade.Step) {
			rs.Selection.Namespaces = []string{"blog", "shop"}
		},
		"restarted-since": func(_ *revision.InstallOptions, rs *namespace.RestartOptions, _ *[]upgrade.Step) {
			rs.RestartedSince = time.Date(2026, 12, 1, 0, 0, 0, 0, time.UTC)
		},
		"on-failure step options": func(_ *revision.InstallOptions, _ *namespace.RestartOptions, of *[]upgrade.Step) {
			*of = []upgrade.Step{upgrade.Uninstall(revision.UninstallOptions{Revision: "1-25-0", Force: true})}
		},
		"no on-failure step": func(_ *revision.InstallOptions, _ *namespace.RestartOptions, of *[]upgrade.Step) {
			*of = nil
		},
		"a custom on-failure step": func(_ *revision.InstallOptions, _ *namespace.RestartOptions, of *[]upgrade.Step) {
			*of = append(*of, upgrade.Func("notify", "", func(context.Context, upgrade.Env) (upgrade.Result, error) {
				return upgrade.Result{}, nil
			}))
		},
	}
	seen := map[string]string{base: "base"}
	for name, change := range differs {
		t.Run("differs/"+name, func(t *testing.T) {
			fp := upgrade.Fingerprint(fingerprintPlan(change))
			assert.NotEqual(t, base, fp)
			if other, dup := seen[fp]; dup {
				t.Errorf("same fingerprint as %q", other)
			}
			seen[fp] = name
		})
	}
}

// inputStep is a custom step that reports its inputs.
type inputStep struct{ batch []string }

func (s inputStep) Name() string        { return "custom" }
func (s inputStep) Description() string { return "a custom step" }
func (s inputStep) Inputs() any         { return s.batch }
func (s inputStep) Run(context.Context, upgrade.Env) (upgrade.Result, error) {
	return upgrade.Result{}, nil
}

func TestFingerprintCustomStepInputs(t *testing.T) {
	fp := func(s upgrade.Step) string {
		return upgrade.Fingerprint(upgrade.Plan{Name: "p", Steps: []upgrade.Step{s}})
	}
	a, b := inputStep{[]string{"shop"}}, inputStep{[]string{"shop", "blog"}}
	assert.NotEqual(t, fp(a), fp(b), "a custom step's inputs count")
	assert.NotEqual(t, fp(upgrade.Named("n", a)), fp(upgrade.Named("n", b)), "through Named too")
	assert.Equal(t, fp(a), fp(inputStep{[]string{"shop"}}))
}

// A journal refuses to resume a plan whose values changed in between.
func TestJournalRefusesChangedValues(t *testing.T) {
	kube := canaryCluster().Kube()
	env := upgrade.Env{Kube: kube, Journal: &upgrade.Journal{Holder: "me"}}
	fail := upgrade.Func("fail", "", func(context.Context, upgrade.Env) (upgrade.Result, error) {
		return upgrade.Result{}, errBoom
	})
	plan := func(cpu string) upgrade.Plan {
		return upgrade.Plan{Name: "values", Steps: []upgrade.Step{
			upgrade.Named("install", upgrade.Func("noop", "", func(context.Context, upgrade.Env) (upgrade.Result, error) {
				return upgrade.Result{}, nil
			})),
			inputStep{[]string{cpu}}, fail}}
	}
	_, err := upgrade.Execute(ctx, env, plan("500m"))
	assert.ErrorIs(t, err, errBoom)
	_, err = upgrade.Execute(ctx, env, plan("1"))
	assert.ErrorIs(t, err, upgrade.ErrJournalMismatch)
}
