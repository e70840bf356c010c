package metrics_test

import (
	"context"
	"errors"
	"math"
	"strings"
	"sync"
	"testing"
	"time"

	v1 "github.com/prometheus/client_golang/api/prometheus/v1"
	"github.com/prometheus/common/model"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/revkit/revkit"
	"github.com/revkit/revkit/fleet"
	"github.com/revkit/revkit/metrics"
	"github.com/revkit/revkit/namespace"
	"github.com/revkit/revkit/upgrade"
)

// traffic is what one side shows: requests in the window, success rate,
// latency percentile (ms). A negative value is "no series".
type traffic struct{ requests, success, latency float64 }

// fakeAPI answers the comparison's instant queries from a table per side,
// telling the sides apart by their selectors. It implements only Query:
// calling anything else panics on the nil embedded API.
type fakeAPI struct {
	v1.API
	mu    sync.Mutex
	sides map[string][]traffic // by side; the i-th attempt gets the i-th entry (the last one repeats)
	fail  []error              // the i-th query call fails with fail[i] when set
	calls []string
	seen  map[string]int // side → queries of its requests run
}

func (f *fakeAPI) Query(_ context.Context, q string, _ time.Time, _ ...v1.Option) (model.Value, v1.Warnings, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	n := len(f.calls)
	f.calls = append(f.calls, q)
	if n < len(f.fail) && f.fail[n] != nil {
		return nil, nil, f.fail[n]
	}
	side := metrics.SideBaseline
	switch {
	case strings.Contains(q, " offset "):
		side = metrics.SideHistory
	case strings.Contains(q, `istio_io_rev="new"`):
		side = metrics.SideCanary
	}
	if f.seen == nil {
		f.seen = map[string]int{}
	}
	var v float64
	list := f.sides[side]
	attempt := f.seen[side]
	if strings.HasPrefix(q, "sum(increase(") {
		f.seen[side]++
	} else {
		attempt--
	}
	t := list[min(max(attempt, 0), len(list)-1)]
	switch {
	case strings.HasPrefix(q, "sum(increase("):
		v = t.requests
	case strings.HasPrefix(q, "histogram_quantile("):
		v = t.latency
	default:
		v = t.success
	}
	if v < 0 {
		return model.Vector{}, nil, nil
	}
	return model.Vector{&model.Sample{Value: model.SampleValue(v)}}, nil, nil
}

var healthy = traffic{requests: 1000, success: 0.999, latency: 20}

func base(mod func(*metrics.Options)) metrics.Options {
	o := metrics.Options{
		Canary:   metrics.Workloads{Revision: "new"},
		Baseline: metrics.Workloads{Revision: "old"},
		Window:   30 * time.Second, RetryInterval: time.Millisecond, Retries: 2,
	}
	if mod != nil {
		mod(&o)
	}
	return o
}

