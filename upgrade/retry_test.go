package upgrade_test

import (
	"context"
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/runtime/schema"

	"github.com/revkit/revkit"
	"github.com/revkit/revkit/namespace"
	"github.com/revkit/revkit/revkittest"
	"github.com/revkit/revkit/upgrade"
)

// flaky is a step that fails with err its first failures runs.
func flaky(name string, failures int, err error, runs *int) upgrade.Step {
	return upgrade.Func(name, "flaky step", func(context.Context, upgrade.Env) (upgrade.Result, error) {
		*runs++
		if *runs <= failures {
			return upgrade.Result{}, err
		}
		return upgrade.Result{Outcome: upgrade.Done, Detail: "ok"}, nil
	})
}

func TestExecuteTransientRetry(t *testing.T) {
	refused := revkittest.ConnectionRefused()
	unavailable := apierrors.NewServiceUnavailable("apiserver is shutting down")
	forbidden := apierrors.NewForbidden(schema.GroupResource{Resource: "namespaces"}, "shop", errors.New("no"))
	for _, tc := range []struct {
		name     string
		retry    time.Duration
		failures int
		err      error
		// want: the outcome and how many times the step ran
		want     upgrade.Outcome
		attempts int
	}{
		{"connection refused twice, retried", time.Minute, 2, refused, upgrade.Done, 3},
		{"503 wrapped in an OpError, retried", time.Minute, 1,
			&revkit.OpError{Op: "tag.Set", Verb: "get", Err: unavailable}, upgrade.Done, 2},
		{"no retry by default", 0, 1, refused, upgrade.Failed, 1},
		{"403 is not retried", time.Minute, 1, forbidden, upgrade.Failed, 1},
		{"a failed gate is not retried", time.Minute, 1, revkit.ErrVerificationFailed, upgrade.Failed, 1},
		// 250 ms, then 50 ms (what is left of the budget), then no time. On
		// a loaded machine the first run and wait may use the whole budget:
		// a third run is then not started (see below).
		{"the budget runs out", 300 * time.Millisecond, 100, unavailable, upgrade.Failed, 3},
	} {
		t.Run(tc.name, func(t *testing.T) {
			runs := 0
			var retries []revkit.Event
			env := upgrade.Env{TransientRetry: tc.retry, Common: revkit.Common{OnEvent: func(e revkit.Event) {
				if e.Action == upgrade.ActionRetry {
					retries = append(retries, e)
				}
			}}}
			plan := upgrade.Plan{Steps: []upgrade.Step{flaky("apply", tc.failures, tc.err, &runs)}}
			start := time.Now()
			rep, err := upgrade.Execute(ctx, env, plan)
			require.Len(t, rep.Steps, 1)
			sr := rep.Steps[0]
			if tc.want == upgrade.Failed && tc.attempts > 2 && sr.Attempts == tc.attempts-1 && time.Since(start) >= tc.retry {
				// The budget ran out a run early because the machine was
				// slow: still retried, still bounded.
				tc.attempts--
			}
			assert.Equal(t, tc.want, sr.Outcome)
			assert.Equal(t, tc.attempts, sr.Attempts)
			assert.Equal(t, tc.attempts, runs)
			require.Len(t, retries, tc.attempts-1, "one retry event before each new run")
			for _, e := range retries {
				assert.Equal(t, "apply", e.Step)
				assert.Contains(t, e.Message, "retry in ")
			}
			if tc.want == upgrade.Failed {
				var stepErr *upgrade.StepError
				require.ErrorAs(t, err, &stepErr)
				assert.ErrorIs(t, err, tc.err)
			} else {
				require.NoError(t, err)
				assert.InDelta(t, time.Since(start).Seconds(), sr.Duration.Seconds(), 0.1, "the duration spans every run")
				if tc.attempts > 1 {
					assert.Contains(t, rep.String(), fmt.Sprintf("ok (%d runs)", tc.attempts))
				}
			}
		})
	}
}

// With a journal, the lease, the step and its record are retried as one:
// a 503 on the journal's read at the start and on a step's patch are both
// ridden out, and each workload is still restarted once.
func TestExecuteTransientRetryJournaled(t *testing.T) {
	kube := revkittest.NewCluster().WithRevision("1-24-0").WithRevision("1-25-0").
		WithTag("prod-canary", "1-25-0").
		WithNamespace("a", revkittest.Rev("1-24-0"), revkittest.Label("team", "shop")).
		WithDeployment("a", "web", revkittest.OnRevision("1-24-0")).
		Kube()
	unavailable := apierrors.NewServiceUnavailable("apiserver is shutting down")
	leaseReads := revkittest.FailNth(kube, "get", "leases", 1, unavailable)
	nsPatches := revkittest.FailNth(kube, "patch", "namespaces", 1, unavailable)
	sel := namespace.Selection{Selector: "team=shop"}
	plan := upgrade.Plan{Name: "retry", Steps: []upgrade.Step{
		upgrade.MigrateNamespace(namespace.MigrateOptions{Selection: sel, Target: "prod-canary"}),
		upgrade.RolloutRestart(namespace.RestartOptions{Selection: sel, Target: "prod-canary", OnlyStale: true}),
	}}
	env := upgrade.Env{Kube: kube, TransientRetry: time.Minute, Journal: &upgrade.Journal{Holder: "t"}}
	rep, err := upgrade.Execute(ctx, env, plan)
	require.NoError(t, err, "%s", rep)
	assert.Equal(t, 2, rep.Steps[0].Attempts)
	assert.Equal(t, 1, rep.Steps[1].Attempts)
	assert.GreaterOrEqual(t, leaseReads(), 2, "the journal was opened again")
	assert.Equal(t, 2, nsPatches())
	restarted, err := revkittest.Restarted(ctx, kube)
	require.NoError(t, err)
	assert.Equal(t, []string{"Deployment/a/web"}, restarted)
	inj, err := revkittest.NamespaceInjection(ctx, kube)
	require.NoError(t, err)
	assert.Equal(t, "istio.io/rev=prod-canary", inj["a"])
}

// A run that failed after changing something counts in the report: the
// run that then finds nothing left to do does not make the step
// "unchanged".
func TestExecuteTransientRetryKeepsEarlierChanges(t *testing.T) {
	runs := 0
	deleted := revkit.Change{Object: revkit.ObjectRef{Kind: "MutatingWebhookConfiguration", Name: "istio-sidecar-injector-1-24-0"}, Action: revkit.ActionDelete}
	step := upgrade.Func("uninstall", "uninstall 1-24-0", func(context.Context, upgrade.Env) (upgrade.Result, error) {
		runs++
		if runs == 1 {
			return upgrade.Result{Changes: []revkit.Change{deleted}}, apierrors.NewServiceUnavailable("shutting down")
		}
		return upgrade.Result{Outcome: upgrade.Unchanged, Detail: "revision 1-24-0 is not installed",
			Changes: []revkit.Change{{Object: deleted.Object, Action: revkit.ActionUnchanged}}}, nil
	})
	rep, err := upgrade.Execute(ctx, upgrade.Env{TransientRetry: time.Minute}, upgrade.Plan{Steps: []upgrade.Step{step}})
	require.NoError(t, err)
	sr := rep.Steps[0]
	assert.Equal(t, upgrade.Done, sr.Outcome)
	assert.Equal(t, 2, sr.Attempts)
	assert.Equal(t, []revkit.Change{deleted, {Object: deleted.Object, Action: revkit.ActionUnchanged}}, sr.Changes)
	assert.Equal(t, "revision 1-24-0 is not installed; earlier runs: delete 1", sr.Detail)
}
