package upgrade_test

import (
	"context"
	"fmt"
	"sort"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/client-go/kubernetes"

	"github.com/revkit/revkit"
	"github.com/revkit/revkit/gateway"
	"github.com/revkit/revkit/namespace"
	"github.com/revkit/revkit/revkittest"
	"github.com/revkit/revkit/upgrade"
	"github.com/revkit/revkit/verify"
)

func readSimState(t *testing.T, kube kubernetes.Interface, nss ...string) revkittest.MeshState {
	t.Helper()
	st, err := revkittest.ReadMesh(ctx, kube, nss...)
	require.NoError(t, err)
	return st
}

func requireAllRan(t *testing.T, rep *upgrade.Report) {
	t.Helper()
	for _, s := range rep.Steps {
		assert.Contains(t, []upgrade.Outcome{upgrade.Done, upgrade.Unchanged}, s.Outcome, "%s: %s", s.Name, s.Detail)
	}
}

// The standard canary plan, proxies checked after every batch, and its
// rollback run to completion on the simulated cluster: restarted pods come
// back with the sidecar the webhooks now inject, so each batch's checks
// pass, and the old revision is uninstalled once nothing uses it.
func TestCanaryAndRollbackOnSimulatedCluster(t *testing.T) {
	all := []string{"a", "b", "c", "istio-ingress"}
	t.Run("canary", func(t *testing.T) {
		sim := fleetCluster().Simulate(revkittest.SimOptions{})
		kube := sim.Kube()
		opts := canaryOpts()
		opts.Proxies = []verify.SyncSource{sim.SyncSource("1-25-0")}
		p, err := upgrade.Canary(ctx, kube, opts)
		require.NoError(t, err)
		rep, err := upgrade.Execute(ctx, upgrade.Env{Kube: kube}, p)
		require.NoError(t, err, "%s", rep)
		requireAllRan(t, rep)
		assert.Contains(t, stepNames(p), "verify-proxies 2/2")
		assert.Equal(t, revkittest.MeshState{
			Labels: map[string]string{"a": "istio.io/rev=prod-canary", "b": "istio.io/rev=prod-canary", "c": "istio.io/rev=prod-canary",
				"istio-ingress": ""},
			Tags:       map[string]string{"prod-canary": "1-25-0", "prod-stable": "1-25-0"},
			Mutating:   []string{"istio-revision-tag-prod-canary", "istio-revision-tag-prod-stable", "istio-sidecar-injector-1-25-0"},
			Validating: []string{"istio-validator-1-25-0-istio-system"},
			Injects:    map[string][]string{"a": {"1-25-0"}, "b": {"1-25-0"}, "c": {"1-25-0"}, "istio-ingress": nil},
			Pods: map[string]map[string]int{"a": {"1-25-0": 1}, "b": {"1-25-0": 1}, "c": {"1-25-0": 1},
				"istio-ingress": {"1-25-0": 1}},
		}, readSimState(t, kube, all...))
		wh, err := verify.Webhooks(ctx, kube, verify.WebhooksOptions{})
		require.NoError(t, err)
		assert.True(t, wh.OK(), "%v", wh.Err())
		gws, err := gateway.List(ctx, kube, gateway.ListOptions{})
		require.NoError(t, err)
		require.Len(t, gws, 1, "the canary gateway was promoted and removed")
		assert.Equal(t, "1-25-0", gws[0].Revision)
	})
	t.Run("rollback", func(t *testing.T) {
		sim := fleetCluster().Simulate(revkittest.SimOptions{})
		kube := sim.Kube()
		before := readSimState(t, kube, all...)
		opts := canaryOpts()
		opts.KeepOld = true
		p, err := upgrade.Canary(ctx, kube, opts)
		require.NoError(t, err)
		rep, err := upgrade.Execute(ctx, upgrade.Env{Kube: kube}, p)
		require.NoError(t, err, "%s", rep)

		opts.KeepOld = false // for the rollback: uninstall the canary
		back, err := upgrade.Rollback(ctx, kube, opts)
		require.NoError(t, err)
		rep, err = upgrade.Execute(ctx, upgrade.Env{Kube: kube}, back)
		require.NoError(t, err, "%s", rep)
		requireAllRan(t, rep)
		after := readSimState(t, kube, all...)
		assert.Equal(t, []string{"istio-revision-tag-prod-stable", "istio-sidecar-injector-1-24-0"}, after.Mutating,
			"the canary revision and its tag are gone")
		assert.Equal(t, []string{"istio-validator-1-24-0-istio-system"}, after.Validating)
		before.Mutating, before.Validating = after.Mutating, after.Validating
		assert.Equal(t, before, after, "labels, tags and pods as before the canary")
	})
}