func TestCompare(t *testing.T) {
	tests := []struct {
		name  string
		opts  metrics.Options
		sides map[string][]traffic
		// want: OK, the failed checks ("check against"), not enough traffic
		// on which side, attempts.
		ok       bool
		failed   []string
		short    string
		attempts int
		skipped  int
	}{
		{name: "healthy canary passes", opts: base(nil),
			sides: map[string][]traffic{"canary": {healthy}, "baseline": {healthy}}, ok: true, attempts: 1},
		{name: "success rate within the allowed drop", opts: base(nil),
			sides: map[string][]traffic{"canary": {{1000, 0.990, 20}}, "baseline": {{1000, 0.999, 20}}}, ok: true, attempts: 1},
		{name: "error rate above the baseline's fails", opts: base(nil),
			sides:  map[string][]traffic{"canary": {{1000, 0.90, 20}}, "baseline": {healthy}},
			failed: []string{"success-rate baseline"}, attempts: 1},
		{name: "latency above 1.5 times the baseline's fails", opts: base(nil),
			sides:  map[string][]traffic{"canary": {{1000, 0.999, 31}}, "baseline": {healthy}},
			failed: []string{"latency baseline"}, attempts: 1},
		{name: "latency ratio 2 allows it", opts: base(func(o *metrics.Options) { o.MaxLatencyRatio = 2 }),
			sides: map[string][]traffic{"canary": {{1000, 0.999, 31}}, "baseline": {healthy}}, ok: true, attempts: 1},
		{name: "checks turned off by a negative threshold", opts: base(func(o *metrics.Options) { o.MaxLatencyRatio, o.MaxSuccessRateDrop = -1, -1 }),
			sides: map[string][]traffic{"canary": {{1000, 0.5, 500}}, "baseline": {healthy}}, ok: true, attempts: 1},
		{name: "absolute floor and ceiling", opts: base(func(o *metrics.Options) { o.MinSuccessRate, o.MaxLatency = 0.995, 10*time.Millisecond }),
			sides:  map[string][]traffic{"canary": {{1000, 0.99, 25}}, "baseline": {{1000, 0.99, 25}}},
			failed: []string{"success-rate threshold", "latency threshold"}, attempts: 1},
		{name: "too little canary traffic waits, then fails with its own reason", opts: base(nil),
			sides: map[string][]traffic{"canary": {{5, 1, 20}}, "baseline": {healthy}}, short: "canary", attempts: 3},
		{name: "no canary series at all is too little traffic", opts: base(nil),
			sides: map[string][]traffic{"canary": {{-1, -1, -1}}, "baseline": {healthy}}, short: "canary", attempts: 3},
		{name: "traffic that arrives while waiting passes", opts: base(nil),
			sides: map[string][]traffic{"canary": {{5, 1, 20}, {50, 1, 20}, healthy}, "baseline": {healthy}}, ok: true, attempts: 3},
		{name: "a regression after waiting for traffic fails at once", opts: base(func(o *metrics.Options) { o.Retries = 5 }),
			sides:  map[string][]traffic{"canary": {{5, 1, 20}, {1000, 0.5, 20}}, "baseline": {healthy}},
			failed: []string{"success-rate baseline"}, attempts: 2},
		{name: "a baseline without traffic is not enough", opts: base(nil),
			sides: map[string][]traffic{"canary": {healthy}, "baseline": {{0, -1, -1}}}, short: "baseline", attempts: 3, skipped: 1},
		{name: "history compares the same workloads before, volume included",
			opts:  base(func(o *metrics.Options) { o.History = 5 * time.Minute }),
			sides: map[string][]traffic{"canary": {healthy}, "baseline": {healthy}, "history": {healthy}}, ok: true, attempts: 1},
		{name: "lost volume against history fails",
			opts:   base(func(o *metrics.Options) { o.History = 5 * time.Minute }),
			sides:  map[string][]traffic{"canary": {{400, 0.999, 20}}, "baseline": {healthy}, "history": {healthy}},
			failed: []string{"volume history"}, attempts: 1},
		{name: "a baseline without traffic is skipped when history has it",
			opts:  base(func(o *metrics.Options) { o.History = 5 * time.Minute }),
			sides: map[string][]traffic{"canary": {healthy}, "baseline": {{0, -1, -1}}, "history": {healthy}}, ok: true, attempts: 1, skipped: 1},
		{name: "history only, regression against it",
			opts: base(func(o *metrics.Options) {
				o.Baseline = metrics.Workloads{}
				o.History = time.Minute
			}),
			sides:  map[string][]traffic{"canary": {{1000, 0.95, 20}}, "history": {healthy}},
			failed: []string{"success-rate history"}, attempts: 1},
		{name: "missing latency histograms skip the latency check", opts: base(nil),
			sides: map[string][]traffic{"canary": {{1000, 0.999, -1}}, "baseline": {healthy}}, ok: true, attempts: 1},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			api := &fakeAPI{sides: tc.sides}
			rep, err := metrics.Compare(context.Background(), api, tc.opts)
			require.NoError(t, err)
			assert.Equal(t, tc.ok, rep.OK(), rep.Summary())
			assert.Equal(t, tc.attempts, rep.Attempts)
			assert.Len(t, rep.Skipped, tc.skipped, rep.Skipped)
			var failed []string
			for _, c := range rep.Failed() {
				failed = append(failed, c.Check+" "+c.Against)
			}
			assert.Equal(t, tc.failed, failed, rep.Summary())
			err = rep.Err()
			switch {
			case tc.ok:
				assert.NoError(t, err)
			case tc.short != "":
				var nt *metrics.NotEnoughTrafficError
				require.ErrorAs(t, err, &nt)
				assert.Equal(t, tc.short, nt.Side)
				assert.Equal(t, tc.attempts, nt.Attempts)
				assert.ErrorIs(t, err, metrics.ErrNotEnoughTraffic)
				assert.ErrorIs(t, err, revkit.ErrVerificationFailed)
				assert.Contains(t, err.Error(), "not enough traffic: "+tc.short)
				assert.Contains(t, err.Error(), "sum(increase(istio_requests_total{", "names the query")
			default:
				var reg *metrics.RegressionError
				require.ErrorAs(t, err, &reg)
				assert.ErrorIs(t, err, revkit.ErrVerificationFailed)
				assert.NotErrorIs(t, err, metrics.ErrNotEnoughTraffic)
				for _, c := range reg.Failed {
					require.NotEmpty(t, c.Queries)
					assert.Contains(t, err.Error(), c.Queries[0].PromQL, "names the query")
				}
			}
		})
	}
}

