package metrics

import (
	"context"
	"fmt"
	"math"
	"strconv"
	"strings"
	"time"

	v1 "github.com/prometheus/client_golang/api/prometheus/v1"
	"github.com/prometheus/common/model"

	"github.com/revkit/revkit"
	"github.com/revkit/revkit/internal/kubeutil"
)

// Istio's standard metrics the comparison reads.
const (
	RequestsMetric = "istio_requests_total"
	DurationMetric = "istio_request_duration_milliseconds_bucket"
)

// The checks a comparison makes, and what it compares with.
const (
	CheckRequests    = "requests"
	CheckSuccessRate = "success-rate"
	CheckLatency     = "latency"
	CheckVolume      = "volume"

	AgainstBaseline  = "baseline"
	AgainstHistory   = "history"
	AgainstThreshold = "threshold"
)

// Sides of a comparison: the canary and its references.
const (
	SideCanary   = "canary"
	SideBaseline = "baseline"
	SideHistory  = "history"
)

// side is one set of traffic: the canary now, the baseline now, or the
// canary's workloads History ago.
type side struct {
	name string
	// sel is the series selector, offset the PromQL offset of its ranges,
	// and restrict what narrows its series to the canary's workloads.
	sel      string
	offset   time.Duration
	restrict string
}

func (o Options) sides() []side {
	canary := o.selector(o.Canary, true)
	out := []side{{name: SideCanary, sel: canary}}
	if !o.Baseline.empty() {
		out = append(out, side{name: SideBaseline, sel: o.selector(o.Baseline, true)})
	}
	if o.History > 0 {
		// The canary's workloads, whatever revision served them then: a
		// workload counts if it has canary series now.
		out = append(out, side{name: SideHistory, sel: o.selector(o.Canary, false), offset: o.History,
			restrict: " and on (destination_workload_namespace, destination_workload) " + RequestsMetric + canary})
	}
	return out
}

// selector renders the label matchers of a set of workloads.
func (o Options) selector(w Workloads, withRevision bool) string {
	m := []string{`reporter="destination"`}
	if withRevision && w.Revision != "" {
		m = append(m, fmt.Sprintf("%s=%q", o.RevisionLabel, w.Revision))
	}
	if len(w.Namespaces) > 0 {
		// Namespace names are DNS labels: nothing to escape in the regexp.
		m = append(m, fmt.Sprintf("destination_workload_namespace=~%q", strings.Join(w.Namespaces, "|")))
	}
	for _, x := range w.Matchers {
		m = append(m, strings.TrimSpace(x))
	}
	return "{" + strings.Join(m, ", ") + "}"
}

// rangeOf is the range selector of metric on this side, with extra
// matchers.
func (s side) rangeOf(metric, extra string, window time.Duration) string {
	sel := s.sel
	if extra != "" {
		sel = strings.TrimSuffix(sel, "}") + ", " + extra + "}"
	}
	r := metric + sel + "[" + promDuration(window) + "]"
	if s.offset > 0 {
		r += " offset " + promDuration(s.offset)
	}
	return r
}

// queries are this side's PromQL: requests in the window, success rate,
// latency percentile.
func (s side) queries(o Options) (requests, success, latency string) {
	requests = fmt.Sprintf("sum(increase(%s)%s)", s.rangeOf(RequestsMetric, "", o.Window), s.restrict)
	success = fmt.Sprintf("sum(rate(%s)%s) / sum(rate(%s)%s)",
		s.rangeOf(RequestsMetric, `response_code!~"5.."`, o.Window), s.restrict, s.rangeOf(RequestsMetric, "", o.Window), s.restrict)
	latency = fmt.Sprintf("histogram_quantile(%s, sum by (le) (rate(%s)%s))",
		strconv.FormatFloat(o.Percentile, 'f', -1, 64), s.rangeOf(DurationMetric, "", o.Window), s.restrict)
	return requests, success, latency
}

// promDuration writes d as PromQL does: whole seconds, or milliseconds.
func promDuration(d time.Duration) string {
	if d%time.Second == 0 {
		return strconv.FormatInt(int64(d/time.Second), 10) + "s"
	}
	return strconv.FormatInt(d.Milliseconds(), 10) + "ms"
}

// measure is what one side showed.
type measure struct {
	side                       side
	requests, success, latency Query
}

// Compare asks Prometheus, through api, how the canary's traffic compares
// with its references (Options.Baseline, Options.History) and returns a
// report of every query and check.
//
// It first waits Options.Settle. While the canary has fewer than MinRequests requests in the window, or
// neither reference has, or a query fails, Compare waits RetryInterval and
// asks again, at most Retries more times; then the report says not enough
// traffic (Report.Err is a *NotEnoughTrafficError), or Compare returns the
// query's *QueryError. A regression ends the comparison at once. Findings
// are in the report, not the error: the error is for invalid options
// (revkit.ErrInvalidInput), a failing Prometheus, and ctx.
func Compare(ctx context.Context, api v1.API, opts Options) (*Report, error) {
	if err := opts.Validate(); err != nil {
		return nil, err
	}
	if api == nil {
		return nil, &revkit.InvalidInputError{Field: "api", Reason: "must not be nil: a Prometheus API client (v1.NewAPI)"}
	}
	o := opts.withDefaults()
	began := time.Now()
	rep := &Report{Window: o.Window}
	if err := kubeutil.Pause(ctx, o.Settle); err != nil {
		return rep, err
	}
	for attempt := 1; ; attempt++ {
		rep.Attempts = attempt
		err := compareOnce(ctx, api, o, rep)
		last := attempt > o.Retries
		switch {
		case err != nil && (last || ctx.Err() != nil):
			return rep, err
		case err == nil && rep.NotEnoughTraffic == nil:
			return rep, nil
		case err == nil && last:
			rep.NotEnoughTraffic.Attempts = attempt
			rep.NotEnoughTraffic.Waited = time.Since(began)
			return rep, nil
		}
		if err := kubeutil.Pause(ctx, o.RetryInterval); err != nil {
			return rep, err
		}
	}
}

