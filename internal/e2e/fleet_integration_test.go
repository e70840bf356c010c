//go:build integration

package e2e_test

import (
	"context"
	"errors"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/revkit/revkit/fleet"
	"github.com/revkit/revkit/internal/testenv"
	"github.com/revkit/revkit/namespace"
	"github.com/revkit/revkit/revision"
	"github.com/revkit/revkit/tag"
	"github.com/revkit/revkit/upgrade"
	"github.com/revkit/revkit/verify"
)

// TestFleetInWaves upgrades three real control planes, given as the
// contexts of one kubeconfig, in two waves with the standard canary plan
// and a journal in each cluster: a failure in the first wave stops the
// fleet before the second starts, and the rerun resumes the failed cluster
// where it stopped and then upgrades the second wave's two clusters at
// once.
func TestFleetInWaves(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	defer cancel()
	from, to := testenv.OldIstio.Revision, testenv.NewIstio.Revision
	envs, err := testenv.StartFleet(t, 3, testenv.Options{Nodes: 1})
	require.NoError(t, err)
	for name, env := range envs {
		for _, rev := range []string{from, to} {
			_, err := env.StartIstiod(ctx, rev)
			require.NoError(t, err, "%s: istiod %s", name, rev)
		}
		_, err = tag.Set(ctx, env.Client, tag.SetOptions{Tag: "prod-stable", Revision: from})
		require.NoError(t, err)
		createNamespace(ctx, t, env, "shop", map[string]string{"istio.io/rev": "prod-stable"})
		createDeployment(ctx, t, env.Client, "shop", "web", 2)
	}
	for _, env := range envs {
		waitRolledOut(ctx, t, env.Client, "shop", "web")
	}
	kubeconfig, err := testenv.WriteKubeconfig(t.TempDir(), envs)
	require.NoError(t, err)
	clusters, err := fleet.FromKubeconfig(kubeconfig)
	require.NoError(t, err)
	require.Len(t, clusters, 3)

	// The traffic gate of each batch fails on demand.
	var mu sync.Mutex
	unhealthy := map[string]bool{"cluster-1": true}
	opts := fleet.Options{
		Clusters: clusters,
		Waves: []fleet.Wave{
			{Name: "canary", Clusters: []string{"cluster-1"}},
			{Name: "prod", Clusters: []string{"cluster-2", "cluster-3"}},
		},
		Journal: &upgrade.Journal{Holder: "fleet-e2e"},
		Plan: func(ctx context.Context, c fleet.Cluster) (upgrade.Plan, error) {
			gate := upgrade.Func("traffic-gate", "the cluster's own health check", func(context.Context, upgrade.Env) (upgrade.Result, error) {
				mu.Lock()
				defer mu.Unlock()
				if unhealthy[c.Name] {
					return upgrade.Result{}, errors.New("error rate up")
				}
				return upgrade.Result{Detail: "healthy"}, nil
			})
			return upgrade.Canary(ctx, c.Kube, upgrade.CanaryOptions{From: from, To: to, CanaryTag: "prod-canary", StableTag: "prod-stable",
				Namespaces: namespace.Selection{Namespaces: []string{"shop"}}, Gates: []upgrade.Step{gate}, RestartTimeout: 3 * time.Minute})
		},
		Env: func(fleet.Cluster) upgrade.Env { return upgrade.Env{TransientRetry: 30 * time.Second} },
	}

	rep, err := fleet.Run(ctx, opts)
	t.Logf("first run (%s):\n%s", rep.Duration.Round(time.Millisecond), rep)
	var stopped *fleet.StoppedError
	require.ErrorAs(t, err, &stopped)
	assert.Equal(t, "canary", stopped.Wave)
	assert.Equal(t, []string{"cluster-1"}, stopped.Failed)
	assert.Equal(t, "traffic-gate 1/1", rep.Cluster("cluster-1").Plan.Failed().Name)
	for _, name := range []string{"cluster-2", "cluster-3"} {
		assert.Equal(t, upgrade.NotRun, rep.Cluster(name).Outcome)
		// Untouched: still on the old revision, no canary tag.
		pods, err := verify.Pods(ctx, envs[name].Client, verify.PodsOptions{Namespaces: []string{"shop"}, Target: from})
		require.NoError(t, err)
		assert.NoError(t, pods.Err(), "%s untouched", name)
		tags, err := tag.List(ctx, envs[name].Client, tag.ListOptions{})
		require.NoError(t, err)
		assert.Len(t, tags, 1, "%s: no canary tag", name)
	}

	mu.Lock()
	unhealthy["cluster-1"] = false
	mu.Unlock()
	rep, err = fleet.Run(ctx, opts)
	t.Logf("rerun (%s):\n%s", rep.Duration.Round(time.Millisecond), rep)
	require.NoError(t, err)
	c1 := rep.Cluster("cluster-1")
	assert.Equal(t, upgrade.Done, c1.Outcome)
	resumed := 0
	for _, s := range c1.Plan.Steps {
		if s.Resumed {
			resumed++
			assert.NotEqual(t, "traffic-gate 1/1", s.Name, "the failed gate runs again")
		}
	}
	assert.GreaterOrEqual(t, resumed, 4, "the steps done before the failure are not run again")
	assert.Equal(t, []string{"webhooks"}, gateNamesOf(rep.Waves[0]))
	// The second wave's clusters ran at once: they overlap in time.
	c2, c3 := rep.Cluster("cluster-2"), rep.Cluster("cluster-3")
	assert.True(t, c2.Started.Before(c3.Started.Add(c3.Duration)) && c3.Started.Before(c2.Started.Add(c2.Duration)), "one wave, in parallel")
	t.Logf("wave prod took %s; its clusters %s and %s", rep.Waves[1].Duration.Round(time.Millisecond),
		c2.Duration.Round(time.Millisecond), c3.Duration.Round(time.Millisecond))

	for name, env := range envs {
		assert.Equal(t, upgrade.Done, rep.Cluster(name).Outcome, name)
		pods, err := verify.Pods(ctx, env.Client, verify.PodsOptions{Namespaces: []string{"shop"}, Target: to})
		require.NoError(t, err)
		assert.NoError(t, pods.Err(), "%s: every pod on the new revision", name)
		revs, err := revision.List(ctx, env.Client, revision.ListOptions{})
		require.NoError(t, err)
		require.Len(t, revs, 1, name)
		assert.Equal(t, to, revs[0].Name)
		wh, err := verify.Webhooks(ctx, env.Client, verify.WebhooksOptions{})
		require.NoError(t, err)
		assert.NoError(t, wh.Err(), name)
	}

	// A third run finds every cluster done.
	rep, err = fleet.Run(ctx, opts)
	require.NoError(t, err)
	assert.Equal(t, 3, rep.Count(upgrade.Unchanged), "every plan completed before:\n%s", rep)
}

func gateNamesOf(w fleet.WaveReport) []string {
	var out []string
	for _, g := range w.Gates {
		out = append(out, g.Name)
	}
	return out
}
