package upgrade_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	coordv1 "k8s.io/api/coordination/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/ptr"

	"github.com/revkit/revkit"
	"github.com/revkit/revkit/revkittest"
	"github.com/revkit/revkit/upgrade"
)

// counting returns a plan whose steps count their runs; step "b" fails
// while *failB is set.
func counting(runs map[string]int, failB *bool, started *time.Time) upgrade.Plan {
	step := func(name string) upgrade.Step {
		return upgrade.Func(name, "step "+name, func(_ context.Context, env upgrade.Env) (upgrade.Result, error) {
			runs[name]++
			if started != nil {
				*started = env.PlanStarted
			}
			if name == "b" && *failB {
				return upgrade.Result{}, errors.New("b broke")
			}
			return upgrade.Result{Outcome: upgrade.Done}, nil
		})
	}
	return upgrade.Plan{Name: "canary 1-24-0 → 1-25-0", Steps: []upgrade.Step{step("a"), step("b"), step("c")}}
}

func TestJournalResumes(t *testing.T) {
	kube := revkittest.NewCluster().WithRevision("1-24-0").Kube()
	runs := map[string]int{}
	failB := true
	var started time.Time
	env := upgrade.Env{Kube: kube, Journal: &upgrade.Journal{Holder: "me"}}

	_, err := upgrade.Execute(ctx, env, counting(runs, &failB, &started))
	require.Error(t, err)
	assert.Equal(t, map[string]int{"a": 1, "b": 1}, runs)
	assert.False(t, started.IsZero(), "steps see when the plan began")
	first := started

	failB = false
	rep, err := upgrade.Execute(ctx, env, counting(runs, &failB, &started))
	require.NoError(t, err)
	assert.Equal(t, map[string]int{"a": 1, "b": 2, "c": 1}, runs, "a is not run twice")
	assert.Equal(t, upgrade.Skipped, rep.Steps[0].Outcome)
	assert.Equal(t, "done in an earlier run", rep.Steps[0].Detail)
	assert.Equal(t, first, started, "the plan's start survives the rerun")

	_, err = upgrade.Execute(ctx, env, counting(runs, &failB, nil))
	require.NoError(t, err)
	assert.Equal(t, map[string]int{"a": 1, "b": 2, "c": 1}, runs, "a completed plan runs nothing again")

	cm, err := kube.CoreV1().ConfigMaps("istio-system").Get(ctx, upgrade.JournalName("canary 1-24-0 → 1-25-0"), metav1.GetOptions{})
	require.NoError(t, err)
	assert.Equal(t, "a\nb\nc", cm.Data["done"])
	assert.NotEmpty(t, cm.Data["completed"])
	_, err = kube.CoordinationV1().Leases("istio-system").Get(ctx, cm.Name, metav1.GetOptions{})
	assert.True(t, apierrors.IsNotFound(err), "the lease is released")
}

func TestJournalRefusesChangedInputs(t *testing.T) {
	kube := revkittest.NewCluster().WithRevision("1-24-0").Kube()
	runs := map[string]int{}
	failB := true
	env := upgrade.Env{Kube: kube, Journal: &upgrade.Journal{}}
	_, err := upgrade.Execute(ctx, env, counting(runs, &failB, nil))
	require.Error(t, err)

	changed := counting(runs, &failB, nil)
	changed.Steps = changed.Steps[:2]
	_, err = upgrade.Execute(ctx, env, changed)
	var mismatch *upgrade.JournalMismatchError
	require.ErrorAs(t, err, &mismatch)
	assert.ErrorIs(t, err, revkit.ErrInvalidInput)
	assert.Equal(t, []string{"a"}, mismatch.Done)

	failB = false
	env.Journal.Fresh = true
	_, err = upgrade.Execute(ctx, env, changed)
	require.NoError(t, err)
	assert.Equal(t, 2, runs["a"], "a fresh journal starts over")
}

