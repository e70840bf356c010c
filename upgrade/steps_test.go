package upgrade_test

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes/fake"
	k8stesting "k8s.io/client-go/testing"

	"github.com/revkit/revkit"
	"github.com/revkit/revkit/namespace"
	"github.com/revkit/revkit/revision"
	"github.com/revkit/revkit/revkittest"
	"github.com/revkit/revkit/tag"
	"github.com/revkit/revkit/upgrade"
	"github.com/revkit/revkit/verify"
)

// canaryCluster has the old revision 1-24-0 in use through the tag
// prod-stable and the canary 1-25-0 installed beside it.
func canaryCluster() *revkittest.Cluster {
	return revkittest.NewCluster().
		WithRevision("1-24-0").
		WithRevision("1-25-0").
		WithTag("prod-stable", "1-24-0").
		WithNamespace("shop", revkittest.InjectionEnabled()).
		WithNamespace("blog", revkittest.Rev("prod-stable")).
		WithDeployment("shop", "cart", revkittest.Replicas(2), revkittest.OnRevision("1-24-0")).
		WithDeployment("blog", "post", revkittest.OnRevision("1-24-0"))
}

// synczDoc is a /debug/syncz document; "id:stale" makes a proxy STALE.
func synczDoc(ids ...string) []byte {
	var parts []string
	for _, e := range ids {
		id, mode, _ := strings.Cut(e, ":")
		acked := "n1"
		if mode == "stale" {
			acked = "n0"
		}
		parts = append(parts, fmt.Sprintf(`{"proxy":%q,"proxy_type":"sidecar","istio_version":"1.25.0",
			"cluster_sent":"n1","cluster_acked":%q,"listener_sent":"n1","listener_acked":"n1"}`, id, acked))
	}
	return []byte("[" + strings.Join(parts, ",") + "]")
}

// failingSource is a syncz source that cannot be read.
type failingSource struct{ rev string }

func (s failingSource) Revision() string { return s.rev }
func (s failingSource) Syncz(context.Context) ([]byte, error) {
	return nil, errors.New("connection refused")
}

func deleteObject(t *testing.T, kube *fake.Clientset, kind, name string) {
	t.Helper()
	var err error
	switch kind {
	case "mwc":
		err = kube.AdmissionregistrationV1().MutatingWebhookConfigurations().Delete(ctx, name, metav1.DeleteOptions{})
	case "deployment":
		err = kube.AppsV1().Deployments("istio-system").Delete(ctx, name, metav1.DeleteOptions{})
	}
	require.NoError(t, err)
}