func TestCompareQueries(t *testing.T) {
	api := &fakeAPI{sides: map[string][]traffic{"canary": {healthy}, "baseline": {healthy}, "history": {healthy}}}
	rep, err := metrics.Compare(context.Background(), api, metrics.Options{
		Canary:   metrics.Workloads{Revision: "new", Namespaces: []string{"shop", "blog"}, Matchers: []string{`destination_app="web"`}},
		Baseline: metrics.Workloads{Revision: "old"},
		History:  10 * time.Minute, Window: 90 * time.Second, Percentile: 0.95,
	})
	require.NoError(t, err)
	require.True(t, rep.OK(), rep.Summary())
	canary := `{reporter="destination", istio_io_rev="new", destination_workload_namespace=~"shop|blog", destination_app="web"}`
	want := []string{
		`sum(increase(istio_requests_total` + canary + `[90s]))`,
		`sum(rate(istio_requests_total{reporter="destination", istio_io_rev="new", destination_workload_namespace=~"shop|blog", destination_app="web", response_code!~"5.."}[90s])) / sum(rate(istio_requests_total` + canary + `[90s]))`,
		`histogram_quantile(0.95, sum by (le) (rate(istio_request_duration_milliseconds_bucket` + canary + `[90s])))`,
		`sum(increase(istio_requests_total{reporter="destination", istio_io_rev="old"}[90s]))`,
		`sum(rate(istio_requests_total{reporter="destination", istio_io_rev="old", response_code!~"5.."}[90s])) / sum(rate(istio_requests_total{reporter="destination", istio_io_rev="old"}[90s]))`,
		`histogram_quantile(0.95, sum by (le) (rate(istio_request_duration_milliseconds_bucket{reporter="destination", istio_io_rev="old"}[90s])))`,
		`sum(increase(istio_requests_total{reporter="destination", destination_workload_namespace=~"shop|blog", destination_app="web"}[90s] offset 600s) and on (destination_workload_namespace, destination_workload) istio_requests_total` + canary + `)`,
	}
	assert.Equal(t, want, api.calls[:len(want)])
	assert.Len(t, api.calls, 9)
	var names []string
	for _, q := range rep.Queries {
		names = append(names, q.Name)
		assert.True(t, q.Found)
	}
	assert.Equal(t, []string{"canary requests", "canary success-rate", "canary latency", "baseline requests", "baseline success-rate",
		"baseline latency", "history requests", "history success-rate", "history latency"}, names)
	var checks []string
	for _, c := range rep.Comparisons {
		checks = append(checks, c.String())
	}
	assert.Equal(t, []string{
		"success-rate vs baseline: canary 99.90%, must be >= 98.90% (baseline 99.90%): ok",
		"latency p95 vs baseline: canary 20.0ms, must be <= 30.0ms (baseline 20.0ms): ok",
		"success-rate vs history: canary 99.90%, must be >= 98.90% (history 99.90%): ok",
		"latency p95 vs history: canary 20.0ms, must be <= 30.0ms (history 20.0ms): ok",
		"volume vs history: canary 1000, must be >= 500 (history 1000): ok",
	}, checks)
}

