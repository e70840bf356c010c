package upgrade_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/revkit/revkit"
	"github.com/revkit/revkit/tag"
	"github.com/revkit/revkit/upgrade"
)

var ctx = context.Background()

// runLog records which steps ran, in order.
type runLog struct{ ran []string }

// step returns a step that records its run and returns res and err.
func (l *runLog) step(name string, res upgrade.Result, err error) upgrade.Step {
	return upgrade.Func(name, "test step "+name, func(context.Context, upgrade.Env) (upgrade.Result, error) {
		l.ran = append(l.ran, name)
		return res, err
	})
}

func (l *runLog) ok(name string) upgrade.Step {
	return l.step(name, upgrade.Result{Outcome: upgrade.Done, Detail: name + " done"}, nil)
}

func outcomes(list []upgrade.StepReport) []string {
	var out []string
	for _, s := range list {
		out = append(out, s.Name+"="+string(s.Outcome))
	}
	return out
}

func TestExecuteRunsStepsInOrder(t *testing.T) {
	var l runLog
	plan := upgrade.Plan{
		Name: "order",
		Steps: []upgrade.Step{
			l.ok("a"),
			l.step("b", upgrade.Result{Outcome: upgrade.Unchanged}, nil),
			l.step("c", upgrade.Result{Outcome: upgrade.Skipped, Detail: "not needed"}, nil),
			l.step("d", upgrade.Result{Detail: "no outcome given"}, nil),
		},
		OnFailure: []upgrade.Step{l.ok("undo")},
	}
	rep, err := upgrade.Execute(ctx, upgrade.Env{}, plan)
	require.NoError(t, err)
	assert.Equal(t, []string{"a", "b", "c", "d"}, l.ran, "steps run in plan order; on-failure steps only after a failure")
	assert.Equal(t, []string{"a=done", "b=unchanged", "c=skipped", "d=done"}, outcomes(rep.Steps))
	assert.Empty(t, rep.OnFailure)
	assert.Nil(t, rep.Failed())
	assert.Equal(t, "order", rep.Plan.Name)
	assert.Equal(t, "a done", rep.Steps[0].Detail)
	assert.Equal(t, "test step a", rep.Steps[0].Description)
	for i, s := range rep.Steps {
		assert.False(t, s.Started.IsZero(), "step %s has a start time", s.Name)
		assert.NoError(t, s.Err)
		if i > 0 {
			assert.False(t, s.Started.Before(rep.Steps[i-1].Started), "step %s started after %s", s.Name, rep.Steps[i-1].Name)
		}
	}
}

func TestExecuteEmptyPlan(t *testing.T) {
	rep, err := upgrade.Execute(ctx, upgrade.Env{}, upgrade.Plan{})
	require.NoError(t, err)
	assert.Empty(t, rep.Steps)
	assert.Nil(t, rep.Failed())
}

var errBoom = errors.New("boom")

