package upgrade

import (
	"context"
	"errors"
	"fmt"
	"runtime/debug"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/revkit/revkit"
	"github.com/revkit/revkit/internal/kubeutil"
)

// operation is the Operation of the events Execute emits itself.
const operation = "upgrade.Execute"

// ActionStart is the Action of the event Execute emits when a step starts.
// The event for its end carries the step's outcome as its Action
// (revkit.Action(Done), …, revkit.Action(NotRun)).
const ActionStart revkit.Action = "start"

// ActionRetry is the Action of the event Execute emits before it runs a
// step again after a transient failure (Env.TransientRetry).
const ActionRetry revkit.Action = "retry"

// StepReport is what became of one step.
type StepReport struct {
	Name        string
	Description string
	Outcome     Outcome
	// Detail is the step's one-line summary, or the error of a failed step
	// that gave none.
	Detail  string
	Changes []revkit.Change
	// Started is zero, and Duration 0, for a step that was not run. For a
	// step run more than once they span every run.
	Started  time.Time
	Duration time.Duration
	// Err is the error that failed the step.
	Err error
	// Attempts is how many times the step ran: more than one when
	// Env.TransientRetry ran it again; zero when it did not run.
	Attempts int
	// Resumed is set for a step the journal skipped because it completed
	// in an earlier run (its Outcome is Skipped).
	Resumed bool
}

// GateFailed reports whether the step failed because a verification did
// not pass (rather than because an operation could not be carried out).
func (s *StepReport) GateFailed() bool {
	return s.Outcome == Failed && errors.Is(s.Err, revkit.ErrVerificationFailed)
}

// Report is the result of Execute: every step of the plan, in order.
type Report struct {
	Plan      Plan
	Steps     []StepReport
	OnFailure []StepReport
	DryRun    revkit.DryRun
}

// Failed returns the report of the step that stopped the plan, or nil when
// every step succeeded.
func (r *Report) Failed() *StepReport {
	for i := range r.Steps {
		if r.Steps[i].Outcome == Failed {
			return &r.Steps[i]
		}
	}
	return nil
}

// String renders the report as a table: step, outcome, duration, detail,
// with the on-failure steps below the plan's own.
func (r *Report) String() string {
	var b strings.Builder
	tw := tabwriter.NewWriter(&b, 0, 4, 2, ' ', 0)
	title := "Plan"
	if r.Plan.Name != "" {
		title = fmt.Sprintf("Plan %q", r.Plan.Name)
	}
	if r.DryRun != revkit.DryRunNone {
		title += fmt.Sprintf(" (dry run: %s)", r.DryRun)
	}
	fmt.Fprintln(tw, title+":")
	fmt.Fprintln(tw, "STEP\tOUTCOME\tDURATION\tDETAIL")
	rows := func(list []StepReport) {
		for _, s := range list {
			d := "-"
			if !s.Started.IsZero() {
				d = s.Duration.Round(time.Millisecond).String()
			}
			detail := oneLine(s.Detail)
			if s.Attempts > 1 {
				detail += fmt.Sprintf(" (%d runs)", s.Attempts)
			}
			fmt.Fprintf(tw, "%s\t%s\t%s\t%s\n", s.Name, s.Outcome, d, detail)
		}
	}
	rows(r.Steps)
	if len(r.OnFailure) > 0 {
		fmt.Fprintln(tw, "On failure:\t\t\t")
		rows(r.OnFailure)
	}
	tw.Flush()
	return trimLines(b.String())
}

func oneLine(s string) string {
	return strings.Join(strings.Fields(s), " ")
}

// StepError reports the step that stopped the plan. It unwraps to the
// step's error, so errors.Is(err, revkit.ErrVerificationFailed) tells a
// failed gate.
type StepError struct {
	Step string
	Err  error
}

func (e *StepError) Error() string { return fmt.Sprintf("step %q failed: %v", e.Step, e.Err) }

func (e *StepError) Unwrap() error { return e.Err }

