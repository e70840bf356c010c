//go:build integration

package e2e_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/revkit/revkit/internal/testenv"
	"github.com/revkit/revkit/namespace"
	"github.com/revkit/revkit/revision"
	"github.com/revkit/revkit/revkittest"
	"github.com/revkit/revkit/tag"
	"github.com/revkit/revkit/upgrade"
	"github.com/revkit/revkit/verify"
)

// TestAPIServerRestartMidPlan restarts kube-apiserver while a journaled
// canary plan runs: the plan either rides it out or stops with a typed
// step error, and a rerun completes it.
func TestAPIServerRestartMidPlan(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 8*time.Minute)
	defer cancel()
	const old, canary = "1-30-0", "1-31-0"
	env, err := testenv.Start(t, testenv.Options{})
	require.NoError(t, err)
	kube := env.Client
	for _, rev := range []string{old, canary} {
		_, err := env.StartIstiod(ctx, rev)
		require.NoError(t, err)
	}
	_, err = tag.Set(ctx, kube, tag.SetOptions{Tag: "prod-stable", Revision: old})
	require.NoError(t, err)
	nss := []string{"r1", "r2", "r3"}
	for _, ns := range nss {
		createNamespace(ctx, t, env, ns, map[string]string{"istio.io/rev": "prod-stable", "restarttest": "true"})
		createDeployment(ctx, t, kube, ns, "web", 1)
	}
	for _, ns := range nss {
		waitRolledOut(ctx, t, kube, ns, "web")
	}

	opts := upgrade.CanaryOptions{From: old, To: canary, CanaryTag: "prod-canary", StableTag: "prod-stable",
		Namespaces: namespace.Selection{Selector: "restarttest=true"}, BatchSize: 1, RestartTimeout: 2 * time.Minute}
	plan, err := upgrade.Canary(ctx, kube, opts)
	require.NoError(t, err)
	plan.Name = "apiserver-restart"
	run := upgrade.Env{Kube: kube, Journal: &upgrade.Journal{Holder: "restart-test", LeaseDuration: 10 * time.Second}}

	restarted := make(chan error, 1)
	go func() {
		time.Sleep(1500 * time.Millisecond)
		restarted <- env.RestartAPIServer(ctx, 2*time.Second)
	}()
	rep, err := upgrade.Execute(ctx, run, plan)
	require.NoError(t, <-restarted, "the apiserver came back")
	attempts := 1
	for err != nil {
		var stepErr *upgrade.StepError
		require.True(t, errors.As(err, &stepErr), "a typed step error, got %T: %v", err, err)
		t.Logf("run %d stopped at %q: %v", attempts, stepErr.Step, err)
		require.Less(t, attempts, 10)
		time.Sleep(time.Second)
		attempts++
		rep, err = upgrade.Execute(ctx, run, plan)
	}
	t.Logf("completed after %d run(s):\n%s", attempts, rep)

	inj, err := revkittest.NamespaceInjection(ctx, kube)
	require.NoError(t, err)
	for _, ns := range nss {
		assert.Equal(t, "istio.io/rev=prod-canary", inj[ns])
	}
	pods, err := verify.Pods(ctx, kube, verify.PodsOptions{Selector: "restarttest=true", Target: canary})
	require.NoError(t, err)
	assert.NoError(t, pods.Err())
	revs, err := revision.List(ctx, kube, revision.ListOptions{})
	require.NoError(t, err)
	require.Len(t, revs, 1)
	assert.Equal(t, canary, revs[0].Name)
	wh, err := verify.Webhooks(ctx, kube, verify.WebhooksOptions{})
	require.NoError(t, err)
	assert.NoError(t, wh.Err())
}