func TestOperationSteps(t *testing.T) {
	tests := []struct {
		name    string
		cluster *revkittest.Cluster
		setup   func(t *testing.T, kube *fake.Clientset)
		step    upgrade.Step
		outcome upgrade.Outcome
		detail  string
		is      error
		gate    bool
		// writes are the exact writes; anyWrites only requires that
		// there be some, all starting with writePrefix.
		writes      []string
		writePrefix string
	}{
		{
			name:    "set-tag creates a tag",
			cluster: canaryCluster(),
			step:    upgrade.SetTag(tag.SetOptions{Tag: "prod-canary", Revision: "1-25-0"}),
			outcome: upgrade.Done,
			detail:  "prod-canary → 1-25-0: create 2",
			writes: []string{
				"create mutatingwebhookconfigurations istio-revision-tag-prod-canary",
				"create services istio-system/istiod-revision-tag-prod-canary",
			},
		},
		{
			name:    "set-tag on a tag already there is unchanged",
			cluster: canaryCluster(),
			step:    upgrade.SetTag(tag.SetOptions{Tag: "prod-stable", Revision: "1-24-0"}),
			outcome: upgrade.Unchanged,
			detail:  "prod-stable → 1-24-0: unchanged 2",
		},
		{
			name:    "set-tag moves a tag with overwrite",
			cluster: canaryCluster(),
			step:    upgrade.SetTag(tag.SetOptions{Tag: "prod-stable", Revision: "1-25-0", Overwrite: true}),
			outcome: upgrade.Done,
			detail:  "prod-stable → 1-25-0 (was 1-24-0): update 2",
			writes: []string{
				"update mutatingwebhookconfigurations istio-revision-tag-prod-stable",
				"update services istio-system/istiod-revision-tag-prod-stable",
			},
		},
		{
			name:    "set-tag refuses to move a tag without overwrite",
			cluster: canaryCluster(),
			step:    upgrade.SetTag(tag.SetOptions{Tag: "prod-stable", Revision: "1-25-0"}),
			outcome: upgrade.Failed,
			is:      revkit.ErrExists,
		},
		{
			name:    "migrate-namespaces relabels and reports the namespaces already there",
			cluster: canaryCluster().WithNamespace("docs", revkittest.Rev("prod-stable")),
			step: upgrade.MigrateNamespace(namespace.MigrateOptions{Target: "prod-stable",
				Selection: namespace.Selection{Namespaces: []string{"shop", "docs"}}}),
			outcome: upgrade.Done,
			detail:  "→ prod-stable (1-24-0): update 1, unchanged 1",
			writes:  []string{"patch namespaces shop"},
		},
		{
			name:    "migrate-namespaces with nothing to do",
			cluster: canaryCluster(),
			step: upgrade.MigrateNamespace(namespace.MigrateOptions{Target: "prod-stable",
				Selection: namespace.Selection{Namespaces: []string{"blog"}}}),
			outcome: upgrade.Unchanged,
			detail:  "→ prod-stable (1-24-0): unchanged 1",
		},
		{
			name:    "migrate-namespaces to a revision names it once",
			cluster: canaryCluster(),
			step: upgrade.MigrateNamespace(namespace.MigrateOptions{Target: "1-25-0",
				Selection: namespace.Selection{Namespaces: []string{"blog"}}}),
			outcome: upgrade.Done,
			detail:  "→ 1-25-0: update 1",
			writes:  []string{"patch namespaces blog"},
		},
		{
			name:    "migrate-namespaces to an unknown target fails",
			cluster: canaryCluster(),
			step: upgrade.MigrateNamespace(namespace.MigrateOptions{Target: "prod-canary",
				Selection: namespace.Selection{Namespaces: []string{"shop"}}}),
			outcome: upgrade.Failed,
			is:      revkit.ErrNotFound,
		},
		{
			name:    "restart-workloads restarts and skips paused deployments",
			cluster: canaryCluster().WithDeployment("shop", "frozen", revkittest.Paused()),
			step: upgrade.RolloutRestart(namespace.RestartOptions{
				Selection: namespace.Selection{Namespaces: []string{"shop"}}}),
			outcome: upgrade.Done,
			detail:  "update 1, skip 1",
			writes:  []string{"patch deployments shop/cart"},
		},
		{
			name:    "restart-workloads with only stale workloads already on the target is unchanged",
			cluster: canaryCluster(),
			step: upgrade.RolloutRestart(namespace.RestartOptions{Target: "1-24-0", OnlyStale: true,
				Selection: namespace.Selection{Namespaces: []string{"shop", "blog"}}}),
			outcome: upgrade.Unchanged,
			detail:  "unchanged 2",
		},
		{
			name:    "restart-workloads in a namespace that does not exist fails",
			cluster: canaryCluster(),
			step: upgrade.RolloutRestart(namespace.RestartOptions{
				Selection: namespace.Selection{Namespaces: []string{"nowhere"}}}),
			outcome: upgrade.Failed,
			is:      revkit.ErrNotFound,
		},
		{
			name:        "uninstall-revision removes an unused revision",
			cluster:     canaryCluster(),
			step:        upgrade.Uninstall(revision.UninstallOptions{Revision: "1-25-0"}),
			outcome:     upgrade.Done,
			writePrefix: "delete ",
		},
		{
			name:    "uninstall-revision of a revision not installed is unchanged",
			cluster: canaryCluster(),
			step:    upgrade.Uninstall(revision.UninstallOptions{Revision: "1-23-0"}),
			outcome: upgrade.Unchanged,
			detail:  "revision 1-23-0 is not installed: nothing to do",
		},
		{
			name:    "uninstall-revision refuses a revision in use",
			cluster: canaryCluster(),
			step:    upgrade.Uninstall(revision.UninstallOptions{Revision: "1-24-0"}),
			outcome: upgrade.Failed,
			is:      revkit.ErrInUse,
		},
		{
			name:    "install-revision installs a chart with Helm",
			cluster: canaryCluster(),
			step:    upgrade.InstallRevision(revision.InstallOptions{Revision: "1-26-0", Chart: testChart, Helm: memHelm()}),
			outcome: upgrade.Done,
			detail:  "installed release istiod-1-26-0 (injector istio-sidecar-injector-1-26-0): create 3",
		},
		{
			name:    "install-revision refuses an installed revision",
			cluster: canaryCluster(),
			step:    upgrade.InstallRevision(revision.InstallOptions{Revision: "1-25-0", Chart: testChart, Helm: memHelm()}),
			outcome: upgrade.Failed,
			is:      revkit.ErrExists,
		},
		{
			name:    "verify-pods passes when every pod is on the target",
			cluster: canaryCluster(),
			step:    upgrade.VerifyPods(verify.PodsOptions{Namespaces: []string{"shop", "blog"}, Target: "prod-stable"}),
			outcome: upgrade.Done,
			detail:  "3 pods in 2 namespaces on revision 1-24-0",
		},
		{
			name:    "verify-pods without target expects what each namespace selects",
			cluster: canaryCluster(),
			step:    upgrade.VerifyPods(verify.PodsOptions{Namespaces: []string{"blog"}}),
			outcome: upgrade.Done,
			detail:  "1 pod in 1 namespace on their expected revision",
		},
		{
			name:    "verify-pods fails the gate on stragglers",
			cluster: canaryCluster(),
			step:    upgrade.VerifyPods(verify.PodsOptions{Namespaces: []string{"shop"}, Target: "1-25-0"}),
			outcome: upgrade.Failed,
			detail:  "2 of 2 pods not on revision 1-25-0",
			is:      revkit.ErrVerificationFailed,
			gate:    true,
		},
		{
			name:    "verify-pods with an unknown target fails, not as a gate",
			cluster: canaryCluster(),
			step:    upgrade.VerifyPods(verify.PodsOptions{Target: "1-26-0"}),
			outcome: upgrade.Failed,
			is:      revkit.ErrNotFound,
		},
		{
			name:    "verify-proxies passes when all proxies are synced on the target",
			cluster: canaryCluster(),
			step: upgrade.VerifyProxies(verify.ProxiesOptions{Target: "1-25-0",
				Sources: []verify.SyncSource{verify.StaticSource{Rev: "1-25-0", JSON: synczDoc("cart-0.shop", "post-0.blog")}}}),
			outcome: upgrade.Done,
			detail:  "2 proxies synced on 1-25-0",
		},
		{
			name:    "verify-proxies without target",
			cluster: canaryCluster(),
			step: upgrade.VerifyProxies(verify.ProxiesOptions{
				Sources: []verify.SyncSource{verify.StaticSource{Rev: "1-25-0", JSON: synczDoc("cart-0.shop")}}}),
			outcome: upgrade.Done,
			detail:  "1 proxy synced",
		},
		{
			name:    "verify-proxies fails the gate on stragglers and stale proxies",
			cluster: canaryCluster(),
			step: upgrade.VerifyProxies(verify.ProxiesOptions{Target: "1-25-0", Sources: []verify.SyncSource{
				verify.StaticSource{Rev: "1-24-0", JSON: synczDoc("cart-0.shop")},
				verify.StaticSource{Rev: "1-25-0", JSON: synczDoc("post-0.blog:stale", "cart-1.shop")},
			}}),
			outcome: upgrade.Failed,
			detail:  "3 proxies: 1 on another revision, 1 not synced, 2 pods never connected",
			is:      revkit.ErrVerificationFailed,
			gate:    true,
		},
		{
			name:    "verify-proxies with an unreadable source fails, not as a gate",
			cluster: canaryCluster(),
			step:    upgrade.VerifyProxies(verify.ProxiesOptions{Sources: []verify.SyncSource{failingSource{rev: "1-25-0"}}}),
			outcome: upgrade.Failed,
			detail:  `verify.Proxies: read syncz of revision "1-25-0": connection refused`,
		},
		{
			name:    "verify-webhooks passes on a clean control plane",
			cluster: canaryCluster(),
			step:    upgrade.VerifyWebhooks(verify.WebhooksOptions{}),
			outcome: upgrade.Done,
			detail:  "3 injectors, no problem found",
		},
		{
			name:    "verify-webhooks fails the gate on a tag left pointing at a removed revision",
			cluster: canaryCluster(),
			setup: func(t *testing.T, kube *fake.Clientset) {
				deleteObject(t, kube, "mwc", "istio-sidecar-injector-1-24-0")
				deleteObject(t, kube, "deployment", "istiod-1-24-0")
			},
			step:    upgrade.VerifyWebhooks(verify.WebhooksOptions{}),
			outcome: upgrade.Failed,
			detail:  "2 orphaned webhooks",
			is:      revkit.ErrVerificationFailed,
			gate:    true,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			kube := tt.cluster.Kube()
			if tt.setup != nil {
				tt.setup(t, kube)
				kube.ClearActions()
			}
			rep, err := upgrade.Execute(ctx, upgrade.Env{Kube: kube}, upgrade.Plan{Steps: []upgrade.Step{tt.step}})
			require.NotNil(t, rep)
			sr := rep.Steps[0]
			assert.Equal(t, tt.outcome, sr.Outcome, "detail: %s", sr.Detail)
			if tt.detail != "" {
				assert.Equal(t, tt.detail, sr.Detail)
			}
			if tt.outcome == upgrade.Failed {
				require.Error(t, err)
				assert.Equal(t, tt.gate, sr.GateFailed())
				if tt.is != nil {
					assert.ErrorIs(t, err, tt.is)
				}
			} else {
				require.NoError(t, err)
			}
			writes := revkittest.Writes(kube)
			if tt.writePrefix != "" {
				require.NotEmpty(t, writes)
				for _, w := range writes {
					assert.True(t, strings.HasPrefix(w, tt.writePrefix), "write %q", w)
				}
				assert.True(t, revkit.AnyChanged(sr.Changes))
				return
			}
			assert.Equal(t, tt.writes, writes)
			if tt.detail != "" && tt.outcome != upgrade.Failed && !strings.HasPrefix(sr.Name, "verify-") {
				assert.Len(t, sr.Changes, countChanges(sr.Detail), "the report carries the changes it counts")
			}
		})
	}
}

