package upgrade_test

import (
	"context"
	"errors"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	coordv1 "k8s.io/api/coordination/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	k8stesting "k8s.io/client-go/testing"
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
	_, err = kube.CoordinationV1().Leases("istio-system").Get(ctx, upgrade.LockName, metav1.GetOptions{})
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
	lease := func(renewed time.Time) *coordv1.Lease {
		return &coordv1.Lease{ObjectMeta: metav1.ObjectMeta{Name: upgrade.LockName, Namespace: "istio-system",
			Annotations: map[string]string{"revkit.io/plan": "rollback 1-25-0 → 1-24-0"}},
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
	assert.Equal(t, "rollback 1-25-0 → 1-24-0", locked.HolderPlan)
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

// blocking is a journaled plan whose one step waits until release is closed
// or its context ends, and says on started when it began.
func blocking(name string, started chan<- struct{}, release <-chan struct{}) upgrade.Plan {
	return upgrade.Plan{Name: name,
		Steps: []upgrade.Step{upgrade.Func("wait", "a long rollout wait", func(ctx context.Context, _ upgrade.Env) (upgrade.Result, error) {
			close(started)
			select {
			case <-release:
				return upgrade.Result{Outcome: upgrade.Done}, nil
			case <-ctx.Done():
				return upgrade.Result{}, ctx.Err()
			}
		})},
		OnFailure: []upgrade.Step{upgrade.Func("undo", "", func(context.Context, upgrade.Env) (upgrade.Result, error) {
			return upgrade.Result{Outcome: upgrade.Done}, nil
		})},
	}
}

// The lease is renewed while a step runs, however long it takes, and it is
// one per control-plane namespace: neither a rerun of the same plan nor
// another plan (a rollback) can take over in the middle of a step that
// outlasts the lease.
func TestJournalLeaseHeldDuringLongStep(t *testing.T) {
	for _, second := range []string{"canary 1-24-0 → 1-25-0", "rollback 1-25-0 → 1-24-0"} {
		t.Run(second, func(t *testing.T) {
			kube := revkittest.NewCluster().WithRevision("1-24-0").Kube()
			started, release := make(chan struct{}), make(chan struct{})
			first := make(chan error, 1)
			go func() {
				_, err := upgrade.Execute(ctx, upgrade.Env{Kube: kube, Journal: &upgrade.Journal{Holder: "first", LeaseDuration: time.Second}},
					blocking("canary 1-24-0 → 1-25-0", started, release))
				first <- err
			}()
			<-started
			time.Sleep(2500 * time.Millisecond) // 2.5 lease durations into the step

			ran := false
			other := upgrade.Plan{Name: second, Steps: []upgrade.Step{upgrade.Func("x", "", func(context.Context, upgrade.Env) (upgrade.Result, error) {
				ran = true
				return upgrade.Result{}, nil
			})}}
			rep, err := upgrade.Execute(ctx, upgrade.Env{Kube: kube, Journal: &upgrade.Journal{Holder: "second", LeaseDuration: time.Second}}, other)
			var locked *upgrade.LockedError
			require.ErrorAs(t, err, &locked, "the second run is refused while the first one's step runs")
			assert.Equal(t, "first", locked.Holder)
			assert.Equal(t, "canary 1-24-0 → 1-25-0", locked.HolderPlan)
			assert.Equal(t, second, locked.Plan)
			assert.False(t, ran)
			require.NotNil(t, rep)
			assert.Equal(t, upgrade.NotRun, rep.Steps[0].Outcome)

			close(release)
			require.NoError(t, <-first, "the first run was not disturbed")
			// (Fresh: the same plan name with other steps is another plan.)
			_, err = upgrade.Execute(ctx, upgrade.Env{Kube: kube, Journal: &upgrade.Journal{Holder: "second", LeaseDuration: time.Second, Fresh: true}}, other)
			require.NoError(t, err, "once the first run ended the second one runs")
			assert.True(t, ran)
		})
	}
}

// A run whose lease is taken over while a step runs is stopped at once: the
// step's context is cancelled, the plan fails with a *LeaseLostError, the
// on-failure steps are left to the new holder and the step is not recorded.
func TestJournalLeaseLostCancelsTheStep(t *testing.T) {
	kube := revkittest.NewCluster().WithRevision("1-24-0").Kube()
	started, release := make(chan struct{}), make(chan struct{})
	defer close(release)
	type result struct {
		rep *upgrade.Report
		err error
	}
	done := make(chan result, 1)
	plan := blocking("canary 1-24-0 → 1-25-0", started, release)
	go func() {
		rep, err := upgrade.Execute(ctx, upgrade.Env{Kube: kube, Journal: &upgrade.Journal{Holder: "first", LeaseDuration: 3 * time.Second}}, plan)
		done <- result{rep, err}
	}()
	<-started
	leases := kube.CoordinationV1().Leases("istio-system")
	l, err := leases.Get(ctx, upgrade.LockName, metav1.GetOptions{})
	require.NoError(t, err)
	l.Spec.HolderIdentity = ptr.To("intruder")
	_, err = leases.Update(ctx, l, metav1.UpdateOptions{})
	require.NoError(t, err)
	took := time.Now()

	var r result
	select {
	case r = <-done:
	case <-time.After(10 * time.Second):
		t.Fatal("the run went on after losing its lease")
	}
	assert.Less(t, time.Since(took), 3*time.Second, "stopped within one renewal period (1 s), not after the step")
	var lost *upgrade.LeaseLostError
	require.ErrorAs(t, r.err, &lost)
	assert.ErrorIs(t, r.err, upgrade.ErrLeaseLost)
	assert.ErrorIs(t, r.err, upgrade.ErrLocked)
	assert.Equal(t, "intruder", lost.Holder)
	require.NotNil(t, r.rep)
	assert.Equal(t, upgrade.Failed, r.rep.Steps[0].Outcome)
	require.Len(t, r.rep.OnFailure, 1)
	assert.Equal(t, upgrade.NotRun, r.rep.OnFailure[0].Outcome, "undoing is the new holder's business")

	cm, err := kube.CoreV1().ConfigMaps("istio-system").Get(ctx, upgrade.JournalName(plan.Name), metav1.GetOptions{})
	require.NoError(t, err)
	assert.Empty(t, cm.Data["done"], "the interrupted step is not recorded")
	l, err = leases.Get(ctx, upgrade.LockName, metav1.GetOptions{})
	require.NoError(t, err, "the lost lease is not deleted on the way out")
	assert.Equal(t, "intruder", ptr.Deref(l.Spec.HolderIdentity, ""))
}

func TestJournalLeaseDurationTooShort(t *testing.T) {
	kube := revkittest.NewCluster().WithRevision("1-24-0").Kube()
	runs := map[string]int{}
	failB := false
	rep, err := upgrade.Execute(ctx, upgrade.Env{Kube: kube, Journal: &upgrade.Journal{LeaseDuration: 500 * time.Millisecond}},
		counting(runs, &failB, nil))
	assert.ErrorIs(t, err, revkit.ErrInvalidInput)
	assert.Empty(t, runs)
	require.NotNil(t, rep)
	revkittest.NoWrites(t, kube)
}

// After the on-failure steps of a journaled plan ran, the journal forgets
// the steps they undid: a rerun runs them again instead of skipping them.
func TestJournalRecordsOnFailureRollback(t *testing.T) {
	kube := revkittest.NewCluster().WithRevision("1-24-0").Kube()
	runs := map[string]int{}
	failB := true
	env := upgrade.Env{Kube: kube, Journal: &upgrade.Journal{Holder: "me"}}
	plan := func() upgrade.Plan {
		p := counting(runs, &failB, nil)
		p.OnFailure = []upgrade.Step{upgrade.Func("undo", "undo a", func(context.Context, upgrade.Env) (upgrade.Result, error) {
			runs["undo"]++
			return upgrade.Result{Outcome: upgrade.Done}, nil
		})}
		return p
	}
	_, err := upgrade.Execute(ctx, env, plan())
	require.Error(t, err)
	assert.Equal(t, map[string]int{"a": 1, "b": 1, "undo": 1}, runs)
	cm, err := kube.CoreV1().ConfigMaps("istio-system").Get(ctx, upgrade.JournalName(plan().Name), metav1.GetOptions{})
	require.NoError(t, err)
	assert.Empty(t, cm.Data["done"])
	assert.Equal(t, "a", cm.Data["undone"])
	assert.NotEmpty(t, cm.Data["rolledBack"])

	failB = false
	rep, err := upgrade.Execute(ctx, env, plan())
	require.NoError(t, err)
	assert.Equal(t, map[string]int{"a": 2, "b": 2, "c": 1, "undo": 1}, runs, "a, undone by the rollback, runs again")
	assert.Equal(t, upgrade.Done, rep.Steps[0].Outcome)
}

// An apiserver outage shorter than the lease does not lose it: failed
// renewals are tried again until one gets through. One longer than the
// lease does, and stops the plan with the renewal's error.
func TestJournalLeaseRidesOutShortOutage(t *testing.T) {
	for _, tc := range []struct {
		name   string
		outage time.Duration
		lost   bool
	}{
		{"outage shorter than the lease", 2 * time.Second, false},
		{"outage longer than the lease", 5 * time.Second, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			kube := revkittest.NewCluster().WithRevision("1-24-0").Kube()
			var down atomic.Bool
			kube.PrependReactor("*", "leases", func(k8stesting.Action) (bool, runtime.Object, error) {
				if down.Load() {
					return true, nil, revkittest.ConnectionRefused()
				}
				return false, nil, nil
			})
			plan := upgrade.Plan{Name: "p", Steps: []upgrade.Step{upgrade.Func("wait", "", func(ctx context.Context, _ upgrade.Env) (upgrade.Result, error) {
				down.Store(true)
				select {
				case <-time.After(tc.outage):
				case <-ctx.Done():
				}
				down.Store(false)
				// Long enough after the outage for a renewal to get through.
				select {
				case <-time.After(2 * time.Second):
					return upgrade.Result{Outcome: upgrade.Done}, nil
				case <-ctx.Done():
					return upgrade.Result{}, ctx.Err()
				}
			})}}
			_, err := upgrade.Execute(ctx, upgrade.Env{Kube: kube, Journal: &upgrade.Journal{Holder: "me", LeaseDuration: 3 * time.Second}}, plan)
			if !tc.lost {
				require.NoError(t, err)
				return
			}
			var lost *upgrade.LeaseLostError
			require.ErrorAs(t, err, &lost)
			assert.Empty(t, lost.Holder)
			assert.ErrorContains(t, err, "connection refused")
			assert.NotErrorIs(t, err, upgrade.ErrLocked, "nobody else holds it")
		})
	}
}
