package metrics

import (
	"errors"
	"fmt"
	"math"
	"strconv"
	"strings"
	"time"

	"github.com/revkit/revkit"
)

// Query is one PromQL query a comparison ran, and what it returned.
type Query struct {
	// Name says what it measures, e.g. "canary success-rate".
	Name   string
	PromQL string
	// At is the evaluation time.
	At time.Time
	// Value is the result; Found is false when Prometheus returned no
	// series (no traffic) or NaN.
	Value float64
	Found bool
	// Warnings are Prometheus's own.
	Warnings []string
}

func (q Query) String() string {
	v := "no data"
	if q.Found {
		v = num(q.Value)
	}
	return fmt.Sprintf("%s = %s", q.PromQL, v)
}

// Comparison is one check of the canary against a reference or a
// threshold.
type Comparison struct {
	// Check is CheckSuccessRate, CheckLatency or CheckVolume; Percentile
	// ("p99") qualifies a latency check.
	Check      string
	Percentile string
	// Against is SideBaseline, SideHistory or AgainstThreshold.
	Against string
	// Canary is the canary's value, Reference the reference's (or the
	// threshold), Limit the bound the canary had to meet: at least Limit
	// for success rate and volume, at most Limit for latency. Success
	// rates are fractions, latencies milliseconds, volumes requests in the
	// window.
	Canary, Reference, Limit float64
	Passed                   bool
	// Queries are the canary's query and the reference's.
	Queries []Query
}

func (c Comparison) name() string {
	if c.Check == CheckLatency {
		return c.Check + " " + c.Percentile
	}
	return c.Check
}

func (c Comparison) String() string {
	op := ">="
	if c.Check == CheckLatency {
		op = "<="
	}
	verdict := "ok"
	if !c.Passed {
		verdict = "FAILED"
	}
	ref := ""
	if c.Against != AgainstThreshold {
		ref = fmt.Sprintf(" (%s %s)", c.Against, c.format(c.Reference))
	}
	return fmt.Sprintf("%s vs %s: canary %s, must be %s %s%s: %s",
		c.name(), c.Against, c.format(c.Canary), op, c.format(c.Limit), ref, verdict)
}

func (c Comparison) format(v float64) string {
	switch c.Check {
	case CheckSuccessRate:
		return strconv.FormatFloat(v*100, 'f', 2, 64) + "%"
	case CheckLatency:
		return strconv.FormatFloat(v, 'f', 1, 64) + "ms"
	}
	return strconv.FormatFloat(v, 'f', 0, 64)
}

// num writes a value to four decimals at most: rates and extrapolated
// counts carry float noise.
func num(v float64) string { return strconv.FormatFloat(math.Round(v*1e4)/1e4, 'f', -1, 64) }

// Report is what a comparison queried and found.
type Report struct {
	// Queries are those of the last attempt, in order: for each side
	// (canary, then baseline, then history) its requests, success rate and
	// latency.
	Queries     []Query
	Comparisons []Comparison
	// Skipped names the references left out for too little traffic.
	Skipped []string
	// NotEnoughTraffic is set when the canary, or every reference, had
	// fewer than MinRequests requests in the window on the last attempt.
	NotEnoughTraffic *NotEnoughTrafficError
	// Attempts is how many times the queries ran; At when they last ran.
	Attempts int
	At       time.Time
	Window   time.Duration
}

// OK reports whether the canary had enough traffic and passed every check.
func (r *Report) OK() bool {
	if r.NotEnoughTraffic != nil {
		return false
	}
	for _, c := range r.Comparisons {
		if !c.Passed {
			return false
		}
	}
	return true
}

// Failed returns the checks that did not pass.
func (r *Report) Failed() []Comparison {
	var out []Comparison
	for _, c := range r.Comparisons {
		if !c.Passed {
			out = append(out, c)
		}
	}
	return out
}

// Err returns nil for a report that is OK, a *NotEnoughTrafficError when
// traffic was too little, and otherwise a *RegressionError naming each
// failed check with its queries and values. Both match
// revkit.ErrVerificationFailed.
func (r *Report) Err() error {
	if r.NotEnoughTraffic != nil {
		return r.NotEnoughTraffic
	}
	if failed := r.Failed(); len(failed) > 0 {
		return &RegressionError{Failed: failed}
	}
	return nil
}

// Summary is one line: each check with its values, or why none ran.
func (r *Report) Summary() string {
	if r.NotEnoughTraffic != nil {
		return r.NotEnoughTraffic.Error()
	}
	parts := make([]string, 0, len(r.Comparisons)+len(r.Skipped))
	for _, c := range r.Comparisons {
		parts = append(parts, c.String())
	}
	for _, s := range r.Skipped {
		parts = append(parts, "skipped "+s)
	}
	s := strings.Join(parts, "; ")
	if r.Attempts > 1 {
		s += fmt.Sprintf(" (attempt %d)", r.Attempts)
	}
	return s
}

// ErrNotEnoughTraffic matches a *NotEnoughTrafficError: the gate could not
// judge the canary, rather than judged it bad.
var ErrNotEnoughTraffic = errors.New("not enough traffic")

// NotEnoughTrafficError says that a side of the comparison had too few
// requests in the window for its rates to mean anything, after every
// retry. It matches ErrNotEnoughTraffic and revkit.ErrVerificationFailed:
// a gate that cannot judge the canary does not pass it.
type NotEnoughTrafficError struct {
	// Side is SideCanary, or a reference when neither had enough.
	Side string
	// Requests were seen in Window; MinRequests were needed; Query counted
	// them.
	Requests, MinRequests float64
	Window                time.Duration
	Query                 string
	// Attempts and Waited: how long the gate waited for traffic.
	Attempts int
	Waited   time.Duration
}

func (e *NotEnoughTrafficError) Error() string {
	s := fmt.Sprintf("not enough traffic: %s had %s requests in %s, needs %s (%s)",
		e.Side, num(e.Requests), e.Window, num(e.MinRequests), e.Query)
	if e.Attempts > 1 {
		s += fmt.Sprintf(", after %d attempts over %s", e.Attempts, e.Waited.Round(time.Millisecond))
	}
	return s
}

func (e *NotEnoughTrafficError) Is(target error) bool {
	return target == ErrNotEnoughTraffic || target == revkit.ErrVerificationFailed
}

// RegressionError says that the canary did worse than a reference or a
// threshold allows. It matches revkit.ErrVerificationFailed.
type RegressionError struct {
	Failed []Comparison
}

func (e *RegressionError) Error() string {
	parts := make([]string, 0, len(e.Failed))
	for _, c := range e.Failed {
		qs := make([]string, 0, len(c.Queries))
		for _, q := range c.Queries {
			qs = append(qs, q.String())
		}
		parts = append(parts, c.String()+" ["+strings.Join(qs, "; ")+"]")
	}
	return "canary regressed: " + revkit.ErrVerificationFailed.Error() + ": " + strings.Join(parts, "; ")
}

func (e *RegressionError) Is(target error) bool { return target == revkit.ErrVerificationFailed }

// QueryError is a query Prometheus did not answer, or answered with more
// than one series. It unwraps to the client's error.
type QueryError struct {
	Name, PromQL string
	Err          error
}

func (e *QueryError) Error() string {
	return fmt.Sprintf("metrics: query %s (%s): %v", e.Name, e.PromQL, e.Err)
}

func (e *QueryError) Unwrap() error { return e.Err }
