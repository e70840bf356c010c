package metrics

import (
	"fmt"
	"math"
	"regexp"
	"strings"
	"time"

	"github.com/revkit/revkit"
)

// Workloads selects the traffic of a set of workloads in Istio's standard
// metrics: the requests their proxies received (reporter="destination").
// Every field set narrows it; at least one must be set.
type Workloads struct {
	// Revision is the control-plane revision of their proxies, matched
	// against the series label Options.RevisionLabel. Istio's metrics do
	// not carry it themselves: the scrape adds it (see the package doc).
	Revision string
	// Namespaces match destination_workload_namespace.
	Namespaces []string
	// Matchers are further PromQL label matchers, e.g.
	// `destination_workload="cart"` or `destination_canonical_service=~"web|api"`.
	Matchers []string
}

func (w Workloads) empty() bool {
	return w.Revision == "" && len(w.Namespaces) == 0 && len(w.Matchers) == 0
}

// Options describe one comparison: the canary's traffic against the
// baseline's and, with History, against the same workloads' own traffic
// before. The zero value of a threshold is its default; a negative value
// turns that check off.
type Options struct {
	// Canary selects the workloads on the new revision (required), e.g.
	// Workloads{Revision: "1-25-0"}.
	Canary Workloads
	// Baseline selects workloads still on the old revision, e.g.
	// Workloads{Revision: "1-24-0"}; zero compares with History only.
	Baseline Workloads
	// History, when positive, also compares the canary workloads with
	// their own traffic History ago (a PromQL offset), whatever revision
	// they ran then: "the same workloads before the batch" when History is
	// longer than the batch took to move (its restart and checks) and
	// shorter than the traffic data held.
	History time.Duration
	// Window is the range the rates, ratios and percentiles are computed
	// over; default one minute. It needs at least two scrapes in it.
	Window time.Duration
	// Settle is how long the comparison waits before its first query. Run
	// right after a batch restarted, a window still holds the old pods'
	// last requests and only part of the new pods' first ones: with Settle
	// of one Window the canary's window is its own traffic only, which the
	// volume check (History) needs. Zero queries at once.
	Settle time.Duration
	// RevisionLabel is the series label that holds the proxy's revision;
	// default DefaultRevisionLabel.
	RevisionLabel string

	// MinRequests is how many requests each side needs in the window for
	// its rates to mean anything; default 100. With fewer on the canary,
	// the gate waits (Retries) and then fails with a
	// *NotEnoughTrafficError. A reference (baseline or history) with
	// fewer is left out while the other one has enough.
	MinRequests float64
	// MaxSuccessRateDrop is how far the canary's success rate (requests
	// not answered 5xx) may fall below a reference's, as a fraction:
	// default 0.01, one percentage point.
	MaxSuccessRateDrop float64
	// MinSuccessRate, when positive, is a floor for the canary's success
	// rate whatever the references do, e.g. 0.99.
	MinSuccessRate float64
	// Percentile is the latency percentile compared, in (0, 1); default
	// 0.99.
	Percentile float64
	// MaxLatencyRatio is how many times a reference's latency percentile
	// the canary's may be; default 1.5.
	MaxLatencyRatio float64
	// MaxLatency, when positive, is a ceiling for the canary's latency
	// percentile.
	MaxLatency time.Duration
	// MaxVolumeDrop is the share of its request rate that the canary
	// workloads may lose against History (traffic that no longer arrives
	// is a failure no success rate shows); default 0.5. Only with History:
	// other workloads' volume says nothing about these.
	MaxVolumeDrop float64

	// Retries is how many more times the comparison runs, RetryInterval
	// apart, while the canary (or every reference) has too little traffic
	// or a query fails; default 6. A regression fails at once.
	Retries       int
	RetryInterval time.Duration
}

// Defaults of Options.
const (
	DefaultWindow             = time.Minute
	DefaultRevisionLabel      = "istio_io_rev"
	DefaultMinRequests        = 100
	DefaultMaxSuccessRateDrop = 0.01
	DefaultPercentile         = 0.99
	DefaultMaxLatencyRatio    = 1.5
	DefaultMaxVolumeDrop      = 0.5
	DefaultRetries            = 6
	DefaultRetryInterval      = 10 * time.Second
)

