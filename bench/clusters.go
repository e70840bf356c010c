package main

import (
	"context"
	"fmt"
	"io"
	"strings"
	"text/tabwriter"
	"time"

	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"

	"github.com/revkit/revkit/fleet"
	"github.com/revkit/revkit/internal/testenv"
	"github.com/revkit/revkit/namespace"
	"github.com/revkit/revkit/upgrade"
)

// ClustersResult is the fleet mode's run: N clusters, each with the fleet,
// upgraded with fleet.Run one cluster per wave (sequentially) and all in
// one wave, alternately, so that both ways see the same machine.
type ClustersResult struct {
	Clusters  int     `json:"clusters"`
	Fleet     Fleet   `json:"fleet_per_cluster"`
	SetupSecs float64 `json:"setup_seconds"`
	Rounds    []Round `json:"rounds"`
}

// Round is one fleet run: which way, which direction, its wall time and
// each cluster's.
type Round struct {
	Way        string             `json:"way"` // "sequential" or "one-wave"
	From, To   string             `json:"-"`
	Seconds    float64            `json:"seconds"`
	PerCluster map[string]float64 `json:"per_cluster_seconds"`
}

// slowest is the longest single cluster of the round.
func (r Round) slowest() float64 {
	m := 0.0
	for _, s := range r.PerCluster {
		m = max(m, s)
	}
	return m
}

func (c *ClustersResult) mean(way string, f func(Round) float64) float64 {
	sum, n := 0.0, 0
	for _, r := range c.Rounds {
		if r.Way == way {
			sum += f(r)
			n++
		}
	}
	if n == 0 {
		return 0
	}
	return sum / float64(n)
}

// Summary gives the ratios: one wave against the slowest single cluster
// (of the sequential rounds), and sequential against one wave.
func (c *ClustersResult) Summary() string {
	seq := c.mean("sequential", func(r Round) float64 { return r.Seconds })
	wave := c.mean("one-wave", func(r Round) float64 { return r.Seconds })
	slowest := c.mean("sequential", Round.slowest)
	if wave == 0 || slowest == 0 {
		return "fleet mode: incomplete"
	}
	return fmt.Sprintf("fleet mode, %d clusters × (%d namespaces × %d Deployments × %d replicas): sequential %.1fs, one wave %.1fs, "+
		"slowest single cluster %.1fs → one wave / slowest single = %.2fx, sequential / one wave = %.2fx",
		c.Clusters, c.Fleet.Namespaces, c.Fleet.Deployments, c.Fleet.Replicas, seq, wave, slowest, wave/slowest, seq/wave)
}

func (c *ClustersResult) print(w io.Writer) {
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "ROUND\tWAY\tDIRECTION\tSECONDS\tPER CLUSTER")
	for i, r := range c.Rounds {
		var per []string
		for j := 1; j <= c.Clusters; j++ {
			name := fmt.Sprintf("cluster-%d", j)
			per = append(per, fmt.Sprintf("%s %.1fs", name, r.PerCluster[name]))
		}
		fmt.Fprintf(tw, "%d\t%s\t%s → %s\t%.1f\t%s\n", i+1, r.Way, r.From, r.To, r.Seconds, strings.Join(per, ", "))
	}
	tw.Flush()
}

