// Command rollback shows a canary upgrade that is rolled back halfway.
//
// It builds the same upgrade.CanaryOptions as canary-upgrade, but runs only
// the first part of the Canary plan: point the canary tag at the new
// revision, migrate the first batch of namespaces to it, restart and verify
// them, and start canary gateways on the new revision. Then, as an operator
// would on seeing something wrong with the canary, it runs
// upgrade.Rollback with the same options: the stable tag back on the old
// revision, every namespace back on the stable tag, its workloads
// restarted and verified on the old revision, the gateways back on the old
// revision and their canaries deleted, and only then (Istio issue 33822)
// the canary tag and the new revision removed.
//
// Both parts are ordinary plans: the first is the Canary plan cut after its
// first batch (and its gateway move kept), which is how a caller edits a
// plan. The rollback works from the options alone, so it also undoes a
// canary left behind by an earlier, interrupted run.
//
// With --kubeconfig (or $KUBECONFIG) it works on that cluster, where both
// revisions are installed. Without, it starts a local control plane, seeds
// the older Istio version's revision with tag prod-stable, the demo
// namespaces and a gateway, starts the newer version's revision beside it
// and runs both parts, so that the rollback goes back to the older Istio
// (run it under hack/netns-run.sh).
package main

import (
	"context"
	"fmt"
	"io"
	"os"
	"time"

	"github.com/revkit/revkit"
	"github.com/revkit/revkit/examples/internal/demo"
	"github.com/revkit/revkit/gateway"
	"github.com/revkit/revkit/internal/testenv"
	"github.com/revkit/revkit/namespace"
	"github.com/revkit/revkit/upgrade"
	"github.com/revkit/revkit/verify"
)

func main() {
	os.Exit(run(os.Args[1:], os.Stdout, os.Stderr))
}

func run(args []string, out, errOut io.Writer) int {
	fs := demo.FlagSet("rollback", "Start a canary upgrade (first batch and canary gateways), then roll it back.", errOut)
	kubeconfig := demo.KubeconfigFlag(fs)
	from := fs.String("from", testenv.OldIstio.Revision, "revision in use now, and rolled back to (local mode: runs Istio "+testenv.OldIstio.Name+")")
	to := fs.String("to", testenv.NewIstio.Revision, "canary revision (installed already), removed by the rollback (local mode: runs Istio "+testenv.NewIstio.Name+")")
	selector := fs.String("selector", "demo=true", "label selector of the namespaces of the upgrade")
	canaryTag := fs.String("canary-tag", "prod-canary", "tag pointed at --to during the canary, removed by the rollback")
	stableTag := fs.String("stable-tag", "prod-stable", "tag the namespaces go back to (empty: --from itself)")
	batch := fs.Int("batch-size", 2, "namespaces per batch; only the first batch is migrated before the rollback")
	gateways := fs.String("gateways", "canary", `gateway move during the canary: "in-place", "canary" or "" to leave them`)
	skipCanary := fs.Bool("rollback-only", false, "skip the canary part: only roll back what an earlier canary left")
	timeout := fs.Duration("timeout", 15*time.Minute, "time limit for both parts")
	if code, ok := demo.Parse(fs, args); !ok {
		return code
	}
	ctx, cancel := demo.Context(*timeout)
	defer cancel()

	cluster, err := demo.Connect(*kubeconfig, out)
	if err != nil {
		fmt.Fprintln(errOut, "rollback:", err)
		return 1
	}
	defer cluster.Close()

	opts := upgrade.CanaryOptions{
		From: *from, To: *to, CanaryTag: *canaryTag, StableTag: *stableTag,
		Namespaces: namespace.Selection{Selector: *selector}, BatchSize: *batch,
		Gateways: gateway.Mode(*gateways), RestartTimeout: 5 * time.Minute,
	}
	var sources []verify.SyncSource
	if cluster.Local != nil {
		if err := cluster.SeedMesh(ctx, *from, *stableTag, out); err != nil {
			fmt.Fprintln(errOut, "rollback: seeding the demo mesh:", err)
			return 1
		}
		fmt.Fprintf(out, "installing revision %s (the canary control plane)\n", *to)
		if _, err := cluster.Local.StartIstiod(ctx, *to); err != nil {
			fmt.Fprintln(errOut, "rollback:", err)
			return 1
		}
		sources = cluster.LocalSources(*from, *to)
		fmt.Fprintln(out, "\nbefore the canary:")
		if err := demo.PrintMesh(ctx, out, cluster.Kube, sources); err != nil {
			fmt.Fprintln(errOut, "rollback:", err)
			return 1
		}
	}
	batches, err := opts.Batches(ctx, cluster.Kube)
	if err != nil {
		fmt.Fprintln(errOut, "rollback:", err)
		return 1
	}
	env := upgrade.Env{Kube: cluster.Kube, TransientRetry: time.Minute, Common: revkit.Common{OnEvent: demo.PrintEvents(out)}}

	if !*skipCanary {
		full, err := upgrade.Canary(ctx, cluster.Kube, opts)
		if err != nil {
			fmt.Fprintln(errOut, "rollback:", err)
			return 1
		}
		canary := firstBatch(full)
		if cluster.Local != nil {
			canary.Steps = insertAfter(canary.Steps, upgrade.KindRestartWorkloads, cluster.ConnectSidecarsStep("connect-sidecars 1/"+fmt.Sprint(len(batches)), batches[0]))
			canary.Steps = insertAfter(canary.Steps, upgrade.KindMoveGateways, cluster.ConnectSidecarsStep("connect-gateway-sidecars", []string{"istio-ingress"}))
		}
		if !execute(ctx, out, errOut, env, canary) {
			return 1
		}
		fmt.Fprintln(out, "during the canary:")
		if err := demo.PrintMesh(ctx, out, cluster.Kube, sources); err != nil {
			fmt.Fprintln(errOut, "rollback:", err)
			return 1
		}
	}

	back, err := upgrade.Rollback(ctx, cluster.Kube, opts)
	if err != nil {
		fmt.Fprintln(errOut, "rollback:", err)
		return 1
	}
	if cluster.Local != nil {
		var all []string
		for _, b := range batches {
			all = append(all, b...)
		}
		back.Steps = insertAfter(back.Steps, upgrade.KindRestartWorkloads, cluster.ConnectSidecarsStep("connect-sidecars", all))
		back.Steps = append(back.Steps, cluster.StopRevisionStep(*to))
	}
	if !execute(ctx, out, errOut, env, back) {
		return 1
	}
	fmt.Fprintln(out, "after the rollback:")
	if cluster.Local != nil {
		sources = cluster.LocalSources(*from, *to)
	}
	if err := demo.PrintMesh(ctx, out, cluster.Kube, sources); err != nil {
		fmt.Fprintln(errOut, "rollback:", err)
		return 1
	}
	return 0
}