func TestExecuteStopsAtFirstFailure(t *testing.T) {
	gateErr := fmt.Errorf("health check: %w", revkit.ErrVerificationFailed)
	tests := []struct {
		name       string
		res        upgrade.Result
		err        error
		wantIs     error
		wantDetail string
		gate       bool
	}{
		{name: "step returns an error", err: errBoom, wantIs: errBoom, wantDetail: "boom"},
		{name: "failed gate", res: upgrade.Result{Outcome: upgrade.Failed, Detail: "3 stragglers"}, err: gateErr,
			wantIs: revkit.ErrVerificationFailed, wantDetail: "3 stragglers", gate: true},
		{name: "error wins over an outcome", res: upgrade.Result{Outcome: upgrade.Done, Detail: "half done"}, err: errBoom,
			wantIs: errBoom, wantDetail: "half done"},
		{name: "failed outcome without error", res: upgrade.Result{Outcome: upgrade.Failed, Detail: "not healthy"},
			wantDetail: "not healthy"},
		{name: "failed outcome without error or detail", res: upgrade.Result{Outcome: upgrade.Failed},
			wantDetail: "step reported failure"},
		{name: "a step may not claim not-run", res: upgrade.Result{Outcome: upgrade.NotRun},
			wantDetail: `step returned outcome "not-run", want done, unchanged, skipped or failed`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var l runLog
			plan := upgrade.Plan{
				Steps: []upgrade.Step{l.ok("first"), l.step("bad", tt.res, tt.err), l.ok("third"), l.ok("fourth")},
				OnFailure: []upgrade.Step{
					l.ok("undo-1"),
					l.step("undo-2", upgrade.Result{}, errors.New("undo failed")),
					l.ok("undo-3"),
				},
			}
			rep, err := upgrade.Execute(ctx, upgrade.Env{}, plan)
			require.Error(t, err)
			require.NotNil(t, rep)

			assert.Equal(t, []string{"first", "bad", "undo-1", "undo-2", "undo-3"}, l.ran,
				"nothing after the failed step ran; every on-failure step ran although one failed")
			assert.Equal(t, []string{"first=done", "bad=failed", "third=not-run", "fourth=not-run"}, outcomes(rep.Steps))
			assert.Equal(t, []string{"undo-1=done", "undo-2=failed", "undo-3=done"}, outcomes(rep.OnFailure))
			assert.EqualError(t, rep.OnFailure[1].Err, "undo failed")

			var se *upgrade.StepError
			require.ErrorAs(t, err, &se)
			assert.Equal(t, "bad", se.Step)
			if tt.wantIs != nil {
				assert.ErrorIs(t, err, tt.wantIs)
			}
			assert.Equal(t, tt.gate, errors.Is(err, revkit.ErrVerificationFailed))

			failed := rep.Failed()
			require.NotNil(t, failed)
			assert.Equal(t, "bad", failed.Name)
			assert.Equal(t, tt.wantDetail, failed.Detail)
			assert.Equal(t, tt.gate, failed.GateFailed())
			assert.Same(t, se.Err, failed.Err, "the StepError carries the step's own error")
			for _, s := range rep.Steps[2:] {
				assert.True(t, s.Started.IsZero(), "%s never started", s.Name)
				assert.Zero(t, s.Duration)
				assert.NoError(t, s.Err)
			}
		})
	}
}

func TestExecuteCancellation(t *testing.T) {
	t.Run("cancelled during a step: the next one fails, the rest are not run", func(t *testing.T) {
		c, cancel := context.WithCancel(ctx)
		defer cancel()
		var l runLog
		plan := upgrade.Plan{Steps: []upgrade.Step{
			upgrade.Func("cancel", "", func(context.Context, upgrade.Env) (upgrade.Result, error) {
				l.ran = append(l.ran, "cancel")
				cancel()
				return upgrade.Result{Outcome: upgrade.Done}, nil
			}),
			l.ok("next"),
			l.ok("last"),
		}}
		rep, err := upgrade.Execute(c, upgrade.Env{}, plan)
		assert.ErrorIs(t, err, context.Canceled)
		assert.Equal(t, []string{"cancel"}, l.ran)
		assert.Equal(t, []string{"cancel=done", "next=failed", "last=not-run"}, outcomes(rep.Steps))
		assert.Equal(t, "next", rep.Failed().Name)
		assert.ErrorIs(t, rep.Failed().Err, context.Canceled)
		assert.Equal(t, context.Canceled.Error(), rep.Failed().Detail)
	})
	t.Run("cancelled before the start: nothing runs, on-failure steps see the cancelled context", func(t *testing.T) {
		c, cancel := context.WithCancel(ctx)
		cancel()
		var l runLog
		plan := upgrade.Plan{Steps: []upgrade.Step{l.ok("a"), l.ok("b")}, OnFailure: []upgrade.Step{l.ok("undo")}}
		rep, err := upgrade.Execute(c, upgrade.Env{}, plan)
		var se *upgrade.StepError
		require.ErrorAs(t, err, &se)
		assert.Equal(t, "a", se.Step)
		assert.Empty(t, l.ran)
		assert.Equal(t, []string{"a=failed", "b=not-run"}, outcomes(rep.Steps))
		assert.Equal(t, []string{"undo=failed"}, outcomes(rep.OnFailure))
		assert.ErrorIs(t, rep.OnFailure[0].Err, context.Canceled)
	})
	t.Run("deadline passed while a step ran", func(t *testing.T) {
		c, cancel := context.WithTimeout(ctx, time.Millisecond)
		defer cancel()
		var l runLog
		plan := upgrade.Plan{Steps: []upgrade.Step{
			upgrade.Func("slow", "", func(c context.Context, _ upgrade.Env) (upgrade.Result, error) {
				<-c.Done()
				return upgrade.Result{}, c.Err()
			}),
			l.ok("after"),
		}}
		rep, err := upgrade.Execute(c, upgrade.Env{}, plan)
		assert.ErrorIs(t, err, context.DeadlineExceeded)
		assert.Empty(t, l.ran)
		assert.Equal(t, []string{"slow=failed", "after=not-run"}, outcomes(rep.Steps))
	})
}

