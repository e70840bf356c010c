// Command ambient-upgrade upgrades an ambient mesh the way Istio's ambient
// upgrade guide orders it, as one canary plan: the new control plane as a
// revision beside the old one (its base chart first), the canary tag
// pointed at it, then the node agents through their own Helm releases —
// istio-cni, then ztunnel a node at a time (cordon, drain, replace, check,
// uncordon) — each refused before any write if it would run ahead of the
// control plane it talks to, and finally the stable tag, which hands the
// waypoints labelled with it to the new istiod. --then-rollback runs the
// plan's rollback afterwards: ztunnel and istio-cni back first, then the
// tags, and the new revision uninstalled.
//
// With --kubeconfig (or $KUBECONFIG) it works on that cluster: --to is
// installed already unless --istiod-chart is given, and the agents are
// upgraded to --cni-chart and --ztunnel-chart (rolled back to --from-*).
// Without a kubeconfig it starts a local control plane with an ambient mesh
// of the old Istio version installed by Helm on three nodes (run it under
// hack/netns-run.sh) and upgrades it to the new version.
package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"os"
	"time"

	"k8s.io/client-go/dynamic"

	"github.com/revkit/revkit"
	"github.com/revkit/revkit/ambient"
	"github.com/revkit/revkit/examples/internal/demo"
	"github.com/revkit/revkit/gateway"
	"github.com/revkit/revkit/helm"
	"github.com/revkit/revkit/internal/testenv"
	"github.com/revkit/revkit/revision"
	"github.com/revkit/revkit/upgrade"
)

func main() {
	os.Exit(run(os.Args[1:], os.Stdout, os.Stderr))
}

func run(args []string, out, errOut io.Writer) int {
	fs := demo.FlagSet("ambient-upgrade", "Upgrade an ambient mesh: control plane canary, istio-cni, then ztunnel node by node, waypoints by tag.", errOut)
	kubeconfig := demo.KubeconfigFlag(fs)
	from := fs.String("from", testenv.OldIstio.Revision, "revision in use now")
	to := fs.String("to", testenv.NewIstio.Revision, "revision to upgrade to")
	istiodChart := fs.String("istiod-chart", "", "istiod chart (directory or .tgz) to install --to from; empty: --to is installed already")
	baseChart := fs.String("base-chart", "", "base chart to upgrade the CRDs to first (with --istiod-chart)")
	cniChart := fs.String("cni-chart", "", "istio-cni chart to upgrade to (empty: istio-cni is left alone)")
	ztunnelChart := fs.String("ztunnel-chart", "", "ztunnel chart to upgrade to (empty: ztunnel is left alone)")
	fromCNI := fs.String("from-cni-chart", "", "istio-cni chart to roll back to")
	fromZtunnel := fs.String("from-ztunnel-chart", "", "ztunnel chart to roll back to")
	tag := fs.String("agent-tag", "", "image tag of the agents' new version (a chart value; empty: the chart's own)")
	fromTag := fs.String("from-agent-tag", "", "image tag of the agents' old version, for the rollback")
	canaryTag := fs.String("canary-tag", "prod-canary", "tag pointed at --to first")
	stableTag := fs.String("stable-tag", "prod-stable", "tag moved to --to at the end (waypoints on it follow)")
	drain := fs.Bool("drain", true, "cordon and drain each node before its ztunnel is replaced")
	keepOld := fs.Bool("keep-old", true, "do not uninstall --from at the end")
	thenRollback := fs.Bool("then-rollback", false, "run the rollback plan after the upgrade")
	dryRun := fs.String("dry-run", "none", "none, client or server")
	timeout := fs.Duration("timeout", 15*time.Minute, "time limit for the whole run")
	if code, ok := demo.Parse(fs, args); !ok {
		return code
	}
	dr, err := revkit.ParseDryRun(*dryRun)
	if err != nil {
		fmt.Fprintln(errOut, "ambient-upgrade: --dry-run:", err)
		return 2
	}
	set := map[string]bool{}
	fs.Visit(func(f *flag.Flag) { set[f.Name] = true })
	ctx, cancel := demo.Context(*timeout)
	defer cancel()

	cluster, err := demo.ConnectAmbient(*kubeconfig, out)
	if err != nil {
		fmt.Fprintln(errOut, "ambient-upgrade:", err)
		return 1
	}
	defer cluster.Close()
	hc, err := helm.New(cluster.Config, "istio-system", nil)
	if err != nil {
		fmt.Fprintln(errOut, "ambient-upgrade:", err)
		return 1
	}

	var canary *testenv.Istiod
	if cluster.Local != nil {
		old, next := testenv.IstioFor(*from), testenv.IstioFor(*to)
		if err := cluster.SeedAmbient(ctx, hc, old, *stableTag, out); err != nil {
			fmt.Fprintln(errOut, "ambient-upgrade: seeding the mesh:", err)
			return 1
		}
		// The new version's charts, from the local control plane's copies.
		def := func(name string, p *string, v testenv.IstioVersion, chart string) {
			if !set[name] {
				*p = cluster.Local.VersionChartDir(v, chart)
			}
		}
		def("istiod-chart", istiodChart, next, "istio-discovery")
		def("base-chart", baseChart, next, "base")
		def("cni-chart", cniChart, next, "istio-cni")
		def("ztunnel-chart", ztunnelChart, next, "ztunnel")
		def("from-cni-chart", fromCNI, old, "istio-cni")
		def("from-ztunnel-chart", fromZtunnel, old, "ztunnel")
		if !set["agent-tag"] {
			*tag = next.Name
		}
		if !set["from-agent-tag"] {
			*fromTag = old.Name
		}
		if canary, err = cluster.Local.ReserveIstiod(*to); err != nil {
			fmt.Fprintln(errOut, "ambient-upgrade:", err)
			return 1
		}
		canary.Version = next
	}

	opts := upgrade.CanaryOptions{From: *from, To: *to, CanaryTag: *canaryTag, StableTag: *stableTag,
		KeepOld: *keepOld, Helm: hc, RestartTimeout: 5 * time.Minute,
		Ambient: &upgrade.AmbientOptions{Releaser: hc, To: charts(*cniChart, *ztunnelChart, *tag), From: charts(*fromCNI, *fromZtunnel, *fromTag),
			NodeByNode: true, Drain: *drain, Cordon: true, NodeTimeout: 3 * time.Minute, Timeout: 3 * time.Minute}}
	if *istiodChart != "" {
		opts.Install = &revision.InstallOptions{Chart: revision.ChartSource{Path: *istiodChart}, Helm: hc, Wait: true,
			Timeout: 3 * time.Minute, Values: map[string]any{"profile": "ambient"}}
		if canary != nil {
			opts.Install.Values = canary.ChartValues()
			opts.Install.Values["profile"] = "ambient"
		}
		if *baseChart != "" {
			opts.Install.Base, opts.Install.BaseValues = &revision.ChartSource{Path: *baseChart}, demo.BaseValues
		}
	}
	plan, err := upgrade.Canary(ctx, cluster.Kube, opts)
	if err != nil {
		fmt.Fprintln(errOut, "ambient-upgrade:", err)
		return 1
	}
	if canary != nil {
		plan = afterInstall(plan, cluster.LocalRevisionStep(canary))
	}
	fmt.Fprintf(out, "\nplan:\n%s\n", plan)
	env := upgrade.Env{Kube: cluster.Kube, Common: revkit.Common{DryRun: dr, OnEvent: demo.PrintEvents(out)}}
	rep, err := upgrade.Execute(ctx, env, plan)
	if rep != nil {
		fmt.Fprintf(out, "\nreport:\n%s\n", rep)
	}
	if err != nil {
		fmt.Fprintln(errOut, "ambient-upgrade:", err)
		return 1
	}
	if err := printAmbient(ctx, out, cluster); err != nil {
		fmt.Fprintln(errOut, "ambient-upgrade:", err)
		return 1
	}
	if !*thenRollback {
		return 0
	}
	rb := opts
	rb.KeepOld = false
	back, err := upgrade.Rollback(ctx, cluster.Kube, rb)
	if err != nil {
		fmt.Fprintln(errOut, "ambient-upgrade:", err)
		return 1
	}
	fmt.Fprintf(out, "\nrollback plan:\n%s\n", back)
	rep, err = upgrade.Execute(ctx, env, back)
	if rep != nil {
		fmt.Fprintf(out, "\nreport:\n%s\n", rep)
	}
	if err != nil {
		fmt.Fprintln(errOut, "ambient-upgrade: rollback:", err)
		return 1
	}
	if err := printAmbient(ctx, out, cluster); err != nil {
		fmt.Fprintln(errOut, "ambient-upgrade:", err)
		return 1
	}
	return 0
}