// countChanges adds up the numbers of a "create 2, unchanged 1" summary.
func countChanges(detail string) int {
	if i := strings.LastIndex(detail, ": "); i >= 0 {
		detail = detail[i+2:]
	}
	n := 0
	for _, part := range strings.Split(detail, ", ") {
		var c int
		if _, err := fmt.Sscanf(part[strings.LastIndex(part, " ")+1:], "%d", &c); err == nil {
			n += c
		}
	}
	return n
}

// TestFailureStopsWrites proves on the fake's actions that nothing after a
// failed step touched the cluster, and that the on-failure steps did.
func TestFailureStopsWrites(t *testing.T) {
	kube := canaryCluster().Kube()
	var ran []string
	plan := upgrade.Plan{
		Name: "canary",
		Steps: []upgrade.Step{
			upgrade.SetTag(tag.SetOptions{Tag: "prod-canary", Revision: "1-25-0"}),
			upgrade.Func("health-gate", "", func(context.Context, upgrade.Env) (upgrade.Result, error) {
				ran = append(ran, "health-gate")
				return upgrade.Result{Outcome: upgrade.Failed, Detail: "error rate 5%"}, fmt.Errorf("error rate too high: %w", revkit.ErrVerificationFailed)
			}),
			upgrade.MigrateNamespace(namespace.MigrateOptions{Target: "prod-canary",
				Selection: namespace.Selection{Namespaces: []string{"shop"}}}),
			upgrade.Func("after", "", func(context.Context, upgrade.Env) (upgrade.Result, error) {
				ran = append(ran, "after")
				return upgrade.Result{}, nil
			}),
		},
		OnFailure: []upgrade.Step{
			upgrade.Named("remove-canary-tag", upgrade.Func("x", "", func(ctx context.Context, env upgrade.Env) (upgrade.Result, error) {
				ran = append(ran, "remove-canary-tag")
				_, err := tag.Remove(ctx, env.Kube, tag.RemoveOptions{Common: env.Common, Tag: "prod-canary"})
				return upgrade.Result{}, err
			})),
		},
	}
	rep, err := upgrade.Execute(ctx, upgrade.Env{Kube: kube}, plan)
	require.ErrorIs(t, err, revkit.ErrVerificationFailed)
	assert.Equal(t, []string{"health-gate", "remove-canary-tag"}, ran)
	assert.Equal(t, []string{"set-tag prod-canary→1-25-0=done", "health-gate=failed", "migrate-namespaces=not-run", "after=not-run"},
		outcomes(rep.Steps))
	assert.Equal(t, []string{"remove-canary-tag=done"}, outcomes(rep.OnFailure))
	assert.Equal(t, []string{
		"create mutatingwebhookconfigurations istio-revision-tag-prod-canary",
		"create services istio-system/istiod-revision-tag-prod-canary",
		// on failure:
		"delete mutatingwebhookconfigurations istio-revision-tag-prod-canary",
		"delete services istio-system/istiod-revision-tag-prod-canary",
	}, revkittest.Writes(kube), "no namespace was patched after the gate failed")
	ns, err := kube.CoreV1().Namespaces().Get(ctx, "shop", metav1.GetOptions{})
	require.NoError(t, err)
	assert.Equal(t, "enabled", ns.Labels["istio-injection"])
}

