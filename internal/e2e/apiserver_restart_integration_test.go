//go:build integration

package e2e_test

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/revkit/revkit"
	"github.com/revkit/revkit/internal/testenv"
	"github.com/revkit/revkit/namespace"
	"github.com/revkit/revkit/revision"
	"github.com/revkit/revkit/revkittest"
	"github.com/revkit/revkit/tag"
	"github.com/revkit/revkit/upgrade"
	"github.com/revkit/revkit/verify"
)

// TestAPIServerRestartMidPlan stops kube-apiserver at a chosen point of a
// journaled canary plan and starts it again two seconds later: the plan
// either rides it out or stops with a typed error, and reruns complete it.
// A rollout wait rides it out: the rollout itself goes on meanwhile. With
// Env.TransientRetry the whole plan rides it out, wherever it stops.
//
// The apiserver is stopped from the plan's event callback, which runs
// synchronously in the plan's goroutine, so the plan cannot move past the
// point before the apiserver is gone, however fast or slow the machine.
func TestAPIServerRestartMidPlan(t *testing.T) {
	for _, tc := range []struct {
		name string
		// the apiserver stops at the first event of a step whose name
		// starts with step and whose action is action
		step   string
		action revkit.Action
		// retry: run with Env.TransientRetry
		retry bool
		// ridesOut: the first run completes the plan.
		ridesOut bool
	}{
		// The step's first request fails.
		{"before a restart batch", "restart-workloads 2/3", upgrade.ActionStart, false, false},
		{"before a restart batch, retried", "restart-workloads 2/3", upgrade.ActionStart, true, true},
		// The Deployment is patched; the wait for its rollout loses the
		// apiserver and reads again until it is back.
		{"while waiting for a rollout", "restart-workloads 2/3", revkit.ActionUpdate, false, true},
		// One object of the old revision is deleted, the rest are not.
		{"mid-uninstall", "uninstall-revision", revkit.ActionDelete, false, false},
		{"mid-uninstall, retried", "uninstall-revision", revkit.ActionDelete, true, true},
		// Every step ran; recording the last one and the plan's
		// completion fails.
		{"after the last step", "uninstall-revision", revkit.Action(upgrade.Done), false, false},
		{"after the last step, retried", "uninstall-revision", revkit.Action(upgrade.Done), true, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			attempts := testAPIServerRestart(t, tc.step, tc.action, tc.retry)
			if tc.ridesOut {
				assert.Equal(t, 1, attempts, "the plan rides the restart out")
			} else {
				assert.Greater(t, attempts, 1, "the plan stops where the apiserver is gone")
			}
		})
	}
}

// testAPIServerRestart returns how many runs the plan took.
func testAPIServerRestart(t *testing.T, step string, action revkit.Action, retry bool) int {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
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

	// The first matching event stops the apiserver before the plan goes on,
	// and starts it again two seconds later in the background.
	restarted := make(chan error, 1)
	stopped := ""
	onEvent := func(e revkit.Event) {
		if stopped != "" || e.Action != action || !strings.HasPrefix(e.Step, step) {
			return
		}
		stopped = e.Step + ": " + e.Message
		if err := env.StopAPIServer(); err != nil {
			restarted <- err
			return
		}
		go func() {
			time.Sleep(2 * time.Second)
			restarted <- env.StartAPIServer(ctx)
		}()
	}
	run := upgrade.Env{Kube: kube, Common: revkit.Common{OnEvent: onEvent},
		Journal: &upgrade.Journal{Holder: "restart-test", LeaseDuration: 30 * time.Second}}
	if retry {
		run.TransientRetry = time.Minute
	}
	rep, err := upgrade.Execute(ctx, run, plan)
	require.NotEmpty(t, stopped, "the plan never reached the point where the apiserver stops")
	t.Logf("apiserver stopped at %s", stopped)
	require.NoError(t, <-restarted, "the apiserver came back")

	attempts := 1
	for err != nil {
		// A step failed, or the journal's own reads and writes did.
		var stepErr *upgrade.StepError
		var opErr *revkit.OpError
		switch {
		case errors.As(err, &stepErr):
			t.Logf("run %d stopped at step %q: %v", attempts, stepErr.Step, err)
		case errors.As(err, &opErr) && opErr.Op == "upgrade.Journal":
			t.Logf("run %d: the journal failed: %v", attempts, err)
		default:
			require.Failf(t, "untyped error", "run %d: want a *upgrade.StepError or the journal's *revkit.OpError, got %T: %v", attempts, err, err)
		}
		require.Less(t, attempts, 10, "the plan did not complete in 10 runs")
		time.Sleep(time.Second)
		attempts++
		run.Common = revkit.Common{}
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
	return attempts
}