// charts are the agents' charts; tag, when set, is their image tag.
func charts(cni, ztunnel, tag string) upgrade.AgentCharts {
	var c upgrade.AgentCharts
	if cni != "" {
		c.CNI = &revkit.ChartSource{Path: cni}
		if tag != "" {
			c.CNIValues = map[string]any{"global": map[string]any{"tag": tag}}
		}
	}
	if ztunnel != "" {
		c.Ztunnel = &revkit.ChartSource{Path: ztunnel}
		if tag != "" {
			c.ZtunnelValues = map[string]any{"tag": tag}
		}
	}
	return c
}

// afterInstall puts step right after the plan's install step.
func afterInstall(p upgrade.Plan, step upgrade.Step) upgrade.Plan {
	var steps []upgrade.Step
	for _, s := range p.Steps {
		steps = append(steps, s)
		if upgrade.KindOf(s) == upgrade.KindInstallRevision {
			steps = append(steps, step)
		}
	}
	p.Steps = steps
	return p
}

// printAmbient prints the node agents per node and the waypoints.
func printAmbient(ctx context.Context, w io.Writer, c *demo.Cluster) error {
	st, err := ambient.Read(ctx, c.Kube, ambient.ReadOptions{})
	if err != nil {
		return err
	}
	fmt.Fprintf(w, "\nambient namespaces: %v\n%-10s %-12s %-16s %-34s %s\n", st.AmbientNamespaces, "AGENT", "RELEASE", "REVISION", "VERSION", "NODES CURRENT")
	for _, a := range st.Agents {
		fmt.Fprintf(w, "%-10s %-12s %-16s %-34s %d/%d\n", a.Component, a.Release, a.Revision, a.Version, len(a.Nodes)-len(a.Pending()), len(a.Nodes))
	}
	dyn, err := dynamic.NewForConfig(c.Config)
	if err != nil {
		return err
	}
	gws, err := gateway.ListAPI(ctx, c.Kube, dyn, gateway.ListOptions{})
	if err != nil {
		return err
	}
	for _, g := range gws {
		fmt.Fprintf(w, "waypoint %s/%s: label %s, served by %s, rendered by %s\n", g.Namespace, g.Name, g.Label, g.Revision, g.DeploymentRevision)
	}
	return nil
}