// canaryPlan moves the existing tag prod-stable to the canary, migrates
// shop to it, restarts and verifies.
func canaryPlan() upgrade.Plan {
	return upgrade.Plan{
		Name: "canary",
		Steps: []upgrade.Step{
			upgrade.SetTag(tag.SetOptions{Tag: "prod-stable", Revision: "1-25-0", Overwrite: true}),
			upgrade.MigrateNamespace(namespace.MigrateOptions{Target: "prod-stable",
				Selection: namespace.Selection{Namespaces: []string{"shop"}}}),
			upgrade.RolloutRestart(namespace.RestartOptions{Selection: namespace.Selection{Namespaces: []string{"shop"}}}),
			upgrade.VerifyPods(verify.PodsOptions{Namespaces: []string{"shop"}, Target: "1-25-0"}),
			// Reading this source would fail: in a dry run it is not read.
			upgrade.VerifyProxies(verify.ProxiesOptions{Sources: []verify.SyncSource{failingSource{rev: "1-25-0"}}}),
			upgrade.VerifyWebhooks(verify.WebhooksOptions{}),
		},
	}
}

// dryRunFlags returns, for every write action, its dryRun option.
// (revkittest.Writes takes an update for a create and misses its option.)
func dryRunFlags(kube *fake.Clientset) map[string][]string {
	out := map[string][]string{}
	for _, a := range kube.Actions() {
		var dry []string
		switch act := a.(type) {
		case k8stesting.CreateActionImpl:
			dry = act.CreateOptions.DryRun
		case k8stesting.UpdateActionImpl:
			dry = act.UpdateOptions.DryRun
		case k8stesting.PatchActionImpl:
			dry = act.PatchOptions.DryRun
		case k8stesting.DeleteActionImpl:
			dry = act.DeleteOptions.DryRun
		default:
			continue
		}
		key := a.GetVerb() + " " + a.GetResource().Resource
		out[key] = append(out[key], strings.Join(dry, ","))
	}
	return out
}

