// Command metric-gate runs the canary plan with a health gate judged by
// Prometheus after every batch: the success rate and latency of the
// requests the workloads on the new revision receive, against those of the
// workloads still on the old one (and, with --history, against the same
// workloads before they moved). A regression, or too little traffic to
// judge, stops the plan, and the batch that failed the gate is moved back
// to exactly its recorded state; the later batches are not touched.
//
// With --kubeconfig (or $KUBECONFIG) it works on that cluster, where --to
// is installed already, and asks the Prometheus at --prometheus. Its
// series need the proxies' revision as a label (--revision-label, default
// istio_io_rev: the pod annotation istio.io/rev relabelled by the scrape
// job; see the metrics package). Without a kubeconfig it starts a local
// control plane with the demo mesh on --from, --to beside it, a real
// Prometheus scraping the fake sidecars every second, and traffic of 20
// requests a second per pod; --bad-canary makes the canary's proxies fail
// 20% of requests, to show the gate stop the plan (run it under
// hack/netns-run.sh).
package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"time"

	"github.com/prometheus/client_golang/api"
	v1 "github.com/prometheus/client_golang/api/prometheus/v1"

	"github.com/revkit/revkit"
	"github.com/revkit/revkit/examples/internal/demo"
	"github.com/revkit/revkit/internal/testenv"
	"github.com/revkit/revkit/metrics"
	"github.com/revkit/revkit/namespace"
	"github.com/revkit/revkit/upgrade"
)

func main() {
	os.Exit(run(os.Args[1:], os.Stdout, os.Stderr))
}

