package upgrade_test

import (
	"context"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"k8s.io/client-go/kubernetes"

	"github.com/revkit/revkit"
	"github.com/revkit/revkit/namespace"
	"github.com/revkit/revkit/revision"
	"github.com/revkit/revkit/tag"
	"github.com/revkit/revkit/upgrade"
	"github.com/revkit/revkit/verify"
)

// TestStepValidationMatchesOperations: every step refuses the options its
// operation refuses, before any step of the plan runs and before any
// request; the operation, called directly, refuses them too.
func TestStepValidationMatchesOperations(t *testing.T) {
	sel := namespace.Selection{Namespaces: []string{"shop"}}
	static := verify.StaticSource{Rev: "1-25-0", JSON: []byte("[]")}
	tests := []struct {
		name   string
		step   upgrade.Step
		direct func(kube kubernetes.Interface) error
		field  string
	}{
		{"set-tag: dotted revision", upgrade.SetTag(tag.SetOptions{Tag: "prod", Revision: "1.25.0"}),
			func(k kubernetes.Interface) error {
				_, err := tag.Set(ctx, k, tag.SetOptions{Tag: "prod", Revision: "1.25.0"})
				return err
			}, "revision"},
		{"set-tag: empty tag", upgrade.SetTag(tag.SetOptions{Revision: "1-25-0"}),
			func(k kubernetes.Interface) error {
				_, err := tag.Set(ctx, k, tag.SetOptions{Revision: "1-25-0"})
				return err
			}, "tag"},
		{"set-tag: tag not a DNS label", upgrade.SetTag(tag.SetOptions{Tag: "Prod_Canary", Revision: "1-25-0"}),
			func(k kubernetes.Interface) error {
				_, err := tag.Set(ctx, k, tag.SetOptions{Tag: "Prod_Canary", Revision: "1-25-0"})
				return err
			}, "tag"},
		{"migrate: no target", upgrade.MigrateNamespace(namespace.MigrateOptions{Selection: sel}),
			func(k kubernetes.Interface) error {
				_, err := namespace.Migrate(ctx, k, namespace.MigrateOptions{Selection: sel})
				return err
			}, "Target"},
		{"migrate: dotted target", upgrade.MigrateNamespace(namespace.MigrateOptions{Selection: sel, Target: "1.25.0"}),
			func(k kubernetes.Interface) error {
				_, err := namespace.Migrate(ctx, k, namespace.MigrateOptions{Selection: sel, Target: "1.25.0"})
				return err
			}, "Target"},
		{"migrate: no namespaces", upgrade.MigrateNamespace(namespace.MigrateOptions{Target: "1-25-0"}),
			func(k kubernetes.Interface) error {
				_, err := namespace.Migrate(ctx, k, namespace.MigrateOptions{Target: "1-25-0"})
				return err
			}, "Namespaces"},
		{"migrate: empty namespace name", upgrade.MigrateNamespace(namespace.MigrateOptions{Target: "1-25-0",
			Selection: namespace.Selection{Namespaces: []string{""}}}),
			func(k kubernetes.Interface) error {
				_, err := namespace.Migrate(ctx, k, namespace.MigrateOptions{Target: "1-25-0",
					Selection: namespace.Selection{Namespaces: []string{""}}})
				return err
			}, "Namespaces"},
		{"migrate: bad selector", upgrade.MigrateNamespace(namespace.MigrateOptions{Target: "1-25-0",
			Selection: namespace.Selection{Selector: "a in (b"}}),
			func(k kubernetes.Interface) error {
				_, err := namespace.Migrate(ctx, k, namespace.MigrateOptions{Target: "1-25-0",
					Selection: namespace.Selection{Selector: "a in (b"}})
				return err
			}, "Selector"},
		{"restart: no namespaces", upgrade.RolloutRestart(namespace.RestartOptions{}),
			func(k kubernetes.Interface) error {
				_, err := namespace.RolloutRestart(ctx, k, namespace.RestartOptions{})
				return err
			}, "Namespaces"},
		{"restart: only stale without target", upgrade.RolloutRestart(namespace.RestartOptions{Selection: sel, OnlyStale: true}),
			func(k kubernetes.Interface) error {
				_, err := namespace.RolloutRestart(ctx, k, namespace.RestartOptions{Selection: sel, OnlyStale: true})
				return err
			}, "Target"},
		{"restart: dotted target", upgrade.RolloutRestart(namespace.RestartOptions{Selection: sel, Target: "1.25.0"}),
			func(k kubernetes.Interface) error {
				_, err := namespace.RolloutRestart(ctx, k, namespace.RestartOptions{Selection: sel, Target: "1.25.0"})
				return err
			}, "Target"},
		{"restart: unknown kind", upgrade.RolloutRestart(namespace.RestartOptions{Selection: sel, Kinds: []namespace.Kind{"Pod"}}),
			func(k kubernetes.Interface) error {
				_, err := namespace.RolloutRestart(ctx, k, namespace.RestartOptions{Selection: sel, Kinds: []namespace.Kind{"Pod"}})
				return err
			}, "Kinds"},
		{"restart: bad workload selector", upgrade.RolloutRestart(namespace.RestartOptions{Selection: sel, WorkloadSelector: "="}),
			func(k kubernetes.Interface) error {
				_, err := namespace.RolloutRestart(ctx, k, namespace.RestartOptions{Selection: sel, WorkloadSelector: "="})
				return err
			}, "WorkloadSelector"},
		{"restart: negative timeout", upgrade.RolloutRestart(namespace.RestartOptions{Selection: sel, Timeout: -1}),
			func(k kubernetes.Interface) error {
				_, err := namespace.RolloutRestart(ctx, k, namespace.RestartOptions{Selection: sel, Timeout: -1})
				return err
			}, "Timeout"},
		{"uninstall: dotted revision", upgrade.Uninstall(revision.UninstallOptions{Revision: "1.24.0"}),
			func(k kubernetes.Interface) error {
				_, err := revision.Uninstall(ctx, k, revision.UninstallOptions{Revision: "1.24.0"})
				return err
			}, "revision"},
		{"uninstall: no revision", upgrade.Uninstall(revision.UninstallOptions{}),
			func(k kubernetes.Interface) error {
				_, err := revision.Uninstall(ctx, k, revision.UninstallOptions{})
				return err
			}, "revision"},
		{"verify-pods: bad namespace", upgrade.VerifyPods(verify.PodsOptions{Namespaces: []string{"Shop"}}),
			func(k kubernetes.Interface) error {
				_, err := verify.Pods(ctx, k, verify.PodsOptions{Namespaces: []string{"Shop"}})
				return err
			}, "Namespaces"},
		{"verify-pods: empty namespace", upgrade.VerifyPods(verify.PodsOptions{Namespaces: []string{""}}),
			func(k kubernetes.Interface) error {
				_, err := verify.Pods(ctx, k, verify.PodsOptions{Namespaces: []string{""}})
				return err
			}, "Namespaces"},
		{"verify-pods: bad selector", upgrade.VerifyPods(verify.PodsOptions{Selector: "!"}),
			func(k kubernetes.Interface) error {
				_, err := verify.Pods(ctx, k, verify.PodsOptions{Selector: "!"})
				return err
			}, "Selector"},
		{"verify-pods: dotted target", upgrade.VerifyPods(verify.PodsOptions{Target: "1.25.0"}),
			func(k kubernetes.Interface) error {
				_, err := verify.Pods(ctx, k, verify.PodsOptions{Target: "1.25.0"})
				return err
			}, "Target"},
		{"verify-pods: bad control-plane namespace", upgrade.VerifyPods(verify.PodsOptions{ControlPlaneNamespace: "istio_system"}),
			func(k kubernetes.Interface) error {
				_, err := verify.Pods(ctx, k, verify.PodsOptions{ControlPlaneNamespace: "istio_system"})
				return err
			}, "ControlPlaneNamespace"},
		{"verify-proxies: no source", upgrade.VerifyProxies(verify.ProxiesOptions{}),
			func(kubernetes.Interface) error {
				_, err := verify.Proxies(ctx, verify.ProxiesOptions{})
				return err
			}, "Sources"},
		{"verify-proxies: nil source", upgrade.VerifyProxies(verify.ProxiesOptions{Sources: []verify.SyncSource{static, nil}}),
			func(kubernetes.Interface) error {
				_, err := verify.Proxies(ctx, verify.ProxiesOptions{Sources: []verify.SyncSource{static, nil}})
				return err
			}, "Sources[1]"},
		{"verify-proxies: source of a dotted revision", upgrade.VerifyProxies(verify.ProxiesOptions{Sources: []verify.SyncSource{verify.StaticSource{Rev: "1.25.0"}}}),
			func(kubernetes.Interface) error {
				_, err := verify.Proxies(ctx, verify.ProxiesOptions{Sources: []verify.SyncSource{verify.StaticSource{Rev: "1.25.0"}}})
				return err
			}, "Sources[0].Revision"},
		{"verify-proxies: source without URL", upgrade.VerifyProxies(verify.ProxiesOptions{Sources: []verify.SyncSource{verify.HTTPSource{Rev: "1-25-0"}}}),
			func(kubernetes.Interface) error {
				_, err := verify.Proxies(ctx, verify.ProxiesOptions{Sources: []verify.SyncSource{verify.HTTPSource{Rev: "1-25-0"}}})
				return err
			}, ""},
		{"verify-proxies: dotted target", upgrade.VerifyProxies(verify.ProxiesOptions{Sources: []verify.SyncSource{static}, Target: "1.25.0"}),
			func(kubernetes.Interface) error {
				_, err := verify.Proxies(ctx, verify.ProxiesOptions{Sources: []verify.SyncSource{static}, Target: "1.25.0"})
				return err
			}, "Target"},
		{"verify-proxies: bad namespace", upgrade.VerifyProxies(verify.ProxiesOptions{Sources: []verify.SyncSource{static}, Namespaces: []string{"a.b"}}),
			func(kubernetes.Interface) error {
				_, err := verify.Proxies(ctx, verify.ProxiesOptions{Sources: []verify.SyncSource{static}, Namespaces: []string{"a.b"}})
				return err
			}, "Namespaces"},
		{"verify-webhooks: bad control-plane namespace", upgrade.VerifyWebhooks(verify.WebhooksOptions{ControlPlaneNamespace: "-x"}),
			func(k kubernetes.Interface) error {
				_, err := verify.Webhooks(ctx, k, verify.WebhooksOptions{ControlPlaneNamespace: "-x"})
				return err
			}, "ControlPlaneNamespace"},
		{"install-revision: dotted revision", upgrade.InstallRevision(revision.InstallOptions{Revision: "1.26.0"}), nil, "revision"},
		{"install-revision: bad control-plane namespace", upgrade.InstallRevision(revision.InstallOptions{Revision: "1-26-0", ControlPlaneNamespace: "Istio"}),
			nil, "ControlPlaneNamespace"},
		{"install-revision: no chart", upgrade.InstallRevision(revision.InstallOptions{Revision: "1-26-0", Helm: memHelm()}), nil, "Chart"},
		{"renamed step keeps its validation", upgrade.Named("tag-it", upgrade.SetTag(tag.SetOptions{Tag: "prod", Revision: "1.25.0"})), nil, "revision"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			v, ok := tt.step.(upgrade.Validator)
			require.True(t, ok, "operation steps validate")
			err := v.Validate()
			require.ErrorIs(t, err, revkit.ErrInvalidInput)
			if tt.field != "" {
				var iie *revkit.InvalidInputError
				require.ErrorAs(t, err, &iie)
				assert.Equal(t, tt.field, iie.Field)
			}

			if tt.direct != nil {
				kube := canaryCluster().Kube()
				assert.ErrorIs(t, tt.direct(kube), revkit.ErrInvalidInput, "the operation refuses the same input")
				assert.Empty(t, kube.Actions(), "the operation refuses it before any request")
			}

			kube := canaryCluster().Kube()
			ran := false
			first := upgrade.Func("first", "", func(context.Context, upgrade.Env) (upgrade.Result, error) {
				ran = true
				return upgrade.Result{}, nil
			})
			// The bad step is last and an on-failure step: it is still
			// refused before the first step runs.
			rep, err := upgrade.Execute(ctx, upgrade.Env{Kube: kube}, upgrade.Plan{
				Steps:     []upgrade.Step{first, upgrade.SetTag(tag.SetOptions{Tag: "prod-canary", Revision: "1-25-0"})},
				OnFailure: []upgrade.Step{tt.step},
			})
			assertNothingRan(t, rep)
			var ise *upgrade.InvalidStepError
			require.ErrorAs(t, err, &ise)
			assert.True(t, ise.OnFailure)
			assert.Equal(t, tt.step.Name(), ise.Step)
			assert.False(t, ran, "no step ran")
			assert.Empty(t, kube.Actions(), "nothing was sent to the cluster")
		})
	}
}