func TestDryRunPlan(t *testing.T) {
	wantOutcomes := []string{
		"set-tag prod-stable→1-25-0=done",
		"migrate-namespaces=done",
		"restart-workloads=done",
		"verify-pods=skipped",
		"verify-proxies=skipped",
		"verify-webhooks=skipped",
	}
	tests := []struct {
		mode   revkit.DryRun
		writes map[string][]string
	}{
		{mode: revkit.DryRunClient, writes: map[string][]string{}},
		{mode: revkit.DryRunServer, writes: map[string][]string{
			"update mutatingwebhookconfigurations": {"All"},
			"update services":                      {"All"},
			"patch namespaces":                     {"All"},
			"patch deployments":                    {"All"},
		}},
	}
	for _, tt := range tests {
		t.Run(tt.mode.String(), func(t *testing.T) {
			kube := canaryCluster().Kube()
			var events []revkit.Event
			env := upgrade.Env{Kube: kube, Common: revkit.Common{DryRun: tt.mode, OnEvent: func(e revkit.Event) { events = append(events, e) }}}
			rep, err := upgrade.Execute(ctx, env, canaryPlan())
			require.NoError(t, err)
			assert.Equal(t, tt.mode, rep.DryRun)
			assert.Equal(t, wantOutcomes, outcomes(rep.Steps))
			assert.Equal(t, tt.writes, dryRunFlags(kube), "every write is a dry run")
			assert.Equal(t, "prod-stable → 1-25-0 (was 1-24-0): update 2 (dry run: "+tt.mode.String()+")", rep.Steps[0].Detail)
			assert.Equal(t, "update 1 (dry run: "+tt.mode.String()+")", rep.Steps[2].Detail)
			for _, s := range rep.Steps[3:] {
				assert.Equal(t, "dry run", s.Detail)
			}
			require.NotEmpty(t, events)
			for _, e := range events {
				assert.Equal(t, tt.mode, e.DryRun)
			}
			if tt.mode == revkit.DryRunClient {
				assert.Empty(t, revkittest.Writes(kube), "a client dry run sends no write")
				ns, err := kube.CoreV1().Namespaces().Get(ctx, "shop", metav1.GetOptions{})
				require.NoError(t, err)
				assert.Equal(t, "enabled", ns.Labels["istio-injection"], "the namespace was not relabelled")
			}
		})
	}
}