// withDefaults fills the zero fields.
func (o Options) withDefaults() Options {
	or := func(v *float64, d float64) {
		if *v == 0 {
			*v = d
		}
	}
	if o.Window == 0 {
		o.Window = DefaultWindow
	}
	if o.RevisionLabel == "" {
		o.RevisionLabel = DefaultRevisionLabel
	}
	or(&o.MinRequests, DefaultMinRequests)
	or(&o.MaxSuccessRateDrop, DefaultMaxSuccessRateDrop)
	or(&o.Percentile, DefaultPercentile)
	or(&o.MaxLatencyRatio, DefaultMaxLatencyRatio)
	or(&o.MaxVolumeDrop, DefaultMaxVolumeDrop)
	if o.Retries == 0 {
		o.Retries = DefaultRetries
	}
	if o.RetryInterval == 0 {
		o.RetryInterval = DefaultRetryInterval
	}
	return o
}

var (
	labelName = regexp.MustCompile(`^[a-zA-Z_][a-zA-Z0-9_]*$`)
	// A PromQL label matcher: name, operator, one quoted value.
	matcher = regexp.MustCompile(`^\s*[a-zA-Z_][a-zA-Z0-9_]*\s*(=|!=|=~|!~)\s*"(?:[^"\\]|\\.)*"\s*$`)
)

// Validate checks the options without asking Prometheus. Errors match
// revkit.ErrInvalidInput.
func (o *Options) Validate() error {
	bad := func(field, value, reason string) error {
		return &revkit.InvalidInputError{Field: field, Value: value, Reason: reason}
	}
	if o.Canary.empty() {
		return bad("Canary", "", "must select workloads: a revision, namespaces or matchers")
	}
	for _, w := range []struct {
		name string
		w    Workloads
	}{{"Canary", o.Canary}, {"Baseline", o.Baseline}} {
		for _, m := range w.w.Matchers {
			if !matcher.MatchString(m) {
				return bad(w.name+".Matchers", m, `must be one PromQL label matcher, e.g. destination_workload="cart"`)
			}
		}
		for _, ns := range w.w.Namespaces {
			if ns == "" {
				return bad(w.name+".Namespaces", ns, "must not hold an empty name")
			}
			if err := revkit.ValidateNamespace(w.name+".Namespaces", ns); err != nil {
				return err
			}
		}
		if strings.ContainsAny(w.w.Revision, "\"\\\n") {
			return bad(w.name+".Revision", w.w.Revision, "must be a revision name")
		}
	}
	if o.Baseline.empty() && o.History <= 0 {
		return bad("Baseline", "", "a baseline or a History is needed to compare the canary with")
	}
	if o.RevisionLabel != "" && !labelName.MatchString(o.RevisionLabel) {
		return bad("RevisionLabel", o.RevisionLabel, "must be a Prometheus label name")
	}
	for _, d := range []struct {
		name string
		v    time.Duration
	}{{"Window", o.Window}, {"History", o.History}, {"RetryInterval", o.RetryInterval}, {"MaxLatency", o.MaxLatency}, {"Settle", o.Settle}} {
		if d.v < 0 {
			return bad(d.name, d.v.String(), "must not be negative")
		}
	}
	if o.Window != 0 && o.Window < time.Second {
		return bad("Window", o.Window.String(), "must be at least a second")
	}
	if o.Retries < 0 {
		return bad("Retries", fmt.Sprint(o.Retries), "must not be negative")
	}
	if p := o.Percentile; p != 0 && (p <= 0 || p >= 1 || math.IsNaN(p)) {
		return bad("Percentile", fmt.Sprint(p), "must be between 0 and 1, e.g. 0.99")
	}
	if s := o.MinSuccessRate; s > 1 || math.IsNaN(s) {
		return bad("MinSuccessRate", fmt.Sprint(s), "must be a fraction, e.g. 0.99")
	}
	if d := o.MaxSuccessRateDrop; d > 1 || math.IsNaN(d) {
		return bad("MaxSuccessRateDrop", fmt.Sprint(d), "must be a fraction, e.g. 0.01")
	}
	if d := o.MaxVolumeDrop; d >= 1 || math.IsNaN(d) {
		return bad("MaxVolumeDrop", fmt.Sprint(d), "must be a fraction below 1, e.g. 0.5")
	}
	if r := o.MaxLatencyRatio; r > 0 && r < 1 || math.IsNaN(r) {
		return bad("MaxLatencyRatio", fmt.Sprint(r), "must be at least 1 (or negative to turn the check off)")
	}
	if math.IsNaN(o.MinRequests) {
		return bad("MinRequests", "NaN", "must be a number")
	}
	return nil
}
