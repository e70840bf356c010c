package fleet

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"time"

	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"

	"github.com/revkit/revkit"
	"github.com/revkit/revkit/revision"
	"github.com/revkit/revkit/upgrade"
	"github.com/revkit/revkit/verify"
)

const op = "fleet.Run"

// Cluster is one member of the fleet.
type Cluster struct {
	// Name identifies the cluster in waves, reports and events (a
	// kubeconfig context's name, say). Required, unique.
	Name string
	// Kube is the cluster's client. Required.
	Kube kubernetes.Interface
	// Config is its REST configuration, for plans whose steps need one
	// (port-forwards to istiod, Helm); optional.
	Config *rest.Config
	// Primary, for a remote cluster of a primary-remote mesh, names the
	// cluster whose istiods serve it: the remote's injector and tag
	// webhooks call them. Run refuses a remote in a wave before its
	// primary's or in the same one, and after every wave checks that each
	// remote's revisions and tags are installed on its primary (the
	// "remotes" gate): a primary that uninstalled a revision a remote
	// still uses stops the fleet.
	Primary string
}

// Wave is an ordered group of clusters upgraded together: every cluster of
// a wave runs its plan (at most MaxParallel at once), then the gates
// between waves run, and only then does the next wave start.
type Wave struct {
	// Name identifies the wave in the report ("canary", "staging", "prod-eu").
	// Required, unique.
	Name string
	// Clusters are the names of the wave's clusters. Each cluster belongs
	// to one wave.
	Clusters []string
	// MaxParallel bounds how many of the wave's clusters run at once; zero
	// means all of them.
	MaxParallel int
	// Approve, when set, is asked before the wave starts, with the report
	// so far: a manual approval point. An error stops the fleet before the
	// wave (it is wrapped in a *StoppedError matching ErrNotApproved).
	Approve func(ctx context.Context, wave string, sofar *Report) error
	// Pause waits before the wave starts (after Approve).
	Pause time.Duration
}

// Gate is a check between waves: it runs after every cluster of a wave has
// finished its plan, with the wave's report; an error stops the fleet
// before the next wave.
type Gate struct {
	Name  string
	Check func(ctx context.Context, wave *WaveReport) error
}

// Options configures Run.
type Options struct {
	// Clusters of the fleet; Waves order them. A cluster in no wave is an
	// error, so that none is forgotten.
	Clusters []Cluster
	Waves    []Wave
	// Plan builds one cluster's plan, typically upgrade.Canary against the
	// cluster's client. Run builds and validates every cluster's plan
	// before the first wave starts: a plan that cannot be built stops the
	// fleet before anything is written. Required.
	Plan func(ctx context.Context, c Cluster) (upgrade.Plan, error)
	// Env, when set, is the base environment of a cluster's run (its
	// TransientRetry, say); Run sets Kube, Common and Journal.
	Env func(c Cluster) upgrade.Env
	// Journal, when set, keeps every cluster's progress in that cluster
	// (each its own ConfigMap and Lease, see upgrade.Journal): a rerun of
	// the fleet resumes every cluster where it stopped, and skips the
	// clusters whose plan had completed. Dry runs do not use it.
	Journal *upgrade.Journal
	// Gates run between waves, after the built-in health gate: every
	// cluster of the wave completed its plan, and — unless SkipWebhookCheck
	// — verify.Webhooks finds no dangling or overlapping injector on it.
	Gates            []Gate
	SkipWebhookCheck bool
	// FailureBudget is how many clusters may fail before the fleet stops;
	// zero stops it at the first failure. A wave whose clusters failed
	// within the budget still passes to the next wave (its gates run on
	// the clusters that completed). Once the budget is spent, no cluster
	// starts any more: those already running finish their plans (a plan
	// is never cut short between steps) and later waves do not start.
	FailureBudget int
	// Common is the dry-run mode of every cluster's plan, and the event
	// callback and logger: each event is stamped with its cluster
	// (revkit.Event.Cluster); the fleet's own events are of kind
	// revkit.EventFleet. Called from several goroutines when a wave runs
	// clusters in parallel.
	revkit.Common
}

