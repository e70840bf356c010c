package upgrade

import (
	"context"
	"time"

	"k8s.io/client-go/kubernetes"

	"github.com/revkit/revkit"
)

// Env is what every step of a plan gets: the cluster and the settings shared
// by the whole plan.
type Env struct {
	// Kube is the cluster. Steps built from operations that talk to the
	// apiserver need it; Execute refuses a plan with such a step when it is
	// nil.
	Kube kubernetes.Interface
	// Common is the dry-run mode, event callback and logger of the plan. A
	// plan runs in one dry-run mode: the step constructors copy Common into
	// their operation's options, replacing whatever the options held.
	//
	// Inside a step, Common.OnEvent is always set and Common.Logger is nil:
	// every event a step emits goes through Execute, which stamps the step
	// name on it and hands it to the plan's callback and logger.
	Common revkit.Common
	// Journal, when set, keeps the plan's progress in the cluster: a rerun
	// of the same plan skips the steps done before and two runs cannot
	// overlap. Dry runs do not use it. See Journal.
	Journal *Journal
	// FailedStep names the step that failed, for the on-failure steps
	// (empty otherwise), so that they can undo just what it touched.
	FailedStep string
	// PlanStarted is when the journaled plan first started; Execute sets it
	// for the steps (zero without a journal), and for the on-failure steps
	// to when they began. RolloutRestart uses it not to restart a workload
	// twice — and so that a rollback restarts again what the plan restarted.
	PlanStarted time.Time
	// TransientRetry, when positive, is how long Execute keeps running
	// again a step that failed with a transient API error — the apiserver
	// unreachable, restarting or overloaded: connection refused or reset,
	// 429, 500, 503, 504 — counted from the step's first failure, pausing
	// 250 ms, doubling up to 4 s, between runs. Opening the journal, and
	// the on-failure steps, are retried alike. With it a plan rides out an
	// apiserver restart instead of stopping for a rerun.
	//
	// A step runs again from its beginning, so it must be idempotent, as
	// every step this package builds is; zero (the default) stops the plan
	// at the first failure.
	TransientRetry time.Duration

	// preview is set when the plan runs against Preview's in-memory copy,
	// where the operations' writes are real and everything else is a dry
	// run.
	preview *previewState
}

// Outcome is what became of a step.
type Outcome string

const (
	// Done: the step ran and changed (or in a dry run, would change) the
	// cluster, or a verification passed.
	Done Outcome = "done"
	// Unchanged: the step ran and found nothing to do.
	Unchanged Outcome = "unchanged"
	// Skipped: the step chose not to run, e.g. a verification in a dry run.
	Skipped Outcome = "skipped"
	// Failed: the step returned an error, or a verification gate did not
	// pass.
	Failed Outcome = "failed"
	// NotRun: an earlier step failed, so this one never started.
	NotRun Outcome = "not-run"
)

func (o Outcome) String() string { return string(o) }

// Result is what a step reports about its run.
type Result struct {
	// Outcome is Done, Unchanged, Skipped or Failed. Left empty by a step
	// that returned no error, it counts as Done.
	Outcome Outcome
	// Detail is one line for the report, e.g. "create 2, update 1".
	Detail string
	// Changes lists what the step's operation did to the cluster.
	Changes []revkit.Change
}

// Step is one named unit of a plan.
type Step interface {
	// Name identifies the step in the plan, its report and its events; it
	// must be unique within a plan.
	Name() string
	// Description is one line for a printed plan.
	Description() string
	// Run does the work. A returned error fails the step (and the plan); an
	// error matching revkit.ErrVerificationFailed is a failed gate.
	Run(ctx context.Context, env Env) (Result, error)
}

// Validator is implemented by steps that can check their options without
// touching the cluster. Execute validates every step, on-failure steps
// included, before it runs any, so that bad input is refused before the
// first write.
type Validator interface {
	Validate() error
}

// kubeUser is implemented by the steps that need Env.Kube.
type kubeUser interface {
	needsKube() bool
}

// Func makes a step from a function: a custom operation, a pause or a health
// gate. The function gets the plan's dry-run mode in env.Common and decides
// itself what a dry run means for it. To fail as a gate, return an error
// that wraps revkit.ErrVerificationFailed.
func Func(name, description string, fn func(ctx context.Context, env Env) (Result, error)) Step {
	return &funcStep{name: name, desc: description, fn: fn}
}

type funcStep struct {
	name, desc string
	fn         func(context.Context, Env) (Result, error)
}

func (s *funcStep) Name() string        { return s.name }
func (s *funcStep) Description() string { return s.desc }

func (s *funcStep) Run(ctx context.Context, env Env) (Result, error) { return s.fn(ctx, env) }

func (s *funcStep) Validate() error {
	if s.fn == nil {
		return &revkit.InvalidInputError{Field: "fn", Reason: "must not be nil"}
	}
	return nil
}

// Named gives a step another name, e.g. to use the same operation twice in
// one plan or to label a rollback step.
func Named(name string, s Step) Step { return &namedStep{name: name, step: s} }

type namedStep struct {
	name string
	step Step
}

func (s *namedStep) Name() string { return s.name }

func (s *namedStep) Description() string {
	if s.step == nil {
		return ""
	}
	return s.step.Description()
}

func (s *namedStep) Run(ctx context.Context, env Env) (Result, error) { return s.step.Run(ctx, env) }

func (s *namedStep) Validate() error {
	if s.step == nil {
		return &revkit.InvalidInputError{Field: "step", Reason: "must not be nil"}
	}
	if v, ok := s.step.(Validator); ok {
		return v.Validate()
	}
	return nil
}

// Kind is that of the renamed step.
func (s *namedStep) Kind() StepKind { return KindOf(s.step) }

// Inputs are those of the renamed step.
func (s *namedStep) Inputs() any {
	if in, ok := s.step.(InputReporter); ok {
		return in.Inputs()
	}
	return nil
}

func (s *namedStep) needsKube() bool {
	k, ok := s.step.(kubeUser)
	return ok && k.needsKube()
}