// TestStepValidationAcceptsWhatOperationsAccept: the steps are not stricter
// than their operations. Each step passes its own validation, and run on a
// fake cluster its operation does not refuse the input either (it may fail
// for other reasons, e.g. a tag that does not exist).
func TestStepValidationAcceptsWhatOperationsAccept(t *testing.T) {
	static := verify.StaticSource{Rev: "1-25-0", JSON: []byte("[]")}
	steps := []upgrade.Step{
		upgrade.SetTag(tag.SetOptions{Tag: "default", Revision: "1-25-0"}),
		upgrade.MigrateNamespace(namespace.MigrateOptions{Target: "prod-stable", Selection: namespace.Selection{Selector: "team=shop"}}),
		upgrade.RolloutRestart(namespace.RestartOptions{Selection: namespace.Selection{Namespaces: []string{"shop"}}}),
		upgrade.RolloutRestart(namespace.RestartOptions{Selection: namespace.Selection{Selector: "istio.io/rev"}, Target: "prod-stable",
			OnlyStale: true, Kinds: []namespace.Kind{namespace.Deployment, namespace.StatefulSet, namespace.DaemonSet},
			WorkloadSelector: "app!=legacy", Wait: true, Timeout: time.Second, PollInterval: time.Millisecond}),
		upgrade.Uninstall(revision.UninstallOptions{Revision: "1-24-0", Force: true, ControlPlaneNamespace: "istio-control"}),
		upgrade.VerifyPods(verify.PodsOptions{}),
		upgrade.VerifyPods(verify.PodsOptions{Namespaces: []string{"shop"}, Selector: "team", Target: "prod-stable", ControlPlaneNamespace: "istio-system"}),
		upgrade.VerifyProxies(verify.ProxiesOptions{Sources: []verify.SyncSource{static}, Target: "1-25-0", Namespaces: []string{"shop"}}),
		upgrade.VerifyWebhooks(verify.WebhooksOptions{ControlPlaneNamespace: "istio-system"}),
		upgrade.InstallRevision(revision.InstallOptions{Revision: "1-26-0", ControlPlaneNamespace: "istio-system", Chart: testChart, Helm: memHelm()}),
	}
	for _, s := range steps {
		t.Run(s.Name(), func(t *testing.T) {
			require.NoError(t, s.(upgrade.Validator).Validate())
			rep, err := upgrade.Execute(ctx, upgrade.Env{Kube: canaryCluster().Kube()}, upgrade.Plan{Steps: []upgrade.Step{s}})
			require.NotNil(t, rep)
			assert.NotErrorIs(t, err, revkit.ErrInvalidInput, "the operation accepts the input too")
		})
	}
	assert.NoError(t, upgrade.VerifyProxies(verify.ProxiesOptions{Sources: []verify.SyncSource{
		verify.HTTPSource{Rev: "1-25-0", URL: "http://127.0.0.1:15014"}}}).(upgrade.Validator).Validate())
}
