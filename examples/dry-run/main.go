// Command dry-run prints the canary upgrade plan and runs it as a dry run,
// printing what each step would do; it changes nothing in the cluster.
//
// With --mode server (the default) every write is sent with dryRun=All: the
// apiserver validates and admits it, and the webhooks run, but nothing is
// persisted. With --mode client no write request is sent at all; revkit
// computes and reports the changes from what it reads. Either way the
// verification steps are skipped (nothing moved, so there is nothing to
// check), and so are waits for rollouts.
//
// The limit of a dry run: each step sees the cluster as it is, not as the
// steps before it would have left it. A plan that creates a canary tag and
// then migrates namespaces to that tag fails the migration, since the tag
// does not exist; and uninstalling the old revision is refused, since the
// namespaces and tags that the plan would have moved still use it. So by
// default this program migrates the namespaces to the new revision's own
// name (--canary-tag ""; a tag that exists already works too) and keeps
// the old revision (--keep-old). It does not create the tag for real
// first: a dry run must change nothing. Set --canary-tag to a new tag, or
// --keep-old=false, to see the limit: the plan stops at the step that
// needs what an earlier step would have created, and the program exits 1
// naming it.
//
// With --kubeconfig (or $KUBECONFIG) it works on that cluster, where --to
// is installed already. Without, it starts a local control plane, seeds
// revision 1-30-0 with tag prod-stable, the demo namespaces and a gateway,
// starts revision 1-31-0 beside it and runs the dry run (run it under
// hack/netns-run.sh).
package main

import (
	"errors"
	"fmt"
	"io"
	"os"
	"time"

	"github.com/revkit/revkit"
	"github.com/revkit/revkit/examples/internal/demo"
	"github.com/revkit/revkit/gateway"
	"github.com/revkit/revkit/namespace"
	"github.com/revkit/revkit/upgrade"
	"github.com/revkit/revkit/verify"
)

func main() {
	os.Exit(run(os.Args[1:], os.Stdout, os.Stderr))
}

func run(args []string, out, errOut io.Writer) int {
	fs := demo.FlagSet("dry-run", "Print the canary upgrade plan and run it as a dry run; nothing is changed.", errOut)
	kubeconfig := demo.KubeconfigFlag(fs)
	mode := fs.String("mode", "server", `"server" (writes sent with dryRun=All) or "client" (no write sent)`)
	from := fs.String("from", "1-30-0", "revision in use now")
	to := fs.String("to", "1-31-0", "revision to upgrade to (installed already)")
	selector := fs.String("selector", "demo=true", "label selector of the namespaces to migrate")
	canaryTag := fs.String("canary-tag", "", "tag the namespaces move to; it must exist already (empty: --to itself)")
	stableTag := fs.String("stable-tag", "prod-stable", "tag moved to --to at promotion (empty: none)")
	batch := fs.Int("batch-size", 2, "namespaces per batch")
	gateways := fs.String("gateways", "in-place", `gateway move: "in-place", "canary" or "" to leave them`)
	keepOld := fs.Bool("keep-old", true, "leave out the uninstall of --from, which a dry run cannot get past")
	timeout := fs.Duration("timeout", 5*time.Minute, "time limit for the dry run")
	if code, ok := demo.Parse(fs, args); !ok {
		return code
	}
	dryRun, err := revkit.ParseDryRun(*mode)
	if err == nil && dryRun.Persists() {
		err = fmt.Errorf("--mode %q would change the cluster: use client or server", *mode)
	}
	if err != nil {
		fmt.Fprintln(errOut, "dry-run:", err)
		fs.Usage()
		return 2
	}
	ctx, cancel := demo.Context(*timeout)
	defer cancel()

	cluster, err := demo.Connect(*kubeconfig, out)
	if err != nil {
		fmt.Fprintln(errOut, "dry-run:", err)
		return 1
	}
	defer cluster.Close()

	var sources []verify.SyncSource
	if cluster.Local != nil {
		stable := *stableTag
		if stable == "" {
			stable = "prod-stable"
		}
		if err := cluster.SeedMesh(ctx, *from, stable, out); err != nil {
			fmt.Fprintln(errOut, "dry-run: seeding the demo mesh:", err)
			return 1
		}
		fmt.Fprintf(out, "installing revision %s (the \"new\" control plane)\n", *to)
		if _, err := cluster.Local.StartIstiod(ctx, *to); err != nil {
			fmt.Fprintln(errOut, "dry-run:", err)
			return 1
		}
		sources = cluster.LocalSources(*from, *to)
	}
	fmt.Fprintln(out, "\nthe cluster now:")
	if err := demo.PrintMesh(ctx, out, cluster.Kube, sources); err != nil {
		fmt.Fprintln(errOut, "dry-run:", err)
		return 1
	}

	plan, err := upgrade.Canary(ctx, cluster.Kube, upgrade.CanaryOptions{
		From: *from, To: *to, CanaryTag: *canaryTag, StableTag: *stableTag,
		Namespaces: namespace.Selection{Selector: *selector}, BatchSize: *batch,
		Gateways: gateway.Mode(*gateways), KeepOld: *keepOld,
	})
	if err != nil {
		fmt.Fprintln(errOut, "dry-run:", err)
		return 1
	}
	fmt.Fprintf(out, "\nplan:\n%s\n\ndry run (%s):\n", plan, dryRun)

	rep, err := upgrade.Execute(ctx, upgrade.Env{Kube: cluster.Kube, Common: revkit.Common{DryRun: dryRun, OnEvent: demo.PrintEvents(out)}}, plan)
	if rep != nil {
		fmt.Fprintf(out, "\nreport:\n%s\n", rep)
		printChanges(out, rep)
	}
	if err != nil {
		// A *upgrade.StepError names the step: `step "migrate-namespaces 1/2" failed: …`.
		fmt.Fprintln(errOut, "dry-run:", err)
		if errors.Is(err, revkit.ErrNotFound) || errors.Is(err, revkit.ErrInUse) {
			fmt.Fprintln(errOut, "dry-run: in a dry run each step sees the cluster as it is, not as the steps before it would have left it (see --help); upgrade.Preview runs the plan against an in-memory copy instead")
		}
		return 1
	}
	fmt.Fprintf(out, "nothing was changed (dry run: %s); the cluster is as above.\n", dryRun)
	return 0
}

// printChanges lists, per step, the objects the step would change: the
// detail of the report's counts.
func printChanges(w io.Writer, rep *upgrade.Report) {
	fmt.Fprintln(w, "would change:")
	n := 0
	for _, s := range rep.Steps {
		for _, c := range s.Changes {
			if c.Action.Changed() {
				fmt.Fprintf(w, "  %-28s %s\n", s.Name, c)
				n++
			}
		}
	}
	if n == 0 {
		fmt.Fprintln(w, "  nothing")
	}
	fmt.Fprintln(w)
}
