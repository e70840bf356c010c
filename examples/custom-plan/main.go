// Command custom-plan shows a program that composes its own upgrade plan
// from revkit's steps instead of taking upgrade.Canary whole, and adds a
// health gate of its own.
//
// The plan points a canary tag at the new revision, then for each batch of
// namespaces migrates them to the tag, restarts their workloads, checks
// with verify.Pods that every pod runs the new revision, and finally runs
// the program's own gate, written with upgrade.Func: every pod of the batch
// is Ready (at most --max-unready are not) and no container restarted more
// than --max-restarts times. It reads the pods with client-go through the
// plan's Env, and fails with an error matching
// revkit.ErrVerificationFailed, so that the report tells a failed gate from
// an operation that could not be carried out.
//
// A failing gate stops the plan: the later batches are reported "not run"
// and are left as they were, and the program exits 1 naming the step.
// --fail-gate makes the first gate fail on purpose to show that. Running
// the program again resumes: the batches already migrated are reported
// unchanged.
//
// With --kubeconfig (or $KUBECONFIG) it works on that cluster, where --to
// is installed already. Without, it starts a local control plane, seeds
// revision 1-30-0 with tag prod-stable and the demo namespaces, starts
// revision 1-31-0 beside it and runs the plan (run it under
// hack/netns-run.sh).
package main

import (
	"context"
	"fmt"
	"io"
	"os"
	"strings"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

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
	fs := demo.FlagSet("custom-plan", "Migrate namespaces to a canary revision in batches with a plan of revkit steps and a custom health gate after each batch.", errOut)
	kubeconfig := demo.KubeconfigFlag(fs)
	from := fs.String("from", "1-30-0", "revision in use now (local mode only: the revision seeded)")
	to := fs.String("to", "1-31-0", "revision to migrate to (installed already)")
	canaryTag := fs.String("canary-tag", "prod-canary", "tag pointed at --to; the namespaces are migrated to it")
	stableTag := fs.String("stable-tag", "prod-stable", "tag the demo namespaces use (local mode only)")
	selector := fs.String("selector", "demo=true", "label selector of the namespaces to migrate")
	batchSize := fs.Int("batch-size", 2, "namespaces per batch")
	maxUnready := fs.Int("max-unready", 0, "health gate: pods per batch that may be not Ready")
	maxRestarts := fs.Int("max-restarts", 0, "health gate: container restarts a pod may have")
	failGate := fs.Bool("fail-gate", false, "make the first health gate fail on purpose, to show that the plan stops there")
	timeout := fs.Duration("timeout", 10*time.Minute, "time limit for the whole plan")
	if code, ok := demo.Parse(fs, args); !ok {
		return code
	}
	if *maxUnready < 0 || *maxRestarts < 0 || *batchSize < 1 {
		fmt.Fprintln(errOut, "custom-plan: --max-unready and --max-restarts must be >= 0, --batch-size >= 1")
		fs.Usage()
		return 2
	}
	ctx, cancel := demo.Context(*timeout)
	defer cancel()

	cluster, err := demo.Connect(*kubeconfig, out)
	if err != nil {
		fmt.Fprintln(errOut, "custom-plan:", err)
		return 1
	}
	defer cluster.Close()

	var sources []verify.SyncSource
	if cluster.Local != nil {
		if err := cluster.SeedMesh(ctx, *from, *stableTag, out); err != nil {
			fmt.Fprintln(errOut, "custom-plan: seeding the demo mesh:", err)
			return 1
		}
		fmt.Fprintf(out, "installing revision %s (the \"new\" control plane)\n", *to)
		if _, err := cluster.Local.StartIstiod(ctx, *to); err != nil {
			fmt.Fprintln(errOut, "custom-plan:", err)
			return 1
		}
		sources = cluster.LocalSources(*from, *to)
		fmt.Fprintln(out, "\nbefore:")
		if err := demo.PrintMesh(ctx, out, cluster.Kube, sources); err != nil {
			fmt.Fprintln(errOut, "custom-plan:", err)
			return 1
		}
	}

	// CanaryOptions.Batches resolves the selection into batches the same
	// way upgrade.Canary would.
	sel := upgrade.CanaryOptions{Namespaces: namespace.Selection{Selector: *selector}, BatchSize: *batchSize}
	batches, err := sel.Batches(ctx, cluster.Kube)
	if err != nil {
		fmt.Fprintln(errOut, "custom-plan:", err)
		return 1
	}
	gate := gateOptions{MaxUnready: *maxUnready, MaxRestarts: *maxRestarts, FailOnPurpose: *failGate}
	plan := upgrade.Plan{Name: fmt.Sprintf("custom canary → %s", *to)}
	add := func(s ...upgrade.Step) { plan.Steps = append(plan.Steps, s...) }
	add(
		upgrade.Precheck(verify.PrecheckOptions{}),
		upgrade.SetTag(tag.SetOptions{Tag: *canaryTag, Revision: *to, Overwrite: true}),
	)
	for i, batch := range batches {
		label := fmt.Sprintf(" %d/%d", i+1, len(batches))
		ns := namespace.Selection{Namespaces: batch}
		add(
			upgrade.Named("migrate-namespaces"+label, upgrade.MigrateNamespace(namespace.MigrateOptions{Selection: ns, Target: *canaryTag})),
			upgrade.Named("restart-workloads"+label, upgrade.RolloutRestart(namespace.RestartOptions{Selection: ns, Target: *canaryTag,
				OnlyStale: true, Wait: true, Timeout: 5 * time.Minute})),
		)
		if cluster.Local != nil {
			add(cluster.ConnectSidecarsStep("connect-sidecars"+label, batch))
		}
		add(
			upgrade.Named("verify-pods"+label, upgrade.VerifyPods(verify.PodsOptions{Namespaces: batch, Target: *to})),
			healthGate("health-gate"+label, batch, gate),
		)
		gate.FailOnPurpose = false // only the first gate
	}
	fmt.Fprintf(out, "\nplan:\n%s\n", plan)

	rep, err := upgrade.Execute(ctx, upgrade.Env{Kube: cluster.Kube, Common: revkit.Common{OnEvent: demo.PrintEvents(out)}}, plan)
	if rep != nil {
		fmt.Fprintf(out, "\nreport:\n%s\n", rep)
	}
	if err != nil {
		// A *upgrade.StepError names the step: `step "health-gate 1/2" failed: …`.
		fmt.Fprintln(errOut, "custom-plan:", err)
		if f := rep.Failed(); f != nil && f.GateFailed() {
			fmt.Fprintln(errOut, "custom-plan: a health check failed; the later batches were not touched. Fix the cause and run again to resume.")
		}
		fmt.Fprintln(out, "after the failure:")
		if err := demo.PrintMesh(ctx, out, cluster.Kube, sources); err != nil {
			fmt.Fprintln(errOut, "custom-plan:", err)
		}
		return 1
	}
	fmt.Fprintln(out, "after:")
	if err := demo.PrintMesh(ctx, out, cluster.Kube, sources); err != nil {
		fmt.Fprintln(errOut, "custom-plan:", err)
		return 1
	}
	return 0
}