// Validate checks the options before any request.
func (o *Options) Validate() error {
	if o.Plan == nil {
		return &revkit.InvalidInputError{Field: "Plan", Reason: "a function that builds each cluster's plan is required"}
	}
	if o.FailureBudget < 0 {
		return &revkit.InvalidInputError{Field: "FailureBudget", Reason: "must not be negative"}
	}
	if len(o.Waves) == 0 {
		return &revkit.InvalidInputError{Field: "Waves", Reason: "at least one wave is required"}
	}
	clusters := map[string]bool{}
	for i, c := range o.Clusters {
		field := fmt.Sprintf("Clusters[%d]", i)
		switch {
		case c.Name == "":
			return &revkit.InvalidInputError{Field: field + ".Name", Reason: "required"}
		case clusters[c.Name]:
			return &revkit.InvalidInputError{Field: field + ".Name", Value: c.Name, Reason: "used twice"}
		case c.Kube == nil:
			return &revkit.InvalidInputError{Field: field + ".Kube", Value: c.Name, Reason: "required"}
		}
		clusters[c.Name] = true
	}
	waves, inWave := map[string]bool{}, map[string]string{}
	for i, w := range o.Waves {
		field := fmt.Sprintf("Waves[%d]", i)
		switch {
		case w.Name == "":
			return &revkit.InvalidInputError{Field: field + ".Name", Reason: "required"}
		case waves[w.Name]:
			return &revkit.InvalidInputError{Field: field + ".Name", Value: w.Name, Reason: "used twice"}
		case len(w.Clusters) == 0:
			return &revkit.InvalidInputError{Field: field + ".Clusters", Value: w.Name, Reason: "a wave needs at least one cluster"}
		case w.MaxParallel < 0 || w.Pause < 0:
			return &revkit.InvalidInputError{Field: field, Value: w.Name, Reason: "MaxParallel and Pause must not be negative"}
		}
		waves[w.Name] = true
		for _, c := range w.Clusters {
			if !clusters[c] {
				return &revkit.InvalidInputError{Field: field + ".Clusters", Value: c, Reason: "no such cluster in Clusters"}
			}
			if prev, ok := inWave[c]; ok {
				return &revkit.InvalidInputError{Field: field + ".Clusters", Value: c, Reason: "already in wave " + prev}
			}
			inWave[c] = w.Name
		}
	}
	waveIndex := map[string]int{}
	for i, w := range o.Waves {
		for _, c := range w.Clusters {
			waveIndex[c] = i
		}
	}
	primaries := map[string]string{}
	for _, c := range o.Clusters {
		if c.Primary != "" {
			primaries[c.Name] = c.Primary
		}
	}
	for i, c := range o.Clusters {
		if _, ok := inWave[c.Name]; !ok {
			return &revkit.InvalidInputError{Field: "Waves", Value: c.Name, Reason: "cluster in no wave"}
		}
		if c.Primary == "" {
			continue
		}
		field := fmt.Sprintf("Clusters[%d].Primary", i)
		switch p, ok := waveIndex[c.Primary]; {
		case !ok:
			return &revkit.InvalidInputError{Field: field, Value: c.Primary, Reason: "no such cluster in Clusters"}
		case c.Primary == c.Name || primaries[c.Primary] != "":
			return &revkit.InvalidInputError{Field: field, Value: c.Primary, Reason: "a primary must not itself be a remote"}
		case p >= waveIndex[c.Name]:
			return &revkit.InvalidInputError{Field: field, Value: c.Primary,
				Reason: "the primary must be upgraded in a wave before its remote " + c.Name + "'s"}
		}
	}
	for i, g := range o.Gates {
		if g.Name == "" || g.Check == nil {
			return &revkit.InvalidInputError{Field: fmt.Sprintf("Gates[%d]", i), Reason: "a gate needs a Name and a Check"}
		}
	}
	if o.Journal != nil && o.Journal.Fresh {
		return &revkit.InvalidInputError{Field: "Journal.Fresh", Reason: "a fleet resumes each cluster's journal; discard a journal per cluster instead"}
	}
	return o.DryRun.Validate()
}