func TestExecuteEvents(t *testing.T) {
	var events []revkit.Event
	var logs bytes.Buffer
	env := upgrade.Env{Common: revkit.Common{
		DryRun:  revkit.DryRunClient,
		OnEvent: func(e revkit.Event) { events = append(events, e) },
		Logger:  slog.New(slog.NewTextHandler(&logs, &slog.HandlerOptions{Level: slog.LevelDebug})),
	}}
	inner := func(name string) upgrade.Step {
		return upgrade.Func(name, "", func(ctx context.Context, env upgrade.Env) (upgrade.Result, error) {
			assert.Nil(t, env.Common.Logger, "a step's events are logged once, by the plan")
			assert.Equal(t, revkit.DryRunClient, env.Common.DryRun, "the step runs in the plan's dry-run mode")
			env.Common.Emit(ctx, revkit.Event{Operation: "test.Op", Step: "wrong", Action: revkit.ActionUpdate,
				Object: revkit.ObjectRef{Kind: "Thing", Name: name}, Message: "did " + name})
			return upgrade.Result{}, nil
		})
	}
	plan := upgrade.Plan{
		Steps: []upgrade.Step{
			inner("one"),
			upgrade.Func("gate", "", func(context.Context, upgrade.Env) (upgrade.Result, error) {
				return upgrade.Result{}, revkit.ErrVerificationFailed
			}),
			inner("skipped"),
		},
		OnFailure: []upgrade.Step{inner("undo")},
	}
	_, err := upgrade.Execute(ctx, env, plan)
	require.ErrorIs(t, err, revkit.ErrVerificationFailed)

	var got []string
	for _, e := range events {
		got = append(got, fmt.Sprintf("%s %s %s", e.Step, e.Operation, e.Action))
		assert.Equal(t, revkit.DryRunClient, e.DryRun)
		assert.False(t, e.Time.IsZero())
	}
	assert.Equal(t, []string{
		"one upgrade.Execute start",
		"one test.Op update",
		"one upgrade.Execute done",
		"gate upgrade.Execute start",
		"gate upgrade.Execute failed",
		"skipped upgrade.Execute not-run",
		"undo upgrade.Execute start",
		"undo test.Op update",
		"undo upgrade.Execute done",
	}, got)
	assert.Equal(t, "failed: verification failed", events[4].Message)
	assert.Equal(t, "did one", events[1].Message)

	lines := strings.Split(strings.TrimSpace(logs.String()), "\n")
	assert.Len(t, lines, len(events), "every event is logged exactly once")
	assert.Contains(t, lines[1], `msg="did one"`)
	assert.Contains(t, lines[1], "step=one")
	assert.Contains(t, lines[1], "operation=test.Op")
}

func TestExecuteWithoutCallback(t *testing.T) {
	// No OnEvent and no Logger: a step may still emit.
	var l runLog
	plan := upgrade.Plan{Steps: []upgrade.Step{
		upgrade.Func("emit", "", func(ctx context.Context, env upgrade.Env) (upgrade.Result, error) {
			env.Common.Emit(ctx, revkit.Event{Operation: "test.Op", Message: "quiet"})
			return upgrade.Result{}, nil
		}),
		l.ok("after"),
	}}
	rep, err := upgrade.Execute(ctx, upgrade.Env{}, plan)
	require.NoError(t, err)
	assert.Equal(t, []string{"emit=done", "after=done"}, outcomes(rep.Steps))
}