// gateOptions are the thresholds of the health gate.
type gateOptions struct {
	// MaxUnready is how many pods of the batch may be not Ready.
	MaxUnready int
	// MaxRestarts is how many restarts any one pod's containers may add up
	// to.
	MaxRestarts int
	// FailOnPurpose fails the gate whatever it finds.
	FailOnPurpose bool
}

// healthGate is the program's own step: a check revkit does not have,
// made a step with upgrade.Func. It only reads, and is skipped in a dry
// run, where nothing was restarted.
func healthGate(name string, namespaces []string, o gateOptions) upgrade.Step {
	where := "namespace " + namespaces[0]
	if len(namespaces) > 1 {
		where = "namespaces " + strings.Join(namespaces, ", ")
	}
	desc := fmt.Sprintf("check that in %s at most %d pods are not Ready and none restarted more than %d times",
		where, o.MaxUnready, o.MaxRestarts)
	if o.FailOnPurpose {
		desc += " (fails on purpose: --fail-gate)"
	}
	return upgrade.Func(name, desc, func(ctx context.Context, env upgrade.Env) (upgrade.Result, error) {
		if !env.Common.DryRun.Persists() {
			return upgrade.Result{Outcome: upgrade.Skipped, Detail: "dry run"}, nil
		}
		var total int
		var unready, restarted []string
		for _, ns := range namespaces {
			pods, err := env.Kube.CoreV1().Pods(ns).List(ctx, metav1.ListOptions{})
			if err != nil {
				return upgrade.Result{}, fmt.Errorf("health gate: listing the pods of %s: %w", ns, err)
			}
			for _, p := range pods.Items {
				if p.DeletionTimestamp != nil || p.Status.Phase == corev1.PodSucceeded || p.Status.Phase == corev1.PodFailed {
					continue
				}
				total++
				if !ready(&p) {
					unready = append(unready, ns+"/"+p.Name)
				}
				if n := restarts(&p); n > o.MaxRestarts {
					restarted = append(restarted, fmt.Sprintf("%s/%s (%d restarts)", ns, p.Name, n))
				}
			}
		}
		detail := fmt.Sprintf("%d pods: %d not Ready, %d restarted more than %d times", total, len(unready), len(restarted), o.MaxRestarts)
		var problems []string
		if len(unready) > o.MaxUnready {
			problems = append(problems, fmt.Sprintf("not Ready: %s", strings.Join(unready, ", ")))
		}
		if len(restarted) > 0 {
			problems = append(problems, fmt.Sprintf("restarted: %s", strings.Join(restarted, ", ")))
		}
		if o.FailOnPurpose {
			problems = append(problems, "failing on purpose (--fail-gate)")
		}
		if len(problems) > 0 {
			detail += "; " + strings.Join(problems, "; ")
			return upgrade.Result{Outcome: upgrade.Failed, Detail: detail},
				fmt.Errorf("health gate: %w: %s", revkit.ErrVerificationFailed, strings.Join(problems, "; "))
		}
		return upgrade.Result{Outcome: upgrade.Done, Detail: detail}, nil
	})
}

func ready(p *corev1.Pod) bool {
	for _, c := range p.Status.Conditions {
		if c.Type == corev1.PodReady {
			return c.Status == corev1.ConditionTrue
		}
	}
	return false
}

func restarts(p *corev1.Pod) int {
	n := 0
	for _, c := range p.Status.ContainerStatuses {
		n += int(c.RestartCount)
	}
	return n
}
