package metrics

import (
	"context"
	"fmt"
	"strings"

	v1 "github.com/prometheus/client_golang/api/prometheus/v1"

	"github.com/revkit/revkit"
	"github.com/revkit/revkit/fleet"
	"github.com/revkit/revkit/upgrade"
)

// Gate returns a plan step that runs Compare against api and fails, as a
// gate (revkit.ErrVerificationFailed), when the canary regressed or had
// too little traffic. Its name is "metric-gate"; upgrade.Named renames it.
// In a dry run it is skipped: nothing moved, so there is nothing to judge.
//
// Put it in upgrade.CanaryOptions.Gates to judge every batch (with
// RollbackFailedBatch the batch that failed it goes back), or in a plan of
// your own after the steps that move a batch.
func Gate(api v1.API, opts Options) upgrade.Step {
	return &gateStep{api: api, opts: opts}
}

type gateStep struct {
	api  v1.API
	opts Options
}

func (s *gateStep) Name() string { return "metric-gate" }

func (s *gateStep) Description() string {
	o := s.opts.withDefaults()
	what := []string{"success rate", fmt.Sprintf("p%g latency", o.Percentile*100)}
	if o.History > 0 {
		what = append(what, "request volume")
	}
	d := fmt.Sprintf("compare the %s of %s", strings.Join(what, ", "), describe(o.Canary))
	var refs []string
	if !o.Baseline.empty() {
		refs = append(refs, "with "+describe(o.Baseline))
	}
	if o.History > 0 {
		refs = append(refs, fmt.Sprintf("with themselves %s before", o.History))
	}
	return d + " " + strings.Join(refs, " and ") + fmt.Sprintf(" over %s (Prometheus)", o.Window)
}

// Inputs are the options, for saved plans and their fingerprints.
func (s *gateStep) Inputs() any { return s.opts }

func (s *gateStep) Validate() error {
	if s.api == nil {
		return &revkit.InvalidInputError{Field: "api", Reason: "must not be nil: a Prometheus API client (v1.NewAPI)"}
	}
	return s.opts.Validate()
}

func (s *gateStep) Run(ctx context.Context, env upgrade.Env) (upgrade.Result, error) {
	if !env.Common.DryRun.Persists() {
		return upgrade.Result{Outcome: upgrade.Skipped, Detail: "dry run"}, nil
	}
	rep, err := Compare(ctx, s.api, s.opts)
	if err != nil {
		return upgrade.Result{}, err
	}
	if err := rep.Err(); err != nil {
		return upgrade.Result{Outcome: upgrade.Failed, Detail: rep.Summary()}, err
	}
	return upgrade.Result{Outcome: upgrade.Done, Detail: rep.Summary()}, nil
}

// describe names a set of workloads for a plan's printout.
func describe(w Workloads) string {
	var parts []string
	if w.Revision != "" {
		parts = append(parts, "revision "+w.Revision)
	}
	if len(w.Namespaces) > 0 {
		parts = append(parts, "namespaces "+strings.Join(w.Namespaces, ", "))
	}
	parts = append(parts, w.Matchers...)
	return "workloads of " + strings.Join(parts, ", ")
}

// WaveGate returns a gate between the waves of a fleet (fleet.Options.Gates)
// that runs Compare with the options opts returns for the wave just done —
// typically the wave's clusters selected by a cluster label in Matchers of
// a Prometheus that sees them all — and stops the fleet when the wave's
// canary regressed or had too little traffic. Its name is "metric-gate".
func WaveGate(api v1.API, opts func(wave *fleet.WaveReport) Options) fleet.Gate {
	return fleet.Gate{Name: "metric-gate", Check: func(ctx context.Context, wave *fleet.WaveReport) error {
		if api == nil || opts == nil {
			return &revkit.InvalidInputError{Field: "api", Reason: "WaveGate needs a Prometheus API client and an options function"}
		}
		o := opts(wave)
		if err := o.Validate(); err != nil {
			return err
		}
		rep, err := Compare(ctx, api, o)
		if err != nil {
			return err
		}
		return rep.Err()
	}}
}
