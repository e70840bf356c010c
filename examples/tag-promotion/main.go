// Command tag-promotion upgrades namespaces by moving a revision tag, with
// no relabelling: namespaces labelled istio.io/rev=<tag> follow the tag, so
// pointing the tag at the new revision and restarting their workloads is
// the whole upgrade. This is the "stable revision labels" flow of the Istio
// guide: point --tag at --to (moving it from wherever it points now), then
// restart the workloads of every namespace that uses the tag whose pods are
// not on --to yet, wait for the rollouts and verify that every pod runs a
// sidecar of --to.
//
// The namespaces keep their labels throughout, which is why a rollback is
// the same move in the other direction (run it again with --to set to the
// old revision). The old revision stays installed, and so does anything
// pinned to it by its own name (such as a gateway labelled
// istio.io/rev=<old>); uninstall it once nothing uses it.
//
// With --kubeconfig (or $KUBECONFIG) it works on that cluster, where --to
// must be installed already. Without, it starts a local control plane,
// seeds revision 1-30-0 with the tag and the demo namespaces, starts
// revision 1-31-0 beside it and promotes (run it under hack/netns-run.sh).
package main

import (
	"context"
	"fmt"
	"io"
	"os"
	"time"

	"github.com/revkit/revkit"
	"github.com/revkit/revkit/examples/internal/demo"
	"github.com/revkit/revkit/namespace"
	"github.com/revkit/revkit/tag"
	"github.com/revkit/revkit/upgrade"
	"github.com/revkit/revkit/verify"
)

func main() {
	os.Exit(run(os.Args[1:], os.Stdout, os.Stderr))
}

func run(args []string, out, errOut io.Writer) int {
	fs := demo.FlagSet("tag-promotion", "Promote a revision by moving a revision tag to it and restarting the workloads of the namespaces that use the tag.", errOut)
	kubeconfig := demo.KubeconfigFlag(fs)
	tg := fs.String("tag", "prod-stable", "revision tag to move")
	to := fs.String("to", "1-31-0", "revision to point the tag at (installed already)")
	from := fs.String("from", "1-30-0", "revision the tag points at now (local mode only: the revision seeded)")
	timeout := fs.Duration("timeout", 10*time.Minute, "time limit for the whole promotion")
	if code, ok := demo.Parse(fs, args); !ok {
		return code
	}
	ctx, cancel := demo.Context(*timeout)
	defer cancel()

	cluster, err := demo.Connect(*kubeconfig, out)
	if err != nil {
		fmt.Fprintln(errOut, "tag-promotion:", err)
		return 1
	}
	defer cluster.Close()

	var sources []verify.SyncSource
	if cluster.Local != nil {
		if err := cluster.SeedMesh(ctx, *from, *tg, out); err != nil {
			fmt.Fprintln(errOut, "tag-promotion: seeding the demo mesh:", err)
			return 1
		}
		fmt.Fprintf(out, "installing revision %s (the \"new\" control plane)\n", *to)
		if _, err := cluster.Local.StartIstiod(ctx, *to); err != nil {
			fmt.Fprintln(errOut, "tag-promotion:", err)
			return 1
		}
		sources = cluster.LocalSources(*from, *to)
	}
	fmt.Fprintln(out, "\nbefore the promotion:")
	if err := demo.PrintMesh(ctx, out, cluster.Kube, sources); err != nil {
		fmt.Fprintln(errOut, "tag-promotion:", err)
		return 1
	}

	users, err := tagUsers(ctx, cluster, *tg)
	if err != nil {
		fmt.Fprintln(errOut, "tag-promotion:", err)
		return 1
	}
	plan := promotion(*tg, *to, users)
	if cluster.Local != nil && len(users) > 0 {
		// KWOK's pods run no Envoy: connect one for each restarted pod
		// before the pods are verified, as real sidecars would connect.
		plan.Steps = insertAfter(plan.Steps, "restart-workloads", cluster.ConnectSidecarsStep("connect-sidecars", users))
	}
	fmt.Fprintf(out, "\nplan:\n%s\n", plan)

	rep, err := upgrade.Execute(ctx, upgrade.Env{Kube: cluster.Kube, Common: revkit.Common{OnEvent: demo.PrintEvents(out)}}, plan)
	if rep != nil {
		fmt.Fprintf(out, "\nreport:\n%s\n", rep)
	}
	if err != nil {
		// A *upgrade.StepError names the step: `step "verify-pods" failed: …`.
		fmt.Fprintln(errOut, "tag-promotion:", err)
		return 1
	}
	fmt.Fprintln(out, "after the promotion:")
	if err := demo.PrintMesh(ctx, out, cluster.Kube, sources); err != nil {
		fmt.Fprintln(errOut, "tag-promotion:", err)
		return 1
	}
	return 0
}

// promotion is the plan: move the tag, restart what uses it, verify. The
// namespaces are named rather than selected by label so that the default
// tag's istio-injection=enabled namespaces are included too.
func promotion(tg, to string, users []string) upgrade.Plan {
	p := upgrade.Plan{
		Name:  fmt.Sprintf("promote %s → %s", tg, to),
		Steps: []upgrade.Step{upgrade.SetTag(tag.SetOptions{Tag: tg, Revision: to, Overwrite: true})},
	}
	if len(users) == 0 {
		return p
	}
	sel := namespace.Selection{Namespaces: users}
	p.Steps = append(p.Steps,
		upgrade.RolloutRestart(namespace.RestartOptions{Selection: sel, Target: to, OnlyStale: true, Wait: true, Timeout: 5 * time.Minute}),
		upgrade.VerifyPods(verify.PodsOptions{Namespaces: users, Target: to}),
	)
	return p
}

// tagUsers returns the namespaces that use the tag now; none when the tag
// does not exist yet.
func tagUsers(ctx context.Context, c *demo.Cluster, tg string) ([]string, error) {
	tags, err := tag.List(ctx, c.Kube, tag.ListOptions{})
	if err != nil {
		return nil, err
	}
	for _, t := range tags {
		if t.Name == tg {
			return t.Namespaces, nil
		}
	}
	return nil, nil
}

func insertAfter(steps []upgrade.Step, name string, s upgrade.Step) []upgrade.Step {
	for i, st := range steps {
		if st.Name() == name {
			return append(steps[:i+1], append([]upgrade.Step{s}, steps[i+1:]...)...)
		}
	}
	return steps
}