// runClusters starts n control planes of the profile, each with the fleet
// on "old", and runs rounds fleet upgrades, alternating the direction
// (old → new, new → old) and the way: sequential, one wave, one wave,
// sequential, …, so that each way gets both directions and both early and
// late slots.
func runClusters(ctx context.Context, p Profile, n, rounds int, o options) (*ClustersResult, error) {
	f := o.Fleet
	res := &ClustersResult{Clusters: n, Fleet: f}
	begin := time.Now()
	eo := p.Options
	eo.Nodes = max(1, f.Workloads()*(f.Replicas+1)/300+1)
	eo.PodsPerNode = 320
	eo.StartTimeout = 5 * time.Minute
	var clusters []fleet.Cluster
	var stops []func()
	defer func() {
		for _, s := range stops {
			s()
		}
	}()
	for i := 1; i <= n; i++ {
		name := fmt.Sprintf("cluster-%d", i)
		o.logf("fleet mode: starting %s (%s)", name, p.Description)
		env, stop, err := testenv.Launch(eo, o.Log)
		if err != nil {
			return nil, err
		}
		stops = append(stops, stop)
		for _, rev := range []string{"old", "new"} {
			if _, err := env.StartIstiod(ctx, rev); err != nil {
				return nil, fmt.Errorf("%s: istiod %s: %w", name, rev, err)
			}
		}
		setup := rest.CopyConfig(env.Config)
		setup.QPS, setup.Burst = -1, 0
		admin, err := kubernetes.NewForConfig(setup)
		if err != nil {
			return nil, err
		}
		if err := f.create(ctx, env, admin, "old"); err != nil {
			return nil, fmt.Errorf("%s: %w", name, err)
		}
		if err := f.waitPodsOn(ctx, admin, "old", 10*time.Minute); err != nil {
			return nil, fmt.Errorf("%s: %w", name, err)
		}
		cfg := rest.CopyConfig(env.Config)
		cfg.QPS, cfg.Burst = float32(o.QPS), o.Burst
		kube, err := kubernetes.NewForConfig(cfg)
		if err != nil {
			return nil, err
		}
		clusters = append(clusters, fleet.Cluster{Name: name, Kube: kube, Config: cfg})
	}
	res.SetupSecs = time.Since(begin).Seconds()
	o.logf("fleet mode: %d clusters ready in %.1fs", n, res.SetupSecs)

	from, to := "old", "new"
	ways := []string{"sequential", "one-wave", "one-wave", "sequential"}
	for i := range rounds {
		way := ways[i%len(ways)]
		r, err := fleetRound(ctx, clusters, way, from, to)
		if err != nil {
			return res, fmt.Errorf("round %d (%s, %s → %s): %w", i+1, way, from, to, err)
		}
		res.Rounds = append(res.Rounds, *r)
		o.logf("fleet mode: round %d, %s %s → %s: %.1fs", i+1, way, from, to, r.Seconds)
		for _, c := range clusters {
			if err := f.waitPodsOn(ctx, c.Kube, to, 2*time.Minute); err != nil {
				return res, fmt.Errorf("round %d: %s: %w", i+1, c.Name, err)
			}
		}
		from, to = to, from
	}
	return res, nil
}

// fleetRound upgrades every cluster from one revision to the other with
// the canary plan (no tags, one batch, both revisions kept), one cluster
// per wave or all in one wave.
func fleetRound(ctx context.Context, clusters []fleet.Cluster, way, from, to string) (*Round, error) {
	var waves []fleet.Wave
	var names []string
	for _, c := range clusters {
		names = append(names, c.Name)
		waves = append(waves, fleet.Wave{Name: c.Name, Clusters: []string{c.Name}})
	}
	if way == "one-wave" {
		waves = []fleet.Wave{{Name: "all", Clusters: names}}
	}
	rep, err := fleet.Run(ctx, fleet.Options{Clusters: clusters, Waves: waves, SkipWebhookCheck: true,
		Plan: func(ctx context.Context, c fleet.Cluster) (upgrade.Plan, error) {
			return upgrade.Canary(ctx, c.Kube, upgrade.CanaryOptions{From: from, To: to, KeepOld: true,
				Namespaces: namespace.Selection{Selector: fleetSelector}, RestartTimeout: 10 * time.Minute})
		}})
	if err != nil {
		return nil, err
	}
	r := &Round{Way: way, From: from, To: to, Seconds: rep.Duration.Seconds(), PerCluster: map[string]float64{}}
	for _, c := range rep.Clusters() {
		r.PerCluster[c.Cluster] = c.Duration.Seconds()
	}
	return r, nil
}