// Execute runs the plan.
//
// Execute always returns a report, even with an error. It first validates
// the plan (Plan.Validate), the dry-run mode and, for steps that need one,
// env.Kube; an invalid plan returns an error matching
// revkit.ErrInvalidInput and a report whose steps are all NotRun: nothing
// has run.
//
// Then it runs the steps in order. The first step that fails stops the
// plan: the steps after it are reported NotRun, the on-failure steps all
// run in order (each recorded, even when one of them fails), and Execute
// returns the report with a *StepError naming the failed step. A step that
// panics fails with a *PanicError. A cancelled
// context fails the next step with the context's error; the on-failure
// steps see the same context, so to roll back after a cancellation run
// report.Plan.OnFailure as a plan of its own with a fresh context.
//
// With env.TransientRetry, a step (or the opening of the journal) that
// fails with a transient API error runs again, with a backoff, before it
// counts as failed; see Env.TransientRetry.
//
// With env.Journal, Execute first opens the journal. If it cannot, it
// returns a report of NotRun steps and a *LockedError (another run holds the plan),
// a *JournalMismatchError, or a *revkit.OpError (Op "upgrade.Journal")
// for a failed read or write, and no step has run. While the plan runs the
// lease is renewed in the background; if it is lost, the context of the
// running step is cancelled, that step fails with a *LeaseLostError (in a
// *StepError), and the on-failure steps are NotRun: another run owns the
// control plane. Recording a step once it ran fails that step like any
// other error: a *StepError. The last step's record also records the
// plan's completion, so a plan whose steps all succeeded is never left
// recorded as unfinished.
//
// When the on-failure steps of a journaled plan have run, the journal
// records it (keys "rolledBack" and "undone") and forgets the completed
// steps, so that a rerun runs every step again instead of skipping steps
// whose effects the on-failure steps undid; the steps are idempotent, so
// those still in effect report Unchanged.
//
// Execute emits an event (Operation "upgrade.Execute") when a step starts
// (Action ActionStart) and when it ends (Action the outcome), and stamps
// the step name on every event the step's operations emit.
func Execute(ctx context.Context, env Env, plan Plan) (*Report, error) {
	if err := check(env, plan); err != nil {
		return unrun(env, plan, err), err
	}

	var j *journal
	if env.Journal != nil && env.Common.DryRun == revkit.DryRunNone {
		// Losing the lease cancels whatever runs at that moment.
		var cancel context.CancelCauseFunc
		ctx, cancel = context.WithCancelCause(ctx)
		defer cancel(nil)
		var err error
		retrying(ctx, env, "", func() error {
			j, err = env.Journal.open(ctx, env.Kube, plan, cancel)
			return err
		})
		if err != nil {
			return unrun(env, plan, err), err
		}
		defer j.release(context.WithoutCancel(ctx))
		env.PlanStarted = j.started
	}

	rep := &Report{Plan: plan, DryRun: env.Common.DryRun}
	var failed *StepError
	for i, s := range plan.Steps {
		if failed != nil {
			rep.Steps = append(rep.Steps, notRun(ctx, env, s))
			continue
		}
		if j != nil && j.done[s.Name()] {
			sr := StepReport{Name: s.Name(), Description: s.Description(), Outcome: Skipped, Detail: "done in an earlier run", Resumed: true}
			emit(ctx, env, sr.Name, revkit.Action(Skipped), "skipped: done in an earlier run (journal)")
			rep.Steps = append(rep.Steps, sr)
			continue
		}
		sr := runRetrying(ctx, env, s, func() StepReport {
			return runRecorded(ctx, env, j, s, i == len(plan.Steps)-1)
		})
		rep.Steps = append(rep.Steps, sr)
		if sr.Outcome == Failed {
			failed = &StepError{Step: sr.Name, Err: sr.Err}
		}
	}
	if failed == nil {
		// A plan without steps, or a journal whose steps are all done but
		// whose completion is not recorded.
		if j != nil && !j.complete {
			if err := j.mark(ctx, "", true); err != nil {
				return rep, err
			}
		}
		return rep, nil
	}
	env.FailedStep = failed.Step
	if lost := j.lostErr(); lost != nil {
		// Another run owns the control plane now: undoing is not ours to do.
		for _, s := range plan.OnFailure {
			sr := StepReport{Name: s.Name(), Description: s.Description(), Outcome: NotRun, Detail: "not run: " + lost.Error()}
			emit(ctx, env, sr.Name, revkit.Action(NotRun), sr.Detail)
			rep.OnFailure = append(rep.OnFailure, sr)
		}
		return rep, failed
	}
	// The on-failure steps undo what the plan did: a workload the plan
	// restarted must be restarted again, so only their own restarts count
	// as done (RestartOptions.RestartedSince).
	env.PlanStarted = time.Now()
	for _, s := range plan.OnFailure {
		rep.OnFailure = append(rep.OnFailure, runRetrying(ctx, env, s, func() StepReport { return runStep(ctx, env, s) }))
	}
	if j != nil && len(plan.OnFailure) > 0 {
		// The on-failure steps undid (some of) what the plan did: a rerun
		// must not skip steps as done whose effects are gone.
		if err := j.undone(context.WithoutCancel(ctx)); err != nil {
			return rep, errors.Join(failed, err)
		}
	}
	return rep, failed
}