func run(args []string, out, errOut io.Writer) int {
	fs := demo.FlagSet("metric-gate", "Migrate namespaces to a canary revision in batches, gating every batch on its traffic in Prometheus and rolling back the batch that fails.", errOut)
	kubeconfig := demo.KubeconfigFlag(fs)
	promURL := fs.String("prometheus", "", "Prometheus URL, e.g. http://127.0.0.1:9090 (required with --kubeconfig; local mode starts one)")
	from := fs.String("from", testenv.OldIstio.Revision, "revision in use now: the baseline")
	to := fs.String("to", testenv.NewIstio.Revision, "revision to migrate to (installed already): the canary")
	selector := fs.String("selector", "demo=true", "label selector of the namespaces to migrate")
	canaryTag := fs.String("canary-tag", "prod-canary", "tag pointed at --to; the namespaces are migrated to it")
	stableTag := fs.String("stable-tag", "prod-stable", "tag the demo namespaces use (local mode only)")
	batchSize := fs.Int("batch-size", 2, "namespaces per batch")
	window := fs.Duration("window", time.Minute, "range of the rates and percentiles (local mode: 8s unless set)")
	settle := fs.Duration("settle", 0, "wait before a gate's first query, so that its window holds only the new pods' traffic (local mode: the window unless set)")
	history := fs.Duration("history", 0, "also compare the canary's workloads with themselves this long ago (0: not)")
	minRequests := fs.Float64("min-requests", metrics.DefaultMinRequests, "requests a side needs in the window; fewer is not enough traffic")
	maxDrop := fs.Float64("max-success-drop", metrics.DefaultMaxSuccessRateDrop, "how far the canary's success rate may fall below the baseline's (0.01 = one point)")
	latencyRatio := fs.Float64("max-latency-ratio", metrics.DefaultMaxLatencyRatio, "how many times the baseline's p99 latency the canary's may be")
	retries := fs.Int("retries", metrics.DefaultRetries, "retries while there is not enough traffic")
	retryInterval := fs.Duration("retry-interval", metrics.DefaultRetryInterval, "wait between retries (local mode: 1s unless set)")
	revisionLabel := fs.String("revision-label", metrics.DefaultRevisionLabel, "series label holding the proxy's revision")
	keepOld := fs.Bool("keep-old", true, "do not uninstall --from at the end (the gateways may still run it)")
	badCanary := fs.Bool("bad-canary", false, "local mode: the canary's proxies fail 20% of requests")
	timeout := fs.Duration("timeout", 15*time.Minute, "time limit for the whole plan")
	if code, ok := demo.Parse(fs, args); !ok {
		return code
	}
	set := map[string]bool{}
	fs.Visit(func(f *flag.Flag) { set[f.Name] = true })
	if *kubeconfig != "" && *promURL == "" {
		fmt.Fprintln(errOut, "metric-gate: --prometheus is required with --kubeconfig")
		fs.Usage()
		return 2
	}
	if *batchSize < 1 {
		fmt.Fprintln(errOut, "metric-gate: --batch-size must be >= 1")
		return 2
	}
	ctx, cancel := demo.Context(*timeout)
	defer cancel()

	cluster, err := demo.Connect(*kubeconfig, out)
	if err != nil {
		fmt.Fprintln(errOut, "metric-gate:", err)
		return 1
	}
	defer cluster.Close()

	if cluster.Local != nil {
		if err := cluster.SeedMesh(ctx, *from, *stableTag, out); err != nil {
			fmt.Fprintln(errOut, "metric-gate: seeding the demo mesh:", err)
			return 1
		}
		fmt.Fprintf(out, "installing revision %s (the canary)\n", *to)
		if _, err := cluster.Local.StartIstiod(ctx, *to); err != nil {
			fmt.Fprintln(errOut, "metric-gate:", err)
			return 1
		}
		normal := testenv.Traffic{RPS: 20, ErrorRate: 0.001, Latency: 20 * time.Millisecond}
		cluster.Local.SetTraffic(testenv.TrafficFor{}, normal)
		if *badCanary {
			bad := normal
			bad.ErrorRate = 0.2
			cluster.Local.SetTraffic(testenv.TrafficFor{Revision: *to}, bad)
		}
		prom, err := cluster.Local.StartPrometheus(ctx, testenv.PrometheusOptions{})
		if err != nil {
			fmt.Fprintln(errOut, "metric-gate:", err)
			return 1
		}
		*promURL = prom.URL
		fmt.Fprintf(out, "prometheus at %s scrapes every sidecar each second; traffic: %g requests/s per pod, %g%% failing", prom.URL, normal.RPS, normal.ErrorRate*100)
		if *badCanary {
			fmt.Fprintf(out, " (on %s: 20%%, --bad-canary)", *to)
		}
		fmt.Fprintln(out)
		if !set["window"] {
			*window = 8 * time.Second
		}
		if !set["settle"] {
			*settle = *window
		}
		if !set["retry-interval"] {
			*retryInterval = time.Second
		}
		if !set["min-requests"] {
			*minRequests = 50
		}
	}

	client, err := api.NewClient(api.Config{Address: *promURL})
	if err != nil {
		fmt.Fprintln(errOut, "metric-gate: --prometheus:", err)
		return 2
	}
	gate := metrics.Gate(v1.NewAPI(client), metrics.Options{
		Canary:   metrics.Workloads{Revision: *to},
		Baseline: metrics.Workloads{Revision: *from},
		History:  *history, Window: *window, Settle: *settle, RevisionLabel: *revisionLabel,
		MinRequests: *minRequests, MaxSuccessRateDrop: *maxDrop, MaxLatencyRatio: *latencyRatio,
		Retries: *retries, RetryInterval: *retryInterval,
	})
	opts := upgrade.CanaryOptions{
		From: *from, To: *to, CanaryTag: *canaryTag,
		Namespaces: namespace.Selection{Selector: *selector}, BatchSize: *batchSize,
		Gates: []upgrade.Step{gate}, RecordState: true, RollbackFailedBatch: true,
		KeepOld: *keepOld, RestartTimeout: 5 * time.Minute,
	}
	plan, err := upgrade.Canary(ctx, cluster.Kube, opts)
	if err != nil {
		fmt.Fprintln(errOut, "metric-gate:", err)
		return 1
	}
	if cluster.Local != nil {
		// Pods run no Envoy here: connect a fake one for each restarted pod.
		batches, err := opts.Batches(ctx, cluster.Kube)
		if err != nil {
			fmt.Fprintln(errOut, "metric-gate:", err)
			return 1
		}
		plan = connectAfterRestarts(plan, cluster, batches)
	}
	fmt.Fprintf(out, "\nplan:\n%s\n", plan)

	rep, err := upgrade.Execute(ctx, upgrade.Env{Kube: cluster.Kube, Common: revkit.Common{OnEvent: demo.PrintEvents(out)}}, plan)
	if rep != nil {
		fmt.Fprintf(out, "\nreport:\n%s\n", rep)
	}
	if err != nil {
		fmt.Fprintln(errOut, "metric-gate:", err)
		var reg *metrics.RegressionError
		var short *metrics.NotEnoughTrafficError
		switch {
		case errors.As(err, &reg):
			fmt.Fprintln(errOut, "metric-gate: the canary's traffic regressed; the failed batch was rolled back, the later ones not touched.")
		case errors.As(err, &short):
			fmt.Fprintln(errOut, "metric-gate: too little traffic to judge the canary; the failed batch was rolled back. Run again when traffic flows.")
		}
		return 1
	}
	fmt.Fprintln(out, "every batch passed its metric gate")
	return 0
}

// connectAfterRestarts connects the restarted pods' fake sidecars after
// every batch's restart (local control plane only).
func connectAfterRestarts(p upgrade.Plan, c *demo.Cluster, batches [][]string) upgrade.Plan {
	var steps []upgrade.Step
	batch := 0
	for _, s := range p.Steps {
		steps = append(steps, s)
		if upgrade.KindOf(s) == upgrade.KindRestartWorkloads && batch < len(batches) {
			steps = append(steps, c.ConnectSidecarsStep(fmt.Sprintf("connect-sidecars %d/%d", batch+1, len(batches)), batches[batch]))
			batch++
		}
	}
	p.Steps = steps
	return p
}