// ErrStopped: the fleet stopped before every wave ran — a cluster failed
// beyond the failure budget, a gate between waves failed, an approval was
// refused or the context ended. ErrNotApproved: a wave's Approve refused.
var (
	ErrStopped     = errors.New("fleet stopped")
	ErrNotApproved = errors.New("wave not approved")
)

// StoppedError says where and why the fleet stopped. It matches ErrStopped,
// and what Err matches (ErrNotApproved, revkit.ErrVerificationFailed for a
// gate, the failed plan's error).
type StoppedError struct {
	// Wave is the wave that stopped the fleet (that ran, or that was not
	// approved).
	Wave string
	// Failed are the clusters whose plan failed, in the order they failed.
	Failed []string
	// Gate is the gate that failed, if one did.
	Gate string
	Err  error
}

func (e *StoppedError) Error() string {
	switch {
	case e.Gate != "":
		return fmt.Sprintf("fleet stopped after wave %s: gate %s: %v", e.Wave, e.Gate, e.Err)
	case len(e.Failed) > 0:
		return fmt.Sprintf("fleet stopped in wave %s: %d cluster(s) failed (%v): %v", e.Wave, len(e.Failed), e.Failed, e.Err)
	default:
		return fmt.Sprintf("fleet stopped before wave %s: %v", e.Wave, e.Err)
	}
}

// Is matches ErrStopped.
func (e *StoppedError) Is(target error) bool { return target == ErrStopped }

// Unwrap returns the cause.
func (e *StoppedError) Unwrap() error { return e.Err }

// Run upgrades the fleet wave by wave. It builds and validates every
// cluster's plan first; then, per wave, asks Approve, pauses, runs the
// wave's clusters' plans (at most MaxParallel at once), and runs the gates
// between waves. It stops — a *StoppedError — when more clusters failed
// than FailureBudget allows, when a gate fails, when an approval is
// refused, or when ctx ends. The report always covers every cluster:
// those that never started are NotRun.
func Run(ctx context.Context, opts Options) (*Report, error) {
	rep := &Report{Started: time.Now(), DryRun: opts.DryRun}
	for _, w := range opts.Waves {
		wr := WaveReport{Name: w.Name}
		for _, c := range w.Clusters {
			wr.Clusters = append(wr.Clusters, ClusterReport{Cluster: c, Outcome: upgrade.NotRun})
		}
		rep.Waves = append(rep.Waves, wr)
	}
	if err := opts.Validate(); err != nil {
		return rep, err
	}
	byName := map[string]Cluster{}
	for _, c := range opts.Clusters {
		byName[c.Name] = c
	}
	// Every plan first: a cluster whose plan cannot be built or is invalid
	// stops the fleet before anything is written anywhere.
	plans := map[string]upgrade.Plan{}
	for _, w := range opts.Waves {
		for _, name := range w.Clusters {
			p, err := opts.Plan(ctx, byName[name])
			if err == nil {
				err = p.Validate()
			}
			if err != nil {
				return rep, fmt.Errorf("%s: plan of cluster %s: %w", op, name, err)
			}
			plans[name] = p
		}
	}

	r := &runner{opts: opts, byName: byName, plans: plans, rep: rep}
	defer func() { rep.Duration = time.Since(rep.Started) }()
	for i := range opts.Waves {
		if err := r.wave(ctx, &opts.Waves[i], &rep.Waves[i]); err != nil {
			return rep, err
		}
	}
	return rep, nil
}

type runner struct {
	opts   Options
	byName map[string]Cluster
	plans  map[string]upgrade.Plan
	rep    *Report

	mu     sync.Mutex
	failed []string
}