// simFleet is a fleet on 1-24-0 whose namespaces use the stable tag, and
// the default tag for c (istio-injection=enabled), which a recorded-state
// rollback must give back exactly.
func simFleet() *revkittest.Cluster {
	c := revkittest.NewCluster().WithRevision("1-24-0").WithRevision("1-25-0").
		WithTag("prod-stable", "1-24-0").WithTag(revkit.DefaultTag, "1-24-0")
	for _, ns := range []string{"a", "b"} {
		c = c.WithNamespace(ns, revkittest.Rev("prod-stable"), revkittest.Label("team", "shop"))
	}
	c = c.WithNamespace("c", revkittest.InjectionEnabled(), revkittest.Label("team", "shop"))
	for _, ns := range []string{"a", "b", "c"} {
		c = c.WithDeployment(ns, "web", revkittest.Replicas(2), revkittest.OnRevision("1-24-0")).
			WithStatefulSet(ns, "db", revkittest.OnRevision("1-24-0"))
	}
	return c
}

// A fault in the middle of the canary stops the plan at the step it hits,
// and the on-failure rollback puts back the recorded state: labels, tags,
// webhooks and every pod on the old revision.
func TestCanaryFailureRestoresRecordedStateOnSimulatedCluster(t *testing.T) {
	for _, tc := range []struct {
		name   string
		fault  func(*revkittest.Simulation)
		gate   func(calls int) error
		failAt string
		is     error
	}{
		{name: "a rollout fails in batch 2", fault: func(s *revkittest.Simulation) { s.FailRollout("b", "web") },
			failAt: "restart-workloads 2/3", is: revkit.ErrRolloutFailed},
		{name: "the canary's sidecars crash", fault: func(s *revkittest.Simulation) { s.CrashRevision("1-25-0") },
			failAt: "restart-workloads 1/3", is: revkit.ErrRolloutFailed},
		{name: "the canary's proxies do not sync", fault: func(s *revkittest.Simulation) { s.StaleProxies("1-25-0") },
			failAt: "verify-proxies 1/3", is: revkit.ErrVerificationFailed},
		{name: "the apiserver refuses a namespace patch", fault: func(s *revkittest.Simulation) {
			revkittest.FailNth(s.Kube(), "patch", "namespaces", 2, apierrors.NewServiceUnavailable("etcd leader changed"))
		}, failAt: "migrate-namespaces 2/3"},
		{name: "a custom gate fails on batch 3", gate: func(calls int) error {
			if calls == 3 {
				return fmt.Errorf("error rate 4%%: %w", revkit.ErrVerificationFailed)
			}
			return nil
		}, failAt: "error-rate 3/3", is: revkit.ErrVerificationFailed},
	} {
		t.Run(tc.name, func(t *testing.T) {
			sim := simFleet().Simulate(revkittest.SimOptions{})
			kube := sim.Kube()
			nss := []string{"a", "b", "c"}
			before := readSimState(t, kube, nss...)
			opts := upgrade.CanaryOptions{From: "1-24-0", To: "1-25-0", CanaryTag: "prod-canary", StableTag: "prod-stable",
				PromoteDefault: true, Namespaces: namespace.Selection{Selector: "team=shop"}, BatchSize: 1,
				Proxies: []verify.SyncSource{sim.SyncSource("1-25-0")}, RecordState: true, RollbackOnFailure: true,
				// A simulated rollout never takes long; stale proxies do
				// not heal.
				RestartTimeout: 10 * time.Second, ProxySettle: 100 * time.Millisecond}
			calls := 0
			opts.Gates = []upgrade.Step{upgrade.Func("error-rate", "error rate below 1%", func(context.Context, upgrade.Env) (upgrade.Result, error) {
				calls++
				if tc.gate != nil {
					if err := tc.gate(calls); err != nil {
						return upgrade.Result{Detail: err.Error()}, err
					}
				}
				return upgrade.Result{Outcome: upgrade.Done}, nil
			})}
			p, err := upgrade.Canary(ctx, kube, opts)
			require.NoError(t, err)
			if tc.fault != nil {
				tc.fault(sim)
			}
			rep, err := upgrade.Execute(ctx, upgrade.Env{Kube: kube}, p)
			require.Error(t, err)
			if tc.is != nil {
				assert.ErrorIs(t, err, tc.is)
			}
			require.NotNil(t, rep.Failed())
			assert.Equal(t, tc.failAt, rep.Failed().Name, "%s", rep)
			after := false
			for _, s := range rep.Steps {
				if after {
					assert.Equal(t, upgrade.NotRun, s.Outcome, s.Name)
				}
				after = after || s.Name == tc.failAt
			}
			require.NotEmpty(t, rep.OnFailure)
			for _, s := range rep.OnFailure {
				assert.Contains(t, []upgrade.Outcome{upgrade.Done, upgrade.Skipped}, s.Outcome, "%s: %s", s.Name, s.Detail)
			}
			assert.Equal(t, before, readSimState(t, kube, nss...), "the recorded state is back")
		})
	}
}