func TestJournalLease(t *testing.T) {
	name := upgrade.JournalName("canary 1-24-0 → 1-25-0")
	lease := func(renewed time.Time) *coordv1.Lease {
		return &coordv1.Lease{ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: "istio-system"},
			Spec: coordv1.LeaseSpec{HolderIdentity: ptr.To("other-run"), LeaseDurationSeconds: ptr.To[int32](60),
				RenewTime: ptr.To(metav1.NewMicroTime(renewed))}}
	}
	runs := map[string]int{}
	failB := false

	kube := revkittest.NewCluster().WithRevision("1-24-0").WithObjects(lease(time.Now())).Kube()
	_, err := upgrade.Execute(ctx, upgrade.Env{Kube: kube, Journal: &upgrade.Journal{}}, counting(runs, &failB, nil))
	var locked *upgrade.LockedError
	require.ErrorAs(t, err, &locked)
	assert.ErrorIs(t, err, upgrade.ErrLocked)
	assert.Equal(t, "other-run", locked.Holder)
	assert.Empty(t, runs, "nothing runs while another run holds the plan")

	kube = revkittest.NewCluster().WithRevision("1-24-0").WithObjects(lease(time.Now().Add(-time.Hour))).Kube()
	_, err = upgrade.Execute(ctx, upgrade.Env{Kube: kube, Journal: &upgrade.Journal{}}, counting(runs, &failB, nil))
	require.NoError(t, err, "an expired lease is taken over")
	assert.Equal(t, 1, runs["c"])
}

func TestJournalEdges(t *testing.T) {
	runs := map[string]int{}
	failB := false

	// Dry runs keep no journal.
	kube := revkittest.NewCluster().WithRevision("1-24-0").Kube()
	_, err := upgrade.Execute(ctx, upgrade.Env{Kube: kube, Journal: &upgrade.Journal{},
		Common: revkit.Common{DryRun: revkit.DryRunClient}}, counting(runs, &failB, nil))
	require.NoError(t, err)
	revkittest.NoWrites(t, kube)

	// A plan needs a name to be journaled.
	unnamed := counting(runs, &failB, nil)
	unnamed.Name = ""
	_, err = upgrade.Execute(ctx, upgrade.Env{Kube: kube, Journal: &upgrade.Journal{}}, unnamed)
	assert.ErrorIs(t, err, revkit.ErrInvalidInput)

	// A journal that cannot be written fails the step it could not record.
	kube = revkittest.NewCluster().WithRevision("1-24-0").Kube()
	revkittest.FailAlways(kube, "update", "configmaps", apierrors.NewInternalError(errors.New("etcd down")))
	rep, err := upgrade.Execute(ctx, upgrade.Env{Kube: kube, Journal: &upgrade.Journal{}}, counting(runs, &failB, nil))
	require.Error(t, err)
	assert.Equal(t, "a", rep.Failed().Name)
	assert.Contains(t, rep.Failed().Detail, "journal")
	assert.True(t, apierrors.IsInternalError(err))

	assert.Equal(t, "revkit-plan-x-2d711642", upgrade.JournalName("x"))
	assert.LessOrEqual(t, len(upgrade.JournalName(string(make([]byte, 300)))), 63)
}

// The last step's record carries the plan's completion: one write, so that
// no failure can leave every step recorded but the plan unfinished, and a
// failure to record the last step fails that step with a *StepError.
func TestJournalCompletesWithLastStep(t *testing.T) {
	runs := map[string]int{}
	failB := false
	name := upgrade.JournalName("canary 1-24-0 → 1-25-0")
	kube := revkittest.NewCluster().WithRevision("1-24-0").Kube()
	journal := func() map[string]string {
		t.Helper()
		cm, err := kube.CoreV1().ConfigMaps("istio-system").Get(ctx, name, metav1.GetOptions{})
		require.NoError(t, err)
		return cm.Data
	}
	calls := revkittest.FailNth(kube, "update", "configmaps", 3, apierrors.NewServiceUnavailable("apiserver restarting"))
	env := upgrade.Env{Kube: kube, Journal: &upgrade.Journal{Holder: "me"}}
	rep, err := upgrade.Execute(ctx, env, counting(runs, &failB, nil))
	var stepErr *upgrade.StepError
	require.ErrorAs(t, err, &stepErr)
	assert.Equal(t, "c", stepErr.Step)
	assert.True(t, apierrors.IsServiceUnavailable(err))
	assert.Equal(t, upgrade.Failed, rep.Steps[2].Outcome)
	assert.Equal(t, 3, calls(), "one journal update per step, none after the last")
	data := journal()
	assert.Equal(t, "a\nb", data["done"])
	assert.Empty(t, data["completed"])

	_, err = upgrade.Execute(ctx, env, counting(runs, &failB, nil))
	require.NoError(t, err)
	assert.Equal(t, map[string]int{"a": 1, "b": 1, "c": 2}, runs, "only the unrecorded step runs again")
	assert.Equal(t, 4, calls(), "the rerun records c and the completion in one update")
	data = journal()
	assert.Equal(t, "a\nb\nc", data["done"])
	assert.NotEmpty(t, data["completed"])
}
