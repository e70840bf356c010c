// Command fleet-upgrade upgrades a fleet of clusters from one Istio
// revision to another in waves: each cluster runs the standard canary plan
// (canary tag, namespaces migrated and restarted in batches, verified,
// gateways moved, stable tag promoted, old revision uninstalled) with a journal in that
// cluster, the clusters of a wave run at once (up to --max-parallel), and
// the fleet stops when a cluster fails (beyond --failure-budget) or the
// checks between waves do. Run it again after a stop and every cluster
// resumes where it stopped.
//
// The clusters are the contexts of --kubeconfig; --wave groups them, e.g.
//
//	fleet-upgrade --kubeconfig fleet.yaml --from 1-30-1 --to 1-31-0 \
//	  --wave dev=dev-eu --wave prod=prod-eu,prod-us --max-parallel 2
//
// The new revision must be installed on every cluster already. Without a
// kubeconfig it starts three local control planes, each with the demo mesh
// on the older Istio version and the newer one installed beside it, and
// upgrades them in two waves (run it under hack/netns-run.sh).
package main

import (
	"context"
	"fmt"
	"io"
	"os"
	"strings"
	"sync"
	"time"

	"github.com/revkit/revkit"
	"github.com/revkit/revkit/examples/internal/demo"
	"github.com/revkit/revkit/fleet"
	"github.com/revkit/revkit/gateway"
	"github.com/revkit/revkit/internal/testenv"
	"github.com/revkit/revkit/namespace"
	"github.com/revkit/revkit/upgrade"
)

func main() {
	os.Exit(run(os.Args[1:], os.Stdout, os.Stderr))
}

// waves is the repeatable --wave flag: name=context,context.
type waves []fleet.Wave

func (w *waves) String() string {
	var parts []string
	for _, x := range *w {
		parts = append(parts, x.Name+"="+strings.Join(x.Clusters, ","))
	}
	return strings.Join(parts, " ")
}

func (w *waves) Set(s string) error {
	name, list, ok := strings.Cut(s, "=")
	if !ok || name == "" || list == "" {
		return fmt.Errorf("want name=context[,context...], got %q", s)
	}
	*w = append(*w, fleet.Wave{Name: name, Clusters: strings.Split(list, ",")})
	return nil
}

func run(args []string, out, errOut io.Writer) int {
	fs := demo.FlagSet("fleet-upgrade", "Upgrade the clusters of a kubeconfig from one Istio revision to another, in waves.", errOut)
	kubeconfig := demo.KubeconfigFlag(fs)
	var ws waves
	fs.Var(&ws, "wave", "a wave, name=context[,context...]; repeat in order (default: one wave of every context)")
	from := fs.String("from", testenv.OldIstio.Revision, "revision in use now")
	to := fs.String("to", testenv.NewIstio.Revision, "revision to upgrade to (installed on every cluster)")
	selector := fs.String("selector", "demo=true", "label selector of the namespaces to migrate, on every cluster")
	canaryTag := fs.String("canary-tag", "prod-canary", "tag pointed at --to during the canary (empty: none)")
	stableTag := fs.String("stable-tag", "prod-stable", "tag moved to --to at promotion (empty: none)")
	batch := fs.Int("batch-size", 2, "namespaces per batch within a cluster")
	parallel := fs.Int("max-parallel", 0, "clusters of a wave upgraded at once (0: all)")
	budget := fs.Int("failure-budget", 0, "clusters that may fail before the fleet stops")
	gateways := fs.String("gateways", "in-place", `gateway move on every cluster: "in-place", "canary" or "" to leave them`)
	keepOld := fs.Bool("keep-old", false, "do not uninstall --from at the end")
	journal := fs.Bool("journal", true, "keep each cluster's progress in it, so that a rerun resumes")
	dryRun := fs.String("dry-run", "none", `"none", "client" or "server"`)
	timeout := fs.Duration("timeout", 30*time.Minute, "time limit for the whole fleet")
	if code, ok := demo.Parse(fs, args); !ok {
		return code
	}
	mode, err := revkit.ParseDryRun(*dryRun)
	if err != nil {
		fmt.Fprintln(errOut, err)
		return 2
	}
	ctx, cancel := demo.Context(*timeout)
	defer cancel()

	if *kubeconfig == "" {
		kc, stop, err := demo.LocalFleet(ctx, 3, *from, *stableTag, *to, out)
		if err != nil {
			fmt.Fprintln(errOut, "fleet-upgrade:", err)
			return 1
		}
		defer stop()
		*kubeconfig = kc
		if len(ws) == 0 {
			ws = waves{{Name: "canary", Clusters: []string{"cluster-1"}}, {Name: "prod", Clusters: []string{"cluster-2", "cluster-3"}}}
		}
	}
	clusters, err := fleet.FromKubeconfig(*kubeconfig)
	if err != nil {
		fmt.Fprintln(errOut, "fleet-upgrade:", err)
		return 2
	}
	if len(ws) == 0 {
		all := make([]string, 0, len(clusters))
		for _, c := range clusters {
			all = append(all, c.Name)
		}
		ws = waves{{Name: "all", Clusters: all}}
	}
	for i := range ws {
		ws[i].MaxParallel = *parallel
	}

	opts := fleet.Options{
		Clusters: clusters, Waves: ws, FailureBudget: *budget,
		Plan: func(ctx context.Context, c fleet.Cluster) (upgrade.Plan, error) {
			return upgrade.Canary(ctx, c.Kube, upgrade.CanaryOptions{
				From: *from, To: *to, CanaryTag: *canaryTag, StableTag: *stableTag,
				Namespaces: namespace.Selection{Selector: *selector}, BatchSize: *batch,
				Gateways: gateway.Mode(*gateways), KeepOld: *keepOld, RestartTimeout: 5 * time.Minute,
			})
		},
		Env:    func(fleet.Cluster) upgrade.Env { return upgrade.Env{TransientRetry: time.Minute} },
		Common: revkit.Common{DryRun: mode, OnEvent: printEvents(out)},
	}
	if *journal {
		opts.Journal = &upgrade.Journal{}
	}
	fmt.Fprintf(out, "\nupgrading %d clusters from %s to %s in %d wave(s): %s\n\n", len(clusters), *from, *to, len(ws), ws.String())
	rep, err := fleet.Run(ctx, opts)
	fmt.Fprintf(out, "\nfleet report (%s):\n%s", rep.Duration.Round(time.Millisecond), rep)
	if err != nil {
		fmt.Fprintln(errOut, "fleet-upgrade:", err)
		return 1
	}
	return 0
}

// printEvents prints the fleet's own events and each cluster's step
// outcomes, prefixed with the cluster. Clusters of a wave run at once, so
// it locks.
func printEvents(w io.Writer) func(revkit.Event) {
	var mu sync.Mutex
	return func(e revkit.Event) {
		var line string
		switch {
		case e.Kind == revkit.EventFleet && e.Cluster == "":
			line = "== " + e.Message
		case e.Kind == revkit.EventFleet:
			line = fmt.Sprintf("[%s] %s", e.Cluster, e.Message)
		case e.Kind == revkit.EventStep && e.Action != upgrade.ActionStart:
			line = fmt.Sprintf("[%s]   %s: %s", e.Cluster, e.Step, e.Action)
		default:
			return
		}
		mu.Lock()
		defer mu.Unlock()
		fmt.Fprintln(w, line)
	}
}