func TestCompareErrors(t *testing.T) {
	ctx := context.Background()
	down := errors.New("connection refused")
	t.Run("a failing query is retried, then returned", func(t *testing.T) {
		api := &fakeAPI{sides: map[string][]traffic{"canary": {healthy}, "baseline": {healthy}}, fail: []error{down, nil, down}}
		rep, err := metrics.Compare(ctx, api, base(func(o *metrics.Options) { o.Retries = 1 }))
		var qe *metrics.QueryError
		require.ErrorAs(t, err, &qe)
		assert.ErrorIs(t, err, down)
		assert.Equal(t, "canary success-rate", qe.Name)
		assert.Equal(t, 2, rep.Attempts)
	})
	t.Run("a transient failure is ridden out", func(t *testing.T) {
		api := &fakeAPI{sides: map[string][]traffic{"canary": {healthy}, "baseline": {healthy}}, fail: []error{down}}
		rep, err := metrics.Compare(ctx, api, base(nil))
		require.NoError(t, err)
		assert.True(t, rep.OK())
		assert.Equal(t, 2, rep.Attempts)
	})
	t.Run("a cancelled context stops the wait", func(t *testing.T) {
		cctx, cancel := context.WithCancel(ctx)
		cancel()
		api := &fakeAPI{sides: map[string][]traffic{"canary": {{1, 1, 1}}, "baseline": {healthy}}}
		_, err := metrics.Compare(cctx, api, base(func(o *metrics.Options) { o.RetryInterval = time.Hour }))
		assert.ErrorIs(t, err, context.Canceled)
	})
	t.Run("a cancelled context ends the settling before any query", func(t *testing.T) {
		cctx, cancel := context.WithCancel(ctx)
		cancel()
		api := &fakeAPI{sides: map[string][]traffic{"canary": {healthy}, "baseline": {healthy}}}
		_, err := metrics.Compare(cctx, api, base(func(o *metrics.Options) { o.Settle = time.Hour }))
		assert.ErrorIs(t, err, context.Canceled)
		assert.Empty(t, api.calls)
	})
	t.Run("settling waits, then queries", func(t *testing.T) {
		api := &fakeAPI{sides: map[string][]traffic{"canary": {healthy}, "baseline": {healthy}}}
		began := time.Now()
		rep, err := metrics.Compare(ctx, api, base(func(o *metrics.Options) { o.Settle = 20 * time.Millisecond }))
		require.NoError(t, err)
		assert.True(t, rep.OK())
		assert.GreaterOrEqual(t, time.Since(began), 20*time.Millisecond)
	})
	t.Run("more than one series is an error", func(t *testing.T) {
		api := multiAPI{}
		_, err := metrics.Compare(ctx, api, base(func(o *metrics.Options) { o.Retries = 0 }))
		var qe *metrics.QueryError
		require.ErrorAs(t, err, &qe)
		assert.Contains(t, err.Error(), "2 series, want one")
	})
	t.Run("no api", func(t *testing.T) {
		_, err := metrics.Compare(ctx, nil, base(nil))
		assert.ErrorIs(t, err, revkit.ErrInvalidInput)
	})
}

type multiAPI struct{ v1.API }

func (multiAPI) Query(context.Context, string, time.Time, ...v1.Option) (model.Value, v1.Warnings, error) {
	return model.Vector{{Value: 1}, {Value: 2}}, nil, nil
}