// TestDryRunSeesTheClusterAsItIs documents a limit of dry runs: each step
// sees the cluster as it is, not as the steps before it would leave it, so
// migrating to a tag that the plan itself creates fails in a dry run.
func TestDryRunSeesTheClusterAsItIs(t *testing.T) {
	kube := canaryCluster().Kube()
	plan := upgrade.Plan{Steps: []upgrade.Step{
		upgrade.SetTag(tag.SetOptions{Tag: "prod-canary", Revision: "1-25-0"}),
		upgrade.MigrateNamespace(namespace.MigrateOptions{Target: "prod-canary",
			Selection: namespace.Selection{Namespaces: []string{"shop"}}}),
	}}
	rep, err := upgrade.Execute(ctx, upgrade.Env{Kube: kube, Common: revkit.Common{DryRun: revkit.DryRunClient}}, plan)
	assert.ErrorIs(t, err, revkit.ErrNotFound)
	assert.Equal(t, []string{"set-tag prod-canary→1-25-0=done", "migrate-namespaces=failed"}, outcomes(rep.Steps))
	assert.Empty(t, revkittest.Writes(kube))
}

// TestStepUsesPlanCommon shows that a step's own Common is replaced by the
// plan's: the plan's dry-run mode and callback apply.
func TestStepUsesPlanCommon(t *testing.T) {
	kube := canaryCluster().Kube()
	ownEvents := 0
	var planEvents []revkit.Event
	step := upgrade.SetTag(tag.SetOptions{
		Common: revkit.Common{DryRun: revkit.DryRunNone, OnEvent: func(revkit.Event) { ownEvents++ }},
		Tag:    "prod-canary", Revision: "1-25-0",
	})
	env := upgrade.Env{Kube: kube, Common: revkit.Common{DryRun: revkit.DryRunClient,
		OnEvent: func(e revkit.Event) { planEvents = append(planEvents, e) }}}
	_, err := upgrade.Execute(ctx, env, upgrade.Plan{Steps: []upgrade.Step{step}})
	require.NoError(t, err)
	assert.Empty(t, revkittest.Writes(kube))
	assert.Zero(t, ownEvents)

	var fromOp []string
	for _, e := range planEvents {
		if e.Operation == "tag.Set" {
			fromOp = append(fromOp, fmt.Sprintf("%s|%s|%s", e.Step, e.Action, e.Object))
		}
	}
	assert.Equal(t, []string{
		"set-tag prod-canary→1-25-0|create|MutatingWebhookConfiguration/istio-revision-tag-prod-canary",
		"set-tag prod-canary→1-25-0|create|Service/istio-system/istiod-revision-tag-prod-canary",
	}, fromOp, "the operation's events carry the step name")
}