// A journaled canary interrupted by a failed write resumes where it
// stopped: the rerun skips the steps done, restarts only the workloads not
// restarted yet, and completes.
func TestCanaryResumesOnSimulatedCluster(t *testing.T) {
	sim := simFleet().Simulate(revkittest.SimOptions{})
	kube := sim.Kube()
	opts := upgrade.CanaryOptions{From: "1-24-0", To: "1-25-0", CanaryTag: "prod-canary", StableTag: "prod-stable",
		Namespaces: namespace.Selection{Selector: "team=shop"}, BatchSize: 1, KeepOld: true, RestartTimeout: 10 * time.Second}
	p, err := upgrade.Canary(ctx, kube, opts)
	require.NoError(t, err)
	env := upgrade.Env{Kube: kube, Journal: &upgrade.Journal{Holder: "test"}}
	// The first restart patch of batch 2 (b's Deployment) fails.
	revkittest.FailNth(kube, "patch", "deployments", 2, apierrors.NewServiceUnavailable("apiserver restarting"))
	rep, err := upgrade.Execute(ctx, env, p)
	require.Error(t, err)
	assert.Equal(t, "restart-workloads 2/3", rep.Failed().Name)
	kube.ClearActions()

	rep, err = upgrade.Execute(ctx, env, p)
	require.NoError(t, err, "%s", rep)
	outcomes := map[string]upgrade.Outcome{}
	for _, s := range rep.Steps {
		outcomes[s.Name] = s.Outcome
	}
	assert.Equal(t, upgrade.Skipped, outcomes["verify-pods 1/3"], "done in the first run")
	assert.Equal(t, upgrade.Done, outcomes["restart-workloads 2/3"])
	var restarts []string
	for _, w := range revkittest.Writes(kube) {
		if len(w) > 6 && w[:6] == "patch " && (contains(w, "deployments") || contains(w, "statefulsets")) {
			restarts = append(restarts, w)
		}
	}
	sort.Strings(restarts)
	assert.Equal(t, []string{"patch deployments b/web", "patch deployments c/web", "patch statefulsets b/db", "patch statefulsets c/db"},
		restarts, "a's workloads were restarted by the first run only; b's StatefulSet, not restarted then, is now")
	st := readSimState(t, kube, "a", "b", "c")
	for _, ns := range []string{"a", "b", "c"} {
		assert.Equal(t, map[string]int{"1-25-0": 3}, st.Pods[ns], ns)
	}
}

func contains(s, sub string) bool {
	for i := 0; i+len(sub) <= len(s); i++ {
		if s[i:i+len(sub)] == sub {
			return true
		}
	}
	return false
}

// fleet200 is a mesh of n namespaces on the stable tag, each with a
// two-replica Deployment on the old revision.
func fleet200(n int) *revkittest.Cluster {
	c := revkittest.NewCluster().WithRevision("1-24-0").WithRevision("1-25-0").WithTag("prod-stable", "1-24-0")
	for i := 0; i < n; i++ {
		ns := fmt.Sprintf("team-%03d", i)
		c = c.WithNamespace(ns, revkittest.Rev("prod-stable"), revkittest.Label("fleet", "yes")).
			WithDeployment(ns, "web", revkittest.Replicas(2), revkittest.OnRevision("1-24-0"))
	}
	return c
}

func runFleetCanary(tb testing.TB, sim *revkittest.Simulation) *upgrade.Report {
	kube := sim.Kube()
	p, err := upgrade.Canary(ctx, kube, upgrade.CanaryOptions{From: "1-24-0", To: "1-25-0", CanaryTag: "prod-canary",
		StableTag: "prod-stable", Namespaces: namespace.Selection{Selector: "fleet=yes"}, BatchPercent: 25,
		Proxies: []verify.SyncSource{sim.SyncSource("1-25-0")}})
	require.NoError(tb, err)
	rep, err := upgrade.Execute(ctx, upgrade.Env{Kube: kube}, p)
	require.NoError(tb, err, "%s", rep)
	return rep
}

// The canary plan over 200 namespaces, in four batches with proxy checks,
// on the simulated cluster: the time is logged, not asserted.
func TestCanary200NamespacesOnSimulatedCluster(t *testing.T) {
	sim := fleet200(200).Simulate(revkittest.SimOptions{})
	start := time.Now()
	rep := runFleetCanary(t, sim)
	elapsed := time.Since(start)
	requireAllRan(t, rep)
	pods, err := verify.Pods(ctx, sim.Kube(), verify.PodsOptions{Target: "1-25-0"})
	require.NoError(t, err)
	require.NoError(t, pods.Err())
	onTarget := 0
	for _, n := range pods.Namespaces {
		onTarget += n.Revisions["1-25-0"]
	}
	assert.Equal(t, 400, onTarget)
	t.Logf("canary plan over 200 namespaces (400 pods, %d steps) on the simulated cluster: %v", len(rep.Steps), elapsed)
}

func BenchmarkCanary200NamespacesOnSimulatedCluster(b *testing.B) {
	for b.Loop() {
		b.StopTimer()
		sim := fleet200(200).Simulate(revkittest.SimOptions{})
		b.StartTimer()
		runFleetCanary(b, sim)
	}
}