func TestExecuteRefusesInvalidPlan(t *testing.T) {
	var l runLog
	fine := l.ok("fine")
	tests := []struct {
		name   string
		plan   upgrade.Plan
		env    upgrade.Env
		target any
		msg    string
	}{
		{name: "nil step", plan: upgrade.Plan{Steps: []upgrade.Step{fine, nil}},
			target: new(*upgrade.InvalidStepError), msg: "invalid plan: step 2: invalid step: must not be nil"},
		{name: "empty name", plan: upgrade.Plan{Steps: []upgrade.Step{fine, l.ok(" ")}},
			target: new(*upgrade.InvalidStepError), msg: `invalid plan: step 2 " ": invalid name: must not be empty`},
		{name: "name on two lines", plan: upgrade.Plan{Steps: []upgrade.Step{fine, l.ok("a\nb")}},
			target: new(*upgrade.InvalidStepError), msg: "must be one line without tabs"},
		{name: "duplicate name", plan: upgrade.Plan{Steps: []upgrade.Step{fine, l.ok("x"), l.ok("fine")}},
			target: new(*upgrade.DuplicateStepError), msg: `invalid plan: step name "fine" used twice (rename one with upgrade.Named)`},
		{name: "on-failure step reuses a name", plan: upgrade.Plan{Steps: []upgrade.Step{fine}, OnFailure: []upgrade.Step{l.ok("fine")}},
			target: new(*upgrade.DuplicateStepError), msg: `"fine" used twice`},
		{name: "nil on-failure step", plan: upgrade.Plan{Steps: []upgrade.Step{fine}, OnFailure: []upgrade.Step{l.ok("u"), nil}},
			target: new(*upgrade.InvalidStepError), msg: "invalid plan: on-failure step 2: invalid step: must not be nil"},
		{name: "func without function", plan: upgrade.Plan{Steps: []upgrade.Step{fine, upgrade.Func("f", "", nil)}},
			target: new(*upgrade.InvalidStepError), msg: `invalid plan: step 2 "f": invalid fn: must not be nil`},
		{name: "named nil step", plan: upgrade.Plan{Steps: []upgrade.Step{fine, upgrade.Named("n", nil)}},
			target: new(*upgrade.InvalidStepError), msg: `invalid plan: step 2 "n": invalid step: must not be nil`},
		{name: "named step keeps the validation of the step it renames", plan: upgrade.Plan{Steps: []upgrade.Step{fine,
			upgrade.Named("n", upgrade.Func("f", "", nil))}},
			target: new(*upgrade.InvalidStepError), msg: `step 2 "n": invalid fn`},
		{name: "custom validator error", plan: upgrade.Plan{Steps: []upgrade.Step{fine, validating{errBoom}}},
			target: new(*upgrade.InvalidStepError), msg: `invalid plan: step 2 "validating": boom`},
		{name: "unknown dry-run mode", plan: upgrade.Plan{Steps: []upgrade.Step{fine}},
			env: upgrade.Env{Common: revkit.Common{DryRun: revkit.DryRun(7)}}, target: new(*revkit.InvalidInputError), msg: "unknown dry-run mode"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			l.ran = nil
			rep, err := upgrade.Execute(ctx, tt.env, tt.plan)
			assertNothingRan(t, rep)
			require.Error(t, err)
			assert.ErrorIs(t, err, revkit.ErrInvalidInput)
			assert.ErrorAs(t, err, tt.target)
			assert.Contains(t, err.Error(), tt.msg)
			assert.Empty(t, l.ran, "no step ran")
			if tt.env.Common.DryRun == revkit.DryRunNone {
				assert.Equal(t, err, tt.plan.Validate(), "Plan.Validate gives the same answer")
			}
		})
	}
}

func TestInvalidStepErrorUnwraps(t *testing.T) {
	err := upgrade.Plan{Steps: []upgrade.Step{validating{errBoom}}}.Validate()
	assert.ErrorIs(t, err, errBoom)
	assert.ErrorIs(t, err, revkit.ErrInvalidInput, "whatever the validator returned, the plan is invalid input")
	var ise *upgrade.InvalidStepError
	require.ErrorAs(t, err, &ise)
	assert.Equal(t, upgrade.InvalidStepError{Step: "validating", Index: 0, Err: errBoom}, *ise)
}

// validating is a step with its own Validate.
type validating struct{ err error }

func (validating) Name() string        { return "validating" }
func (validating) Description() string { return "validates" }
func (v validating) Validate() error   { return v.err }
func (validating) Run(context.Context, upgrade.Env) (upgrade.Result, error) {
	return upgrade.Result{}, nil
}