func (r *runner) emit(ctx context.Context, cluster string, action revkit.Action, msg string) {
	r.opts.Common.Emit(ctx, revkit.Event{Kind: revkit.EventFleet, Operation: op, Cluster: cluster, Action: action, Message: msg})
}

// overBudget reports whether more clusters failed than the budget allows.
func (r *runner) overBudget() bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	return len(r.failed) > r.opts.FailureBudget
}

func (r *runner) wave(ctx context.Context, w *Wave, wr *WaveReport) error {
	stopped := func(err error) error {
		r.mu.Lock()
		defer r.mu.Unlock()
		return &StoppedError{Wave: w.Name, Failed: slices.Clone(r.failed), Err: err}
	}
	if err := ctx.Err(); err != nil {
		return stopped(err)
	}
	if w.Approve != nil {
		if err := w.Approve(ctx, w.Name, r.rep); err != nil {
			r.emit(ctx, "", revkit.ActionSkip, "wave "+w.Name+" not approved: "+err.Error())
			return stopped(fmt.Errorf("%w: %w", ErrNotApproved, err))
		}
	}
	if w.Pause > 0 {
		select {
		case <-ctx.Done():
			return stopped(ctx.Err())
		case <-time.After(w.Pause):
		}
	}
	wr.Started = time.Now()
	r.emit(ctx, "", revkit.ActionCreate, fmt.Sprintf("wave %s: %d cluster(s)", w.Name, len(w.Clusters)))

	limit := w.MaxParallel
	if limit == 0 || limit > len(w.Clusters) {
		limit = len(w.Clusters)
	}
	sem := make(chan struct{}, limit)
	var wg sync.WaitGroup
	for i, name := range w.Clusters {
		sem <- struct{}{}
		if r.overBudget() || ctx.Err() != nil {
			<-sem
			break // the rest stay NotRun
		}
		wg.Add(1)
		go func(cr *ClusterReport, c Cluster) {
			defer func() { <-sem; wg.Done() }()
			r.cluster(ctx, c, cr)
		}(&wr.Clusters[i], r.byName[name])
	}
	wg.Wait()
	wr.Duration = time.Since(wr.Started)

	var planErr error
	for _, cr := range wr.Clusters {
		if cr.Outcome == upgrade.Failed {
			planErr = errors.Join(planErr, fmt.Errorf("cluster %s: %w", cr.Cluster, cr.Err))
		}
	}
	if r.overBudget() {
		return stopped(planErr)
	}
	if err := ctx.Err(); err != nil {
		return stopped(err)
	}
	// The gates between waves: the built-in health check, then the caller's.
	var gates []Gate
	if r.opts.DryRun.Persists() {
		if !r.opts.SkipWebhookCheck {
			gates = append(gates, Gate{Name: "webhooks", Check: r.webhooks})
		}
		for _, c := range r.opts.Clusters {
			if c.Primary != "" {
				gates = append(gates, Gate{Name: "remotes", Check: r.remotes})
				break
			}
		}
	}
	gates = append(gates, r.opts.Gates...)
	for _, g := range gates {
		begin := time.Now()
		err := g.Check(ctx, wr)
		gr := GateReport{Name: g.Name, Duration: time.Since(begin), Err: err, Outcome: upgrade.Done}
		if err != nil {
			gr.Outcome = upgrade.Failed
		}
		wr.Gates = append(wr.Gates, gr)
		if err != nil {
			r.emit(ctx, "", revkit.ActionSkip, "gate "+g.Name+" after wave "+w.Name+" failed: "+err.Error())
			se := stopped(err).(*StoppedError)
			se.Gate = g.Name
			return se
		}
		r.emit(ctx, "", revkit.ActionUnchanged, "gate "+g.Name+" after wave "+w.Name+" passed")
	}
	return nil
}