// firstBatch cuts the Canary plan after its first batch, keeping the
// gateway move: the steps up to and including "verify-pods 1/N" (with
// the precheck and the canary tag before them) and "move-gateways <to>".
// Promotion, the later batches and the uninstall are dropped.
func firstBatch(p upgrade.Plan) upgrade.Plan {
	out := upgrade.Plan{Name: p.Name + " (first batch)"}
	inBatch := true
	for _, s := range p.Steps {
		switch kind := upgrade.KindOf(s); {
		case inBatch:
			out.Steps = append(out.Steps, s)
			inBatch = kind != upgrade.KindVerifyPods
		case kind == upgrade.KindMoveGateways:
			out.Steps = append(out.Steps, s)
		}
	}
	return out
}

// execute prints the plan, runs it and prints its report; it reports
// whether the plan succeeded, naming the failed step on errOut otherwise.
func execute(ctx context.Context, out, errOut io.Writer, env upgrade.Env, p upgrade.Plan) bool {
	fmt.Fprintf(out, "\nplan:\n%s\n", p)
	rep, err := upgrade.Execute(ctx, env, p)
	if rep != nil {
		fmt.Fprintf(out, "\nreport:\n%s\n", rep)
	}
	if err != nil {
		// A *upgrade.StepError names the step: `step "verify-pods" failed: …`.
		fmt.Fprintf(errOut, "rollback: plan %q: %v\n", p.Name, err)
		return false
	}
	return true
}

// insertAfter inserts s after the first step of the kind.
func insertAfter(steps []upgrade.Step, kind upgrade.StepKind, s upgrade.Step) []upgrade.Step {
	for i, st := range steps {
		if upgrade.KindOf(st) == kind {
			return append(steps[:i+1], append([]upgrade.Step{s}, steps[i+1:]...)...)
		}
	}
	return steps
}