// check refuses, before anything runs, a plan or environment that cannot
// run: an invalid plan or dry-run mode, or no client for steps that need one.
func check(env Env, plan Plan) error {
	if err := plan.Validate(); err != nil {
		return err
	}
	if err := env.Common.DryRun.Validate(); err != nil {
		return err
	}
	if env.Kube != nil {
		return nil
	}
	for _, list := range [][]Step{plan.Steps, plan.OnFailure} {
		for _, s := range list {
			if k, ok := s.(kubeUser); ok && k.needsKube() {
				return &revkit.InvalidInputError{Field: "Env.Kube",
					Reason: fmt.Sprintf("step %q needs a Kubernetes client", s.Name())}
			}
		}
	}
	if env.Journal != nil && env.Common.DryRun == revkit.DryRunNone {
		return &revkit.InvalidInputError{Field: "Env.Kube", Reason: "a journal lives in the cluster"}
	}
	return nil
}

// unrun is the report of a plan refused before its first step: every step
// NotRun, with the reason as its detail.
func unrun(env Env, plan Plan, err error) *Report {
	rep := &Report{Plan: plan, DryRun: env.Common.DryRun}
	for _, s := range plan.Steps {
		if s == nil {
			continue
		}
		rep.Steps = append(rep.Steps, StepReport{Name: s.Name(), Description: s.Description(), Outcome: NotRun,
			Detail: "not run: " + oneLine(err.Error())})
	}
	return rep
}

// runRecorded runs the step and records it in the journal j, when there is
// one. The last step's record also records the plan's completion, in one
// write: there is no moment when every step is recorded but the plan is
// not. A step that ran while the lease was lost fails with the
// *LeaseLostError and is not recorded: the run that took the lease over
// owns the journal now.
func runRecorded(ctx context.Context, env Env, j *journal, s Step, last bool) StepReport {
	if err := j.lostErr(); err != nil {
		return StepReport{Name: s.Name(), Description: s.Description(), Outcome: Failed, Detail: err.Error(), Err: err}
	}
	sr := runStep(ctx, env, s)
	if lost := j.lostErr(); lost != nil {
		if sr.Outcome != Failed || errors.Is(sr.Err, context.Canceled) {
			sr.Outcome, sr.Err, sr.Detail = Failed, lost, lost.Error()
		} else {
			sr.Err = errors.Join(sr.Err, lost)
		}
		return sr
	}
	if sr.Outcome != Failed && j != nil {
		if err := j.mark(ctx, sr.Name, last); err != nil {
			sr.Outcome, sr.Err, sr.Detail = Failed, err, "journal: "+err.Error()
		}
	}
	return sr
}

// runRetrying runs a step with once, and again after transient failures
// while env.TransientRetry allows. The report covers every run: what the
// failed runs changed comes first in Changes, and a last run that finds
// nothing left to do is Done when an earlier one did it.
func runRetrying(ctx context.Context, env Env, s Step, once func() StepReport) StepReport {
	var sr StepReport
	var first time.Time
	var earlier, last []revkit.Change
	attempts := retrying(ctx, env, s.Name(), func() error {
		earlier = append(earlier, last...)
		sr = once()
		if first.IsZero() {
			first = sr.Started
		}
		last = last[:0]
		for _, c := range sr.Changes {
			if c.Action.Changed() {
				last = append(last, c)
			}
		}
		if sr.Outcome == Failed {
			return sr.Err
		}
		return nil
	})
	sr.Attempts = attempts
	if attempts > 1 && !first.IsZero() {
		sr.Duration += sr.Started.Sub(first)
		sr.Started = first
	}
	if len(earlier) > 0 {
		sr.Changes = append(earlier, sr.Changes...)
		if sr.Outcome == Unchanged {
			sr.Outcome = Done
		}
		sr.Detail += "; earlier runs: " + summarize(earlier)
	}
	return sr
}