// cluster runs one cluster's plan.
func (r *runner) cluster(ctx context.Context, c Cluster, cr *ClusterReport) {
	env := upgrade.Env{}
	if r.opts.Env != nil {
		env = r.opts.Env(c)
	}
	env.Kube = c.Kube
	env.Journal = r.opts.Journal
	common := r.opts.Common
	if common.OnEvent != nil {
		next := common.OnEvent
		common.OnEvent = func(e revkit.Event) {
			e.Cluster = c.Name
			next(e)
		}
	}
	if common.Logger != nil {
		common.Logger = common.Logger.With("cluster", c.Name)
	}
	env.Common = common
	r.emit(ctx, c.Name, revkit.ActionCreate, "plan "+r.plans[c.Name].Name+" started")
	cr.Started = time.Now()
	rep, err := upgrade.Execute(ctx, env, r.plans[c.Name])
	cr.Duration = time.Since(cr.Started)
	cr.Plan, cr.Err = rep, err
	switch {
	case err != nil:
		cr.Outcome = upgrade.Failed
		r.mu.Lock()
		r.failed = append(r.failed, c.Name)
		r.mu.Unlock()
		r.emit(ctx, c.Name, revkit.ActionSkip, "plan failed: "+err.Error())
	case resumedOnly(rep):
		cr.Outcome = upgrade.Unchanged
		r.emit(ctx, c.Name, revkit.ActionUnchanged, "plan completed before")
	default:
		cr.Outcome = upgrade.Done
		r.emit(ctx, c.Name, revkit.ActionUpdate, "plan done")
	}
}

// resumedOnly reports whether every step of the plan had completed in an
// earlier run (the journal skipped them all).
func resumedOnly(rep *upgrade.Report) bool {
	if rep == nil || len(rep.Steps) == 0 {
		return false
	}
	for _, s := range rep.Steps {
		if !s.Resumed {
			return false
		}
	}
	return true
}

// webhooks is the built-in gate: no dangling or overlapping injector on
// any cluster of the wave that completed its plan.
func (r *runner) webhooks(ctx context.Context, wr *WaveReport) error {
	var errs []error
	for _, cr := range wr.Clusters {
		if cr.Outcome == upgrade.Failed || cr.Outcome == upgrade.NotRun {
			continue
		}
		rep, err := verify.Webhooks(ctx, r.byName[cr.Cluster].Kube, verify.WebhooksOptions{})
		if err == nil {
			err = rep.Err()
		}
		if err != nil {
			errs = append(errs, fmt.Errorf("cluster %s: %w", cr.Cluster, err))
		}
	}
	return errors.Join(errs...)
}

// remotes is the built-in gate of a primary-remote fleet: every remote's
// revisions (those with an injector on it) and the revisions its tags
// point at are installed on its primary — whatever wave ran, since a
// primary's wave can strand a remote of a later one.
func (r *runner) remotes(ctx context.Context, _ *WaveReport) error {
	var errs []error
	served := map[string]map[string]bool{}
	for _, c := range r.opts.Clusters {
		if c.Primary == "" {
			continue
		}
		if served[c.Primary] == nil {
			revs, err := revision.List(ctx, r.byName[c.Primary].Kube, revision.ListOptions{})
			if err != nil {
				return fmt.Errorf("primary %s: %w", c.Primary, err)
			}
			served[c.Primary] = map[string]bool{}
			for _, rev := range revs {
				if rev.Injector != "" {
					served[c.Primary][rev.Name] = true
				}
			}
		}
		revs, err := revision.List(ctx, c.Kube, revision.ListOptions{})
		if err != nil {
			return fmt.Errorf("remote %s: %w", c.Name, err)
		}
		for _, rev := range revs {
			if served[c.Primary][rev.Name] {
				continue
			}
			what := "its injector"
			if len(rev.Tags) > 0 {
				what += ", tags " + strings.Join(rev.Tags, ", ")
			}
			if len(rev.Namespaces) > 0 {
				what += ", namespaces " + strings.Join(rev.Namespaces, ", ")
			}
			errs = append(errs, fmt.Errorf("remote %s uses revision %s (%s), which primary %s does not serve: %w",
				c.Name, rev.Name, what, c.Primary, revkit.ErrVerificationFailed))
		}
	}
	return errors.Join(errs...)
}
