package fleet

import (
	"fmt"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/revkit/revkit"
	"github.com/revkit/revkit/upgrade"
)

// Report is what a fleet run did, wave by wave and cluster by cluster.
type Report struct {
	Waves    []WaveReport
	Started  time.Time
	Duration time.Duration
	DryRun   revkit.DryRun
}

// WaveReport is one wave: its clusters in the order given, and the gates
// that ran after it.
type WaveReport struct {
	Name     string
	Clusters []ClusterReport
	Gates    []GateReport
	// Started is zero for a wave that never started.
	Started  time.Time
	Duration time.Duration
}

// ClusterReport is one cluster's run.
type ClusterReport struct {
	Cluster string
	// Outcome is Done (the plan ran to its end), Unchanged (every step had
	// completed in an earlier run: the journal skipped them), Failed, or
	// NotRun (the fleet stopped before the cluster started).
	Outcome upgrade.Outcome
	// Plan is the cluster's plan report (nil when NotRun); Err its error.
	Plan     *upgrade.Report
	Err      error
	Started  time.Time
	Duration time.Duration
}

// GateReport is one gate between waves.
type GateReport struct {
	Name     string
	Outcome  upgrade.Outcome
	Err      error
	Duration time.Duration
}

// Clusters lists every cluster's report, wave after wave.
func (r *Report) Clusters() []ClusterReport {
	var out []ClusterReport
	for _, w := range r.Waves {
		out = append(out, w.Clusters...)
	}
	return out
}

// Cluster returns the report of the named cluster, or nil.
func (r *Report) Cluster(name string) *ClusterReport {
	for i := range r.Waves {
		for j := range r.Waves[i].Clusters {
			if r.Waves[i].Clusters[j].Cluster == name {
				return &r.Waves[i].Clusters[j]
			}
		}
	}
	return nil
}

// Count returns how many clusters ended with the outcome.
func (r *Report) Count(o upgrade.Outcome) int {
	n := 0
	for _, c := range r.Clusters() {
		if c.Outcome == o {
			n++
		}
	}
	return n
}

// String renders the report as a table: one row per cluster (wave,
// outcome, duration, steps done, and the failed step or the last step's
// detail), then the gates.
func (r *Report) String() string {
	var b strings.Builder
	tw := tabwriter.NewWriter(&b, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "WAVE\tCLUSTER\tOUTCOME\tDURATION\tSTEPS\tDETAIL")
	for _, w := range r.Waves {
		for _, c := range w.Clusters {
			steps, detail := "-", ""
			if c.Plan != nil {
				done := 0
				for _, s := range c.Plan.Steps {
					if s.Outcome != upgrade.NotRun && s.Outcome != upgrade.Failed {
						done++
					}
				}
				steps = fmt.Sprintf("%d/%d", done, len(c.Plan.Steps))
				if f := c.Plan.Failed(); f != nil {
					detail = f.Name + ": " + oneLine(f.Detail)
				}
			}
			if detail == "" && c.Err != nil {
				detail = oneLine(c.Err.Error())
			}
			dur := "-"
			if !c.Started.IsZero() {
				dur = c.Duration.Round(time.Millisecond).String()
			}
			fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\n", w.Name, c.Cluster, c.Outcome, dur, steps, detail)
		}
	}
	tw.Flush()
	for _, w := range r.Waves {
		for _, g := range w.Gates {
			line := fmt.Sprintf("gate %s after wave %s: %s", g.Name, w.Name, g.Outcome)
			if g.Err != nil {
				line += ": " + oneLine(g.Err.Error())
			}
			b.WriteString(line + "\n")
		}
	}
	return b.String()
}

func oneLine(s string) string {
	s = strings.ReplaceAll(s, "\n", "; ")
	if len(s) > 160 {
		s = s[:157] + "..."
	}
	return s
}