// retrying calls fn until it succeeds or fails with an error that is not
// transient, or env.TransientRetry has passed since its first failure, and
// returns how many times it called it. Before each new call it emits an
// ActionRetry event for step.
func retrying(ctx context.Context, env Env, step string, fn func() error) (attempts int) {
	backoff := kubeutil.TransientBackoff()
	var deadline time.Time
	for {
		attempts++
		err := fn()
		if err == nil || env.TransientRetry <= 0 || !kubeutil.Transient(err) || ctx.Err() != nil {
			return attempts
		}
		if deadline.IsZero() {
			deadline = time.Now().Add(env.TransientRetry)
		}
		left := time.Until(deadline)
		if left <= 0 {
			return attempts
		}
		delay := min(backoff.Step(), left)
		emit(ctx, env, step, ActionRetry, fmt.Sprintf("retry in %s: %s", delay, oneLine(err.Error())))
		if kubeutil.Pause(ctx, delay) != nil {
			return attempts
		}
	}
}

// runStep runs one step, with the plan's events stamped with its name.
func runStep(ctx context.Context, env Env, s Step) StepReport {
	name := s.Name()
	sr := StepReport{Name: name, Description: s.Description(), Started: time.Now()}
	emit(ctx, env, name, ActionStart, "start: "+sr.Description)

	res, err := run(ctx, env, s, name)
	if env.preview != nil {
		if line := env.preview.serverSummary(); line != "" {
			res.Detail = strings.TrimPrefix(res.Detail+"; "+line, "; ")
		}
	}
	sr.Duration = time.Since(sr.Started)
	sr.Detail, sr.Changes = res.Detail, res.Changes
	switch {
	case err != nil:
		sr.Outcome, sr.Err = Failed, err
	case res.Outcome == "":
		sr.Outcome = Done
	case res.Outcome == Failed:
		sr.Outcome = Failed
		sr.Err = errors.New("step reported failure")
		if res.Detail != "" {
			sr.Err = errors.New(res.Detail)
		}
	case res.Outcome == Done || res.Outcome == Unchanged || res.Outcome == Skipped:
		sr.Outcome = res.Outcome
	default:
		sr.Outcome = Failed
		sr.Err = fmt.Errorf("step returned outcome %q, want done, unchanged, skipped or failed", res.Outcome)
	}
	if sr.Outcome == Failed && sr.Detail == "" {
		sr.Detail = sr.Err.Error()
	}
	msg := string(sr.Outcome)
	if sr.Detail != "" {
		msg += ": " + oneLine(sr.Detail)
	}
	emit(ctx, env, name, revkit.Action(sr.Outcome), msg)
	return sr
}

// run runs the step unless the context is done. A panic fails the step
// instead of the program, so that the on-failure steps still run.
func run(ctx context.Context, env Env, s Step, name string) (res Result, err error) {
	if err := ctx.Err(); err != nil {
		return Result{}, err
	}
	defer func() {
		if r := recover(); r != nil {
			res = Result{Outcome: Failed, Detail: fmt.Sprintf("panic: %v", r)}
			err = &PanicError{Value: r, Stack: debug.Stack()}
		}
	}()
	return s.Run(ctx, stepEnv(ctx, env, name))
}

// PanicError is the error of a step that panicked.
type PanicError struct {
	Value any
	// Stack is the goroutine's stack at the panic.
	Stack []byte
}

func (e *PanicError) Error() string { return fmt.Sprintf("panic: %v", e.Value) }

func notRun(ctx context.Context, env Env, s Step) StepReport {
	sr := StepReport{Name: s.Name(), Description: s.Description(), Outcome: NotRun}
	emit(ctx, env, sr.Name, revkit.Action(NotRun), "not run: an earlier step failed")
	return sr
}

func emit(ctx context.Context, env Env, step string, action revkit.Action, msg string) {
	env.Common.Emit(ctx, revkit.Event{Kind: revkit.EventStep, Operation: operation, Step: step, Action: action, Message: msg})
}

// stepEnv routes the events of a step's operations through the plan's
// Common with the step's name on them. The logger is left out of the step's
// Common so that each event is logged once, by the plan's Common.
func stepEnv(ctx context.Context, env Env, step string) Env {
	plan := env.Common
	env.Common = revkit.Common{
		DryRun: plan.DryRun,
		OnEvent: func(e revkit.Event) {
			e.Step = step
			plan.Emit(ctx, e)
		},
	}
	return env
}