func TestNamed(t *testing.T) {
	var l runLog
	s := upgrade.Named("renamed", l.step("orig", upgrade.Result{Outcome: upgrade.Unchanged, Detail: "d"}, nil))
	assert.Equal(t, "renamed", s.Name())
	assert.Equal(t, "test step orig", s.Description())
	assert.Equal(t, "", upgrade.Named("x", nil).Description())
	v, ok := s.(upgrade.Validator)
	require.True(t, ok)
	assert.NoError(t, v.Validate(), "a step without Validate is valid")

	rep, err := upgrade.Execute(ctx, upgrade.Env{}, upgrade.Plan{Steps: []upgrade.Step{s}})
	require.NoError(t, err)
	assert.Equal(t, []string{"orig"}, l.ran)
	assert.Equal(t, []string{"renamed=unchanged"}, outcomes(rep.Steps))
	assert.Equal(t, "d", rep.Steps[0].Detail)
}

func TestOutcomeString(t *testing.T) {
	assert.Equal(t, "not-run", upgrade.NotRun.String())
	assert.Equal(t, "done", fmt.Sprint(upgrade.Done))
}

func TestStepErrorMessage(t *testing.T) {
	err := &upgrade.StepError{Step: "verify-pods", Err: errBoom}
	assert.EqualError(t, err, `step "verify-pods" failed: boom`)
	assert.ErrorIs(t, err, errBoom)
}

func TestExecuteRecoversPanics(t *testing.T) {
	var l runLog
	plan := upgrade.Plan{
		Steps: []upgrade.Step{
			l.ok("a"),
			upgrade.Func("bug", "", func(context.Context, upgrade.Env) (upgrade.Result, error) {
				var m map[string]int
				m["x"]++ // panics: assignment to entry in nil map
				return upgrade.Result{}, nil
			}),
			l.ok("c"),
		},
		OnFailure: []upgrade.Step{l.ok("undo")},
	}
	rep, err := upgrade.Execute(ctx, upgrade.Env{}, plan)
	var pe *upgrade.PanicError
	require.ErrorAs(t, err, &pe)
	assert.Contains(t, fmt.Sprint(pe.Value), "nil map")
	assert.Contains(t, string(pe.Stack), "TestExecuteRecoversPanics")
	assert.Equal(t, []string{"a", "undo"}, l.ran, "the on-failure steps ran after the panic")
	assert.Equal(t, []string{"a=done", "bug=failed", "c=not-run"}, outcomes(rep.Steps))
	assert.Equal(t, "panic: assignment to entry in nil map", rep.Failed().Detail)
	assert.EqualError(t, err, `step "bug" failed: panic: assignment to entry in nil map`)
}

// assertNothingRan checks the report of a plan refused before its first
// step: there is one (Execute never returns a nil report), nothing failed
// and every step is NotRun.
func assertNothingRan(t *testing.T, rep *upgrade.Report) {
	t.Helper()
	require.NotNil(t, rep, "Execute returns a report even when it refuses the plan")
	assert.Nil(t, rep.Failed())
	for _, s := range rep.Steps {
		assert.Equal(t, upgrade.NotRun, s.Outcome, "step %q", s.Name)
		assert.Contains(t, s.Detail, "not run: ")
	}
	assert.NotEmpty(t, rep.String())
}

// Object changes and step lifecycle are separate kinds of event.
func TestEventKinds(t *testing.T) {
	kube := canaryCluster().Kube()
	var kinds []string
	onEvent := func(e revkit.Event) {
		switch e.Kind {
		case revkit.EventStep:
			assert.Empty(t, e.Object.Kind, "a step event names no object: %+v", e)
			kinds = append(kinds, "step "+string(e.Action))
		case revkit.EventObject:
			assert.NotEmpty(t, e.Object.Kind, "an object event names its object: %+v", e)
			assert.Equal(t, "set-tag prod-canary→1-25-0", e.Step)
			kinds = append(kinds, "object "+string(e.Action)+" "+e.Object.Kind)
		default:
			t.Errorf("event of no kind: %+v", e)
		}
	}
	_, err := upgrade.Execute(ctx, upgrade.Env{Kube: kube, Common: revkit.Common{OnEvent: onEvent}}, upgrade.Plan{Steps: []upgrade.Step{
		upgrade.SetTag(tag.SetOptions{Tag: "prod-canary", Revision: "1-25-0"}),
	}})
	require.NoError(t, err)
	assert.Equal(t, []string{"step start", "object create MutatingWebhookConfiguration", "object create Service", "step done"}, kinds)
}