func TestExecuteNeedsKube(t *testing.T) {
	tests := []struct {
		name string
		step upgrade.Step
	}{
		{"set-tag", upgrade.SetTag(tag.SetOptions{Tag: "prod", Revision: "1-25-0"})},
		{"named", upgrade.Named("renamed", upgrade.VerifyWebhooks(verify.WebhooksOptions{}))},
		{"on-failure", nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ran := false
			first := upgrade.Func("first", "", func(context.Context, upgrade.Env) (upgrade.Result, error) {
				ran = true
				return upgrade.Result{}, nil
			})
			plan := upgrade.Plan{Steps: []upgrade.Step{first, tt.step}}
			if tt.step == nil {
				plan = upgrade.Plan{Steps: []upgrade.Step{first},
					OnFailure: []upgrade.Step{upgrade.Uninstall(revision.UninstallOptions{Revision: "1-24-0"})}}
			}
			rep, err := upgrade.Execute(ctx, upgrade.Env{}, plan)
			assertNothingRan(t, rep)
			assert.ErrorIs(t, err, revkit.ErrInvalidInput)
			assert.ErrorContains(t, err, "needs a Kubernetes client")
			assert.False(t, ran)
		})
	}
	t.Run("steps that need no cluster run without one", func(t *testing.T) {
		plan := upgrade.Plan{Steps: []upgrade.Step{
			upgrade.VerifyProxies(verify.ProxiesOptions{Sources: []verify.SyncSource{
				verify.StaticSource{Rev: "1-25-0", JSON: synczDoc("a.shop")}}}),
			upgrade.Named("gate", upgrade.Func("f", "", func(context.Context, upgrade.Env) (upgrade.Result, error) {
				return upgrade.Result{}, nil
			})),
		}}
		rep, err := upgrade.Execute(ctx, upgrade.Env{}, plan)
		require.NoError(t, err)
		assert.Equal(t, []string{"verify-proxies=done", "gate=done"}, outcomes(rep.Steps))
	})
}

// TestConstructorsCopyOptions: changing the caller's slices after building
// a step changes neither the printed plan nor what runs.
func TestConstructorsCopyOptions(t *testing.T) {
	nss := []string{"blog"}
	kinds := []namespace.Kind{namespace.Deployment}
	step := upgrade.MigrateNamespace(namespace.MigrateOptions{Target: "1-25-0", Selection: namespace.Selection{Namespaces: nss}})
	restart := upgrade.RolloutRestart(namespace.RestartOptions{Selection: namespace.Selection{Namespaces: nss}, Kinds: kinds})
	nss[0] = "shop"
	kinds[0] = "Pod"
	assert.Equal(t, "label namespace blog istio.io/rev=1-25-0, removing istio-injection", step.Description())
	kube := canaryCluster().Kube()
	_, err := upgrade.Execute(ctx, upgrade.Env{Kube: kube}, upgrade.Plan{Steps: []upgrade.Step{step, restart}})
	require.NoError(t, err)
	assert.Equal(t, []string{"patch namespaces blog", "patch deployments blog/post"}, revkittest.Writes(kube))
}