func TestOptionsValidate(t *testing.T) {
	ok := base(nil)
	tests := []struct {
		name  string
		mod   func(*metrics.Options)
		field string
	}{
		{"no canary", func(o *metrics.Options) { o.Canary = metrics.Workloads{} }, "Canary"},
		{"nothing to compare with", func(o *metrics.Options) { o.Baseline = metrics.Workloads{} }, "Baseline"},
		{"bad matcher", func(o *metrics.Options) { o.Canary.Matchers = []string{`app="x"} or vector(1)`} }, "Canary.Matchers"},
		{"bad namespace", func(o *metrics.Options) { o.Baseline.Namespaces = []string{"Shop"} }, "Baseline.Namespaces"},
		{"empty namespace", func(o *metrics.Options) { o.Canary.Namespaces = []string{""} }, "Canary.Namespaces"},
		{"quote in revision", func(o *metrics.Options) { o.Canary.Revision = `x"` }, "Canary.Revision"},
		{"bad label", func(o *metrics.Options) { o.RevisionLabel = "istio.io/rev" }, "RevisionLabel"},
		{"negative window", func(o *metrics.Options) { o.Window = -time.Second }, "Window"},
		{"negative settle", func(o *metrics.Options) { o.Settle = -time.Second }, "Settle"},
		{"tiny window", func(o *metrics.Options) { o.Window = time.Millisecond }, "Window"},
		{"negative retries", func(o *metrics.Options) { o.Retries = -1 }, "Retries"},
		{"percentile 1", func(o *metrics.Options) { o.Percentile = 1 }, "Percentile"},
		{"percent not fraction", func(o *metrics.Options) { o.MinSuccessRate = 99 }, "MinSuccessRate"},
		{"drop above 1", func(o *metrics.Options) { o.MaxSuccessRateDrop = 2 }, "MaxSuccessRateDrop"},
		{"volume drop 1", func(o *metrics.Options) { o.MaxVolumeDrop = 1 }, "MaxVolumeDrop"},
		{"latency ratio below 1", func(o *metrics.Options) { o.MaxLatencyRatio = 0.5 }, "MaxLatencyRatio"},
		{"NaN requests", func(o *metrics.Options) { o.MinRequests = math.NaN() }, "MinRequests"},
	}
	require.NoError(t, ok.Validate())
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			o := base(tc.mod)
			err := o.Validate()
			var ie *revkit.InvalidInputError
			require.ErrorAs(t, err, &ie)
			assert.Equal(t, tc.field, ie.Field)
			assert.ErrorIs(t, err, revkit.ErrInvalidInput)
			// Nothing is asked of Prometheus.
			api := &fakeAPI{}
			_, err = metrics.Compare(context.Background(), api, o)
			assert.ErrorIs(t, err, revkit.ErrInvalidInput)
			assert.Empty(t, api.calls)
		})
	}
}