// compareOnce runs every query once and fills rep with what it saw.
func compareOnce(ctx context.Context, api v1.API, o Options, rep *Report) error {
	at := time.Now()
	rep.At, rep.Queries, rep.Comparisons, rep.Skipped, rep.NotEnoughTraffic = at, nil, nil, nil, nil
	var ms []measure
	for _, s := range o.sides() {
		m := measure{side: s}
		rq, sq, lq := s.queries(o)
		for _, q := range []struct {
			into  *Query
			name  string
			promQ string
		}{{&m.requests, CheckRequests, rq}, {&m.success, CheckSuccessRate, sq}, {&m.latency, CheckLatency, lq}} {
			v, err := query(ctx, api, s.name+" "+q.name, q.promQ, at)
			*q.into = v
			rep.Queries = append(rep.Queries, v)
			if err != nil {
				return err
			}
		}
		ms = append(ms, m)
	}
	canary, refs := ms[0], ms[1:]
	enough := func(m measure) bool { return m.requests.Found && m.requests.Value >= o.MinRequests }
	short := func(m measure) *NotEnoughTrafficError {
		return &NotEnoughTrafficError{Side: m.side.name, Requests: m.requests.Value, MinRequests: o.MinRequests,
			Window: o.Window, Query: m.requests.PromQL}
	}
	if !enough(canary) {
		rep.NotEnoughTraffic = short(canary)
		return nil
	}
	var usable []measure
	for _, r := range refs {
		if enough(r) {
			usable = append(usable, r)
			continue
		}
		rep.Skipped = append(rep.Skipped, fmt.Sprintf("%s: %s requests in %s, fewer than %s",
			r.side.name, num(r.requests.Value), o.Window, num(o.MinRequests)))
	}
	if len(usable) == 0 {
		rep.NotEnoughTraffic = short(refs[0])
		return nil
	}
	pct := "p" + strconv.FormatFloat(o.Percentile*100, 'f', -1, 64)
	add := func(c Comparison) { rep.Comparisons = append(rep.Comparisons, c) }
	for _, r := range usable {
		if o.MaxSuccessRateDrop >= 0 && r.success.Found && canary.success.Found {
			limit := r.success.Value - o.MaxSuccessRateDrop
			add(Comparison{Check: CheckSuccessRate, Against: r.side.name, Canary: canary.success.Value, Reference: r.success.Value,
				Limit: limit, Passed: canary.success.Value >= limit, Queries: []Query{canary.success, r.success}})
		}
		if o.MaxLatencyRatio > 0 && r.latency.Found && canary.latency.Found {
			limit := r.latency.Value * o.MaxLatencyRatio
			add(Comparison{Check: CheckLatency, Percentile: pct, Against: r.side.name, Canary: canary.latency.Value,
				Reference: r.latency.Value, Limit: limit, Passed: canary.latency.Value <= limit, Queries: []Query{canary.latency, r.latency}})
		}
		if o.MaxVolumeDrop >= 0 && r.side.name == SideHistory {
			limit := r.requests.Value * (1 - o.MaxVolumeDrop)
			add(Comparison{Check: CheckVolume, Against: r.side.name, Canary: canary.requests.Value, Reference: r.requests.Value,
				Limit: limit, Passed: canary.requests.Value >= limit, Queries: []Query{canary.requests, r.requests}})
		}
	}
	if o.MinSuccessRate > 0 && canary.success.Found {
		add(Comparison{Check: CheckSuccessRate, Against: AgainstThreshold, Canary: canary.success.Value, Reference: o.MinSuccessRate,
			Limit: o.MinSuccessRate, Passed: canary.success.Value >= o.MinSuccessRate, Queries: []Query{canary.success}})
	}
	if ms := float64(o.MaxLatency) / float64(time.Millisecond); ms > 0 && canary.latency.Found {
		add(Comparison{Check: CheckLatency, Percentile: pct, Against: AgainstThreshold, Canary: canary.latency.Value, Reference: ms,
			Limit: ms, Passed: canary.latency.Value <= ms, Queries: []Query{canary.latency}})
	}
	return nil
}

// query runs one instant query and reads its single value. An empty result,
// or NaN (a ratio of nothing), is a query without a value.
func query(ctx context.Context, api v1.API, name, promQL string, at time.Time) (Query, error) {
	q := Query{Name: name, PromQL: promQL, At: at}
	val, warnings, err := api.Query(ctx, promQL, at)
	q.Warnings = warnings
	if err != nil {
		return q, &QueryError{Name: name, PromQL: promQL, Err: err}
	}
	var sample float64
	switch v := val.(type) {
	case model.Vector:
		if len(v) == 0 {
			return q, nil
		}
		if len(v) > 1 {
			return q, &QueryError{Name: name, PromQL: promQL, Err: fmt.Errorf("%d series, want one", len(v))}
		}
		sample = float64(v[0].Value)
	case *model.Scalar:
		sample = float64(v.Value)
	default:
		return q, &QueryError{Name: name, PromQL: promQL, Err: fmt.Errorf("result of type %T, want a vector", val)}
	}
	if math.IsNaN(sample) || math.IsInf(sample, 0) {
		return q, nil
	}
	q.Value, q.Found = sample, true
	return q, nil
}