func TestGate(t *testing.T) {
	ctx := context.Background()
	sides := func(c traffic) map[string][]traffic {
		return map[string][]traffic{"canary": {c}, "baseline": {healthy}}
	}
	t.Run("passes", func(t *testing.T) {
		g := metrics.Gate(&fakeAPI{sides: sides(healthy)}, base(nil))
		assert.Equal(t, "metric-gate", g.Name())
		assert.Equal(t, "compare the success rate, p99 latency of workloads of revision new with workloads of revision old over 30s (Prometheus)", g.Description())
		res, err := g.Run(ctx, upgrade.Env{})
		require.NoError(t, err)
		assert.Equal(t, upgrade.Done, res.Outcome)
		assert.Contains(t, res.Detail, "success-rate vs baseline: canary 99.90%")
	})
	t.Run("skipped in a dry run without a query", func(t *testing.T) {
		api := &fakeAPI{sides: sides(healthy)}
		res, err := metrics.Gate(api, base(nil)).Run(ctx, upgrade.Env{Common: revkit.Common{DryRun: revkit.DryRunClient}})
		require.NoError(t, err)
		assert.Equal(t, upgrade.Skipped, res.Outcome)
		assert.Empty(t, api.calls)
	})
	t.Run("a regression fails the plan as a gate and runs its on-failure steps", func(t *testing.T) {
		rolledBack := ""
		plan := upgrade.Plan{
			Steps: []upgrade.Step{
				upgrade.Named("metric-gate 1/2", metrics.Gate(&fakeAPI{sides: sides(traffic{1000, 0.8, 20})}, base(nil))),
				upgrade.Func("batch 2", "never runs", func(context.Context, upgrade.Env) (upgrade.Result, error) {
					t.Error("the plan went on after a failed gate")
					return upgrade.Result{}, nil
				}),
			},
			OnFailure: []upgrade.Step{upgrade.Func("rollback-failed-batch", "", func(_ context.Context, env upgrade.Env) (upgrade.Result, error) {
				rolledBack = env.FailedStep
				return upgrade.Result{}, nil
			})},
		}
		rep, err := upgrade.Execute(ctx, upgrade.Env{}, plan)
		require.ErrorIs(t, err, revkit.ErrVerificationFailed)
		var reg *metrics.RegressionError
		require.ErrorAs(t, err, &reg)
		f := rep.Failed()
		require.NotNil(t, f)
		assert.True(t, f.GateFailed())
		assert.Contains(t, f.Detail, "success-rate vs baseline: canary 80.00%, must be >= 98.90% (baseline 99.90%): FAILED")
		assert.Equal(t, upgrade.NotRun, rep.Steps[1].Outcome)
		assert.Equal(t, "metric-gate 1/2", rolledBack)
	})
	t.Run("not enough traffic fails the gate with its own reason", func(t *testing.T) {
		res, err := metrics.Gate(&fakeAPI{sides: sides(traffic{3, 1, 20})}, base(nil)).Run(ctx, upgrade.Env{})
		require.ErrorIs(t, err, metrics.ErrNotEnoughTraffic)
		assert.Equal(t, upgrade.Failed, res.Outcome)
		assert.Contains(t, res.Detail, "not enough traffic: canary had 3 requests in 30s, needs 100")
	})
	t.Run("invalid options and a nil API are refused before the plan runs", func(t *testing.T) {
		for _, g := range []upgrade.Step{metrics.Gate(nil, base(nil)), metrics.Gate(&fakeAPI{}, metrics.Options{})} {
			_, err := upgrade.Execute(ctx, upgrade.Env{}, upgrade.Plan{Steps: []upgrade.Step{g}})
			assert.ErrorIs(t, err, revkit.ErrInvalidInput)
		}
	})
	t.Run("a canary plan runs it after every batch", func(t *testing.T) {
		g := metrics.Gate(&fakeAPI{sides: sides(healthy)}, base(nil))
		// An explicit list of namespaces needs no cluster to batch.
		plan, err := upgrade.Canary(ctx, nil, upgrade.CanaryOptions{From: "old", To: "new",
			Namespaces: namespace.Selection{Namespaces: []string{"a", "b"}}, BatchSize: 1,
			Gates: []upgrade.Step{g}, RollbackFailedBatch: true})
		require.NoError(t, err)
		require.NoError(t, plan.Validate())
		assert.Regexp(t, `restart-workloads 1/2.*\n.*verify-pods 1/2.*\n.*metric-gate 1/2 +compare the success rate`, plan.String())
		assert.Contains(t, plan.String(), "metric-gate 2/2")
		require.Len(t, plan.OnFailure, 1)
		assert.Equal(t, "rollback-failed-batch", plan.OnFailure[0].Name())
	})
}

// Between fleet waves: the options follow the wave, a regression stops the
// fleet as a failed gate, a healthy wave passes.
func TestWaveGate(t *testing.T) {
	ctx := context.Background()
	var asked []string
	opts := func(w *fleet.WaveReport) metrics.Options {
		asked = append(asked, w.Name)
		return base(func(o *metrics.Options) { o.Canary.Matchers = []string{`cluster="` + w.Name + `"`} })
	}
	g := metrics.WaveGate(&fakeAPI{sides: map[string][]traffic{"canary": {healthy}, "baseline": {healthy}}}, opts)
	assert.Equal(t, "metric-gate", g.Name)
	require.NoError(t, g.Check(ctx, &fleet.WaveReport{Name: "eu"}))
	err := metrics.WaveGate(&fakeAPI{sides: map[string][]traffic{"canary": {{1000, 0.8, 20}}, "baseline": {healthy}}}, opts).
		Check(ctx, &fleet.WaveReport{Name: "us"})
	assert.ErrorIs(t, err, revkit.ErrVerificationFailed)
	var reg *metrics.RegressionError
	assert.ErrorAs(t, err, &reg)
	assert.Equal(t, []string{"eu", "us"}, asked)
	assert.ErrorIs(t, metrics.WaveGate(nil, opts).Check(ctx, &fleet.WaveReport{}), revkit.ErrInvalidInput)
	assert.ErrorIs(t, metrics.WaveGate(&fakeAPI{}, func(*fleet.WaveReport) metrics.Options { return metrics.Options{} }).
		Check(ctx, &fleet.WaveReport{}), revkit.ErrInvalidInput)
}
